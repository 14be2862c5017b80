-- What every transport that drives libcurl's socket interface from a loop shares (the
-- libuv and cqueues ones): the attempts, applying what libcurl asks for after each call
-- into the session, and failing the attempts in flight when libcurl itself fails. The
-- loop's own part -- watching a descriptor, moving the timer, waking whoever waits --
-- stays in the transport, which provides:
--
--   transport.session              the core's socket session (doc/core.md), or nil
--   transport.owners               attempt -> whatever started it, until released
--   transport.completions          attempts finished so far (counted here)
--   transport.name                 "libuv", "cqueues": for the failure's message
--   transport:watch(fd, what)      -> true, or nil and why the loop cannot watch it
--   transport:unwatch(fd)          stop watching fd now (it may be closed already)
--   transport:retime(ms)           libcurl's timer: -1 stops it; returns whether what
--                                  the loop waits for changed
--   transport:finished()           an attempt finished (or failed): wake the waiters
--   transport:moved()              what the loop watches changed (optional)

local core = require "workflows.core"
local errors = require "workflows.errors"

local setmetatable, pairs, pcall, tostring, error = setmetatable, pairs, pcall, tostring, error

local M = {}

-- Adds to `fields` (a new transport's table) the bookkeeping this module and the loops
-- share, and returns it with `class` as its metatable.
function M.transport(fields, class)
  fields.session = nil        -- the socket session, made on first use
  fields.owners = {}          -- attempt -> what started it, until released
  fields.completions = 0      -- attempts finished so far
  -- waiter -> completions when it last looked
  fields.seen = setmetatable({}, { __mode = "k" })
  fields.unsent = false       -- attempts started since the last flush
  fields.closed = false
  return setmetatable(fields, class)
end

-- The transport's session, made on first use (`on_new(transport)` then makes what the
-- loop needs beside it); a closed transport refuses.
function M.session_of(transport, on_new)
  local session = transport.session
  if not session then
    if transport.closed then error(errors.invalid_argument("the client is closed"), 0) end
    session = core.socket_session()
    transport.session = session
    if on_new then on_new(transport) end
  end
  return session
end

-- The client's transport of the module named `name`, made by `make(client)` on first use.
function M.own(client, name, make)
  local transport = client.transports[name]
  if not transport then
    transport = make(client)
    client.transports[name] = transport
  end
  return transport
end

-- An attempt is the core's transfer, plus an outcome the transport sets when the
-- transfer cannot finish on its own (libcurl failed, or the client was closed).
local Attempt = {}
Attempt.__index = Attempt

function M.attempt(transport, transfer)
  return setmetatable({ transfer = transfer, transport = transport, released = false },
    Attempt)
end

function Attempt:done()
  return self.outcome ~= nil or self.transfer:done()
end

function Attempt:result()
  return self.outcome or self.transfer:result()
end

-- Releases the transfer and applies at once what libcurl asks for: a transfer taken
-- out while it connects has its socket closed by libcurl there and then, and the
-- watcher must go before another socket takes the number. Never from a finalizer
-- (the transport's drop is for that).
function Attempt:release()
  if self.released then return end
  self.released = true
  self.transfer:release()
  local transport = self.transport
  transport.owners[self] = nil
  transport:act()
end

-- Gives every attempt still in flight `outcome`'s failure and releases its transfer.
function M.end_in_flight(transport, kind, message)
  for attempt in pairs(transport.owners) do
    if not attempt.outcome and not attempt.transfer:done() then
      attempt.outcome = { ok = false, kind = kind, elapsed = 0, message = message }
      attempt.transfer:release()
    end
  end
end

-- Applies what libcurl asked for during the last calls into the session: watch,
-- re-watch or forget descriptors (before the core closes any: their numbers may then be
-- reused), move the timer, then let the core close what libcurl let go of. Returns the
-- descriptors the loop could not watch, and whether what it waits for changed.
local function settle(transport)
  local session = transport.session
  local sockets, timer = session:changes()
  local refused
  local changed = #sockets > 0
  for i = 1, #sockets, 2 do
    local fd, what = sockets[i], sockets[i + 1]
    if what == "remove" or what == "close" then
      transport:unwatch(fd)
      if refused then refused[fd] = nil end
    else
      local ok, problem = transport:watch(fd, what)
      if ok then
        if refused then refused[fd] = nil end
      else
        refused = refused or {}
        refused[fd] = problem or "the loop cannot watch it"
      end
    end
  end
  session:close_removed()
  if timer and transport:retime(timer) then changed = true end
  return refused, changed
end

-- Settles libcurl's changes. A descriptor the loop cannot watch fails the transfer on
-- it (libcurl reports a poll error), which brings changes of its own: settled again, a
-- few rounds at most. Returns false and the error when libcurl itself fails, and
-- whether what the loop waits for changed.
local function settle_all(transport, session)
  local changed = false
  for _ = 1, 4 do
    local ok, refused, moved = pcall(settle, transport)
    if not ok then return false, refused, true end
    changed = changed or moved
    if not refused then return true, nil, changed end
    for fd in pairs(refused) do
      local acted, err = pcall(session.socket_action, session, fd, "e")
      if not acted then return false, err, true end
    end
  end
  return true, nil, changed
end

-- Calls `action(session, ...)` (when given), then settles; counts an attempt that
-- finished and tells the transport, or tells it that what it watches moved. A failure
-- of libcurl itself fails every attempt in flight rather than reach the loop.
function M.act(transport, action, ...)
  local session = transport.session
  if not session then return end
  local before = session:running()
  local ok, err = true, nil
  if action then ok, err = pcall(action, session, ...) end
  local changed
  if ok then ok, err, changed = settle_all(transport, session) end
  if not ok then
    M.end_in_flight(transport, "network", "the " .. transport.name .. " transport failed: "
      .. tostring(err))
  end
  if session:running() < before or not ok then
    transport.completions = transport.completions + 1
    transport:finished()
  elseif changed and transport.moved then
    transport:moved()
  end
end

return M
