-- `make soak`'s libuv hosts: spec/support/careless_loop.lua in "soak" mode for
-- SECONDS, as a child process (standalone luv on lua5.4 or luajit, or inside
-- `nvim --headless`), killed if it outlives its bound; then the checks on its
-- report, its stderr and its exit.
--
--   lua5.4 tools/soak/loop.lua HOST SECONDS SANDBOX_URL [SEED]     HOST: lua5.4, luajit, nvim
local cli = require "spec.support.cli"
local checks = require "tools.soak.checks"

local name, seconds, sandbox_url = arg[1], tonumber(arg[2]), arg[3]
local seed = arg[4] or tostring(os.time())
-- the script's own bounds: SECONDS of work, then 10 s for the loop to end, twice
-- 10 s after the final collections; the rest is start-up
local BOUND = seconds + 45

local host = checks.host(name)
local shell_quote = cli.shell_quote

local function command_output(command)
  local pipe = assert(io.popen(command))
  local output = pipe:read("*a")
  pipe:close()
  return output
end

-- the script runs from other directories (Neovim's); it finds the checkout by this
local root = command_output("pwd"):gsub("%s+$", "")

local function command_for(report_path, err_path)
  local core = name == "lua5.4" and root or (root .. "/build/luajit")
  local env = table.concat({
    "env -u LD_PRELOAD",
    "CARELESS_SB=" .. shell_quote(sandbox_url),
    "CARELESS_REPORT=" .. shell_quote(report_path),
    "CARELESS_MODE=soak",
    "CARELESS_SECONDS=" .. seconds,
    "CARELESS_SEED=" .. shell_quote(seed),
    "CARELESS_ROOT=" .. shell_quote(root),
    "CARELESS_CORE=" .. shell_quote(core),
  }, " ")
  -- -k: a loop spinning in a callback never sees SIGTERM (Neovim handles it on its loop)
  local bounded = "timeout -k 5 " .. BOUND .. " "
  local script = shell_quote(root .. "/spec/support/careless_loop.lua")
  local run
  if name == "nvim" then
    run = bounded .. "nvim --headless -u NONE -c " .. shell_quote("luafile " .. root
      .. "/spec/support/careless_loop.lua") .. " -c 'qa!'"
  else
    run = bounded .. name .. " " .. script
  end
  return env .. " " .. run .. " </dev/null >/dev/null 2>" .. shell_quote(err_path)
    .. "; echo $?"
end

-- The distinct lines of `text`, most frequent first, each with its count; at most
-- `most` of them, indented.
local function distinct_lines(text, most)
  local counts, order = {}, {}
  for line in text:gmatch("[^\n]+") do
    line = line:sub(1, 300)
    if not counts[line] then order[#order + 1] = line end
    counts[line] = (counts[line] or 0) + 1
  end
  table.sort(order, function(a, b) return counts[a] > counts[b] end)
  local lines = {}
  for i = 1, math.min(most, #order) do
    lines[i] = ("       %5d x %s"):format(counts[order[i]], order[i])
  end
  if #order > most then lines[#lines + 1] = "       ... and " .. (#order - most) .. " more" end
  return table.concat(lines, "\n")
end

local function soak()
  local report_path, err_path = os.tmpname(), os.tmpname()
  os.remove(report_path)  -- a report exists only if the script wrote one
  local started = os.time()
  local status = tonumber(command_output(command_for(report_path, err_path)):match("(%d+)"))
  local took = os.time() - started
  local stderr = cli.read_file(err_path) or ""
  local chunk = cli.read_file(report_path)
  os.remove(report_path)
  os.remove(err_path)
  local report = {}
  if chunk then report = assert((loadstring or load)(chunk))() end  -- luacheck: ignore

  local ended
  if status == 124 or status == 137 then
    ended = ("killed after %d s: the script never ended, not even by its watchdog (stuck"
      .. " inside a callback); the counters are from its last progress report"):format(BOUND)
  elseif report.wedged then
    ended = report.wedged .. " (live handles: " .. tostring(report.wedged_handles) .. ")"
  elseif not report.finished then
    ended = "exit status " .. tostring(status) .. " and no report"
  end
  host:note(("%s s, exit status %s, seed %s"):format(took, tostring(status), seed))
  host:note(("%d clients (%d dropped, %d closed after, %d closed inside a task), %d tasks,"
    .. " %d on_done (%d ok, %d cancelled, %d failed), %d cancels, %d collections"):format(
    report.clients or 0, report.dropped or 0, report.closed_after or 0, report.closed_inside or 0,
    report.tasks or 0, report.done or 0, report.done_ok or 0, report.done_cancelled or 0,
    report.done_failed or 0, report.cancels or 0, report.collections or 0))

  local errors = stderr .. (report.messages or "")
  local eexist = 0
  for _ in errors:gmatch("EEXIST") do eexist = eexist + 1 end
  for _, failure in ipairs(report.failures or {}) do
    if failure:find("EEXIST", 1, true) then eexist = eexist + 1 end
  end

  host:check("the careless workload ran",
    (report.tasks or 0) >= seconds * 10 and (report.breaks or 0) > 0 and (report.cancels or 0) > 0
      and (report.collections or 0) > seconds * 10 and (report.dropped or 0) > 0,
    ("%d tasks, %d walks broken out of, %d cancels, %d collections, %d clients dropped"):format(
      report.tasks or 0, report.breaks or 0, report.cancels or 0, report.collections or 0,
      report.dropped or 0), true)
  local streams = name == "nvim" and "stderr or :messages" or "stderr"
  host:check("nothing on " .. streams, errors == "",
    ("%d bytes:\n%s"):format(#errors, distinct_lines(errors, 6)))
  host:check("no EEXIST", eexist == 0, eexist .. " EEXIST")
  if name == "nvim" then
    host:check("the script ends", ended == nil and status == 0, ended or ("exit status " .. tostring(status)))
  else
    host:check("the loop ends by itself once the workload stops", ended == nil,
      ended or ("uv.run() returned %.0f ms after the workload stopped"):format(
        (report.workload_ms or 0) - seconds * 1000), true)
  end
  host:check("descriptors back where they were before the first client",
    report.descriptors_after ~= nil and report.descriptors_after == report.descriptors_before,
    ("%s before, %s after"):format(tostring(report.descriptors_before),
      tostring(report.descriptors_after)), true)
  host:check("every task's on_done called", report.tasks ~= nil and report.done == report.tasks,
    ("%s tasks, %s on_done"):format(tostring(report.tasks), tostring(report.done)))
end

local ok, err = pcall(soak)
if not ok then host:check("the soak ran", false, tostring(err)) end
os.exit(checks.finish() and 0 or 1)
