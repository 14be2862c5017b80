-- Careless but legal code on a libuv loop, run as a script of its own: on standalone
-- luv (lua5.4, luajit, ...) or inside `nvim --headless` (vim.loop). Clients made
-- with `loop = ...` spawn tasks that walk with prefetch 4 and break out early
-- without walk:close(); some tasks are cancelled by a timer; most clients are
-- dropped without client:close(); collectgarbage() runs every ~7 ms from a timer.
-- Then everything is dropped and collected, and the script writes what it saw to
-- $CARELESS_REPORT as a Lua chunk (`return { ... }`). spec/98-careless-luv_spec.lua,
-- spec/98-careless-nvim_spec.lua and `make soak` (tools/soak/loop.lua) run it and
-- check the report, the script's stderr and its exit.
--
-- Environment:
--   CARELESS_SB       the sandbox's URL (token "sandbox-token")
--   CARELESS_REPORT   where to write the report
--   CARELESS_MODE     "ten": ten clients at once, one walk each (the specs);
--                     "soak": new clients every few ms for CARELESS_SECONDS
--   CARELESS_SECONDS  how long "soak" spawns (default 10)
--   CARELESS_SEED     math.randomseed (default: the time)
--   CARELESS_ROOT, CARELESS_CORE   when set, the checkout's lua/ and the directory
--                     holding workflows/core.so go first on package.path and cpath
--
-- The report: counters (clients, tasks, on_done calls by outcome, walks, breaks,
-- cancels, collections), descriptors (/proc/self/fd) before the first client and
-- after the final collection, how long the loop took to end once the workload had
-- stopped (standalone luv: uv.run() returns by itself; a watchdog timer, unref'd so
-- that it never keeps the loop alive, reports a loop that does not end, with its live
-- handles, and exits), the handles left open (handles_after; handles_left: timers,
-- polls, idles, checks and prepares only), and in Neovim the :messages.
local vim = rawget(_G, "vim")

local root, core_dir = os.getenv("CARELESS_ROOT"), os.getenv("CARELESS_CORE")
if root then package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path end
if core_dir then package.cpath = core_dir .. "/?.so;" .. package.cpath end

local uv = vim and vim.loop or require "luv"
local workflows = require "workflows"

local BASE_URL = assert(os.getenv("CARELESS_SB"), "CARELESS_SB is not set")
local REPORT = assert(os.getenv("CARELESS_REPORT"), "CARELESS_REPORT is not set")
local MODE = os.getenv("CARELESS_MODE") or "ten"
local SECONDS = tonumber(os.getenv("CARELESS_SECONDS")) or 10
local PREFETCH = 4
local COLLECT_EVERY_MS = 7
local SPAWN_EVERY_MS = 3
-- "soak" starts no task while this many run: a steady load the sandbox keeps up with
local MOST_TASKS = 24
-- "ten": walks each client's task breaks out of, one after the other
local WALKS_EACH = tonumber(os.getenv("CARELESS_WALKS")) or 20
-- how long the loop may take to end once nothing new is started: the walks in
-- flight take a few pages of a few ms each
local END_WITHIN_MS = 10000

math.randomseed(tonumber(os.getenv("CARELESS_SEED")) or os.time())

local report = {
  host = vim and "nvim" or (rawget(_G, "jit") and "luajit" or _VERSION),
  clients = 0, dropped = 0, closed_after = 0, closed_inside = 0,
  tasks = 0, done = 0, done_ok = 0, done_cancelled = 0, done_failed = 0,
  walks = 0, breaks = 0, cancels = 0, collections = 0,
  failures = {},            -- the first few errors on_done got, other than a cancel
}

local function descriptors()
  local count = 0
  local listing = assert(uv.fs_scandir("/proc/self/fd"))
  while uv.fs_scandir_next(listing) do count = count + 1 end
  return count
end

