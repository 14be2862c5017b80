-- What the specs that watch memory measure: the Lua heap of live objects, after every
-- finalizer has run. LuaJIT's compiled traces are heap objects too, and grow as the
-- JIT meets new paths (under a loaded machine, new timings mean new paths: 300 KB
-- was seen over one spec); they are LuaJIT's, not the library's, and they keep what
-- they were recorded with alive, so they are flushed before each measure.
local M = {}

local jit = rawget(_G, "jit")

-- A dropped client lets go of its session through a chain of finalizers, one cycle
-- a link on Luas without ephemerons: a few full cycles settle them all.
function M.full_collect()
  if jit then jit.flush() end
  for _ = 1, 8 do collectgarbage() end
end

-- The heap's size in KB, once collected.
function M.used_kb()
  M.full_collect()
  return collectgarbage("count")
end

return M
