-- A map that remembers at least the last `capacity` ids added to it (and at most
-- twice that), each with the number it was added under: enough to recognise a
-- run that a shifting listing shows again, and to tell how far back it was
-- handed out, without keeping every id of a long walk.
--
-- Two generations rather than a ring: removing keys one at a time from a table
-- whose hash part is full makes Lua rebuild it on every insert.

local setmetatable = setmetatable

local M = {}

local Recent = {}
Recent.__index = Recent

function M.new(capacity)
  return setmetatable({ capacity = capacity, current = {}, older = {}, size = 0 }, Recent)
end

-- Adds `id` under `number`. Returns false when `id` was already there (and then
-- changes nothing).
function Recent:add(id, number)
  if self.current[id] or self.older[id] then return false end
  if self.size >= self.capacity then
    self.older, self.current, self.size = self.current, {}, 0
  end
  self.current[id] = number
  self.size = self.size + 1
  return true
end

-- The number `id` was added under, or nil when it is not (or no longer) here.
function Recent:number(id)
  return self.current[id] or self.older[id]
end

return M