-- The live handles of a standalone loop, counted by kind: "3 poll (active), 1 timer".
-- `kinds` (optional) keeps only those kinds ({ timer = true, ... }).
local function live_handles(kinds)
  if vim then return "" end
  local counts = {}
  uv.walk(function(handle)
    local kind = tostring(handle):match("^uv_(%w+)_t")
    if not handle:is_closing() and (not kinds or kinds[kind]) then
      local shown = (kind or tostring(handle)) .. (handle:is_active() and " (active)" or "")
        .. (handle:has_ref() and "" or " (unref)")
      counts[shown] = (counts[shown] or 0) + 1
    end
  end)
  local found = {}
  for kind, n in pairs(counts) do found[#found + 1] = n .. " " .. kind end
  table.sort(found)
  return table.concat(found, ", ")
end

-- Lua source for `value` (tables, strings, numbers, booleans).
local function serialised(value)
  if type(value) == "table" then
    local keys, parts = {}, {}
    for key in pairs(value) do keys[#keys + 1] = key end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, key in ipairs(keys) do
      local name = type(key) == "number" and ("[" .. key .. "]") or ("[" .. ("%q"):format(key) .. "]")
      parts[#parts + 1] = name .. " = " .. serialised(value[key])
    end
    return "{ " .. table.concat(parts, ", ") .. " }"
  elseif type(value) == "string" then
    return ("%q"):format(value)
  end
  return tostring(value)
end

local function write_report()
  -- not from a luv callback, where Neovim's API raises (E5560)
  if vim and not vim.in_fast_event() then report.messages = vim.api.nvim_exec("messages", true) end
  local file = assert(io.open(REPORT, "w"))
  file:write("return ", serialised(report), "\n")
  file:close()
end

local function on_done_of(fate_of_client)
  return function(ok, err)
    report.done = report.done + 1
    if ok then
      report.done_ok = report.done_ok + 1
    elseif type(err) == "table" and err.kind == "cancelled" then
      report.done_cancelled = report.done_cancelled + 1
    else
      report.done_failed = report.done_failed + 1
      if #report.failures < 10 then report.failures[#report.failures + 1] = tostring(err) end
      io.stderr:write("careless_loop: a task failed: ", tostring(err), "\n")
    end
    if fate_of_client then fate_of_client() end
  end
end

-- The body of a task: walks wf_demo ten runs a page, and breaks out after `stop`
-- runs without walk:close(); the while form, since PUC Lua 5.1 cannot yield from a
-- for loop's iterator. `close_inside`: client:close() as the body's last step.
local function walker(client, stop, latency, close_inside, walks)
  return function()
    for _ = 1, walks or 1 do
      local next_run = client:runs("wf_demo;latency=" .. latency, { limit = 10 })
      report.walks = report.walks + 1
      local taken = 0
      while true do
        local run = next_run()
        if run == nil then break end
        taken = taken + 1
        if taken >= stop then
          report.breaks = report.breaks + 1
          break
        end
      end
    end
    if close_inside then
      client:close()
      report.closed_inside = report.closed_inside + 1
    end
  end
end

local function new_client()
  report.clients = report.clients + 1
  return workflows.new { token = "sandbox-token", base_url = BASE_URL, loop = uv,
    prefetch = PREFETCH, max_retries = 0, timeout = 10 }
end

-- Cancels `task` from a timer `ms` from now; the timer closes itself.
local function cancel_later(task, ms)
  local timer = uv.new_timer()
  timer:start(ms, 0, function()
    timer:close()
    report.cancels = report.cancels + 1
    task:cancel()
  end)
end

-- "soak": one new client with one to three tasks. Its fate: dropped at once (most),
-- closed from the last task's on_done, or closed by its only task's own body (with
-- more tasks, that would end the others with "the client is closed", as it should).
local function launch()
  local client = new_client()
  local fate = math.random(10)
  local tasks = fate == 10 and 1 or math.random(1, 3)
  local left = tasks
  local function closed_after()
    left = left - 1
    if left == 0 and fate == 9 then
      client:close()
      report.closed_after = report.closed_after + 1
    end
  end
  for i = 1, tasks do
    report.tasks = report.tasks + 1
    local task = client:spawn(walker(client, math.random(1, 30), math.random(0, 20),
      fate == 10 and i == tasks), on_done_of(closed_after))
    if math.random(5) == 1 then cancel_later(task, math.random(1, 30)) end
  end
  if fate <= 8 then report.dropped = report.dropped + 1 end
end

-- Runs the loop until `finished()`; standalone luv runs it until it ends by
-- itself, Neovim until `finished()` (its loop never ends). Returns the milliseconds
-- it took, or nil and writes the report and exits when it takes longer than `ms`.
local function run_loop(label, finished, ms)
  local started = uv.hrtime()
  if vim then
    if not vim.wait(ms, finished, 5) then
      report.wedged = label .. ": still waiting after " .. ms .. " ms"
      write_report()
      vim.cmd("qa!")
      return nil
    end
    return (uv.hrtime() - started) / 1e6
  end
  local watchdog = uv.new_timer()
  watchdog:start(ms, 0, function()
    report.wedged = label .. ": uv.run() still running after " .. ms .. " ms"
    report.wedged_handles = live_handles()
    write_report()
    io.stdout:flush()
    io.stderr:flush()
    -- without closing the Lua state: luv would close these live handles first
    os.exit(3)
  end)
  watchdog:unref()
  uv.run()
  local took = (uv.hrtime() - started) / 1e6
  watchdog:close()
  uv.run("nowait")  -- completes the watchdog's close
  return took
end

local collector = uv.new_timer()
collector:start(COLLECT_EVERY_MS, COLLECT_EVERY_MS, function()
  collectgarbage()
  report.collections = report.collections + 1
end)

report.descriptors_before = descriptors()
write_report()  -- a first report: a script killed early still leaves one

local stopped = false
local function stop_collecting()
  if not collector:is_closing() then collector:close() end
  stopped = true
end

if MODE == "soak" then
  local spawner = uv.new_timer()
  local stop_at = uv.hrtime() + SECONDS * 1e9
  local written_at = uv.hrtime()
  spawner:start(1, SPAWN_EVERY_MS, function()
    local now = uv.hrtime()
    if now >= stop_at then
      spawner:close()
      stop_collecting()
      write_report()
      return
    end
    -- the counters so far, for a script that gets killed before its end
    if now - written_at > 2.5e8 then
      written_at = now
      write_report()
    end
    if report.tasks - report.done < MOST_TASKS then launch() end
  end)
else
  -- ten clients at once, each breaking out of one prefetching walk after 3 to 30
  -- runs; the collector stops once every task has ended
  local function all_done()
    if report.done == report.tasks then stop_collecting() end
  end
  for i = 1, 10 do
    local client = new_client()
    report.tasks = report.tasks + 1
    client:spawn(walker(client, 3 * i, i % 4, false, WALKS_EACH), on_done_of(all_done))
    report.dropped = report.dropped + 1
  end
end

local function workload_over()
  return stopped and report.done == report.tasks
end

-- The workload: until it stops spawning and every task has ended.
local bound = (MODE == "soak" and SECONDS * 1000 or 0) + END_WITHIN_MS
report.workload_ms = run_loop("the workload", workload_over, bound)
report.over = workload_over()

-- Everything dropped: every client is unreachable by now (the tasks held them).
-- The finalizers release what is left, and the loop closes it on its next turn;
-- twice, for what the first finalizers leave to be collected.
for round = 1, 2 do
  collectgarbage()
  collectgarbage()
  report["final_ms_" .. round] = run_loop("after the final collection", function() return true end,
    END_WITHIN_MS)
  if vim then vim.wait(50) end  -- Neovim's loop never ends: a few turns for the closes
end
report.descriptors_after = descriptors()
report.handles_after = live_handles()
-- what the workload's tasks and transfers use; a handle the library keeps for the
-- loop's whole life (one, unref'd, whatever the workload) is not a leak
report.handles_left = live_handles { timer = true, poll = true, idle = true, check = true,
  prepare = true }
report.finished = true
write_report()
if vim then vim.cmd("qa!") end
