-- What on_event costs a walk: the 0 ms walk of the sandbox's wf_big (20,000 runs,
-- pages of 100) with on_event unset, and with a function that does nothing, walked
-- ROUNDS times each, interleaved (unset, no-op, unset, ...) so that a slow spell of
-- the machine hits both alike. Prints the median and the spread of each, and the
-- events the no-op hook received per walk.
--
--   lua5.4 bench/event_cost.lua [ROUNDS]       (from the repository root; default 7)
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = (rawget(_G, "jit") and "build/luajit/?.so;" or "./?.so;") .. package.cpath
local sandbox = require "spec.support.sandbox"
local workflows = require "workflows"
local core = require "workflows.core"

local ROUNDS = tonumber(arg[1]) or 7
local RUNS = 20000

local sb = sandbox.start {}
local events = 0

local function walk_seconds(hook)
  local client = workflows.new { base_url = sb.url, token = sb.token, on_event = hook }
  collectgarbage()
  local count, started = 0, core.now()
  for _ in client:runs("wf_big") do count = count + 1 end
  local took = core.now() - started
  client:close()
  assert(count == RUNS, ("walked %d runs, expected %d"):format(count, RUNS))
  return took
end

local function median(samples)
  table.sort(samples)
  local n = #samples
  if n % 2 == 1 then return samples[(n + 1) / 2] end
  return (samples[n / 2] + samples[n / 2 + 1]) / 2
end

local ok, problem = pcall(function()
  walk_seconds(nil)  -- warms the sandbox's pages and the connection path
  local unset, noop = {}, {}
  local function count_only() events = events + 1 end
  for round = 1, ROUNDS do
    unset[round] = walk_seconds(nil)
    noop[round] = walk_seconds(count_only)
  end
  print(("0 ms walk of wf_big (%d runs), %d rounds each, %s:"):format(RUNS, ROUNDS, _VERSION))
  print("")
  print("| on_event | median | fastest | slowest |")
  print("| --- | --- | --- | --- |")
  for _, row in ipairs { { "unset", unset }, { "no-op function", noop } } do
    local samples = row[2]
    local m = median(samples)
    print(("| %s | %.1f ms | %.1f ms | %.1f ms |"):format(row[1], m * 1000,
      samples[1] * 1000, samples[#samples] * 1000))
  end
  print("")
  print(("%d events per walk; median difference %+.1f%%"):format(math.floor(events / ROUNDS),
    (median(noop) / median(unset) - 1) * 100))
end)
sb:stop()
if not ok then error(problem, 0) end
