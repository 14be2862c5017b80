-- Run by spec/93-neovim-watch_spec.lua inside `nvim --headless -u NONE` with
-- examples/nvim on the runtimepath: :WorkflowWatch on a listing that lives by the
-- clock ($WF_WATCH_ID), until every run it gets has finished; then :WorkflowRunsStop.
-- Writes what the buffer showed and what vim.notify said to $WF_OUT as JSON.
-- luacheck: globals vim
local api = vim.api
local report = { notes = {} }

local ok, err = pcall(function()
  vim.notify = function(message, level)
    report.notes[#report.notes + 1] = { message = message, level = level }
  end
  vim.cmd "runtime! plugin/workflow_runs.lua"
  local runs = require "workflow_runs"
  runs.setup { watch_interval = 0.1 }
  local expected = tonumber(os.getenv "WF_WATCH_RUNS")
  local ticks = 0
  local timer = vim.loop.new_timer()
  timer:start(1, 1, function() ticks = ticks + 1 end)
  vim.cmd("WorkflowWatch " .. os.getenv "WF_WATCH_ID")
  local buf = api.nvim_get_current_buf()
  report.settled = vim.wait(20000, function()
    local state = runs.state(buf)
    return state.added == expected and state.changed == expected
  end, 5)
  report.state = runs.state(buf)
  report.lines = api.nvim_buf_get_lines(buf, 0, -1, false)
  report.name = api.nvim_buf_get_name(buf)
  timer:stop()
  timer:close()
  report.ticks = ticks
  vim.cmd "WorkflowRunsStop"
  vim.wait(50, function() return false end)
  report.stopped = runs.state(buf)
  report.stopped_line = api.nvim_buf_get_lines(buf, 0, 1, false)[1]
  report.in_flight = runs.client():in_flight()
end)
report.ok, report.error = ok, not ok and tostring(err) or nil

local file = assert(io.open(os.getenv "WF_OUT", "w"))
file:write(vim.fn.json_encode(report))
file:close()
