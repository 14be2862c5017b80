-- Run by spec/90-neovim_spec.lua inside `nvim --headless` (LuaJIT): walks a workflow
-- with the LuaJIT build of the core and writes what it saw to $WF_OUT as JSON.
local root = os.getenv "WF_ROOT"
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath

local report = { lua = _VERSION, jit = jit and jit.version or nil }
local ok, err = pcall(function()
  local workflows = require "workflows"
  local client = workflows.new {}
  local statuses, count, integral, nulls_absent = {}, 0, true, true
  for run in client:runs(os.getenv "WF_WORKFLOW") do
    count = count + 1
    statuses[run.status] = (statuses[run.status] or 0) + 1
    if run.workflowVersion % 1 ~= 0 then integral = false end
    for _, value in pairs(run) do
      if type(value) == "userdata" then nulls_absent = false end
    end
  end
  report.count, report.statuses = count, statuses
  report.integral_versions, report.nulls_absent = integral, nulls_absent
  local page = assert(client:list_runs("wf_demo", { limit = 3, offset = 1 }))
  report.page = { n = #page.items, limit = page.limit, offset = page.offset }
  local _, missing = client:list_runs("wf_missing")
  report.missing = { kind = missing.kind, status = missing.status, text = tostring(missing) }
end)
report.ok, report.error = ok, not ok and tostring(err) or nil

local encode = vim and vim.json and vim.json.encode or require("cjson").encode
local file = assert(io.open(os.getenv "WF_OUT", "w"))
file:write(encode(report))
file:close()
