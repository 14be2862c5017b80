-- Tasks: coroutines that a libuv loop drives (client:spawn and the callback form
-- of list_runs). Inside a task every wait of the transport yields to the loop;
-- the loop resumes the task when an answer arrives or its timer fires.
--
-- In Neovim, luv callbacks are a "fast" context where vim.api raises (E5560), so
-- tasks are resumed through vim.schedule there, and user code always runs where
-- the editor's API may be called.

local errors = require "workflows.errors"
local handles = require "workflows.handles"

local setmetatable, type, tostring, pcall = setmetatable, type, tostring, pcall
local rawget, next, error, ipairs = rawget, next, error, ipairs
local create, resume, running, status = coroutine.create, coroutine.resume,
  coroutine.running, coroutine.status
local yield, close_coroutine = coroutine.yield, coroutine.close  -- close: Lua 5.4 only
local find, format = string.find, string.format
local io = io

local M = {}

-- How long a task may run on (with answers that are already in) before it lets
-- the loop turn: a page's decoding takes about half a millisecond, so the host's
-- timers and input wait at most about this plus one page. 2 ms put the 99th
-- percentile of a 1 ms timer's gaps above 3 ms in Neovim (BENCHMARKS.md).
local HOLD_NS = 1e6

-- PUC Lua 5.1 cannot yield from inside a for-loop's iterator or across pcall.
local FOR_LOOP_ON_LUA51 = "a task cannot wait inside a for loop's iterator or across pcall on "
  .. "Lua 5.1; call the iterator from a while loop instead: local next_run = client:runs(id) "
  .. "while true do local run = next_run() if run == nil then break end ... end"

local function clearer(err)
  if type(err) == "string" and find(err, "attempt to yield across", 1, true) then
    return errors.invalid_argument(FOR_LOOP_ON_LUA51)
  end
  return err
end

-- Where an error that nobody is told about goes: shown by Neovim, or on stderr.
local function report(err)
  local vim = rawget(_G, "vim")
  if vim and vim.schedule then
    -- as a string: Neovim shows a table raised from a callback as "[NULL]"
    local line = tostring(err)
    vim.schedule(function() error(line, 0) end)
  else
    io.stderr:write("workflows: a task failed: ", tostring(err), "\n")
  end
end

local Task = {}
Task.__index = Task

-- Each task's state, kept out of the handle the caller holds.
local state_of = setmetatable({}, { __mode = "k" })

local function schedule_of(loop)
  local vim = rawget(_G, "vim")
  if vim and vim.schedule then return vim.schedule end
  -- Standalone luv: callbacks may call Lua freely; resume from a fresh timer,
  -- never from inside the callback that caused the wake-up.
  return function(fn)
    local timer = loop.new_timer()
    timer:start(0, 0, function()
      timer:close()
      fn()
    end)
  end
end

--[[ The tasks of one client. `loop` is the luv module (vim.uv, vim.loop or
require "luv"), or nil; `release_owned(task)` releases what a task started, when it
ends or is cancelled. A task's private state:
  co          its coroutine
  client      the client, kept alive while the task runs (it closes when collected)
  on_done     called once with (true) or (false, err) when it ends
  quiet       it was cancelled: a failure that nobody is told about is not news
  state       "pending" (spawned, not yet run), "running", "sleeping", "done"
  timer       its loop timer, made on first sleep, retired when it ends
  idle        its idle handle, made on first pass, retired when it ends
  resumed_at  loop.hrtime() when it was last resumed
  wake_queued a resume is scheduled and not yet run ]]
local Registry = {}
Registry.__index = Registry

function M.registry(loop, release_owned)
  return setmetatable({
    loop = loop,
    release_owned = release_owned,
    by_coroutine = setmetatable({}, { __mode = "k" }),  -- coroutine -> its task
    live = {},                                         -- task -> true while not done
    schedule = nil,                                    -- made on the first spawn
  }, Registry)
end

