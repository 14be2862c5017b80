-- A set that remembers only the last `capacity` ids added to it: enough to
-- recognise a run that a shifting listing shows again, without keeping every id
-- of a long walk.

local setmetatable = setmetatable

local M = {}

local Recent = {}
Recent.__index = Recent

function M.new(capacity)
  return setmetatable({ capacity = capacity, ring = {}, slot = 1, members = {}, size = 0 }, Recent)
end

function Recent:contains(id)
  return self.members[id] == true
end

-- Adds `id`, forgetting the oldest one when full. Returns false when `id` was
-- already there (and then changes nothing).
function Recent:add(id)
  local members = self.members
  if members[id] then return false end
  local ring, slot = self.ring, self.slot
  local oldest = ring[slot]
  if oldest ~= nil then
    members[oldest] = nil
  else
    self.size = self.size + 1
  end
  ring[slot], members[id] = id, true
  self.slot = slot % self.capacity + 1
  return true
end

function Recent:count()
  return self.size
end

return M
