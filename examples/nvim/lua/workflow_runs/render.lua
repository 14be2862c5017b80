-- How the runs buffer reads: one line per run under a header, and the progress
-- line on top. No editor API here, so that specs outside Neovim can render the
-- lines they expect.

local format, concat = string.format, table.concat
local tostring, type = tostring, type

local M = {}

local ROW = "%-21s %-9s %-20s %-20s %8s %s"

function M.header()
  return format(ROW, "run", "status", "started", "finished", "CU", "trigger")
end

local function cu(value)
  if type(value) ~= "number" then return "-" end
  if value % 1 == 0 then return format("%d", value) end
  return format("%.2f", value)
end

-- One run as one line; a missing field shows as "-".
function M.line(run)
  return format(ROW, tostring(run.id or "-"), tostring(run.status or "-"),
    tostring(run.startedAt or "-"), tostring(run.finishedAt or "-"), cu(run.totalCu),
    tostring(run.triggerSource or "-"))
end

function M.lines(runs)
  local lines = {}
  for i = 1, #runs do lines[i] = M.line(runs[i]) end
  return lines
end

local function plural(n, word)
  return format("%d %s%s", n, word, n == 1 and "" or "s")
end

-- The first line of the buffer. `walk`: id, status, runs, pages, retries, state
-- ("loading", "done", "stopped", "failed"), seconds, err.
function M.progress(walk)
  local parts = { walk.id }
  if walk.status then parts[#parts + 1] = "[" .. walk.status .. "]" end
  parts[#parts + 1] = plural(walk.runs, "run") .. ", " .. plural(walk.pages, "page")
  local retries = walk.retries or 0
  if retries > 0 then  -- the server had trouble: say how many requests were made again
    parts[#parts] = parts[#parts] .. (retries == 1 and ", 1 retry" or format(", %d retries", retries))
  end
  local state = walk.state
  if state == "loading" then
    parts[#parts + 1] = "loading… (<C-c> stops, q closes)"
  elseif state == "done" then
    parts[#parts + 1] = format("in %.2f s", walk.seconds or 0)
  elseif state == "stopped" then
    parts[#parts + 1] = "stopped"
  else
    parts[#parts + 1] = "failed: " .. tostring(walk.err)
  end
  return concat(parts, " ")
end

-- The first line of a watch's buffer. `watch`: id, status, added, changed, state
-- ("watching", "stopped", "failed", "done"), err.
function M.watch_progress(watch)
  local parts = { watch.id }
  if watch.status then parts[#parts + 1] = "[" .. watch.status .. "]" end
  parts[#parts + 1] = format("%d added, %d changed", watch.added, watch.changed)
  local state = watch.state
  if state == "watching" then
    parts[#parts + 1] = "watching… (<C-c> stops, q closes)"
  elseif state == "failed" then
    parts[#parts + 1] = "failed: " .. tostring(watch.err)
  else
    parts[#parts + 1] = state
  end
  return concat(parts, " ")
end

return M