local function finish(self, task, ok, err)
  local s = state_of[task]
  if s.state == "done" then return end
  s.state = "done"
  self.live[task] = nil
  local retiring, reaper = {}, nil
  for _, name in ipairs { "timer", "idle" } do
    local handle = s[name]
    if handle then
      retiring[#retiring + 1] = handle
      reaper = reaper or handle
      s[name] = nil
    end
  end
  if reaper then handles.retire(retiring, reaper) end
  self.release_owned(task)
  -- Forget the coroutine, the callback and the client: on Lua 5.1 and LuaJIT,
  -- whose weak tables have no ephemerons, a state that leads back to its task
  -- (a body that calls task:cancel()) would keep both alive for good.
  local on_done = s.on_done
  s.co, s.on_done, s.client = nil, nil, nil
  if on_done then
    local called, failure = pcall(on_done, ok, err)
    if not called then report(failure) end
  elseif not (ok or s.quiet) then
    report(err)
  end
end

local function finish_resumed(self, task, ok, err)
  if not ok then return finish(self, task, false, clearer(err)) end
  return finish(self, task, true)
end

local function resumed(self, task, s, co, ok, err)
  if s.state == "done" then
    -- cancelled from inside: release what the body started after that
    return self.release_owned(task)
  end
  if not ok or status(co) == "dead" then return finish_resumed(self, task, ok, err) end
end

local function step(self, task)
  local s = state_of[task]
  s.wake_queued = false
  if s.state ~= "pending" and s.state ~= "sleeping" then return end
  s.state = "running"
  s.resumed_at = self.loop.hrtime()
  local co = s.co
  return resumed(self, task, s, co, resume(co))
end

-- Schedules `task` to go on, when it sleeps or has not started yet.
function Registry:wake(task)
  local s = state_of[task]
  if s.wake_queued or (s.state ~= "sleeping" and s.state ~= "pending") then return end
  s.wake_queued = true
  self.schedule(function() step(self, task) end)
end

-- `client` is kept alive while the task runs: it closes when collected.
-- Without a loop (the callback form of list_runs on a client made without
-- one), the body runs now, blocking, and the task has ended on return.
function Registry:spawn(client, body, on_done)
  local task = setmetatable({}, Task)
  local s = { on_done = on_done, state = "pending", wake_queued = false,
    registry = self, client = client }
  state_of[task] = s
  self.live[task] = true
  if not self.loop then
    s.state = "running"
    finish_resumed(self, task, pcall(body))
    return task
  end
  local co = create(body)
  s.co = co
  self.by_coroutine[co] = task
  self.schedule = self.schedule or schedule_of(self.loop)
  self:wake(task)
  return task
end

-- The task running now, when it is one of this client's; else nil.
function Registry:running()
  local co = running()
  return co and self.by_coroutine[co]
end

-- Yields the running task until `wake` or `seconds` pass; call it only from the
-- task itself (registry:running() ~= nil).
function Registry:sleep(task, seconds)
  local s = state_of[task]
  -- cancelled from inside its own body, which then went on to wait: it must
  -- never come back (nor make a timer that nobody would close)
  while s.state == "done" do yield() end
  local ms = seconds * 1000
  -- A 0 ms timer started from a timer callback would fire in the same pass of
  -- the loop, which then never moves on: wait at least 1 ms.
  if ms < 1 then ms = 1 end
  if not s.timer then s.timer = self.loop.new_timer() end
  s.timer:start(ms - ms % 1, 0, function() self:wake(task) end)
  s.state = "sleeping"
  yield()
  -- cancelled while asleep: never come back into the body (and its loop)
  while s.state == "done" do yield() end
  s.timer:stop()
end

-- Yields the running task for one turn of the loop: timers, sockets and the
-- host's other work run, and the task goes on right after, with no timer's
-- millisecond lost. Only from the task itself.
function Registry:pass(task)
  local s = state_of[task]
  while s.state == "done" do yield() end
  local idle = s.idle
  if not idle then
    idle = self.loop.new_idle()
    s.idle = idle
  end
  idle:start(function()
    idle:stop()
    self:wake(task)
  end)
  s.state = "sleeping"
  yield()
  while s.state == "done" do yield() end
  idle:stop()
end

-- true once the running task has held the loop for HOLD_NS since it was resumed:
-- time to pass, even though it could go on.
function Registry:held_long(task)
  return self.loop.hrtime() - state_of[task].resumed_at >= HOLD_NS
end

local function cancel(self, task, err)
  local s = state_of[task]
  if s.state == "done" then return end
  local co = s.co
  finish(self, task, false, err)
  -- Lua 5.4: run the body's pending closing values (a walk's break), unless the
  -- task cancels itself from inside, where the coroutine is the running one.
  if close_coroutine and co ~= running() and status(co) == "suspended" then
    close_coroutine(co)
  end
end

function Registry:cancel(task)
  state_of[task].quiet = true
  cancel(self, task, errors.cancelled("the task was cancelled"))
end

-- Cancels every task but `spared` (the task that closes its own client, which
-- then ends as its body does).
function Registry:cancel_all(err, spared)
  local live = self.live
  local task = next(live)
  while task do
    if task == spared then
      task = next(live, task)
    else
      state_of[task].quiet = true
      cancel(self, task, err)
      task = next(live)
    end
  end
end

-- Stops the task and releases everything it has in flight; on_done is called
-- with (false, err) where err.kind is "cancelled". Idempotent, and safe from
-- inside the task's own body or callbacks.
function Task:cancel()
  local s = state_of[self]
  if s then s.registry:cancel(self) end
end

-- true until the task has ended (finished, failed or cancelled).
function Task:running()
  local s = state_of[self]
  return s ~= nil and s.state ~= "done"
end

function Task:__tostring()
  return format("workflows.task (%s)", self:running() and "running" or "ended")
end

return M
