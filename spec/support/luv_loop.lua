-- Drives a standalone luv loop from a spec, for the tasks of a client made with
-- `loop = require "luv"`.
--
--   local loop = require "spec.support.luv_loop"
--   local uv = loop.uv                 -- nil when lua-luv is not installed for this Lua
--   loop.run_until(function() return done end, 10)   -- raises after 10 s instead of hanging
--   loop.drain()                        -- lets the handles closed so far finish closing
--   loop.close_all()                    -- in teardown: closes whatever is left
--   loop.handles()                      -- live handles, as { "timer", "poll", ... }, but the
--                                       -- loop's idle reaper
--   loop.descriptors()                  -- open descriptors of this process
--
-- Every spec must end with its handles closed and drained: luv closes what is left
-- while the Lua state closes, and runs Lua callbacks on a state already gone.

local ok, uv = pcall(require, "luv")

-- busted unloads each spec file's modules. Once the first luv module is collected its
-- loop is freed, and the next file's luv crashes in uv_timer_init: the registry keeps
-- the first one for the life of the process.
if ok then
  local registry = debug.getregistry()
  registry["spec.support.luv_loop: luv"] = registry["spec.support.luv_loop: luv"] or uv
end

local M = {}

M.uv = ok and uv or nil

-- Runs the loop until `finished()` is true. A safety timer stops the loop after
-- `seconds`, and then this raises (the test fails instead of hanging).
function M.run_until(finished, seconds)
  local timed_out = false
  -- The loop's clock moves only while it runs: after a while without running
  -- (an earlier spec), a timer started now would be due at once.
  uv.update_time()
  local safety = uv.new_timer()
  safety:start(math.floor(seconds * 1000), 0, function()
    timed_out = true
    uv.stop()
  end)
  while not finished() and not timed_out do
    uv.run("once")
  end
  safety:stop()
  safety:close()
  M.drain()
  if timed_out and not finished() then
    error(string.format("the loop did not finish within %s s", seconds), 2)
  end
end

-- Runs the loop for `seconds` whatever happens, e.g. to let a cancelled task show
-- that it stays quiet.
function M.run_for(seconds)
  local over = false
  uv.update_time()
  local timer = uv.new_timer()
  timer:start(math.floor(seconds * 1000), 0, function() over = true end)
  while not over do uv.run("once") end
  timer:close()
  M.drain()
end

-- Handles closed from Lua are gone only once the loop has run their close
-- callbacks; a pass without waiting does it.
function M.drain()
  for _ = 1, 3 do uv.run("nowait") end
end

-- Closes every handle still open and lets the closes finish. For a spec's
-- teardown: a failed test may have left some, and luv would otherwise close them
-- while the Lua state closes, and crash.
function M.close_all()
  uv.walk(function(handle)
    if not handle:is_closing() then handle:close() end
  end)
  M.drain()
end

-- The live handles of the loop, by type, sorted: { "poll", "timer", ... }.
function M.handles()
  local kinds = {}
  uv.walk(function(handle)
    -- the one idle reaper of the loop (workflows.handles) is not a client's: it stays,
    -- unreferenced, for the life of the loop
    local reaper = handle:get_type() == "async" and not handle:has_ref()
    if not handle:is_closing() and not reaper then
      kinds[#kinds + 1] = (tostring(handle):match("^uv_(%w+)_t") or tostring(handle))
    end
  end)
  table.sort(kinds)
  return kinds
end

-- The number of open descriptors of this process.
function M.descriptors()
  local count = 0
  local listing = assert(uv.fs_scandir("/proc/self/fd"))
  while uv.fs_scandir_next(listing) do count = count + 1 end
  return count
end

-- A repeating 1 ms timer that counts its ticks: proof that the loop kept running
-- while a task waited. Stop it with :stop(), which closes it.
function M.ticker()
  local ticker = { ticks = 0 }
  uv.update_time()
  local timer = uv.new_timer()
  timer:start(1, 1, function() ticker.ticks = ticker.ticks + 1 end)
  function ticker.stop()
    if not timer:is_closing() then timer:close() end
  end
  return ticker
end

return M
