-- The handler behind the OpenResty benchmark's
-- GET /walk?transport=ngx|curl&base=ENV_NAME[&pool=N][&wf=ID]:
-- one walk of every run of a workflow, answered with the number of runs. One
-- client per transport and worker, as a long-lived application keeps it.
-- luacheck: globals ngx
local workflows = require "workflows"
local core = require "workflows.core"

local M = {}

-- How late a timer due every PROBE_EVERY seconds fires: the time the worker's event
-- loop was busy (or the worker was off the CPU) past its due time, measured inside
-- the worker, without any client's noise. Started from init_worker_by_lua.
local PROBE_EVERY = 0.002
local lateness = {}

function M.start_probe()
  local last
  ngx.timer.every(PROBE_EVERY, function()
    local t = core.time()
    if last then lateness[#lateness + 1] = t - last - PROBE_EVERY end
    last = t
  end)
end

-- GET /lateness: "p50 p99 max" in ms since the last call, and starts afresh.
function M.lateness()
  local sorted = {}
  for i = 1, #lateness do sorted[i] = lateness[i] end
  for i = #lateness, 1, -1 do lateness[i] = nil end
  table.sort(sorted)
  local function at(fraction)
    if #sorted == 0 then return 0 end
    return sorted[math.max(1, math.ceil(fraction * #sorted))] * 1000
  end
  ngx.say(string.format("%.3f %.3f %.3f", at(0.5), at(0.99), at(1)))
end

local clients = {}

-- `base` names the environment variable that holds the server's URL.
local function client_for(transport, base, pool_size)
  local key = transport .. ":" .. base .. ":" .. tostring(pool_size)
  local client = clients[key]
  if not client then
    client = workflows.new {
      token = os.getenv "WORKFLOWS_API_TOKEN",
      base_url = os.getenv(base),
      transport = transport,
      pool_size = pool_size,
    }
    clients[key] = client
  end
  return client
end

function M.walk()
  local client = client_for(ngx.var.arg_transport or "auto",
    ngx.var.arg_base or "WORKFLOWS_BASE_URL", tonumber(ngx.var.arg_pool))
  local count = 0
  local ok, err = pcall(function()
    for _ in client:runs(ngx.var.arg_wf or "wf_demo") do count = count + 1 end
  end)
  local body = ok and tostring(count) or tostring(err)
  if not ok then ngx.status = 502 end
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

return M
