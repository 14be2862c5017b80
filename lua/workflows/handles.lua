-- Retiring libuv handles so that the program may end at any moment.
--
-- luv (1.44, Debian 12's) frees a handle whose close is still pending as soon as the
-- Lua state closes, while libuv still holds it: a script that closes a handle and
-- ends without running the loop again crashes at exit. So a handle is never closed
-- outside the loop's own callbacks: it is stopped at once (no callback of it runs
-- again) and closed from a callback on the loop's next turn, where the close also
-- completes. A script that ends first leaves it open, and luv closes that safely.
--
-- Every call checks the handle first: when the Lua state closes, luv may have
-- collected a handle before the finalizer that retires it runs.

local pcall, setmetatable = pcall, setmetatable

local M = {}

-- false once the handle is closing or closed, or once luv has collected it (the Lua
-- state is closing): any method but is_closing would then crash.
local function usable(handle)
  local ok, closing = pcall(handle.is_closing, handle)
  return ok and not closing
end

local function stop(handle)
  if usable(handle) then handle:stop() end
end

local function close(handle)
  if usable(handle) then handle:close() end
end

-- Calls `fn` from a callback of `handle` (a timer or an idle handle) on the loop's
-- next turn; false when the handle can no longer be started.
function M.next_turn(handle, fn)
  if not usable(handle) then return false end
  if handle.set_repeat then return (pcall(handle.start, handle, 0, 0, fn)) end
  return (pcall(handle.start, handle, fn))
end

-- Stops every handle of the array `handles` now, then closes them all and calls
-- `after()` (optional) from a callback of `reaper`, which is one of them: a timer or
-- an idle handle. When the reaper cannot be started (the Lua state is closing),
-- nothing is closed and `after` is not called.
function M.retire(handles, reaper, after)
  for i = 1, #handles do stop(handles[i]) end
  if not reaper then return end
  M.next_turn(reaper, function()
    for i = 1, #handles do
      pcall(close, handles[i])
    end
    if after then after() end
  end)
end

-- ------------------------------------------------------------ finalizers

--[[ A finalizer runs inside whatever callback or collection step triggered it, so it
never calls libuv to stop or close anything: it queues the work on its loop's reaper,
which runs it from a loop callback of its own on the next turn. The reaper is one
async handle per loop, made in ordinary code (never in a finalizer). It is unreferenced
while idle, so it never keeps the loop alive; queuing references it until the work has
run, so that a loop about to end turns once more and settles what was dropped. ]]
local reapers = setmetatable({}, { __mode = "k" })

local function reap(reaper)
  local queue = reaper.queue
  reaper.queue = {}
  for i = 1, #queue do pcall(queue[i]) end
  if #reaper.queue == 0 and usable(reaper.async) then reaper.async:unref() end
end

-- The reaper of `loop` (the luv module), made on first use. Not from a finalizer.
function M.reaper(loop)
  local reaper = reapers[loop]
  if reaper then return reaper end
  reaper = { queue = {} }
  reaper.async = loop.new_async(function() reap(reaper) end)
  reaper.async:unref()
  reapers[loop] = reaper
  return reaper
end

-- Runs `fn` from the loop on its next turn. Safe in a finalizer: it only queues, and
-- wakes the loop with uv_async_send, which neither fails nor closes anything. When the
-- Lua state is closing (the async handle is gone), nothing runs: the process is ending
-- and luv closes what is left.
function M.later(reaper, fn)
  local async = reaper.async
  if not usable(async) then return end
  reaper.queue[#reaper.queue + 1] = fn
  async:ref()
  async:send()
end

return M
