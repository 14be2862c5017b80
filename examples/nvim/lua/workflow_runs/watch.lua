-- :WorkflowWatch {id} [status]: the runs of a workflow as they happen, in a scratch
-- buffer. The runs in view come first; a new run appears at the top, a run that
-- changed is redrawn where it is, and a run that failed raises a warning
-- (vim.notify). The watch runs in a task of the editor's loop, so the editor never
-- waits for it; <C-c> or :WorkflowRunsStop stops it, q stops it and closes the buffer.
-- luacheck: globals vim

local render = require "workflow_runs.render"

local api = vim.api

local M = {}

-- Lines above the runs: the progress line and the header.
local TOP = 2

local function show_progress(watch, runs)
  if api.nvim_buf_is_valid(watch.buf) then
    runs._set_lines(watch.buf, 0, 1, { render.watch_progress(watch) })
  end
end

-- The line of run `id` (0-based), or nil.
local function line_of(buf, id)
  local prefix = tostring(id) .. " "
  for i, line in ipairs(api.nvim_buf_get_lines(buf, TOP, -1, false)) do
    if line:sub(1, #prefix) == prefix then return TOP + i - 1 end
  end
  return nil
end

local function failed_now(event)
  if event.run.status ~= "failure" or event.type == "existing" then return false end
  return event.type == "added" or event.previous.status ~= nil
end

local function show(watch, runs, event)
  local buf, run = watch.buf, event.run
  local line = render.line(run)
  local at = event.type == "changed" and line_of(buf, run.id)
  if at then
    runs._set_lines(buf, at, at + 1, { line })
  else
    runs._set_lines(buf, TOP, TOP, { line })
  end
  if event.type == "changed" then watch.changed = watch.changed + 1
  elseif event.type == "added" then watch.added = watch.added + 1 end
  watch.runs = api.nvim_buf_line_count(buf) - TOP
  if failed_now(event) then
    vim.notify(("workflow %s: run %s failed"):format(watch.id, tostring(run.id)), vim.log.levels.WARN)
  end
  show_progress(watch, runs)
end

-- Opens a buffer that watches workflow `id` (and `status`); returns the buffer number.
function M.open(id, status)
  local runs = require "workflow_runs"
  local client, problem = runs.client()
  if not client then
    vim.notify("workflow_runs: " .. tostring(problem), vim.log.levels.ERROR)
    return nil
  end
  local buf = runs._scratch(id, status, "workflow-watch://")
  api.nvim_set_current_buf(buf)
  local watch = { buf = buf, id = id, status = status, added = 0, changed = 0, runs = 0,
    pages = 0, state = "watching" }
  runs._track(buf, watch)
  runs._set_lines(buf, 0, -1, { render.watch_progress(watch), render.header() })
  local options = { status = status, initial = true, interval = runs.config().watch_interval }
  watch.task = client:spawn(function()
    -- the explicit loop: a Neovim built on PUC Lua 5.1 cannot wait in a for loop
    local next_event, _, _, handle = client:watch(id, options)
    while true do
      local event = next_event()
      if event == nil or not api.nvim_buf_is_valid(buf) then break end
      show(watch, runs, event)
    end
    handle:close()
  end, function(ok, err)
    if ok then watch.state = "done"
    elseif err and err.kind == "cancelled" then watch.state = "stopped"
    else watch.state, watch.err = "failed", err end
    show_progress(watch, runs)
  end)
  return buf
end

return M
