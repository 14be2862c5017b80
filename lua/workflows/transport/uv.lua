-- The libuv transport: libcurl's socket interface driven by a luv loop (Neovim's
-- vim.uv or vim.loop, or require "luv"). Calls made inside a client's tasks use
-- it; their waits yield to the loop instead of blocking it.
--
-- The core reports what libcurl wants watched (doc/core.md, socket sessions);
-- this module keeps one poll handle per descriptor of the loop and one timer, and
-- hands socket events and timer expiries back. No Lua code runs inside libcurl's
-- callbacks, and nothing here raises into the loop or writes to stderr: a failure
-- of the driver fails the requests it concerns (doc/lifecycle.md).

local core = require "workflows.core"
local errors = require "workflows.errors"
local handles = require "workflows.handles"

local setmetatable, pairs, pcall, error, tostring = setmetatable, pairs, pcall, error, tostring
local find = string.find

local M = {}

-- ------------------------------------------------------------ poll handles

--[[ One poll handle per descriptor number per loop, whatever the number of clients:
libuv refuses a second one (EEXIST), and closing a handle drops its number from epoll,
even when another handle watches that number by then. So a handle is never closed
while its number may be watched again in the same turn: a transport done with a
descriptor only stops its handle (libuv forgets the number at once) and leaves it
idle; the next socket with that number, of any transport, takes the idle handle over;
the reaper closes it on the loop's next turn if it is still idle then. A descriptor
libcurl closes is always reported first (the core's "close"), so no started handle
ever outlives its socket. ]]
local polls_of = setmetatable({}, { __mode = "k" })   -- loop -> fd -> { handle, owner }

local function polls(loop)
  local by_fd = polls_of[loop]
  if not by_fd then
    by_fd = {}
    polls_of[loop] = by_fd
  end
  return by_fd
end

-- Closes the handle of `fd` from a loop callback, if nobody took it over meanwhile.
local function close_if_idle(by_fd, fd, entry)
  return function()
    if by_fd[fd] ~= entry or entry.owner then return end
    by_fd[fd] = nil
    pcall(entry.handle.close, entry.handle)
  end
end

-- Stops the handle of `fd` if `owner` holds it, and leaves it idle. Anywhere but in a
-- finalizer.
local function unwatch(owner, fd)
  local by_fd = polls(owner.loop)
  local entry = by_fd[fd]
  if not entry or entry.owner ~= owner then return end
  entry.owner = nil
  handles.retire({ entry.handle }, nil)
  handles.later(owner.reaper, close_if_idle(by_fd, fd, entry))
end

-- The poll handle for `fd`, taken by `owner`: its own, an idle one, or a new one; nil
-- and an error when libuv refuses one.
local function watcher_for(owner, fd)
  local loop = owner.loop
  local by_fd = polls(loop)
  local entry = by_fd[fd]
  if entry then
    -- another owner's only when it missed a "close": the number is a new socket's now
    entry.owner = owner
    return entry.handle
  end
  local ok, handle, problem = pcall(loop.new_poll, fd)
  if not ok or not handle then return nil, ok and problem or handle end
  by_fd[fd] = { handle = handle, owner = owner }
  return handle
end

-- ------------------------------------------------------------ attempts

-- An attempt is the core's transfer, plus an outcome the transport can set when the
-- driver itself fails (the transfer then never finishes on its own).
local Attempt = {}
Attempt.__index = Attempt

function Attempt:done()
  return self.outcome ~= nil or self.transfer:done()
end

function Attempt:result()
  return self.outcome or self.transfer:result()
end

-- Releases the transfer and applies at once what libcurl asks for: a transfer taken
-- out while it connects has its socket closed by libcurl there and then, and the
-- watcher must go before another socket takes the number. Never from a finalizer
-- (Transport:drop is for that).
function Attempt:release()
  if self.released then return end
  self.released = true
  self.transfer:release()
  local transport = self.transport
  transport.owners[self] = nil
  transport:act()
end

-- ------------------------------------------------------------ the transport

local Transport = {}
Transport.__index = Transport

M.names = { "curl" }   -- libcurl too, on the client's loop

-- Serves the tasks of a client made with a loop (client:spawn, the callback form of
-- list_runs).
function M.claims(client)
  return client.loop ~= nil and client.tasks:running() ~= nil
end

function M.found(client) return client.transports.uv end

local function new_transport(client)
  return setmetatable({
    tasks = client.tasks,
    loop = client.loop,
    reaper = handles.reaper(client.loop),   -- made here: finalizers only queue on it
    session = nil,          -- the socket session, made on first use
    timer = nil,            -- libcurl's timer
    watched = {},           -- fd -> true while this transport's watcher is on it
    owners = {},            -- attempt -> the task that started it, until released
    decoded = setmetatable({}, { __mode = "k" }),  -- attempt -> true once its outcome is built
    waiting = {},           -- task -> true while it sleeps in wait()
    completions = 0,        -- attempts finished so far
    seen = setmetatable({}, { __mode = "k" }),     -- task -> completions when it last woke
    unsent = false,         -- attempts started since the last flush
    closed = false,
  }, Transport)
end

-- The client's transport, made on first use.
function M.transport_for(client)
  local transport = client.transports.uv
  if not transport then
    transport = new_transport(client)
    client.transports.uv = transport
  end
  return transport
end

local function wake_waiting(self)
  local tasks = self.tasks
  for task in pairs(self.waiting) do tasks:wake(task) end
end

-- luv reports "r", "w", "rw", and with them "d" (disconnect) or "p" (priority)
-- data; libcurl takes "r", "w" or "rw".
local function for_libcurl(events)
  local r = find(events, "[rdp]") and "r" or ""
  local w = find(events, "w", 1, true) and "w" or ""
  if r == "" and w == "" then return "r" end
  return r .. w
end

-- Fails every attempt still in flight with `message`: the driver cannot move them.
local function fail_in_flight(self, message)
  for attempt in pairs(self.owners) do
    if not attempt.outcome and not attempt.transfer:done() then
      attempt.outcome = { ok = false, kind = "network", elapsed = 0,
        message = "the libuv transport failed: " .. tostring(message) }
      attempt.transfer:release()
    end
  end
end

local function on_poll(self, session, fd)
  return function(err, events)
    if not err then return self:act(session.socket_action, fd, for_libcurl(events)) end
    -- libuv stops a watcher on a poll error (a reset, a refused connection)
    -- and says no more. Let libcurl read and write the socket, which finds the
    -- failure itself and reports it as the blocking transport does; only a
    -- socket it still wants watched after that is failed as a poll error.
    self:act(session.socket_action, fd, "rw")
    local entry = polls(self.loop)[fd]
    if entry and entry.owner == self and not entry.handle:is_active() then
      self:act(session.socket_action, fd, "e")
    end
  end
end

-- Applies what libcurl asked for during the last calls into the session: watch,
-- re-watch or forget sockets, set or stop the timer, then close the descriptors it
-- let go of. Returns the descriptors libuv would not watch.
local function settle(self)
  local session = self.session
  local sockets, timer = session:changes()
  local refused
  for i = 1, #sockets, 2 do
    local fd, what = sockets[i], sockets[i + 1]
    if what == "remove" or what == "close" then
      -- before the core closes the descriptor, whose number may then be reused
      unwatch(self, fd)
      self.watched[fd] = nil
    else
      local watcher, problem = watcher_for(self, fd)
      local started = watcher and watcher:start(what, on_poll(self, session, fd))
      if started then
        self.watched[fd] = true
      else
        refused = refused or {}
        refused[fd] = problem or "poll handle refused"
      end
    end
  end
  session:close_removed()
  if timer then
    if timer < 0 then
      self.timer:stop()     -- -1: stop the timer, never "fire now"
    else
      -- a 0 ms timer started from a timer callback would fire in the same pass
      self.timer:start(timer < 1 and 1 or timer, 0, function()
        self:act(session.timer_expired)
      end)
    end
  end
  return refused
end

-- Builds the outcome of every attempt that has finished (attempt:result() decodes
-- the body the first time, and keeps the table). Done here, one or two pages at a
-- time as they finish, rather than by the task, which would decode every page
-- that finished meanwhile in one go and hold the loop for as many milliseconds.
local function decode_finished(self)
  local decoded = self.decoded
  for attempt in pairs(self.owners) do
    if not decoded[attempt] and attempt:done() then
      decoded[attempt] = true
      pcall(attempt.result, attempt)  -- a released attempt has none: nothing to do
    end
  end
end

-- Settles libcurl's changes. A descriptor libuv refuses to watch fails the transfer
-- on it (libcurl reports a poll error), which brings changes of its own: settled
-- again, a few rounds at most. Returns false and the error when libcurl itself fails.
local function settle_all(self, session)
  for _ = 1, 4 do
    local ok, refused = pcall(settle, self)
    if not ok then return false, refused end
    if not refused then return true end
    for fd in pairs(refused) do
      local acted, err = pcall(session.socket_action, session, fd, "e")
      if not acted then return false, err end
    end
  end
  return true
end

-- Calls `action(session, ...)` (when given) from a loop callback, then settles, and
-- wakes the tasks waiting when an attempt finished. A failure of libcurl itself
-- fails every attempt in flight rather than reach the loop.
function Transport:act(action, ...)
  local session = self.session
  if not session then return end
  local before = session:running()
  local ok, err = true, nil
  if action then ok, err = pcall(action, session, ...) end
  if ok then ok, err = settle_all(self, session) end
  if not ok then fail_in_flight(self, err) end
  if session:running() < before or not ok then
    self.completions = self.completions + 1
    decode_finished(self)
    wake_waiting(self)
  end
end

local function session_of(self)
  local session = self.session
  if not session then
    if self.closed then
      error(errors.invalid_argument("the client is closed"), 0)
    end
    session = core.socket_session()
    self.session = session
    self.timer = self.loop.new_timer()
  end
  return session
end

-- A task that has held the loop for a while lets it turn before it goes on.
-- Answers already in (a fast server, prefetched pages) would otherwise carry a walk
-- from page to page without a single wait, and the host's timers and input would
-- wait for the whole walk. Every page of a walk starts a request, and the pager
-- flushes as it goes: both come here.
local function let_the_loop_turn(self)
  local tasks = self.tasks
  local task = tasks:running()
  if task and tasks:held_long(task) then tasks:pass(task) end
end

function Transport:start(request)
  let_the_loop_turn(self)
  local attempt = setmetatable({ transfer = session_of(self):start(request), transport = self,
    released = false }, Attempt)
  -- held until released, so that a walk dropped mid-flight never leaves its transfer
  -- to the collector (whose release would change the session outside the loop)
  self.owners[attempt] = self.tasks:running() or true
  self.unsent = true
  return attempt
end

-- Lets libcurl act on the attempts started (or released) since the last flush at
-- once, rather than on the loop's next turn.
function Transport:flush()
  if self.unsent then
    self.unsent = false
    self:act(self.session.timer_expired)
  end
  let_the_loop_turn(self)
end

function Transport:wait(seconds)
  local tasks = self.tasks
  local task = tasks:running()
  if not task then
    error(errors.invalid_argument("a call begun inside a task must be waited on inside a task"
      .. " (iterate a walk in the task that started it)"), 0)
  end
  self:flush()
  if self.seen[task] ~= self.completions then
    self.seen[task] = self.completions  -- something finished since this task last looked
    return
  end
  self.waiting[task] = true
  tasks:sleep(task, seconds)
  self.waiting[task] = nil
  self.seen[task] = self.completions
end

-- Releases every attempt that `task` started (the task was cancelled or ended). On
-- the loop's next turn libcurl's timeouts run once, so that it stops a timer it no
-- longer needs and the loop may end.
function Transport:release_task(task)
  local released = false
  for attempt, owner in pairs(self.owners) do
    if owner == task then
      attempt:release()
      released = true
    end
  end
  self.waiting[task] = nil
  local session = self.session
  if released and session then
    handles.later(self.reaper, function() self:act(session.timer_expired) end)
  end
end

-- From a finalizer (a walk dropped without close()): only queues; the release and
-- what libcurl then asks for happen on the loop's next turn.
function Transport:drop(attempt)
  if attempt.released then return end   -- its task ended or was cancelled: done already
  handles.later(self.reaper, function() attempt:release() end)
end

-- From a finalizer (the client was collected without close()): closes everything on
-- the loop's next turn.
function Transport:abandon()
  handles.later(self.reaper, function() self:close() end)
end

function Transport:running()
  return self.session and self.session:running() or 0
end

-- Stops every handle now; closes them, then the session (and with it every
-- descriptor it still holds, each unwatched by then), on the loop's next turn.
-- Idempotent; the transport refuses new attempts afterwards.
function Transport:close()
  self.closed = true
  local session, timer = self.session, self.timer
  for fd in pairs(self.watched) do unwatch(self, fd) end
  self.session, self.timer, self.watched, self.waiting, self.owners = nil, nil, {}, {}, {}
  if not timer then
    if session then session:close() end
    return
  end
  handles.retire({ timer }, timer, function() session:close() end)
end

return M
