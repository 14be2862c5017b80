-- A map that remembers only the last `capacity` ids added to it, each with the
-- number it was added under: enough to recognise a run that a shifting listing
-- shows again, and to tell how far back it was handed out, without keeping
-- every id of a long walk.

local setmetatable = setmetatable

local M = {}

local Recent = {}
Recent.__index = Recent

function M.new(capacity)
  return setmetatable({ capacity = capacity, ring = {}, slot = 1, numbers = {} }, Recent)
end

-- Adds `id` under `number`, forgetting the oldest id when full. Returns false
-- when `id` was already there (and then changes nothing).
function Recent:add(id, number)
  local numbers = self.numbers
  if numbers[id] then return false end
  local ring, slot = self.ring, self.slot
  local oldest = ring[slot]
  if oldest ~= nil then numbers[oldest] = nil end
  ring[slot], numbers[id] = id, number
  self.slot = slot % self.capacity + 1
  return true
end

-- The number `id` was added under, or nil when it is not (or no longer) here.
function Recent:number(id)
  return self.numbers[id]
end

return M
