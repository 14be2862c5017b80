-- The nginx transport's registry entry: all code inside nginx is its own (where
-- cosockets do not work, with a refusal). The transport itself, HTTP/1.1 over
-- cosockets, is workflows.transport.ngx.driver, loaded with the first one: code
-- outside nginx asks only claims(), and a plain script does not pay for loading the
-- driver.

local rawget, type, require = rawget, type, require

local M = {}

M.names = { "ngx" }

-- nginx's Lua API (OpenResty's `ngx`), or nil outside nginx.
function M.api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

function M.claims()
  return M.api() ~= nil
end

-- The transport itself, made with the client's first one.
M.driver = "workflows.transport.ngx.driver"

local driver  -- loaded with the first question only the driver can answer

-- The transport `client` has in the running request, if it made one there; outside
-- nginx there is none, and the driver stays unloaded.
function M.found(client)
  if not M.api() then return nil end
  driver = driver or require(M.driver)
  return driver.found(client)
end

return M
