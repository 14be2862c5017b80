-- The libuv transport: libcurl's socket interface driven by a luv loop (Neovim's
-- vim.uv or vim.loop, or require "luv"). Calls made inside a client's tasks use
-- it; their waits yield to the loop instead of blocking it.
--
-- The core reports what libcurl wants watched (doc/core.md, socket sessions);
-- this module keeps one poll handle per descriptor of the loop and one timer, and
-- hands socket events and timer expiries back. No Lua code runs inside libcurl's
-- callbacks, and nothing here raises into the loop or writes to stderr: a failure
-- of the driver fails the requests it concerns (doc/lifecycle.md).

local errors = require "workflows.errors"
local handles = require "workflows.handles"
local socket_session = require "workflows.transport.socket_session"

local setmetatable, pairs, pcall, error = setmetatable, pairs, pcall, error
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

-- ------------------------------------------------------------ the transport

local Transport = {}
Transport.__index = Transport

local function new_transport(client)
  return socket_session.transport({
    name = "libuv",
    tasks = client.tasks,
    loop = client.loop,
    reaper = handles.reaper(client.loop),   -- made here: finalizers only queue on it
    timer = nil,            -- libcurl's timer
    watched = {},           -- fd -> true while this transport's watcher is on it
    decoded = setmetatable({}, { __mode = "k" }),  -- attempt -> true once its outcome is built
    waiting = {},           -- task -> true while it sleeps in wait()
  }, Transport)
end

-- The client's transport, made on first use (workflows.transport.uv asks).
function M.transport_for(client)
  return socket_session.own(client, "uv", new_transport)
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

-- The loop's side of workflows.transport.socket_session.

function Transport:watch(fd, what)
  local watcher, problem = watcher_for(self, fd)
  if watcher and watcher:start(what, on_poll(self, self.session, fd)) then
    self.watched[fd] = true
    return true
  end
  return nil, problem or "libuv refused the poll handle"
end

function Transport:unwatch(fd)
  unwatch(self, fd)
  self.watched[fd] = nil
end

function Transport:retime(ms)
  if ms < 0 then
    self.timer:stop()     -- -1: stop the timer, never "fire now"
  else
    -- a 0 ms timer started from a timer callback would fire in the same pass
    local session = self.session
    self.timer:start(ms < 1 and 1 or ms, 0, function() self:act(session.timer_expired) end)
  end
  return false
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

function Transport:finished()
  decode_finished(self)
  wake_waiting(self)
end

-- Calls `action(session, ...)` (when given) from a loop callback, then applies what
-- libcurl asks for, and wakes the tasks waiting when an attempt finished.
Transport.act = socket_session.act

local function with_timer(self) self.timer = self.loop.new_timer() end

local function session_of(self)
  return socket_session.session_of(self, with_timer)
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
  local attempt = socket_session.attempt(self, session_of(self):start(request))
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
