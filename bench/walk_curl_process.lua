-- Walks every run with one curl process per page, decoded with lua-cjson: what
-- Neovim plugins built on plenary.curl do. plenary.curl runs
-- `curl -sSL -D <dump file> --compressed -H ... URL`, reads the body from stdout and
-- the status line from the dump file; so does this, through io.popen.
--
--   lua5.4 bench/walk_curl_process.lua BASE_URL WORKFLOW TOKEN
--
-- Prints the number of runs.
local cjson = require "cjson"

local base, workflow, token = arg[1], arg[2], arg[3]
local dump = os.tmpname()
local count, offset = 0, 0
repeat
  local url = ("%s/v1/workflows/%s/runs?limit=100&offset=%d"):format(base, workflow, offset)
  local command = ("curl -sSL -D '%s' --compressed -H 'Authorization: Bearer %s' '%s'")
    :format(dump, token, url)
  local pipe = assert(io.popen(command))
  local body = pipe:read "a"
  pipe:close()
  local headers = assert(io.open(dump)):read "a"
  local status = tonumber(headers:match "^HTTP/[%d.]+ (%d+)")
  if status ~= 200 then error(("GET %s failed: %s"):format(url, tostring(status))) end
  local page = cjson.decode(body)
  for _, run in ipairs(page.data.items) do
    if run.id then count = count + 1 end
  end
  offset = offset + #page.data.items
until not page.data.hasMore
os.remove(dump)
print(count)
