-- One walk inside `nvim --headless`, for bench/scenarios/nvim.lua: while every run of a
-- workflow is walked, a repeating 1 ms uv timer stamps its ticks, and the gaps
-- between them show how long the editor's loop was held. Appends one line to
-- $WF_OUT:
--
--   mode  prefetch  runs  wall_ms  ticks  longest_gap_ms  p99_gap_ms  schedules
--   longest_act_ms  p99_act_ms  longest_resume_ms  p99_resume_ms
--   longest_act_cpu_ms  longest_resume_cpu_ms  p99_resume_cpu_ms
--
-- An "act" is one call of the libuv transport into libcurl from a loop callback
-- (a socket event or libcurl's timer: reading, inflating and decoding a page that
-- completes); a "resume" is one vim.schedule callback that runs a task's body
-- until its next wait. The loop can do nothing else during either. The *_cpu_
-- figures are the same spans in CPU time (os.clock), which leaves out the time
-- the process waited for a CPU on a busy machine.
--
-- WF_MODE "blocking": the walk runs in one go from the main loop (what every call
-- did before tasks). "task": the walk runs in client:spawn, resumed through
-- vim.schedule. Both start from a vim.schedule callback of an idle editor, and the
-- editor quits once the walk is done.
--
-- WF_MODE "idle": no walk, the same 1.5 s of ticks: the machine's own noise.
--
-- WF_MODE "schedule": no walk; what resuming through vim.schedule costs. One line
--   schedule  hop_us  from_fast_median_ms  from_fast_p99_ms  from_fast_max_ms  samples
-- hop_us: one vim.schedule callback that schedules the next, 10,000 in a chain;
-- from_fast: from a luv timer callback (a fast context, where a task is woken) to
-- the scheduled callback, 1,000 times at 2 ms intervals.
--
--   WF_ROOT WF_BASE WF_TOKEN WF_WORKFLOW WF_MODE WF_PREFETCH WF_OUT
-- luacheck: globals vim
local root = os.getenv "WF_ROOT"
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath

local uv = vim.uv or vim.loop
local mode, prefetch = os.getenv "WF_MODE", os.getenv "WF_PREFETCH"
prefetch = tonumber(prefetch) or prefetch   -- a number, or "auto"

local function write(fields)
  local file = assert(io.open(os.getenv "WF_OUT", "a"))
  file:write(table.concat(fields, "\t"), "\n")
  file:close()
end

local function fail(message)
  io.stderr:write("bench/hosts/nvim.lua: ", tostring(message), "\n")
  vim.cmd "cquit 1"
end

local function sorted_stats(values)
  table.sort(values)
  local n = #values
  return values[math.max(1, math.ceil(n * 0.5))], values[math.max(1, math.ceil(n * 0.99))], values[n]
end

