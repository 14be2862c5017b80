--[[ The cqueues transport: libcurl's socket interface driven from the coroutines of a
cqueues controller (lua-cqueues, the event loop under lua-http). Calls made in a
coroutine the controller runs (cq:wrap) use it; their waits are cqueues.poll, which
yields to the controller instead of blocking it.

The core reports what libcurl wants watched (doc/core.md, socket sessions). Of the
coroutines waiting on one client, one at a time (the driver) polls those descriptors
and libcurl's timer and hands what is ready back to libcurl, for all of them; the
others wait on a condition that is signalled when an attempt finishes, and one of them
takes over when the driver leaves. Nothing here runs inside libcurl's callbacks, and a
failure of libcurl itself fails the attempts in flight rather than raise into the
controller.

Descriptors. cqueues keeps a polled descriptor in its epoll set after the poll returns,
until the coroutine yields again, and then asks epoll to drop it: a descriptor closed
meanwhile makes that request fail, and cqueues kills the coroutine ("unable to update
event disposition"). cqueues.cancel(fd), which a cqueues socket's close() does first,
drops it at once, but another coroutine still polling the same number brings it back
when it resumes. Hence: libcurl's own descriptors are never polled, since libcurl closes
some without telling first (the core's "close"; the threaded resolver's socketpair
after its "remove"); the driver polls a duplicate of each (cqueues.socket.dup: the same
socket under a number this transport owns), closed only through its own close(); and
only the driver polls them, so no other coroutine ever holds one. ]]

local core = require "workflows.core"
local socket_session = require "workflows.transport.socket_session"
local errors = require "workflows.errors"
local registry_entry = require "workflows.transport.cqueues"

local setmetatable, pairs, ipairs, pcall, error, tostring, type, require, next, rawget =
  setmetatable, pairs, ipairs, pcall, error, tostring, type, require, next, rawget
local unpack = table.unpack or unpack  -- luacheck: ignore (unpack: Lua 5.1 and LuaJIT)
local find = string.find
local running_coroutine = coroutine.running
local getinfo = debug.getinfo
local now = core.now

local M = {}

-- lua-cqueues (false where it is not installed), and whether the running code is a
-- coroutine a controller resumes itself: the registry entry's.
local cqueues, in_controller = registry_entry.library, registry_entry.claims

-- How long a coroutine may hold the controller (answers already in) before it lets
-- the controller turn once, as the libuv transport does for its loop.
local HOLD_SECONDS = 0.001

-- PUC Lua 5.1 cannot yield from a for loop's iterator or across pcall; LuaJIT can.
local YIELDS_ANYWHERE = not (_VERSION == "Lua 5.1" and not rawget(_G, "jit"))

local FOR_LOOP_ON_LUA51 = "a cqueues coroutine cannot wait inside a for loop's iterator or "
  .. "across pcall on Lua 5.1; call the iterator from a while loop instead: local next_run = "
  .. "client:runs(id) while true do local run = next_run() if run == nil then break end ... end"

local NESTED = "a call made inside a cqueues controller must wait in a coroutine the "
  .. "controller runs (cq:wrap), not in a coroutine of its own inside one"

-- On PUC Lua 5.1, whether a yield from here would reach the controller: no C function
-- (pcall, a metamethod's caller) and no for loop's iterator between here and the
-- coroutine's body.
local function can_yield_here()
  if YIELDS_ANYWHERE then return true end
  local level = 2
  while true do
    local info = getinfo(level, "Sn")
    if not info then return true end
    if info.what == "C" or info.name == "(for generator)" then return false end
    level = level + 1
  end
end

-- ------------------------------------------------------------ the transport

local Transport = {}
Transport.__index = Transport

local function new_transport()
  local condition = require "cqueues.condition"
  return socket_session.transport({
    name = "cqueues",
    cqueues = cqueues(),
    socket = require "cqueues.socket",
    watched = {},           -- fd -> { dup =, what =, r =, w = } while libcurl wants it watched
    polled = nil,           -- what a wait polls (the watched set's poll objects), or nil to rebuild
    due = nil,              -- core.now() time libcurl's timer goes off, or nil
    dropped = {},           -- attempts whose walk was collected, to release on the next turn
    -- signalled when an attempt finishes (every waiting coroutine looks again), and
    -- once when the driver leaves (one of them takes over)
    finished_cond = condition.new(),
    -- signalled when what the driver polls changed: the watched set, an earlier timer
    changed = condition.new(),
    driver = nil,           -- the coroutine polling the descriptors, while it does
    driver_in = nil,        -- its controller (nil outside any)
    driver_until = nil,     -- when its poll ends at the latest
    waiting = {},           -- coroutine -> true while it waits on `finished_cond`
    resumed = setmetatable({}, { __mode = "k" }),  -- coroutine -> when it last had the controller back
  }, Transport)
end

-- The client's transport, made on first use (workflows.transport.cqueues asks).
function M.transport_for(client)
  return socket_session.own(client, "cqueues", new_transport)
end

-- The main thread has no coroutine on Lua 5.1; it still keeps its own count of what it saw.
local MAIN = {}

local function current_key()
  return running_coroutine() or MAIN
end

-- What the driver polls: one object per direction of each watched descriptor, so that
-- what comes back ready says which direction is, and both conditions.
local function poll_objects(self)
  local polled = self.polled
  if polled then return polled end
  polled = { self.finished_cond, self.changed }
  for _, entry in pairs(self.watched) do
    if find(entry.what, "r", 1, true) then polled[#polled + 1] = entry.r end
    if find(entry.what, "w", 1, true) then polled[#polled + 1] = entry.w end
  end
  self.polled = polled
  return polled
end

-- Stops watching `fd`: its duplicate leaves every controller's epoll set and closes.
function Transport:unwatch(fd)
  local entry = self.watched[fd]
  if not entry then return end
  self.watched[fd] = nil
  self.polled = nil
  pcall(entry.dup.close, entry.dup)
end

-- Watches `fd` for `what` ("r", "w" or "rw"). nil and a reason when it cannot be
-- duplicated (no descriptor left, or libcurl closed it before its "remove").
function Transport:watch(fd, what)
  local entry = self.watched[fd]
  if not entry then
    local dup, problem = self.socket.dup(fd)
    if not dup then return nil, "cannot watch descriptor " .. fd .. ": error " .. tostring(problem) end
    local number = dup:pollfd()
    entry = { dup = dup, what = what,
      r = { pollfd = number, events = "r", fd = fd },
      w = { pollfd = number, events = "w", fd = fd } }
    entry.r.entry, entry.w.entry = entry, entry
    self.watched[fd] = entry
  elseif entry.what == what then
    return true
  end
  entry.what = what
  self.polled = nil
  return true
end

-- libcurl's timer, as a time the driver polls up to; whether it came earlier.
function Transport:retime(ms)
  local due = ms >= 0 and now() + ms / 1000 or nil
  local earlier = due ~= nil and (self.due == nil or due < self.due)
  self.due = due
  return earlier
end

-- An attempt finished: every waiting coroutine looks again.
function Transport:finished()
  self.finished_cond:signal()
end

-- What the driver polls changed: it polls afresh.
function Transport:moved()
  if self.driver ~= nil then self.changed:signal() end
end

-- Calls `action(session, ...)` (when given), then applies what libcurl asks for
-- (workflows.transport.socket_session).
Transport.act = socket_session.act

-- Releases the attempts whose walks were collected (Transport:drop queued them).
local function settle_dropped(self)
  local queue = self.dropped
  if queue[1] == nil then return end
  self.dropped = {}
  for _, attempt in ipairs(queue) do attempt:release() end
end

local function session_of(self)
  return socket_session.session_of(self)
end

-- A coroutine that has held the controller for a while lets it turn once before it
-- goes on. Answers already in (a fast server, prefetched pages) would otherwise carry a
-- walk from page to page without a single wait, and the controller's other coroutines
-- would wait for the whole walk. Every page of a walk starts a request, and the pager
-- flushes as it goes: both come here.
local function let_the_controller_turn(self)
  if not in_controller() or not can_yield_here() then return end
  local key = current_key()
  local since = self.resumed[key]
  if since and now() - since < HOLD_SECONDS then return end
  if since then self.cqueues.poll(0) end
  self.resumed[key] = now()
end

function Transport:start(request)
  settle_dropped(self)
  let_the_controller_turn(self)
  local attempt = socket_session.attempt(self, session_of(self):start(request))
  -- held until released, so that only this transport ever changes the session
  self.owners[attempt] = true
  self.unsent = true
  return attempt
end

-- Lets libcurl act on the attempts started since the last flush at once, rather than
-- at the next wait.
function Transport:flush()
  settle_dropped(self)
  if self.unsent and self.session then
    self.unsent = false
    self:act(self.session.timer_expired)
  end
  let_the_controller_turn(self)
end

-- Hands what `cqueues.poll` returned ready back to libcurl: each descriptor once, with
-- the directions that are ready and that libcurl still wants.
local function dispatch(self, ready, count)
  local events    -- fd -> "r", "w" or "rw"
  for i = 1, count do
    local object = ready[i]
    local entry = type(object) == "table" and object.entry
    if entry and self.watched[object.fd] == entry and find(entry.what, object.events, 1, true) then
      events = events or {}
      local had = events[object.fd]
      events[object.fd] = (had == nil or had == object.events) and object.events or "rw"
    end
  end
  local session = self.session
  if not (events and session) then return events ~= nil end
  for fd, what in pairs(events) do
    -- an earlier action may have made libcurl let go of it
    if self.watched[fd] then self:act(session.socket_action, fd, what) end
  end
  return true
end

-- Seconds past its poll's end after which a driver in another controller counts as
-- gone (that controller stopped, or was dropped), and a coroutine elsewhere takes over.
-- Within one controller the driver always comes back, and two pollers there must never
-- be (see the top).
local DRIVER_GONE_AFTER = 1

-- The driver's wait: polls the watched descriptors, both conditions and libcurl's timer
-- for at most `seconds`, then hands back what is ready and fires the timer when due.
local function drive(self, key, controller, seconds)
  local timeout = seconds
  local due = self.due
  if due and due - now() < timeout then timeout = due - now() end
  if timeout < 0 then timeout = 0 end
  self.driver, self.driver_in, self.driver_until = key, controller, now() + timeout
  local ready = { self.cqueues.poll(timeout, unpack(poll_objects(self))) }
  if self.driver == key then self.driver, self.driver_in, self.driver_until = nil, nil, nil end
  self.resumed[key] = now()
  local count = #ready
  if not dispatch(self, ready, count) and count == 0 and self.session then
    -- Woken with nothing ready: epoll reports an error or a hang-up on a socket even
    -- when neither direction was asked for, and cqueues wakes the poll without naming
    -- it. libcurl finds which one when it tries each socket in the directions it wants.
    local wanted = {}
    for fd, entry in pairs(self.watched) do wanted[fd] = entry end
    for fd, entry in pairs(wanted) do
      if self.session and self.watched[fd] == entry then
        self:act(self.session.socket_action, fd, entry.what)
      end
    end
  end
  due = self.due
  if due and now() >= due and self.session then
    self.due = nil        -- once it went off, libcurl counts its timer as stopped
    self:act(self.session.timer_expired)
  end
  -- the others wait on `finished_cond`: one of them drives until this one comes back
  if self.driver == nil and next(self.waiting) then self.finished_cond:signal(1) end
end

-- Waits in the running coroutine, which yields to its controller (outside any
-- controller, cqueues.poll blocks): returns once an attempt finished, the driver left
-- or after `seconds`; the driver also when libcurl's timer went off or what it polls
-- changed.
function Transport:wait(seconds)
  local cq = self.cqueues
  local controller, own = cq.running()
  if controller ~= nil and not own then error(errors.invalid_argument(NESTED), 0) end
  if controller ~= nil and not can_yield_here() then
    error(errors.invalid_argument(FOR_LOOP_ON_LUA51), 0)
  end
  self:flush()
  local key = current_key()
  if self.seen[key] ~= self.completions then
    self.seen[key] = self.completions  -- something finished since this coroutine last looked
    return
  end
  if self.driver ~= nil and self.driver_in ~= controller
      and now() > self.driver_until + DRIVER_GONE_AFTER then
    self.driver = nil
  end
  if self.driver == nil and self.session then
    drive(self, key, controller, seconds)
  else
    self.waiting[key] = true
    cq.poll(seconds, self.finished_cond)
    self.waiting[key] = nil
    self.resumed[key] = now()
  end
  self.seen[key] = self.completions
end

-- Nothing of a task's: tasks run on a libuv loop.
function Transport.release_task() end

-- From a finalizer (a walk dropped without close()): only queues; the next start, wait,
-- flush, running() or close() of this transport releases it, in ordinary code.
function Transport:drop(attempt)
  if attempt.released then return end
  local queue = self.dropped
  queue[#queue + 1] = attempt
end

-- From a finalizer (the client was collected without close()): nothing to do. cqueues
-- holds no registration of ours between two polls (a poll's descriptors leave its
-- epoll set before the objects that name them can be collected), the duplicates close
-- themselves when collected, and so do the session and its sockets.
function Transport.abandon() end

function Transport:running()
  settle_dropped(self)
  return self.session and self.session:running() or 0
end

-- Closes every duplicate (out of every controller's epoll set first) and the session
-- with its sockets; an attempt still in flight ends with "the client is closed", so
-- that a walk in another coroutine ends rather than wait. Idempotent; the transport
-- refuses new attempts afterwards.
function Transport:close()
  if self.closed then return end
  settle_dropped(self)
  self.closed = true
  socket_session.end_in_flight(self, "invalid_argument", "the client is closed")
  for fd in pairs(self.watched) do self:unwatch(fd) end
  local session = self.session
  self.session, self.due, self.owners, self.polled = nil, nil, {}, nil
  if session then session:close() end
  self.completions = self.completions + 1
  self.finished_cond:signal()
end

return M
