-- Run by spec/93-neovim-plugin_spec.lua inside `nvim --headless -u NONE` with
-- examples/nvim on the runtimepath: drives the workflow_runs plugin through its
-- commands and keys, and writes what the buffers showed to $WF_OUT as JSON.
-- luacheck: globals vim
local api = vim.api
local report = { steps = {} }

local function wait_until_settled(runs, buf, ms)
  local settled = vim.wait(ms or 20000, function()
    local state = runs.state(buf)
    return state ~= nil and state.state ~= "loading"
  end, 5)
  return settled
end

local function lines_of(buf)
  return api.nvim_buf_get_lines(buf, 0, -1, false)
end

local ok, err = pcall(function()
  vim.cmd "runtime! plugin/workflow_runs.lua"
  local runs = require "workflow_runs"
  runs.setup { page_size = 100 }   -- library: the checkout the plugin sits in

  -- every run, then a status filter: the buffers as the pages arrived
  for _, command in ipairs { "WorkflowRuns wf_demo", "WorkflowRuns wf_demo failure" } do
    vim.cmd(command)
    local buf = api.nvim_get_current_buf()
    local settled = wait_until_settled(runs, buf)
    report.steps[#report.steps + 1] = { command = command, settled = settled,
      state = runs.state(buf), lines = lines_of(buf), name = api.nvim_buf_get_name(buf),
      modifiable = vim.bo[buf].modifiable }
  end

  -- a slow walk stopped by :WorkflowRunsStop after its first page: the editor kept
  -- running meanwhile (a timer ticked), and nothing stays in flight
  local ticks = 0
  local timer = vim.loop.new_timer()
  timer:start(1, 1, function() ticks = ticks + 1 end)
  vim.cmd "WorkflowRuns wf_big;latency=150 success"
  local buf = api.nvim_get_current_buf()
  local first_page = vim.wait(20000, function() return runs.state(buf).pages >= 1 end, 5)
  vim.cmd "WorkflowRunsStop"
  local after_stop = runs.state(buf)
  vim.wait(400)
  timer:stop()
  timer:close()
  report.steps[#report.steps + 1] = { command = "WorkflowRunsStop", settled = first_page,
    state = runs.state(buf), runs_at_stop = after_stop.runs, lines = lines_of(buf),
    in_flight = runs.client():in_flight(), ticks = ticks }

  -- `q` stops the walk and wipes the buffer
  vim.cmd "WorkflowRuns wf_big;latency=150"
  buf = api.nvim_get_current_buf()
  vim.wait(20, function() return false end)
  api.nvim_feedkeys("q", "x", false)
  vim.wait(50, function() return false end)
  report.steps[#report.steps + 1] = { command = "q", buffer_gone = not api.nvim_buf_is_valid(buf),
    in_flight = runs.client():in_flight() }

  -- a failure ends up on the progress line
  vim.cmd "WorkflowRuns wf_missing"
  buf = api.nvim_get_current_buf()
  report.steps[#report.steps + 1] = { command = "WorkflowRuns wf_missing",
    settled = wait_until_settled(runs, buf), state = runs.state(buf), lines = lines_of(buf) }

  vim.cmd "checkhealth workflow_runs"
  report.health = lines_of(api.nvim_get_current_buf())

  -- every page's first attempt fails: the progress line counts the retries
  vim.cmd "WorkflowRuns wf_demo;status=503;times=1;n=nvim-retries"
  buf = api.nvim_get_current_buf()
  report.steps[#report.steps + 1] = { command = "WorkflowRuns with retries",
    settled = wait_until_settled(runs, buf), state = runs.state(buf), lines = lines_of(buf) }
end)
report.ok, report.error = ok, not ok and tostring(err) or nil

local file = assert(io.open(os.getenv "WF_OUT", "w"))
file:write(vim.fn.json_encode(report))
file:close()
