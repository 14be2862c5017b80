-- The libuv transport's registry entry: calls made inside the tasks of a client made
-- with a loop are its own. The transport itself, libcurl's socket interface driven by
-- the luv loop, is workflows.transport.uv.driver, loaded with the first one: code
-- outside any task asks only claims(), and a plain script does not pay for loading
-- the driver.

local M = {}

M.names = { "curl" }   -- libcurl too, on the client's loop

-- Serves the tasks of a client made with a loop (client:spawn, the callback form of
-- list_runs). A client has no tasks (nil) before its first.
function M.claims(client)
  local tasks = client.tasks
  return client.loop ~= nil and tasks ~= nil and tasks:running() ~= nil
end

function M.found(client) return client.transports.uv end

-- The transport itself, made with the client's first one.
M.driver = "workflows.transport.uv.driver"

return M
