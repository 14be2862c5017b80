-- Sums a workflow's compute units by status and by trigger source.
--
--   lua5.4 examples/cu_report.lua [WORKFLOW_ID]
--
-- WORKFLOWS_BASE_URL and WORKFLOWS_API_TOKEN say which server and token to use. With
-- the rock installed, that is all; from the root of a checkout, after `make`, the
-- checkout's Lua files go on the path. Against the sandbox:
--
--   python3 sandbox/server.py --port 8080 &
--   WORKFLOWS_BASE_URL=http://127.0.0.1:8080 WORKFLOWS_API_TOKEN=sandbox-token \
--     LUA_PATH="lua/?.lua;lua/?/init.lua;;" lua5.4 examples/cu_report.lua wf_demo
local workflows = require "workflows"

local workflow_id = arg[1] or "wf_demo"

local function add(totals, key, cu)
  local entry = totals[key]
  if not entry then
    entry = { runs = 0, cu = 0 }
    totals[key] = entry
  end
  entry.runs = entry.runs + 1
  entry.cu = entry.cu + cu
end

local function print_totals(title, totals)
  local keys = {}
  for key in pairs(totals) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return totals[a].cu > totals[b].cu end)
  print(string.format("%-12s %8s %12s", title, "runs", "CU"))
  for _, key in ipairs(keys) do
    print(string.format("%-12s %8d %12.2f", key, totals[key].runs, totals[key].cu))
  end
  print()
end

local client = workflows.new {}
local by_status, by_trigger = {}, {}
local all = { runs = 0, cu = 0 }

local ok, err = pcall(function()
  for run in client:runs(workflow_id) do
    local cu = run.totalCu or 0
    add(by_status, run.status or "unknown", cu)
    add(by_trigger, run.triggerSource or "unknown", cu)
    all.runs = all.runs + 1
    all.cu = all.cu + cu
  end
end)
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

print_totals("status", by_status)
print_totals("trigger", by_trigger)
print(string.format("%-12s %8d %12.2f", "total", all.runs, all.cu))
