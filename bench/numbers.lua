-- Reading samples and writing figures, for the bench reports (run from the
-- repository's root, which puts `bench.numbers` on the path).

local format, sort, floor = string.format, table.sort, math.floor

local M = {}

-- The fields of one tab-separated line, empty ones included.
function M.split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch "([^\t]*)\t" do fields[#fields + 1] = field end
  return fields
end

-- The median of an array of numbers (nil for none); the array is left as it was.
function M.median(values)
  local copy = {}
  for i, v in ipairs(values) do copy[i] = v end
  sort(copy)
  local n = #copy
  if n == 0 then return nil end
  if n % 2 == 1 then return copy[(n + 1) // 2] end
  return (copy[n // 2] + copy[n // 2 + 1]) / 2
end

-- A whole number with thousands separated by commas: 20000 -> "20,000".
function M.thousands(n)
  local text = format("%d", floor(n + 0.5))
  repeat
    local changed
    text, changed = text:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until changed == 0
  return text
end

-- Seconds as whole milliseconds, with thousands separated.
function M.ms(seconds) return M.thousands(seconds * 1000) end

return M
