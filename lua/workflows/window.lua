-- How many pages a walk keeps in flight ahead of the one it waits for.
--
-- A fixed window is the `prefetch` number. The "auto" window sizes itself the
-- way TCP's congestion window does: it starts with the first page alone, grows
-- by at most one page per page received while pages still arrive later than the
-- caller wants them, halves when the server pushes back (429, 503, any
-- Retry-After), and never passes its cap. Its goal is as many pages as cover one
-- round trip at the pace the caller consumes them, so a slow caller keeps few
-- pages in flight and memory stays bounded by the window.

local setmetatable, ceil, floor, min, max = setmetatable, math.ceil, math.floor, math.min, math.max

local M = {}

-- Weight of the newest sample in the moving averages.
local SMOOTHING = 0.25
-- Shortest time a page is taken to keep the caller busy: below it, more pages
-- in flight only add work (on loopback, decoding is the whole cost).
local SHORTEST_PAGE_TIME = 0.0005

local Window = {}
Window.__index = Window

function M.fixed(pages)
  return setmetatable({ auto = false, current = pages, largest = pages, halvings = 0 }, Window)
end

function M.auto(cap)
  return setmetatable({
    auto = true, cap = cap,
    current = 0, largest = 0, halvings = 0,
    ceiling = cap,          -- after a halving, growth past this is one page per window
    credit = 0,             -- pages received since the last growth above `ceiling`
    round_trip = nil,       -- seconds from request to answer, smoothed
    page_time = nil,        -- seconds the caller and the walk spend on a page, smoothed
  }, Window)
end

-- Pages to keep in flight ahead of the awaited one.
function Window:size()
  return self.current
end

local function smooth(average, sample)
  if average == nil then return sample end
  return average + SMOOTHING * (sample - average)
end

-- A page arrived `round_trip` seconds after it was asked for, and the caller and
-- the walk spent `page_time` seconds on the page before it.
function Window:on_page(round_trip, page_time)
  if not self.auto then return end
  if round_trip then self.round_trip = smooth(self.round_trip, round_trip) end
  if page_time then self.page_time = smooth(self.page_time, page_time) end
  if not (self.round_trip and self.page_time) then return end
  local wanted = ceil(self.round_trip / max(self.page_time, SHORTEST_PAGE_TIME)) - 1
  wanted = min(max(wanted, 0), self.cap)
  local grown = self.current + 1
  if grown > self.ceiling then
    self.credit = self.credit + 1
    if self.credit < self.current then grown = self.current else self.credit = 0 end
  end
  self.current = min(wanted, grown)
  if self.current > self.largest then self.largest = self.current end
end

-- The server asked the walk to slow down.
function Window:on_pushback()
  if not self.auto then return end
  self.current = floor(self.current / 2)
  self.ceiling = max(self.current, 1)
  self.credit = 0
  self.halvings = self.halvings + 1
end

-- What the window did: its size now, the largest it reached, how often it halved.
function Window:report()
  return self.current, self.largest, self.halvings
end

return M
