-- What a watch costs while it waits, and whether its memory grows with time.
--
--   lua5.4 bench/watch.lua [POLLS] [INTERVAL]      (from the repository root)
--
-- Starts the sandbox, then watches two listings with the blocking client:
--   idle   wf_demo, which never changes: CPU time of this process per poll (the
--          request, its answer's decoding, comparing the view), from os.clock();
--   live   wf_empty with a run arriving every 100 ms, each finishing 300 ms later
--          (so about one "added" and one "changed" per poll at the 0.1 s interval):
--          the Lua heap after a full collection, every POLLS/10 polls, up to POLLS
--          polls (default 10,000; at the shortest interval, 0.1 s, that is 17 minutes).
-- Prints figures, not a verdict: the heap column must stay flat.
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "./?.so;" .. package.cpath
local workflows = require "workflows"
local sandbox = require "spec.support.sandbox"
local heap = require "spec.support.heap"
local core = require "workflows.core"

local POLLS = tonumber(arg[1]) or 10000
local INTERVAL = tonumber(arg[2]) or 0.1
local IDLE_POLLS = math.min(POLLS, 300)

local sb = sandbox.start {}
local ok, err = pcall(function()
  local client = workflows.new { base_url = sb.url, token = sb.token }

  -- idle: no event ever comes, so the deadline ends the watch
  local iterator, state, control, watch = client:watch("wf_demo",
    { interval = INTERVAL, deadline = IDLE_POLLS * INTERVAL })
  local cpu, wall = os.clock(), core.now()
  for _ in iterator, state, control do error("wf_demo never changes") end
  cpu, wall = os.clock() - cpu, core.now() - wall
  local polls = watch:polls()
  print(("idle  %d polls in %.1f s: %.3f ms CPU per poll (%.2f%% of one core at a %.1f s interval)")
    :format(polls, wall, cpu * 1000 / polls, cpu * 100 / wall, INTERVAL))

  -- live: the heap every tenth of the way
  local id = "wf_empty;every_ms=100;finish_ms=300;n=bench-" .. os.time()
  iterator, state, control, watch = client:watch(id, { interval = INTERVAL })
  local step, next_mark, events = math.max(1, POLLS // 10), 0, 0
  local started = core.now()
  cpu = os.clock()
  print("live  polls  events  heap_KB  CPU_ms_per_poll  minutes")
  for _ in iterator, state, control do
    events = events + 1
    local done = watch:polls()
    if done >= next_mark then
      print(("live  %5d  %6d  %7.1f  %15.3f  %7.1f"):format(done, events, heap.used_kb(),
        (os.clock() - cpu) * 1000 / math.max(done, 1), (core.now() - started) / 60))
      next_mark = next_mark + step
      if done >= POLLS then break end
    end
  end
  watch:close()
  client:close()
end)
sb:stop()
if not ok then error(err, 0) end
