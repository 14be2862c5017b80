-- The libuv transport: libcurl's socket interface driven by a luv loop (Neovim's
-- vim.uv or vim.loop, or require "luv"). Calls made inside a client's tasks use
-- it; their waits yield to the loop instead of blocking it.
--
-- The core reports what libcurl wants watched (doc/core.md, socket sessions);
-- this module keeps one poll handle per socket and one timer, and hands socket
-- events and timer expiries back. No Lua code runs inside libcurl's callbacks,
-- and nothing here raises into the loop.

local core = require "workflows.core"
local errors = require "workflows.errors"
local handles = require "workflows.handles"

local setmetatable, pairs, pcall, error, tostring = setmetatable, pairs, pcall, error, tostring
local find = string.find
local io = io

local M = {}

local Transport = {}
Transport.__index = Transport

function M.new(ctx)
  return setmetatable({
    ctx = ctx,
    loop = ctx.loop,
    session = nil,          -- the socket session, made on first use
    timer = nil,            -- libcurl's timer
    watchers = {},          -- fd -> poll handle: keyed by socket, as connections are reused
    owners = setmetatable({}, { __mode = "k" }),   -- attempt -> the task that started it
    decoded = setmetatable({}, { __mode = "k" }),  -- attempt -> true once its outcome is built
    waiting = {},           -- task -> true while it sleeps in wait()
    completions = 0,        -- attempts finished so far
    seen = setmetatable({}, { __mode = "k" }),     -- task -> completions when it last woke
    unsent = false,         -- attempts started since the last flush
  }, Transport)
end

-- A failure of the driver itself; the loop must go on, so it is only reported.
local function report(err)
  io.stderr:write("workflows: libuv transport: ", tostring(err), "\n")
end

local function wake_waiting(self)
  local tasks = self.ctx.tasks
  for task in pairs(self.waiting) do tasks.wake(task) end
end

-- luv reports "r", "w", "rw", and with them "d" (disconnect) or "p" (priority)
-- data; libcurl takes "r", "w" or "rw".
local function for_libcurl(events)
  local r = find(events, "[rdp]") and "r" or ""
  local w = find(events, "w", 1, true) and "w" or ""
  if r == "" and w == "" then return "r" end
  return r .. w
end

-- Applies what libcurl asked for during the last call into the session: watch,
-- re-watch or forget sockets, and set or stop the timer.
local function settle(self)
  local session = self.session
  local sockets, timer = session:changes()
  local watchers, loop = self.watchers, self.loop
  for i = 1, #sockets, 2 do
    local fd, what = sockets[i], sockets[i + 1]
    local watcher = watchers[fd]
    if what == "remove" then
      -- before the core closes the descriptor, whose number may then be reused
      if watcher then
        watcher:stop()
        watcher:close()
        watchers[fd] = nil
      end
    else
      if not watcher then
        watcher = loop.new_poll(fd)
        watchers[fd] = watcher
      end
      watcher:start(what, function(err, events)
        if not err then return self:act(session.socket_action, fd, for_libcurl(events)) end
        -- libuv stops a watcher on a poll error (a reset, a refused connection)
        -- and says no more. Let libcurl read and write the socket, which finds the
        -- failure itself and reports it as the blocking transport does; only a
        -- socket it still wants watched after that is failed as a poll error.
        self:act(session.socket_action, fd, "rw")
        if watchers[fd] == watcher and not watcher:is_active() then
          self:act(session.socket_action, fd, "e")
        end
      end)
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

-- Calls `action(session, ...)` from a loop callback, then settles, and wakes the
-- tasks waiting when an attempt finished.
function Transport:act(action, ...)
  local session = self.session
  if not session then return end
  local before = session:running()
  local ok, err = pcall(action, session, ...)
  if not ok then report(err) end
  ok, err = pcall(settle, self)
  if not ok then report(err) end
  if session:running() < before then
    self.completions = self.completions + 1
    decode_finished(self)
    wake_waiting(self)
  end
end

local function session_of(self)
  local session = self.session
  if not session then
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
  local tasks = self.ctx.tasks
  local task = tasks.running()
  if task and tasks.held_long(task) then tasks.pass(task) end
end

function Transport:start(request)
  let_the_loop_turn(self)
  local attempt = session_of(self):start(request)
  self.owners[attempt] = self.ctx.tasks.running()
  self.unsent = true
  return attempt
end

-- Lets libcurl act on the attempts started since the last flush at once, rather
-- than on the loop's next turn.
function Transport:flush()
  if self.unsent then
    self.unsent = false
    self:act(self.session.timer_expired)
  end
  let_the_loop_turn(self)
end

function Transport:wait(seconds)
  local tasks = self.ctx.tasks
  local task = tasks.running()
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
  tasks.sleep(task, seconds)
  self.waiting[task] = nil
  self.seen[task] = self.completions
end

-- Releases every attempt that `task` started (the task was cancelled or ended).
function Transport:release_owned(task)
  local released = false
  for attempt, owner in pairs(self.owners) do
    if owner == task then
      attempt:release()
      self.owners[attempt] = nil
      released = true
    end
  end
  self.waiting[task] = nil
  -- libcurl's changes (sockets to forget and close) are applied from the loop:
  -- closing a watcher here, outside its callbacks, could leave it closing at exit
  -- (see workflows.handles). libcurl's timer is borrowed for that: after a timeout
  -- action libcurl sets its timer afresh, so no deadline of another task is lost
  -- (spec/91-luv-tasks_spec.lua checks one).
  if released and self.timer then
    local session = self.session
    handles.next_turn(self.timer, function() self:act(session.timer_expired) end)
  end
end

function Transport:running()
  return self.session and self.session:running() or 0
end

-- Stops every handle now; closes them, then the session (and with it every
-- descriptor it still holds, each unwatched by then), on the loop's next turn.
function Transport:close()
  local session, timer = self.session, self.timer
  local retiring = {}
  for _, watcher in pairs(self.watchers) do retiring[#retiring + 1] = watcher end
  self.session, self.timer, self.watchers, self.waiting = nil, nil, {}, {}
  if not timer then
    if session then session:close() end
    return
  end
  retiring[#retiring + 1] = timer
  handles.retire(retiring, timer, function() session:close() end)
end

return M
