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

local pcall = pcall

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

return M
