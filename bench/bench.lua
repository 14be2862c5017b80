-- The benchmark: runs the named scenarios (bench/scenarios/NAME.lua), prints what
-- each measured and puts its section into BENCHMARKS.md in place of its last one.
--
--   lua5.4 bench/bench.lua [--out FILE] SCENARIO...     (from the repository's root)
--   lua5.4 bench/bench.lua --list
--
-- BENCH_RUNS (default 5) sets the runs per row; BENCH_LATENCIES a subset of the walk
-- scenario's latencies. Every server listens on 127.0.0.1 only and is stopped by its
-- pid when the scenario ends, fails or is interrupted.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local lib = require "bench.lib"

-- The scenarios, in the order `make bench` runs them; each module says what it measures.
local ORDER = { "walk", "window", "cli", "nvim", "openresty", "http2" }
local SCENARIOS = {}
for _, name in ipairs(ORDER) do SCENARIOS[name] = require("bench.scenarios." .. name) end

local out_path, names = "BENCHMARKS.md", {}
local i = 1
while arg[i] do
  if arg[i] == "--out" then
    out_path, i = arg[i + 1], i + 1
  elseif arg[i] == "--list" then
    for _, name in ipairs(ORDER) do print(("%-10s %s"):format(name, SCENARIOS[name].about)) end
    os.exit(0)
  elseif SCENARIOS[arg[i]] then
    names[#names + 1] = arg[i]
  else
    io.stderr:write("bench: unknown scenario ", arg[i], " (--list names them)\n")
    os.exit(2)
  end
  i = i + 1
end
if #names == 0 then names = ORDER end

-- SECTION in place of DOCUMENT's copy between the scenario's markers, or appended.
local function with_section(document, name, section)
  local begin, finish = ("<!-- bench %s -->"):format(name), ("<!-- /bench %s -->"):format(name)
  local text = begin .. "\n" .. section .. "\n" .. finish
  local first = document:find(begin, 1, true)
  local last = first and select(2, document:find(finish, first, true))
  if last then return document:sub(1, first - 1) .. text .. document:sub(last + 1) end
  local machine = document:find("<!-- bench machine -->", 1, true)
  if machine then return document:sub(1, machine - 1) .. text .. "\n\n" .. document:sub(machine) end
  return document:gsub("\n*$", "\n\n") .. text .. "\n"
end

local function load() return lib.output "cut -d' ' -f1-3 /proc/loadavg" end

-- What the figures were measured on, refreshed with every run.
local function machine()
  local rows = {}
  for _, item in ipairs {
    { "CPUs (nproc)", "nproc" }, { "CPU", "sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1" },
    { "kernel", "uname -sr" }, { "libcurl", "curl --version | head -n 1 | cut -d' ' -f1-3" },
    { "Lua", "{ lua5.4 -v; lua5.1 -v; } 2>&1 | cut -d' ' -f1-2" }, { "Python", "python3 --version" },
    { "Debian packages", "dpkg-query -W -f '${Package} ${Version}\n' lua-cjson lua-socket lua-curl" },
  } do
    rows[#rows + 1] = { item[1], (lib.output(item[2]):gsub("%s*\n%s*", "; ")) }
  end
  return table.concat(lib.append({ "## Machine", "" }, lib.table({ "<", "<" }, rows)), "\n")
end

lib.work = lib.output "mktemp -d /tmp/workflows-bench.XXXXXX"
local ok, problem = pcall(function()
  for _, name in ipairs(names) do
    io.stderr:write("== ", name, ": ", SCENARIOS[name].about, "\n")
    local before, date = load(), lib.output "date -u '+%Y-%m-%d %H:%M UTC'"
    local lines = SCENARIOS[name].run(lib)
    lib.stop_all()
    lines[#lines + 1] = ("Measured %s by `lua5.4 bench/bench.lua %s` (%d runs a row unless said); "
      .. "load average before: %s, after: %s (2 cores; other work shares them)."):format(date,
      name, lib.runs, before, load())
    local section = table.concat(lines, "\n")
    io.write(section, "\n\n")
    local document = with_section(lib.read(out_path) or "# Benchmarks\n", name, section)
    lib.write(out_path, with_section(document, "machine", machine()))
  end
end)
lib.stop_all()
os.execute("rm -rf " .. lib.work)
if not ok then
  io.stderr:write("bench: ", tostring(problem), "\n")
  os.exit(1)
end
