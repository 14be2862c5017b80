-- Turns the samples bench/harness.lua wrote into the tables, checks the issue's
-- targets, prints the report and writes it to BENCHMARKS.md.
--
--   lua5.4 bench/report.lua SAMPLES DECODE_COST OUT.md
--
-- SAMPLES: harness.lua's tab-separated lines. DECODE_COST: lines
-- "mode<TAB>instructions<TAB>iterations" from callgrind (bench/run.sh).
--
--   lua5.4 bench/report.lua --section SECTION.md OUT.md
--
-- puts a section written elsewhere (bench/openresty.sh's bench/results/openresty.md)
-- into OUT.md in place of its old copy, before "## Commands", and touches nothing
-- else: `make bench-openresty` refreshes only its own rows.
local numbers = require "bench.numbers"

local split, median, thousands, ms = numbers.split, numbers.median, numbers.thousands, numbers.ms
local samples_path, decode_path, out_path = arg[1], arg[2], arg[3]

local OPENRESTY_SECTION = "bench/results/openresty.md"

local function read_all(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read "a"
  file:close()
  return text
end

-- `document` with `section` (which opens with its own "## " heading) in place of
-- the section of the same heading, or before "## Commands" when it has none.
local function with_section(document, section)
  local heading = section:match "^(## [^\n]*)"
  local first = document:find("\n" .. heading:gsub("%p", "%%%0") .. "\n", 1)
  if first then
    local after = document:find("\n## ", first + 1, true)
    return document:sub(1, first) .. section .. (after and document:sub(after) or "")
  end
  local commands = document:find("\n## Commands\n", 1, true)
  if not commands then return document .. "\n" .. section end
  return document:sub(1, commands) .. section .. document:sub(commands)
end

if samples_path == "--section" then
  local section = assert(read_all(decode_path), "no section at " .. tostring(decode_path))
  local document = read_all(out_path) or ""
  local out = assert(io.open(out_path, "w"))
  out:write(with_section(document, section:gsub("%s+$", "") .. "\n"))
  out:close()
  return
end

local format, concat = string.format, table.concat

local function lines_of(path)
  local list = {}
  for line in io.lines(path) do
    if line ~= "" then list[#list + 1] = line end
  end
  return list
end

local function command_output(command)
  local pipe = io.popen(command .. " 2>/dev/null")
  if not pipe then return "?" end
  local text = pipe:read "a" or ""
  pipe:close()
  text = text:gsub("%s+$", "")
  return text ~= "" and text or "?"
end

-- ----------------------------------------------------------------- samples

-- Rows in the order the harness first ran them, samples grouped per
-- (group, server, row, workflow).
local rows, by_key = {}, {}
for _, line in ipairs(lines_of(samples_path)) do
  local f = split(line)
  local key = concat({ f[1], f[2], f[3], f[6] }, "|")
  local row = by_key[key]
  if not row then
    row = { group = f[1], server = f[2], name = f[3], kind = f[4], label = f[5],
            workflow = f[6], runs = tonumber(f[7]), walls = {}, rss = {}, conns = {},
            requests = {}, command = f[13] }
    by_key[key] = row
    rows[#rows + 1] = row
  end
  if f[9] == "timeout" then
    row.timed_out = tonumber(f[10])  -- the harness stopped it after that many seconds
  else
    row.walls[#row.walls + 1] = tonumber(f[9])
    row.rss[#row.rss + 1] = tonumber(f[10])
    row.conns[#row.conns + 1] = f[11]
    row.requests[#row.requests + 1] = f[12]
  end
end

-- A row that timed out has no figure: a median over the runs that finished
-- would flatter it.
for _, row in ipairs(rows) do
  if not row.timed_out then
    row.wall = median(row.walls)
    row.min, row.max = math.min(table.unpack(row.walls)), math.max(table.unpack(row.walls))
    row.peak = median(row.rss)
    row.rate = row.runs / row.wall
  end
end

local function find(group, name, workflow, server)
  server = server or "static"
  for _, row in ipairs(rows) do
    if row.group == group and row.name == name and row.server == server
       and (not workflow or row.workflow == workflow) then
      return row
    end
  end
end

-- The yardstick of each group: its fastest sequential peer.
local best_peer = {}
for _, row in ipairs(rows) do
  if row.kind == "peer" and row.wall then
    local best = best_peer[row.group]
    if not best or row.wall < best.wall then best_peer[row.group] = row end
  end
end

-- ----------------------------------------------------------------- formatting

local function range(values)
  local seen, list = {}, {}
  for _, v in ipairs(values) do
    if not seen[v] then
      seen[v] = true
      list[#list + 1] = v
    end
  end
  return concat(list, "/")
end

local SERVER_NAMES = {
  static = "static",
  sandbox = "sandbox.py",
  static_identity = "static, no gzip",
}

local default_prefetch = command_output(
  [[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" lua5.4 -e ]]
  .. [['print(require("workflows.options").DEFAULTS.prefetch)']])
-- a number, or "auto" (the self-sizing window), shown quoted as in the options
if default_prefetch == "auto" then
  default_prefetch = '"auto"'
elseif not default_prefetch:match "^%d+$" then
  default_prefetch = nil
end

local function label_of(row)
  if row.name == "client" and default_prefetch then
    return format("%s (= %s)", row.label, default_prefetch)
  end
  return row.label
end

local function table_lines(group_filter)
  local out = {
    "| latency | row | server | wall (median) | min–max (runs) | runs/s | vs best sequential peer "
      .. "| peak RSS | conns/reqs |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, row in ipairs(rows) do
    if group_filter(row) and row.timed_out then
      out[#out + 1] = format("| %s | %s | %s | timed out (> %d s) | | | | | |", row.group,
        label_of(row), SERVER_NAMES[row.server] or row.server, row.timed_out)
    elseif group_filter(row) then
      local best = best_peer[row.group]
      local ratio = (best and row.kind ~= "capacity") and format("%.2fx", best.wall / row.wall)
        or "–"
      local rate = thousands(row.rate)
      if row.kind == "capacity" or row.kind == "floor" then
        rate = format("%s (%s pages/s)", rate, thousands(row.rate / 100))
      end
      local name = label_of(row)
      if row.group == "memory" then
        name = format("%s, %s (%s runs)", name, row.workflow, thousands(row.runs))
      end
      if best == row then name = "**" .. name .. "**" end
      if row.kind == "client" then name = "*" .. name .. "*" end
      local conns = row.conns[1] == "-" and "–"
        or range(row.conns) .. " / " .. range(row.requests)
      out[#out + 1] = format("| %s | %s | %s | %s ms | %s–%s (%d) | %s | %s | %.1f MiB | %s |",
        row.group, name, SERVER_NAMES[row.server] or row.server, ms(row.wall), ms(row.min),
        ms(row.max), #row.walls, rate, ratio, row.peak / 1024, conns)
    end
  end
  return out
end

-- ----------------------------------------------------------------- targets

local targets = {}
local function target(text, value, shown, met)
  targets[#targets + 1] = format("| %s | %s | %s |", text, value == nil and "not measured"
    or shown, value == nil and "–" or (met and "met" or "**missed**"))
end

-- Speed targets compare two walks: "x is `want`x faster than y" (ratio y/x, at least
-- `want`) or "x within `want`x of y" (ratio x/y, at most `want`).
local function speed_target(text, x, y, how, want)
  for _, row in ipairs { x, y } do
    if row and row.timed_out then
      targets[#targets + 1] = format("| %s | %s timed out (> %d s) | **missed** |", text,
        label_of(row), row.timed_out)
      return
    end
  end
  if not (x and y) then return target(text, nil) end
  local ratio = how == "faster" and y.wall / x.wall or x.wall / y.wall
  local met = how == "faster" and ratio >= want or how == "within" and ratio <= want
  target(text, ratio, format("%.2fx (%s ms against %s: %s ms)", ratio, ms(x.wall), label_of(y),
    ms(y.wall)), met)
end

speed_target("20 ms: default walk at least 2.5x faster than the best sequential peer",
  find("20 ms", "client"), best_peer["20 ms"], "faster", 2.5)
speed_target("20 ms: prefetch = 3 within 1.3x of curl --parallel-max 4",
  find("20 ms", "client_p3"), find("20 ms", "curl_parallel"), "within", 1.3)
speed_target("0 ms: default walk no slower than the best sequential peer (>= 0.95)",
  find("0 ms", "client"), best_peer["0 ms"], "faster", 0.95)

local decode = {}
for _, line in ipairs(lines_of(decode_path)) do
  local f = split(line)
  decode[f[1]] = { value = tonumber(f[2]), iterations = tonumber(f[3]) }
end
local per_page = {}
if decode.baseline then
  for _, mode in ipairs { "cjson", "core" } do
    local d = decode[mode]
    if d then
      per_page[mode] = (d.value - decode.baseline.value) / d.iterations
    end
  end
end
local decode_ratio = per_page.core and per_page.cjson and per_page.core / per_page.cjson
target("decode path <= 1.3x the instructions of a bare cjson.decode", decode_ratio,
  decode_ratio and format("%.2fx (%s vs %s instructions per page)", decode_ratio,
    thousands(per_page.core), thousands(per_page.cjson)), decode_ratio and decode_ratio <= 1.3)

local big, huge = find("memory", "client", "wf_big"), find("memory", "client", "wf_huge")
local memory_ratio = big and huge and big.peak and huge.peak and huge.peak / big.peak
target("peak RSS of a 200,000-run walk within 1.2x of a 20,000-run walk", memory_ratio,
  memory_ratio and format("%.2fx (%.1f MiB vs %.1f MiB)", memory_ratio, huge.peak / 1024,
    big.peak / 1024), memory_ratio and memory_ratio <= 1.2)

-- Inside Neovim (bench/nvim.sh), when its samples are there.
local nvim_samples = os.getenv "BENCH_NVIM_SAMPLES" or "build/bench/nvim-samples.tsv"
local nvim_section
local nvim_file = io.open(nvim_samples)
if nvim_file then
  nvim_file:close()
  local nvim_targets
  nvim_section, nvim_targets = require("bench.nvim_report").section(nvim_samples)
  for _, row in ipairs(nvim_targets) do targets[#targets + 1] = row end
end

-- ----------------------------------------------------------------- machine

local function cpu_model()
  for line in io.lines "/proc/cpuinfo" do
    local model = line:match "^model name%s*:%s*(.+)$"
    if model then return model end
  end
  return "?"
end

local function memory()
  for line in io.lines "/proc/meminfo" do
    local kb = line:match "^MemTotal:%s*(%d+)"
    if kb then return format("%.1f GiB", tonumber(kb) / 1024 / 1024) end
  end
  return "?"
end

local machine = {
  { "date", os.getenv "BENCH_DATE" or command_output "date -u '+%Y-%m-%d %H:%M UTC'" },
  { "CPUs (nproc)", command_output "nproc" },
  { "CPU", cpu_model() },
  { "memory", memory() },
  { "kernel", command_output "uname -sr" },
  { "libcurl", command_output "curl --version | head -n 1" },
  { "Lua", command_output "lua5.4 -v" .. "; " .. command_output "lua5.1 -v 2>&1 | cat" },
  { "lua-cjson", command_output "dpkg-query -W -f '${Version}' lua-cjson" },
  { "LuaSocket", command_output "dpkg-query -W -f '${Version}' lua-socket" },
  { "lua-curl (luacurl)", command_output "dpkg-query -W -f '${Version}' lua-curl" },
  { "Python", command_output "python3 --version" },
  { "valgrind", command_output "valgrind --version" },
}

-- ----------------------------------------------------------------- document

local doc = {}
local function add(...)
  for _, text in ipairs { ... } do doc[#doc + 1] = text end
end

add("# Benchmarks", "",
  "Generated by `make bench` (`bench/run.sh`); every figure below comes from one run of it.",
  "Re-run it to refresh this file.", "",
  "Each walk fetches **every run of `wf_big`** (20,000 runs, 200 pages of `limit=100`) and",
  "decodes every page; a row's wall time is the median of its runs (the whole process,",
  "start-up included, as a user would time it), runs interleaved round by round; 0 ms",
  "rows get three times the runs, since there the machine's noise is a good part of a",
  "100 ms walk.",
  "*vs best sequential peer*: the fastest of the sequential peers of the same latency",
  "(in bold) divided by this row's wall time, so 2.00x means twice as fast.",
  "*peak RSS*: the walking process (for the curl-per-page row, the largest of the Lua",
  "process and its curl children). *conns/reqs*: TCP connections and requests the",
  "server saw per walk (only the static server counts them).", "")

add("## Targets", "", "| target | measured | |", "| --- | --- | --- |")
add(table.unpack(targets))
add("")

add("## Walks", "")
add(table.unpack(table_lines(function(row)
  return row.group:match "^%d+ ms$" and row.server == "static"
end)))
add("")

add("## Servers", "",
  "The client shares this machine's CPUs with the server. `static` is",
  "`bench/static_server.c`: one epoll thread serving the sandbox's own page bodies",
  "(fetched once from `sandbox/server.py` by `bench/prerender.sh`, identity and gzip, byte",
  "for byte) from memory, with the same latency injection (the answer waits",
  "`--latency-ms` after the request has been read). Every walk above used it, because",
  "the sandbox cannot serve pages as fast as the clients consume them (below).", "")
add(table.unpack(table_lines(function(row)
  return row.kind == "capacity" or (row.group == "0 ms" and row.name == "curl_parallel")
    or row.server == "sandbox"
end)))
add("")

add("## At 0 ms: gzip", "",
  "The client asks for gzip (as it should over a real network) and the sandbox's pages",
  "shrink from ~29 KB to ~3.4 KB; the sequential peers do not ask, so on loopback they",
  "skip the inflating. `static, no gzip` is a second static server started with",
  "`--identity`, which never compresses, measured in the same rounds: the difference is",
  "what gzip costs the client here (inflating, less the smaller transfer).", "")
add(table.unpack(table_lines(function(row)
  return row.group == "0 ms" and (row.server == "static_identity"
    or row.server == "static" and (row.name == "client" or row.name == "client_p0"))
end)))
add("")

add("## Decode cost", "",
  "Instructions per decode of one 100-run page body (identity JSON, page 0 of `wf_big`),",
  "counted by `valgrind --tool=callgrind`: each mode decodes the same body N times in",
  "`bench/decode_cost.lua`, minus a baseline run that does everything but the decoding.", "",
  "| decode | instructions per page |", "| --- | ---: |")
if per_page.cjson then add(format("| bare `cjson.decode(body)` | %s |", thousands(per_page.cjson))) end
if per_page.core then
  add(format("| `workflows.core.decode_page(body)` (shape checks, nulls dropped, integers) | %s |",
    thousands(per_page.core)))
end
if decode_ratio then add(format("| ratio | %.2fx |", decode_ratio)) end
add("")
if decode.time_cjson and decode.time_core then
  add(format("Timed without valgrind (CPU time, alternating blocks of 100 decodes): "
    .. "`cjson.decode` %.0f µs, `decode_page` %.0f µs per page (%.2fx).",
    decode.time_cjson.value, decode.time_core.value,
    decode.time_core.value / decode.time_cjson.value), "")
end

add("## Memory", "",
  "Peak RSS of the default walk over `wf_huge` (200,000 runs, 2,000 pages) against the same",
  "walk over `wf_big` (20,000 runs), static server, 0 ms.", "")
add(table.unpack(table_lines(function(row) return row.group == "memory" end)))
add("")

-- The command's section, when bench/cli.sh wrote one in this `make bench`.
local cli_section = os.getenv("BENCH_CLI_MD")
local cli_file = cli_section and cli_section ~= "" and io.open(cli_section, "r")
if cli_file then
  add((cli_file:read "a":gsub("\n+$", "")), "")
  cli_file:close()
end

-- The prefetch window's section (make bench-window, bench/window_report.lua) is
-- measured apart: keep the one already in the file.
do
  local previous = io.open(out_path)
  if previous then
    local text = previous:read "a"
    previous:close()
    local section = text:match "\n(<!%-%- window: begin.-<!%-%- window: end %-%->)"
    if section then add(section, "") end
  end
end

if nvim_section then add(table.unpack(nvim_section)) end

add("## Commands", "", "```sh", "make bench                 # installs what is missing, builds, runs "
  .. "everything (bench/run.sh)", "BENCH_RUNS=9 make bench    # more runs per row", "```", "",
  "Each row runs (BASE is the server's `http://127.0.0.1:PORT`):", "", "```sh")
local shown = {}
for _, row in ipairs(rows) do
  if row.command and not shown[row.name] then
    shown[row.name] = true
    local command = row.command:gsub("http://127%.0%.0%.1:%d+", "$BASE")
      :gsub("%S+/urls%-[%w_%-]+%.cfg", "urls.cfg")
    add(format("# %s", label_of(row)), command)
  end
end
add("```", "",
  "`urls.cfg` lists the 200 page URLs as curl config lines (`url = ...`, `output = "
    .. "\"/dev/null\"`).",
  "Servers: `build/bench/static_server --pages DIR --latency-ms N`, "
    .. "`python3 sandbox/server.py --latency-ms N`.",
  "Decode cost: `valgrind --tool=callgrind lua5.4 bench/decode_cost.lua core|cjson|baseline "
    .. "N page.json`.", "")

add("## Machine", "", "| | |", "| --- | --- |")
for _, item in ipairs(machine) do add(format("| %s | %s |", item[1], item[2])) end
add("")

local text = concat(doc, "\n")
-- the OpenResty rows, measured by bench/openresty.sh just before
local openresty = read_all(OPENRESTY_SECTION)
if openresty then text = with_section(text, openresty:gsub("%s+$", "") .. "\n") end
io.write(text)
local out = assert(io.open(out_path, "w"))
out:write(text)
out:close()
