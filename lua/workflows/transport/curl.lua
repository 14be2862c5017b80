-- The blocking transport: libcurl's multi interface, moved by the session's transfer
-- thread; the caller waits in session:drive for a transfer to finish. Calls made
-- outside a task (and anywhere without a loop) use it.

local core = require "workflows.core"

local setmetatable = setmetatable
local sleep = core.sleep

local M = {}

M.names = { "curl" }

local Transport = {}
Transport.__index = Transport
Transport.name = "curl"  -- what events call it

-- Serves whatever no other transport claims.
function M.claims() return true end

-- An nginx worker runs one thread by design, and there this transport blocks it
-- whichever thread moves the bytes: no transfer thread inside nginx.
local function wants_thread(client)
  return client.config.transfer_thread and require("workflows.transport.ngx").api() == nil
end

-- The client's transport, made on first use.
function M.transport_for(client)
  local transport = client.transports.curl
  if not transport then
    transport = setmetatable({ session = nil, thread = wants_thread(client) }, Transport)
    client.transports.curl = transport
  end
  return transport
end

function M.found(client) return client.transports.curl end

-- One session for the client's life: every call and walk rides its connections.
local function session_of(self)
  local session = self.session
  if not session then
    session = core.session { thread = self.thread }
    self.session = session
  end
  return session
end

function Transport:start(request)
  return session_of(self):start(request)
end

function Transport:wait(seconds)
  local session = self.session
  if session and session:running() > 0 then
    session:drive(seconds)
  else
    sleep(seconds)
  end
end

-- The session's transfer thread sends new requests at once; a session without one
-- (no thread could be made) moves nothing between two drives, and a drive without
-- waiting sends them, so that the server works on them while the caller works on a page.
function Transport:flush()
  local session = self.session
  if session and session:running() > 0 then session:drive(0) end
end

function Transport:running()
  return self.session and self.session:running() or 0
end

-- From a finalizer. Releasing a transfer is the core's own work (its collection does
-- the same); libcurl is never inside a call here, since the core runs no Lua there.
function Transport.drop(_, attempt)
  attempt:release()
end

-- From a finalizer: the session's own finalizer closes it, once collected with the client.
function Transport.abandon() end

-- Nothing of a task's: tasks never use this transport.
function Transport.release_task() end

function Transport:close()
  if self.session then
    self.session:close()
    self.session = nil
  end
end

return M
