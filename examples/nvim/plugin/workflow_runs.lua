-- :WorkflowRuns {id} [status]   list a workflow's runs in a scratch buffer, as they arrive
-- :WorkflowWatch {id} [status]  watch a workflow's runs as they happen: new ones on top,
--                               a warning for each run that fails
-- :WorkflowRunsStop             stop the walk or watch of the current buffer (all with !)
-- luacheck: globals vim
if vim.g.loaded_workflow_runs then return end
vim.g.loaded_workflow_runs = true

local STATUSES = { "running", "success", "failure", "waiting", "cancelled" }

-- The status, the command's second argument.
local function complete_status(lead, line)
  if #vim.split(line, "%s+") ~= 3 then return {} end
  return vim.tbl_filter(function(s) return vim.startswith(s, lead) end, STATUSES)
end

vim.api.nvim_create_user_command("WorkflowRuns", function(command)
  local id, status = unpack(command.fargs)
  require("workflow_runs").open(id, status)
end, {
  nargs = "+",
  desc = "List a workflow's runs in a scratch buffer: {id} [status]",
  complete = complete_status,
})

vim.api.nvim_create_user_command("WorkflowWatch", function(command)
  local id, status = unpack(command.fargs)
  require("workflow_runs.watch").open(id, status)
end, {
  nargs = "+",
  desc = "Watch a workflow's runs as they happen: {id} [status]",
  complete = complete_status,
})

vim.api.nvim_create_user_command("WorkflowRunsStop", function(command)
  local runs = require("workflow_runs")
  if command.bang then runs.stop_all() else runs.stop() end
end, { bang = true, desc = "Stop the workflow runs walk of this buffer (! for all)" })
