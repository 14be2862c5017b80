-- Four nginx workers under a 429 storm (every answer 429 with Retry-After: 1), with
-- and without shared_dict: the requests the sandbox received. Each worker makes RATE
-- calls a second for SECONDS seconds (each call in a timer of its own, as requests of
-- a busy server would), with and without a deadline per call.
--
--   lua5.4 bench/shared_dict_storm.lua [SECONDS] [RATE]   (repository root; 5 s, 20/s)
--
-- Prints a Markdown table. Needs nginx with its Lua module (spec/support/nginx.lua).
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = (rawget(_G, "jit") and "build/luajit/?.so;" or "./?.so;") .. package.cpath
local sandbox = require "spec.support.sandbox"
local nginx = require "spec.support.nginx"
local plans = require "spec.support.worker_plans"

local SECONDS = tonumber(arg[1]) or 5
local RATE = tonumber(arg[2]) or 20
local WORKERS = 4

assert(nginx.available())
local sb = sandbox.start {}
local server
local round = 0

-- Sum over the workers of `field` of their results, and the sandbox's count.
local function storm(shared, deadline)
  round = round + 1
  local tag = ("storm-%d-%d"):format(round, os.time())
  local id = "wf_demo;status=429;retry_after=1;n=" .. tag
  local seq = sb:last_seq()
  for worker = 0, WORKERS - 1 do
    plans.send(server, worker, { name = tag .. "-" .. worker, shared = shared, id = id,
      rate = RATE, seconds = SECONDS, deadline = deadline })
  end
  local calls, failures = 0, 0
  for worker = 0, WORKERS - 1 do
    local result = plans.result(server, tag .. "-" .. worker, SECONDS + 60)
    calls, failures = calls + result.calls, failures + result.failures
  end
  local requests = 0
  for _, entry in ipairs(sb:log(seq)) do
    if entry.workflow_id == id then requests = requests + 1 end
  end
  -- the next round starts without this one's pause
  os.execute("sleep 1.2")
  return calls, failures, requests
end

local ok, problem = pcall(function()
  server = nginx.start { workers = WORKERS, http = plans.HTTP, server = plans.LOCATIONS,
    setenv = { WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = sb.token } }
  print(("%d nginx workers, %d calls a second each for %d s, every answer 429 with "
    .. "Retry-After: 1 (max_retries 2, retry budget on):"):format(WORKERS, RATE, SECONDS))
  print("")
  print("| shared_dict | deadline per call | calls | failed | requests | requests per call |")
  print("| --- | --- | --- | --- | --- | --- |")
  for _, row in ipairs { { false, nil }, { true, nil }, { false, 0.5 }, { true, 0.5 } } do
    local calls, failures, requests = storm(row[1], row[2])
    print(("| %s | %s | %d | %d | %d | %.2f |"):format(row[1] and "yes" or "no",
      row[2] and (row[2] .. " s") or "none", calls, failures, requests, requests / calls))
  end
end)
if server then server:stop() end
sb:stop()
if not ok then error(problem, 0) end
