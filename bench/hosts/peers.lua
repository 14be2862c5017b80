-- Walks every run the ways Lua scripts do today, one page after another, each page
-- decoded with lua-cjson; prints the number of runs.
--
--   lua5.4 bench/hosts/peers.lua luasocket|curl_process BASE_URL WORKFLOW TOKEN
--   lua5.1 bench/hosts/peers.lua luacurl BASE_URL WORKFLOW TOKEN
--   lua5.4 bench/hosts/peers.lua lcurl BASE_URL WORKFLOW TOKEN
--   lua5.4 bench/hosts/peers.lua lcurl_promises BASE_URL WORKFLOW TOKEN
--
-- luasocket: socket.http, which has no keep-alive ("Connection: close, TE") and asks
-- for no gzip, so each page costs a new TCP connection.
-- luacurl: Debian's lua-curl (the luacurl binding 0.3: easy interface only, Lua 5.1
-- and 5.2), one easy handle reused so libcurl keeps the connection alive; it has no
-- getinfo, so OPT_FAILONERROR checks the status. No Accept-Encoding, its default.
-- lcurl: Lua-cURLv3 (`require "lcurl"`), one easy handle reused, the body's chunks
-- joined: what the CPU-per-page comparison measures against. Not a Debian package
-- for Lua 5.4: build it from its source and give its directory in LUA_CPATH.
-- lcurl_promises: lcurl, keeping in plain Lua the two promises this client makes on
-- every run: a null is nil (not cjson.null), an integral number an integer. Every
-- member of every run is looked at, as for runs with members the script does not know.
-- curl_process: one `curl -sSL -D DUMP --compressed` process per page through
-- io.popen, the status from the dump file: what plenary.curl does for Neovim plugins.
local cjson = require "cjson"

local how, base, workflow, token = arg[1], arg[2], arg[3], arg[4]

local fetchers = {}

function fetchers.luasocket()
  local http, ltn12 = require "socket.http", require "ltn12"
  return function(url)
    local chunks = {}
    local ok, status = http.request { url = url, sink = ltn12.sink.table(chunks),
      headers = { authorization = "Bearer " .. token, accept = "application/json" } }
    return ok and status == 200 and table.concat(chunks), status
  end
end

function fetchers.luacurl()
  local curl = require "curl"
  local handle, chunks = curl.easy_init(), nil
  handle:setopt(curl.OPT_HTTPHEADER, { "Authorization: Bearer " .. token, "Accept: application/json" })
  handle:setopt(curl.OPT_FAILONERROR, 1)
  -- luacurl calls the write function with (data, size) and wants the size back
  handle:setopt(curl.OPT_WRITEFUNCTION, function(data, size)
    chunks[#chunks + 1] = data
    return size
  end)
  return function(url)
    chunks = {}
    handle:setopt(curl.OPT_URL, url)
    local code, message = handle:perform()
    return code == 0 and table.concat(chunks), message
  end
end

function fetchers.lcurl()
  local curl = require "lcurl"
  local chunks
  local handle = curl.easy { httpheader = { "Authorization: Bearer " .. token, "Accept: application/json" },
    writefunction = function(data) chunks[#chunks + 1] = data return true end }
  return function(url)
    chunks = {}
    handle:setopt_url(url)
    local ok, err = pcall(handle.perform, handle)
    if not ok then return nil, err end
    local status = handle:getinfo_response_code()
    return status == 200 and table.concat(chunks), status
  end
end

function fetchers.curl_process()
  local dump = os.tmpname()
  return function(url)
    local pipe = assert(io.popen(("curl -sSL -D '%s' --compressed -H 'Authorization: Bearer %s' '%s'")
      :format(dump, token, url)))
    local body = pipe:read "*a"
    pipe:close()
    local file = assert(io.open(dump))
    local status = tonumber(file:read("*a"):match "^HTTP/[%d.]+ (%d+)")
    file:close()
    os.remove(dump)
    return status == 200 and body, status
  end
end

fetchers.lcurl_promises = fetchers.lcurl

-- Lua 5.3 and later: the integral floats lua-cjson gives, as integers
local function keep_promises(runs)
  local null, tointeger, float_type = cjson.null, math.tointeger, math.type
  for _, run in ipairs(runs) do
    for name, value in pairs(run) do
      if value == null then
        run[name] = nil
      elseif float_type(value) == "float" then
        local integer = tointeger(value)
        if integer and integer >= -2 ^ 53 and integer <= 2 ^ 53 then run[name] = integer end
      end
    end
  end
end

local fetch = assert(fetchers[how], "luasocket, luacurl, lcurl, lcurl_promises or curl_process")()
local count, offset = 0, 0
repeat
  local url = ("%s/v1/workflows/%s/runs?limit=100&offset=%d"):format(base, workflow, offset)
  local body, why = fetch(url)
  if not body then error(("GET %s failed: %s"):format(url, tostring(why))) end
  local page = cjson.decode(body)
  if how == "lcurl_promises" then keep_promises(page.data.items) end
  for _, run in ipairs(page.data.items) do
    if run.id then count = count + 1 end
  end
  offset = offset + #page.data.items
until not page.data.hasMore
print(count)
