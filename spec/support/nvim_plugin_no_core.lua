-- Run by spec/93-neovim-plugin_spec.lua inside `nvim --headless -u NONE`: the plugin
-- pointed at a copy of the library with no core built for LuaJIT. Runs
-- :WorkflowRuns in each directory of $WF_DIRS (separated by ":") and writes the
-- notifications it gave to $WF_OUT as JSON.
-- luacheck: globals vim
local report = { notes = {} }

local ok, err = pcall(function()
  vim.notify = function(message, level)
    report.notes[#report.notes + 1] = { message = message, level = level }
  end
  vim.cmd "runtime! plugin/workflow_runs.lua"
  require("workflow_runs").setup { library = os.getenv "WF_LIBRARY" }
  for dir in os.getenv("WF_DIRS"):gmatch("[^:]+") do
    vim.cmd("cd " .. vim.fn.fnameescape(dir))
    vim.cmd "WorkflowRuns wf_demo"
  end
end)
report.ok, report.error = ok, not ok and tostring(err) or nil

local file = assert(io.open(os.getenv "WF_OUT", "w"))
file:write(vim.fn.json_encode(report))
file:close()
