-- What on_event costs a walk: the 0 ms walk of the sandbox's wf_big (20,000 runs,
-- pages of 100) with on_event unset, and with a function that does nothing, walked
-- ROUNDS times each, interleaved (unset, no-op, unset, ...) so that a slow spell of
-- the machine hits both alike. Prints the median and the spread of each, in wall
-- time and in this process's CPU time (os.clock: the sandbox's share left out, and
-- less disturbed by other work on the machine), and the events per walk.
--
--   lua5.4 bench/event_cost.lua [ROUNDS]       (from the repository root; default 7)
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = (rawget(_G, "jit") and "build/luajit/?.so;" or "./?.so;") .. package.cpath
local sandbox = require "spec.support.sandbox"
local workflows = require "workflows"
local core = require "workflows.core"
local events_module = require "workflows.events"

local ROUNDS = tonumber(arg[1]) or 7
local RUNS = 20000

local sb = sandbox.start {}
local events = 0

local function walk_seconds(hook)
  local client = workflows.new { base_url = sb.url, token = sb.token, on_event = hook }
  collectgarbage()
  local count, started, cpu = 0, core.now(), os.clock()
  for _ in client:runs("wf_big") do count = count + 1 end
  local took, cpu_took = core.now() - started, os.clock() - cpu
  client:close()
  assert(count == RUNS, ("walked %d runs, expected %d"):format(count, RUNS))
  return took, cpu_took
end

-- CPU seconds to build one "attempt" event as the request layer does and hand it to a
-- hook that only keeps it through the client's dispatcher: steadier than the walks' difference.
local function seconds_per_event()
  local ctx = { config = { token = "sandbox-token" } }
  local last  -- keeping the event lets no compiler drop the table
  local emit = events_module.dispatcher(ctx, function(ev) last = ev end, false)
  local url = sb.url .. "/v1/workflows/wf_big/runs?limit=100&offset=100"
  local n, started = 200000, os.clock()
  for i = 1, n do
    emit { type = "attempt", method = "GET", url = events_module.url(ctx, url), status = 200,
      kind = "ok", elapsed = 0.001, bytes = 51234, attempt = 1, request_id = "req_abc",
      transport = "curl", window = 3, reused = i > 1 }
  end
  assert(last.reused)
  return (os.clock() - started) / n
end

local function median(samples)
  table.sort(samples)
  local n = #samples
  if n % 2 == 1 then return samples[(n + 1) / 2] end
  return (samples[n / 2] + samples[n / 2 + 1]) / 2
end

local ok, problem = pcall(function()
  walk_seconds(nil)  -- warms the sandbox's pages and the connection path
  local unset, noop, unset_cpu, noop_cpu = {}, {}, {}, {}
  local function count_only() events = events + 1 end
  for round = 1, ROUNDS do
    unset[round], unset_cpu[round] = walk_seconds(nil)
    noop[round], noop_cpu[round] = walk_seconds(count_only)
  end
  print(("0 ms walk of wf_big (%d runs), %d rounds each, %s:"):format(RUNS, ROUNDS,
    rawget(_G, "jit") and jit.version or _VERSION))
  print("")
  print("| on_event | wall, median | fastest | slowest | CPU, median | fastest | slowest |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  local rows = { { "unset", unset, unset_cpu }, { "no-op function", noop, noop_cpu } }
  for _, row in ipairs(rows) do
    local wall, cpu = row[2], row[3]
    local m, c = median(wall), median(cpu)
    print(("| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms |"):format(row[1],
      m * 1000, wall[1] * 1000, wall[#wall] * 1000, c * 1000, cpu[1] * 1000, cpu[#cpu] * 1000))
  end
  print("")
  local per_walk = math.floor(events / ROUNDS)
  print(("%d events per walk; median difference: wall %+.1f%%, CPU %+.1f%%"):format(
    per_walk, (median(noop) / median(unset) - 1) * 100,
    (median(noop_cpu) / median(unset_cpu) - 1) * 100))
  local each = seconds_per_event()
  print(("One event built and dispatched to a hook that keeps it: %.2f us of CPU; %d of them: %.2f ms, "
    .. "%.2f%% of the unset walk's CPU median"):format(each * 1e6, per_walk, each * per_walk * 1000,
    each * per_walk / median(unset_cpu) * 100))
end)
sb:stop()
if not ok then error(problem, 0) end
