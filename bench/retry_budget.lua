-- Requests per call with and without the retry budget, against the sandbox: a storm
-- (every request answers 503) and 5% failures (one call in twenty meets a 503 on its
-- first attempt), each for CALLS calls of one client with max_retries = 2, and
-- max_retries = 0 for reference.
--
--   lua5.4 bench/retry_budget.lua [CALLS]      (from the repository root; default 1000)
--
-- The backoff before a retry is cut to a few milliseconds (retry.BASE) so that the
-- storm does not take minutes; the budget counts requests, not seconds, so this
-- changes no figure. Prints a Markdown table.
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = (rawget(_G, "jit") and "build/luajit/?.so;" or "./?.so;") .. package.cpath
local sandbox = require "spec.support.sandbox"
local workflows = require "workflows"
local retry = require "workflows.retry"

local CALLS = tonumber(arg[1]) or 1000
retry.BASE = 0.001

local sb = sandbox.start {}
local run = 0

-- Requests `calls` calls of a client made with `options` sent, from the sandbox log.
local function requests_made(options, scenario)
  run = run + 1
  local tag = ("bench-budget-%d-%d"):format(run, os.time())
  local client = workflows.new { base_url = sb.url, token = sb.token, timeout = 5,
    max_retries = options.max_retries, retry_budget = options.retry_budget }
  local seq = sb:last_seq()
  local ids = {}
  for i = 1, CALLS do
    local id
    if scenario == "storm" then
      id = "wf_demo;status=503;n=" .. tag
    elseif i % 20 == 0 then
      id = ("wf_demo;status=503;times=1;n=%s-%d"):format(tag, i)
    else
      id = "wf_demo;n=" .. tag
    end
    ids[id] = true
    client:list_runs(id, { limit = 1 })
  end
  client:close()
  local made = 0
  for _, entry in ipairs(sb:log(seq)) do
    if ids[entry.workflow_id] then made = made + 1 end
  end
  return made
end

local ROWS = {
  { "max_retries = 0", { max_retries = 0 } },
  { "max_retries = 2, no budget", { max_retries = 2, retry_budget = false } },
  { "max_retries = 2, budget (default)", { max_retries = 2 } },
}

local ok, problem = pcall(function()
  print(("Requests per call over %d calls of one client (sandbox, %s):"):format(CALLS, _VERSION))
  print("")
  print("| client | 100% 503 | 5% failures |")
  print("| --- | --- | --- |")
  for _, row in ipairs(ROWS) do
    local storm = requests_made(row[2], "storm")
    local rare = requests_made(row[2], "rare")
    print(("| %s | %.3f (%d) | %.3f (%d) |"):format(row[1], storm / CALLS, storm,
      rare / CALLS, rare))
  end
end)
sb:stop()
if not ok then error(problem, 0) end
