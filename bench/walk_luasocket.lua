-- Walks every run of a workflow the way most Lua scripts do today: LuaSocket's
-- socket.http with lua-cjson, one page after another.
--
--   lua5.4 bench/walk_luasocket.lua BASE_URL WORKFLOW TOKEN
--
-- socket.http has no keep-alive: http.request sends "Connection: close, TE" and
-- closes the socket after every answer, so each page costs a new TCP connection.
-- It does not ask for gzip either (it could not decode it). Prints the number of runs.
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local base, workflow, token = arg[1], arg[2], arg[3]
local count, offset = 0, 0
repeat
  local chunks = {}
  local url = ("%s/v1/workflows/%s/runs?limit=100&offset=%d"):format(base, workflow, offset)
  local ok, status = http.request {
    url = url,
    headers = { authorization = "Bearer " .. token, accept = "application/json" },
    sink = ltn12.sink.table(chunks),
  }
  if not ok or status ~= 200 then
    error(("GET %s failed: %s"):format(url, tostring(status)))
  end
  local page = cjson.decode(table.concat(chunks))
  for _, run in ipairs(page.data.items) do
    if run.id then count = count + 1 end
  end
  offset = offset + #page.data.items
until not page.data.hasMore
print(count)
