-- The loop side of the C core's socket mode (core.socket_session), on standalone
-- luv, for spec/22-core-sockets_spec.lua: every change libcurl asks for becomes a
-- uv_poll watcher keyed by descriptor, or the one uv timer, and readiness goes back
-- through socket_action / timer_expired.
--
--   local socket_driver = require "spec.support.socket_driver"
--   socket_driver.uv                         -- nil when lua-luv is not installed
--   local driver = socket_driver.new(session)
--   driver:wait(transfers [, seconds])       -- runs the loop until they are done
--   driver:apply(), driver:release_closes(), driver:stop(), driver:fds()
--   driver.log, driver.removed, driver.watchers, driver.timer, driver.timer_fired,
--   driver.hold_closes                       -- see Driver below
--   socket_driver.run_for(ms), socket_driver.fd_open(fd), socket_driver.count_fds()
local assert = require "luassert"
local has_luv, uv = pcall(require, "luv")

local M = {}

M.uv = has_luv and uv or nil

-- True while descriptor `fd` of this process is open.
local function fd_open(fd)
  return uv.fs_lstat("/proc/self/fd/" .. fd) ~= nil
end

-- How many descriptors this process has open.
local function count_fds()
  local count = 0
  local req = assert(uv.fs_scandir("/proc/self/fd"))
  while uv.fs_scandir_next(req) do count = count + 1 end
  return count
end

-- luv reports "r", "w", "rw", "d" (disconnect), "rd", ... ; libcurl wants r, w or rw.
local function events_for_curl(events)
  local r = events:find("[rdp]") and "r" or ""
  local w = events:find("w") and "w" or ""
  return r .. w ~= "" and r .. w or "r"
end

-- The loop side of a socket session: watchers keyed by descriptor and one timer.
-- d.log holds every change in order ({ fd, what } and { timer = ms }); with
-- d.hold_closes, close_removed() waits for d:release_closes().
local Driver = {}
Driver.__index = Driver

local function new_driver(session)
  return setmetatable({ s = session, watchers = {}, timer = uv.new_timer(), log = {},
    removed = {}, timer_fired = 0, hold_closes = false }, Driver)
end

function Driver:apply()
  local sockets, timer = self.s:changes()
  for i = 1, #sockets, 2 do
    local fd, what = sockets[i], sockets[i + 1]
    self.log[#self.log + 1] = { fd, what }
    local watcher = self.watchers[fd]
    if what == "remove" or what == "close" then
      if watcher then
        watcher:stop()
        watcher:close()
        self.watchers[fd] = nil
      end
      if what == "remove" then
        self.removed[#self.removed + 1] = { fd = fd, open_at_remove = fd_open(fd) }
      end
    else
      if not watcher then
        watcher = uv.new_poll(fd)
        self.watchers[fd] = watcher
      end
      watcher:start(what, function(err, events)
        self.s:socket_action(fd, err and "e" or events_for_curl(events))
        self:apply()
      end)
    end
  end
  if timer then
    self.log[#self.log + 1] = { timer = timer }
    self.timer:stop()
    if timer >= 0 then
      self.timer:start(timer, 0, function()
        self.timer_fired = self.timer_fired + 1
        self.s:timer_expired()
        self:apply()
      end)
    end
  end
  if not self.hold_closes then self:release_closes() end
end

function Driver:release_closes()
  local closed = self.s:close_removed()
  for _, entry in ipairs(self.removed) do
    if entry.open_after == nil then entry.open_after = fd_open(entry.fd) end
  end
  return closed
end

-- Runs the loop until every transfer is done, or raises after `seconds`.
function Driver:wait(transfers, seconds)
  -- the loop's clock moves only while it runs: after other specs it is behind
  uv.update_time()
  local deadline = uv.now() + (seconds or 10) * 1000
  local function all_done()
    for _, transfer in ipairs(transfers) do
      if not transfer:done() then return false end
    end
    return true
  end
  self:apply()
  while not all_done() do
    assert(uv.now() < deadline, "the transfers did not finish in time")
    local guard = uv.new_timer()
    guard:start(50, 0, function() end)        -- uv.run("once") returns at least this often
    uv.run("once")
    guard:close()
  end
end

function Driver:stop()
  for fd, watcher in pairs(self.watchers) do
    watcher:stop()
    watcher:close()
    self.watchers[fd] = nil
  end
  self.timer:stop()
  self.timer:close()
  uv.run("nowait")                              -- let the closes complete
end

function Driver:fds()
  local seen, list = {}, {}
  for _, entry in ipairs(self.log) do
    if entry[1] and not seen[entry[1]] then
      seen[entry[1]] = true
      list[#list + 1] = entry[1]
    end
  end
  return list
end

-- Runs the loop for `ms` milliseconds whatever happens.
local function run_for(ms)
  local done = false
  uv.update_time()
  local t = uv.new_timer()
  t:start(ms, 0, function() done = true end)
  while not done do uv.run("once") end
  t:close()
end

M.new, M.run_for, M.fd_open, M.count_fds = new_driver, run_for, fd_open, count_fds

return M
