-- The one rule that decides whether a client's requests go through a proxy, and which.
-- It runs once, when the client is made, and every transport gets its answer: the
-- libcurl ones as CURLOPT_PROXY (or "" for none, so that libcurl never applies an
-- environment rule of its own), the nginx one as the proxy it connects to.
--
--   proxy option:  "http://[user:pass@]host[:port]" (port 1080 when absent); false: none
--   otherwise:     https targets: https_proxy, HTTPS_PROXY, then all_proxy, ALL_PROXY;
--                  http targets:  http_proxy (lower case only: a CGI program gets
--                  HTTP_PROXY from a request's "Proxy:" header), then all_proxy, ALL_PROXY
--   no_proxy option (a list, or a comma-separated string), otherwise no_proxy, NO_PROXY:
--   "*" (every host), host names, domain suffixes ("example.com" and ".example.com" both
--   match api.example.com), IP addresses and IPv4 networks ("10.0.0.0/8").

local type, ipairs, tonumber, setmetatable = type, ipairs, tonumber, setmetatable
local format, find, match, lower, sub, gsub, char = string.format, string.find, string.match,
  string.lower, string.sub, string.gsub, string.char
local floor = math.floor

local M = {}

local DEFAULT_PORT = 1080  -- libcurl's, for a proxy named without a port

local ENVIRONMENT = {
  https = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" },
  http = { "http_proxy", "all_proxy", "ALL_PROXY" },
}
local NO_PROXY_ENVIRONMENT = { "no_proxy", "NO_PROXY" }

M.EXPECTED = 'an http:// proxy URL such as "http://[user:pass@]host:port", or false'

local function percent_decoded(text)
  return (gsub(text, "%%(%x%x)", function(hex) return char(tonumber(hex, 16)) end))
end

-- The parts of a proxy URL, or nil when it is not one this client can use. A value
-- without a scheme is taken as http://, as libcurl and most tools take it.
function M.parse(value)
  if type(value) ~= "string" or find(value, "[%s%c]") then return nil end
  local scheme, rest = match(value, "^(%a[%w+.-]*)://(.*)$")
  if scheme then
    if lower(scheme) ~= "http" then return nil end
  else
    rest = value
  end
  local authority, path = match(rest, "^([^/?#]*)(.*)$")
  if path ~= "" and path ~= "/" then return nil end
  local userinfo, hostport = match(authority, "^(.*)@([^@]*)$")
  if not userinfo then hostport = authority end
  local host, port = match(hostport, "^(%[[%x:.]+%]):?(%d*)$")
  if not host then host, port = match(hostport, "^([%w.-]+):?(%d*)$") end
  if not host or host == "" then return nil end
  port = port == "" and DEFAULT_PORT or tonumber(port)
  if port < 1 or port > 65535 then return nil end
  local proxy = { host = lower(host), port = port }
  proxy.authority = proxy.host .. ":" .. port
  proxy.url = "http://" .. proxy.authority
  if userinfo then
    local user, password = match(userinfo, "^([^:]*):(.*)$")
    proxy.user = percent_decoded(user or userinfo)
    proxy.password = percent_decoded(password or "")
  end
  return proxy
end

local function ipv4(text)
  local a, b, c, d = match(text, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Whether `host` (lower case, brackets removed) matches one no_proxy entry.
local function bypasses(host, entry)
  entry = lower(gsub(gsub(entry, "^%s+", ""), "%s+$", ""))
  entry = gsub(gsub(entry, "^%[(.*)%]$", "%1"), "^%*?%.", "")
  if entry == "" then return false end
  if entry == "*" or entry == host then return true end
  local network, bits = match(entry, "^([%d.]+)/(%d+)$")
  if network then
    local address, base = ipv4(host), ipv4(network)
    bits = tonumber(bits)
    if not address or not base or bits > 32 then return false end
    local size = 2 ^ (32 - bits)
    return floor(address / size) == floor(base / size)
  end
  return #host > #entry and sub(host, -#entry - 1) == "." .. entry and not ipv4(host)
end

local function entries_of(no_proxy)
  if type(no_proxy) == "table" then return no_proxy end
  local list = {}
  for item in (no_proxy or ""):gmatch("[^,]+") do list[#list + 1] = item end
  return list
end

-- Whether no_proxy (a list or a comma-separated string) sends `host` straight.
function M.bypassed(host, no_proxy)
  host = lower(gsub(host, "^%[(.*)%]$", "%1"))
  for _, entry in ipairs(entries_of(no_proxy)) do
    if bypasses(host, entry) then return true end
  end
  return false
end

local function first_set(getenv, names)
  for _, name in ipairs(names) do
    local value = getenv(name)
    if value ~= nil and value ~= "" then return value, name end
  end
  return nil
end

-- The proxy's "Proxy-Authorization" secret stays out of every printed form of the route.
local Route = {}
Route.__index = Route
function Route.__tostring(route) return "workflows.proxy(" .. route.url .. ")" end

-- The route of a client's requests: a table { url, host, port, authority, user,
-- password, target } when they go through a proxy, false when they go straight; or nil
-- and a message (a bad proxy URL in the environment). `config` holds the checked
-- options (proxy, no_proxy, base_url); `getenv` is os.getenv.
function M.route(config, getenv)
  local scheme, authority = match(config.base_url, "^(%a+)://([^/?#]+)")
  scheme = lower(scheme)
  local host, port = match(authority, "^(%[[%x:.]+%]):?(%d*)$")
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if config.proxy == false then return false end
  local no_proxy = config.no_proxy
  if no_proxy == nil then no_proxy = first_set(getenv, NO_PROXY_ENVIRONMENT) end
  if M.bypassed(host, no_proxy) then return false end
  local value, source = config.proxy, nil
  if value == nil then value, source = first_set(getenv, ENVIRONMENT[scheme]) end
  if value == nil then return false end
  local proxy = M.parse(value)
  if not proxy then
    -- the value is not quoted: it may hold a password
    return nil, format("environment variable %s must be %s", source, M.EXPECTED)
  end
  proxy.target = lower(host) .. ":" .. (port ~= "" and port or (scheme == "https" and "443" or "80"))
  proxy.tunnel = scheme == "https"
  return setmetatable(proxy, Route)
end

local REFUSALS = {
  [407] = "Proxy Authentication Required", [403] = "Forbidden", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [400] = "Bad Request",
  [405] = "Method Not Allowed",
}

-- The outcome of an attempt made through `route`, with the proxy's part in a failure
-- said in words every transport shares: a refused CONNECT (the transports report its
-- status as proxy_status), a proxy that asked for credentials on an http target, a
-- proxy that could not be reached.
function M.explained(outcome, route)
  if not route or outcome.ok then return outcome end
  local refused = outcome.proxy_status
  if not refused and outcome.kind == "http" and outcome.status == 407 then refused = 407 end
  if refused then
    local reason = REFUSALS[refused]
    return { ok = false, kind = "network", proxy_status = refused, elapsed = outcome.elapsed,
      message = format("proxy refused %s %s: %d%s", route.tunnel and "CONNECT to" or "the request for",
        route.target, refused, reason and " " .. reason or "") }
  end
  if outcome.kind == "network" and type(outcome.message) == "string"
      and (find(outcome.message, "^Failed to connect to " .. gsub(route.host, "%p", "%%%0")
        .. " port " .. route.port .. " ") or find(outcome.message, "^Could not resolve proxy")) then
    outcome.message = format("could not reach proxy %s: %s", route.authority, outcome.message)
  end
  return outcome
end

return M
