-- Walks every run with Debian's lua-curl (the luacurl binding, 0.3: easy interface
-- only, Lua 5.1 and 5.2) and lua-cjson, reusing one easy handle so that libcurl
-- keeps the connection alive between pages.
--
--   lua5.1 bench/walk_luacurl.lua BASE_URL WORKFLOW TOKEN
--
-- luacurl has no getinfo, so the status is checked with OPT_FAILONERROR (perform
-- fails on >= 400). No Accept-Encoding is set: that is luacurl's default, and what
-- scripts written against it send. Prints the number of runs.
local curl = require "curl"
local cjson = require "cjson"

local base, workflow, token = arg[1], arg[2], arg[3]
local handle = curl.easy_init()
local chunks
handle:setopt(curl.OPT_HTTPHEADER, { "Authorization: Bearer " .. token,
                                     "Accept: application/json" })
handle:setopt(curl.OPT_FAILONERROR, 1)
-- luacurl calls the write function with (data, size) and wants the size back.
handle:setopt(curl.OPT_WRITEFUNCTION, function(data, size)
  chunks[#chunks + 1] = data
  return size
end)

local count, offset = 0, 0
repeat
  chunks = {}
  local url = ("%s/v1/workflows/%s/runs?limit=100&offset=%d"):format(base, workflow, offset)
  handle:setopt(curl.OPT_URL, url)
  local code, message = handle:perform()
  if code ~= 0 then error(("GET %s failed: %s"):format(url, tostring(message))) end
  local page = cjson.decode(table.concat(chunks))
  for _, run in ipairs(page.data.items) do
    if run.id then count = count + 1 end
  end
  offset = offset + #page.data.items
until not page.data.hasMore
print(count)
