-- A map that remembers at least the last `capacity` ids added to it (and at most
-- twice that), each with the number it was added under: enough to recognise a
-- run that a shifting listing shows again, and to tell how far back it was
-- handed out, without keeping every id of a long walk.
--
-- Two generations rather than a ring: removing keys one at a time from a table
-- whose hash part is full makes Lua rebuild it on every insert. The first
-- generation grows as ids come (most walks are short); once one is full the walk
-- is long, and each next one is made at its full size at once rather than rehashed
-- at every power of two on the way.

local setmetatable = setmetatable
local new_table = require("workflows.core").new_table

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
    self.older, self.current, self.size = self.current, new_table(0, self.capacity), 0
  end
  self.current[id] = number
  self.size = self.size + 1
  return true
end

-- The number `id` was added under, or nil when it is not (or no longer) here.
function Recent:number(id)
  return self.current[id] or self.older[id]
end

-- The walks' loops over a page's runs, written out rather than calling the two
-- methods above for each run: a walk does this for every run it hands out.

-- The index of the last of `runs` whose id is here, and that id's number; nil
-- when none is.
function Recent:last_known(runs)
  local current, older = self.current, self.older
  for i = #runs, 1, -1 do
    local id = runs[i].id
    local number = current[id] or older[id]
    if number then return i, number end
  end
  return nil
end

-- Adds the ids of runs[first], runs[first + 1], ... that are not here, under
-- `number` + 1, + 2, ... Returns an array of the runs added and of those without
-- an id (in their order), and the last number used.
function Recent:add_runs(runs, first, number)
  local current, older, size, capacity = self.current, self.older, self.size, self.capacity
  local last = #runs
  local added, count = new_table(last >= first and last - first + 1 or 0, 0), 0
  for i = first, last do
    local run = runs[i]
    local id = run.id
    if id == nil then
      count = count + 1
      added[count] = run
    elseif not (current[id] or older[id]) then
      if size >= capacity then older, current, size = current, new_table(0, capacity), 0 end
      number = number + 1
      current[id] = number
      size = size + 1
      count = count + 1
      added[count] = run
    end
  end
  self.current, self.older, self.size = current, older, size
  return added, number
end

return M