if mode == "schedule" then
  local hops, left = 10000, 10000
  local started, hop_us
  local delays, timer = {}, uv.new_timer()
  local function from_fast()
    timer:start(2, 2, function()
      local woken = uv.hrtime()
      vim.schedule(function()
        delays[#delays + 1] = (uv.hrtime() - woken) / 1e6
        if #delays == 1000 then
          timer:stop()
          timer:close()
          local median, p99, longest = sorted_stats(delays)
          write { "schedule", string.format("%.3f", hop_us), string.format("%.3f", median),
            string.format("%.3f", p99), string.format("%.3f", longest), #delays }
          vim.cmd "qa!"
        end
      end)
    end)
  end
  local function hop()
    left = left - 1
    if left > 0 then return vim.schedule(hop) end
    hop_us = (uv.hrtime() - started) / hops / 1e3
    from_fast()
  end
  vim.schedule(function()
    started = uv.hrtime()
    vim.schedule(hop)
  end)
  return
end

-- Counts and times the hops through vim.schedule that the tasks make (tasks.lua
-- takes vim.schedule when the client's first task starts), and times the
-- transport's calls into libcurl.
local schedules, resumes, acts, resume_cpu, act_cpu = 0, {}, {}, {}, {}
local clock = os.clock
local schedule = vim.schedule
-- Runs fn(...), noting its wall and CPU time in ms.
local function timed(walls, cpus, fn, ...)
  local t0, c0 = uv.hrtime(), clock()
  fn(...)
  walls[#walls + 1] = (uv.hrtime() - t0) / 1e6
  cpus[#cpus + 1] = (clock() - c0) * 1e3
end
vim.schedule = function(fn)
  schedules = schedules + 1
  return schedule(function() timed(resumes, resume_cpu, fn) end)
end

local function longest_and_p99(values)
  table.sort(values)
  if #values == 0 then return "0", "0" end
  return string.format("%.3f", values[#values]),
    string.format("%.3f", values[math.max(1, math.ceil(#values * 0.99))])
end

-- Every call of a socket-mode transport into libcurl is timed: wrapped before the
-- libuv transport, which takes it when it loads, is loaded.
local socket_session = require "workflows.transport.socket_session"
local act = socket_session.act
socket_session.act = function(...) timed(acts, act_cpu, act, ...) end

local workflows = require "workflows"
local client = workflows.new { base_url = os.getenv "WF_BASE", token = os.getenv "WF_TOKEN",
  prefetch = prefetch, loop = uv }

-- Tick stamps in a preallocated ring: the callback must not allocate or it measures
-- the collector.
local stamps, count = {}, 0
for i = 1, 20000 do stamps[i] = 0 end
local ticker = uv.new_timer()

local function gaps_between(first, last)
  local gaps = {}
  for i = first + 1, last do gaps[#gaps + 1] = (stamps[i] - stamps[i - 1]) / 1e6 end
  table.sort(gaps)
  return gaps
end

local function finish(started, runs)
  local ended = uv.hrtime()
  -- the first tick after the walk closes the last gap
  vim.wait(20, function() return stamps[count] > ended end, 1)
  ticker:stop()
  ticker:close()
  local first = 1
  while first < count and stamps[first + 1] < started do first = first + 1 end
  local gaps = gaps_between(first, count)
  local longest = gaps[#gaps] or 0
  local p99 = gaps[math.max(1, math.ceil(#gaps * 0.99))] or 0
  client:close()
  local act_max, act_p99 = longest_and_p99(acts)
  local resume_max, resume_p99 = longest_and_p99(resumes)
  local act_cpu_max = longest_and_p99(act_cpu)
  local resume_cpu_max, resume_cpu_p99 = longest_and_p99(resume_cpu)
  write { mode, prefetch, runs, string.format("%.1f", (ended - started) / 1e6), #gaps,
    string.format("%.3f", longest), string.format("%.3f", p99), schedules,
    act_max, act_p99, resume_max, resume_p99, act_cpu_max, resume_cpu_max, resume_cpu_p99 }
  vim.cmd "qa!"
end

local id = os.getenv "WF_WORKFLOW"

vim.schedule(function()
  ticker:start(1, 1, function()
    count = count + 1
    stamps[count] = uv.hrtime()
  end)
  -- let the ticker settle into its rhythm before the walk
  vim.defer_fn(function()
    schedules, resumes, acts, resume_cpu, act_cpu = 0, {}, {}, {}, {}
    local started = uv.hrtime()
    if os.getenv "WF_NOGC" then collectgarbage "stop" end
    if mode == "idle" then
      return vim.defer_fn(function() finish(started, 0) end, 1500)
    end
    if mode == "blocking" then
      local ok, runs = pcall(function()
        local n = 0
        for _ in client:runs(id) do n = n + 1 end
        return n
      end)
      if not ok then return fail(runs) end
      return finish(started, runs)
    end
    local runs = 0
    client:spawn(function()
      local next_run = client:runs(id)
      while next_run() do runs = runs + 1 end
    end, function(ok, err)
      if not ok then return fail(err) end
      finish(started, runs)
    end)
  end, 50)
end)
