-- :WorkflowRuns {id} [status]   list a workflow's runs in a scratch buffer, as they arrive
-- :WorkflowRunsStop             stop the walk of the current buffer (every walk with !)
-- luacheck: globals vim
if vim.g.loaded_workflow_runs then return end
vim.g.loaded_workflow_runs = true

local STATUSES = { "running", "success", "failure", "waiting", "cancelled" }

vim.api.nvim_create_user_command("WorkflowRuns", function(command)
  local id, status = unpack(command.fargs)
  require("workflow_runs").open(id, status)
end, {
  nargs = "+",
  desc = "List a workflow's runs in a scratch buffer: {id} [status]",
  complete = function(lead, line)
    if #vim.split(line, "%s+") ~= 3 then return {} end
    return vim.tbl_filter(function(s) return vim.startswith(s, lead) end, STATUSES)
  end,
})

vim.api.nvim_create_user_command("WorkflowRunsStop", function(command)
  local runs = require("workflow_runs")
  if command.bang then runs.stop_all() else runs.stop() end
end, { bang = true, desc = "Stop the workflow runs walk of this buffer (! for all)" })
