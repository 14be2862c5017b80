-- The handler behind the OpenResty benchmark's
-- GET /walk?transport=ngx|curl&base=ENV_NAME[&pool=N][&wf=ID]:
-- one walk of every run of a workflow, answered with the number of runs. One
-- client per transport and worker, as a long-lived application keeps it.
-- luacheck: globals ngx
local workflows = require "workflows"

local M = {}

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
