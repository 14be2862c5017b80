-- The API server behind the OpenResty benchmark: a second nginx that answers
-- GET /{slow,fast}/v1/workflows/wf_demo/runs?limit=&offset= for any limit and
-- offset from the sandbox's own runs (pre-rendered by bench/prerender.sh), after
-- 20 ms (/slow) or at once (/fast). bench/static_server serves only offsets that are
-- multiples of 100, and the walk's pages overlap by one run; the Python sandbox
-- would spend more CPU on every page than the client being measured.
--
-- GET /_bench/stats answers {"connections":C,"requests":R} as static_server does:
-- connections that carried an API request, and API requests.
-- luacheck: globals ngx
local cjson = require "cjson"

local M = {}

local runs = {}          -- the workflow's runs, each already encoded as JSON
local connections, requests = 0, 0
local LATENCY = { slow = 0.020, fast = 0 }

-- Reads DIR/wf_demo/0.json, 100.json, ... (identity JSON pages of 100 runs).
function M.load(dir)
  local offset = 0
  while true do
    local file = io.open(dir .. "/wf_demo/" .. offset .. ".json", "rb")
    if not file then break end
    local page = cjson.decode(file:read("*a"))
    file:close()
    for _, run in ipairs(page.data.items) do runs[#runs + 1] = cjson.encode(run) end
    offset = offset + 100
  end
  assert(#runs > 0, "no pages under " .. dir)
end

local function answer(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

function M.runs(speed)
  requests = requests + 1
  if tonumber(ngx.var.connection_requests) == 1 then connections = connections + 1 end
  local request_id = string.format("req_up_%08d", requests)
  ngx.header["X-Request-Id"] = request_id
  if ngx.var.http_authorization ~= "Bearer sandbox-token" then
    return answer(401, '{"code":401,"message":"invalid bearer token","requestId":"'
      .. request_id .. '"}')
  end
  local limit = tonumber(ngx.var.arg_limit) or 20
  local offset = tonumber(ngx.var.arg_offset) or 0
  local items = {}
  for i = offset + 1, math.min(offset + limit, #runs) do items[#items + 1] = runs[i] end
  local body = string.format('{"code":200,"data":{"hasMore":%s,"items":[%s],"limit":%d,'
    .. '"offset":%d},"message":"success","requestId":"%s"}',
    tostring(offset + limit < #runs), table.concat(items, ","), limit, offset, request_id)
  local latency = LATENCY[speed]
  if latency > 0 then ngx.sleep(latency) end
  answer(200, body)
end

function M.stats()
  ngx.say(string.format('{"connections":%d,"requests":%d}', connections, requests))
end

return M
