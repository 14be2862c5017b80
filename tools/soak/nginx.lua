-- `make soak`'s nginx host: one master and one worker (a crashed worker shows as
-- "exited on signal" in the error log, and the master starts another), error_log
-- at info, and spec/support/careless_ngx.lua's locations: careless walks in
-- content handlers and in timers, collectgarbage(), a few handlers that close
-- everything. tools/soak/load.py sends them at a few concurrent requests for
-- SECONDS; then the checks. nginx is stopped by its pid whatever happens.
--
--   lua5.4 tools/soak/nginx.lua SECONDS SANDBOX_URL [SEED]
local nginx = require "spec.support.nginx"
local careless = require "spec.support.careless_ngx"
local cli = require "spec.support.cli"
local checks = require "tools.soak.checks"
local cjson = require "cjson"

local seconds, sandbox_url = tonumber(arg[1]), arg[2]
local seed = arg[3] or tostring(os.time())
local CONCURRENCY = 4
-- after the load, how long the timers still walking may take to end
local TIMERS_GRACE = 20
-- how long nginx may take to stop gracefully
local STOP_GRACE = 15

local host = checks.host("nginx")

local function command_output(command)
  local pipe = assert(io.popen(command))
  local output = pipe:read("*a")
  pipe:close()
  return output
end

local function exited(pid)
  local stat = cli.read_file("/proc/" .. pid .. "/stat")
  return stat == nil or stat:match(".*%)%s+(%a)") == "Z"
end

