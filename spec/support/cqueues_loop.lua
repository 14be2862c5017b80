-- Runs coroutines on a cqueues controller from a spec.
--
--   local controller = require "spec.support.cqueues_loop"
--   local cqueues = controller.cqueues    -- nil when lua-cqueues is not installed for this Lua
--   local ended = controller.run({ body, ... }, 20)
--     -- runs each body in a coroutine of one new controller (cq:wrap) until all have
--     -- ended; raises after 20 s instead of hanging. ended[i] is { ok = true, n = ..., ... }
--     -- with what body i returned, or { ok = false, err = ... } with what it raised
--   controller.ticker(0.005)               -- a body that ticks every 5 ms until stopped
--   controller.descriptors()               -- open descriptors of this process

local ok, cqueues = pcall(require, "cqueues")

local M = {}

M.cqueues = ok and cqueues or nil

local function pack(...)
  return { n = select("#", ...), ... }
end

function M.run(bodies, seconds)
  local cq = cqueues.new()
  local ended, index_of = {}, {}
  for i, body in ipairs(bodies) do
    cq:wrap(function()
      index_of[coroutine.running()] = i
      local values = pack(body())
      values.ok = true
      ended[i] = values
    end)
  end
  local deadline = cqueues.monotime() + seconds
  while not cq:empty() do
    local left = deadline - cqueues.monotime()
    if left <= 0 then
      error(string.format("the controller's coroutines did not end within %s s", seconds), 2)
    end
    -- a coroutine that raised ends the loop; the others go on in the next one
    local stepped, err, _, thread = cq:loop(left)
    if not stepped then
      local i = index_of[thread]
      if i == nil then error("the controller failed: " .. tostring(err), 2) end
      ended[i] = { ok = false, err = err }
    end
  end
  return ended
end

-- A body that wakes every `interval` seconds until ticker.stop(), and records the
-- longest time between two of its wake-ups: how long the controller was held.
function M.ticker(interval)
  local ticker = { ticks = 0, longest = 0, running = true }
  function ticker.stop() ticker.running = false end
  function ticker.body()
    local last = cqueues.monotime()
    while ticker.running do
      cqueues.sleep(interval)
      local t = cqueues.monotime()
      if t - last > ticker.longest then ticker.longest = t - last end
      ticker.ticks, last = ticker.ticks + 1, t
    end
  end
  return ticker
end

local function own_pid()
  local file = assert(io.open("/proc/self/stat"))
  local stat = file:read("*l")
  file:close()
  return assert(stat:match("^(%d+)"))
end

-- Open descriptors of this process. The `ls` doing the counting may look before
-- io.popen has closed its copy of the pipe's other end, so each pipe counts once.
function M.descriptors()
  local pipe = assert(io.popen("ls -l /proc/" .. own_pid() .. "/fd"))
  local count, pipes = 0, {}
  for line in pipe:lines() do
    local target = line:match(" %-> (.*)$")
    if target and target:find("^pipe:") then
      if not pipes[target] then count = count + 1 end
      pipes[target] = true
    elseif target then
      count = count + 1
    end
  end
  pipe:close()
  return count
end

return M