-- The pids of `pid`'s children: the master's worker.
local function children(pid)
  local text = cli.read_file("/proc/" .. pid .. "/task/" .. pid .. "/children") or ""
  local pids = {}
  for child in text:gmatch("%d+") do pids[#pids + 1] = child end
  return table.concat(pids, " ")
end

-- The error log's lines at each of the levels that matter, and the first few of them.
local function log_lines(log, needle, most)
  local count, shown = 0, {}
  for line in log:gmatch("[^\n]+") do
    if line:find(needle, 1, true) then
      count = count + 1
      if #shown < most then shown[#shown + 1] = "       " .. line:sub(1, 300) end
    end
  end
  return count, table.concat(shown, "\n")
end

local function stats(server)
  local _, body = server:get("/careless/stats", 10)
  return careless.decode_stats(body)
end

local function soak(server)
  local worker_before = children(server.pid)
  host:note(("one worker (pid %s), %d concurrent requests for %d s, seed %s"):format(
    worker_before, CONCURRENCY, seconds, seed))
  local output = command_output(("timeout %d python3 tools/soak/load.py %s %d %d %s"):format(
    seconds + 60, cli.shell_quote(server.url), seconds, CONCURRENCY, cli.shell_quote(seed)))
  local ok, load = pcall(cjson.decode, output)
  if not ok or type(load) ~= "table" then
    host:check("the load ran", false, "tools/soak/load.py printed: " .. output:sub(1, 500))
    return
  end

  -- the timers started last may still be walking
  local counters = stats(server)
  for _ = 1, TIMERS_GRACE * 10 do
    local ended = (counters.timers_done or 0) + (counters.timer_errors or 0)
      + (counters.timers_premature or 0)
    if ended >= (counters.timers or 0) then break end
    os.execute("sleep 0.1")
    counters = stats(server)
  end

  local requests, wrong, by_kind = 0, {}, {}
  local kinds = {}
  for kind in pairs(load.kinds) do kinds[#kinds + 1] = kind end
  table.sort(kinds)
  for _, kind in ipairs(kinds) do
    local total = 0
    for status, count in pairs(load.kinds[kind]) do
      local n = math.floor(count)
      total = total + n
      if status ~= "200" then wrong[#wrong + 1] = ("%d %s answered %s"):format(n, kind, status) end
    end
    requests = requests + total
    by_kind[#by_kind + 1] = kind .. " " .. total
  end
  if load.unanswered > 0 then
    wrong[#wrong + 1] = math.floor(load.unanswered) .. " unanswered ("
      .. table.concat(load.unanswered_examples, "; ") .. ")"
  end
  host:note(("%d requests (%s)"):format(requests, table.concat(by_kind, ", ")))
  local names = {}
  for name, value in pairs(counters) do names[#names + 1] = ("%s %d"):format(name, value) end
  table.sort(names)
  host:note("counters: " .. table.concat(names, ", "))

  local log = server:error_log()
  local crashes, crash_lines = log_lines(log, "exited on signal", 5)
  local alerts, alert_lines = log_lines(log, "[alert]", 5)
  local crits, crit_lines = log_lines(log, "[crit]", 5)
  local errors, error_lines = log_lines(log, "[error]", 5)
  local ping = server:get("/ping", 10)
  local walk = server:get(careless.path { kind = "walk", prefetch = 4, stop = 5, clients = 1 }, 30)
  local worker_after = children(server.pid)

  host:check("the careless workload ran",
    requests >= seconds and (counters.breaks or 0) > 0 and (counters.collections or 0) > 0
      and (counters.loop_collections or 0) > 0 and (counters.timers or 0) > 0
      and (counters.exits or 0) > 0 and (counters.closed or 0) > 0,
    ("%d requests, %d walks broken out of, %d + %d collections (requests + loop bodies), %d timers,"
      .. " %d ngx.exit, %d clients closed"):format(requests, counters.breaks or 0,
      counters.collections or 0, counters.loop_collections or 0, counters.timers or 0,
      counters.exits or 0, counters.closed or 0), true)
  -- a worker that quits after a Lua panic exits without a signal: its pid changes
  host:check("no worker crashed", crashes == 0 and worker_after == worker_before,
    ("%d 'exited on signal' lines, worker pid %s then %s\n%s"):format(crashes, worker_before,
      worker_after, crash_lines))
  host:check("no [alert] or [crit] line", alerts + crits == 0,
    ("%d [alert], %d [crit]\n%s"):format(alerts, crits,
      ((alert_lines .. "\n" .. crit_lines):gsub("^\n", ""):gsub("\n$", ""))))
  local examples = ""
  for _, example in ipairs(load.failure_examples) do examples = examples .. "\n       " .. example end
  host:check("every answer 200", #wrong == 0, table.concat(wrong, ", ") .. examples)
  host:check("every timer's walk ended",
    (counters.timers_done or 0) == (counters.timers or 0) and (counters.timer_errors or 0) == 0,
    ("%d timers, %d ended, %d failed"):format(counters.timers or 0, counters.timers_done or 0,
      counters.timer_errors or 0))
  host:check("the worker still answers", ping == 200 and walk == 200,
    ("/ping %s, a walk %s"):format(tostring(ping), tostring(walk)))
  host:note(("%d [error] lines in the error log%s"):format(errors,
    errors > 0 and (", the first:\n" .. error_lines) or ""))

  -- a graceful stop: the worker finishes what it has and closes its Lua state,
  -- which runs every finalizer still pending outside any request
  local before = #log
  os.execute("kill -QUIT " .. server.pid)
  local stopped = false
  for _ = 1, STOP_GRACE * 10 do
    if exited(server.pid) then
      stopped = true
      break
    end
    os.execute("sleep 0.1")
  end
  local tail = server:error_log():sub(before + 1)
  local late = 0
  local shown = {}
  for _, needle in ipairs { "exited on signal", "[alert]", "[crit]", "[emerg]" } do
    local n, lines = log_lines(tail, needle, 3)
    late = late + n
    if n > 0 then shown[#shown + 1] = lines end
  end
  host:check("a graceful stop ends nginx cleanly", stopped and late == 0,
    (stopped and "" or ("still running " .. STOP_GRACE .. " s after SIGQUIT; "))
      .. late .. " [alert], [crit] or crash lines after SIGQUIT"
      .. (late > 0 and ("\n" .. table.concat(shown, "\n")) or ""))
end

local available, why = nginx.available()
if not available then
  print("== nginx: skipped: " .. why)
  os.exit(checks.finish() and 0 or 1)
end

local server
local ok, err = pcall(function()
  server = nginx.start(careless.server_options(sandbox_url, { workers = 1, log_level = "info" }))
  soak(server)
end)
if server then server:stop() end
if not ok then host:check("the soak ran", false, tostring(err)) end
os.exit(checks.finish() and 0 or 1)
