-- Prints a table of a workflow's failed runs, newest first.
--
--   lua5.4 examples/failed_runs.lua [WORKFLOW_ID] [MAX]
--
-- WORKFLOWS_BASE_URL and WORKFLOWS_API_TOKEN say which server and token to use. With
-- the rock installed, that is all; from the root of a checkout, after `make`, the
-- checkout's Lua files go on the path. Against the sandbox:
--
--   python3 sandbox/server.py --port 8080 &
--   WORKFLOWS_BASE_URL=http://127.0.0.1:8080 WORKFLOWS_API_TOKEN=sandbox-token \
--     LUA_PATH="lua/?.lua;lua/?/init.lua;;" lua5.4 examples/failed_runs.lua wf_demo
local workflows = require "workflows"

local workflow_id = arg[1] or "wf_demo"
local max = tonumber(arg[2]) or 50

local function duration(run)
  local function seconds(stamp)
    local y, mo, d, h, mi, s = stamp:match "^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)"
    if not y then return nil end
    return os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = s }
  end
  local started = run.startedAt and seconds(run.startedAt)
  local finished = run.finishedAt and seconds(run.finishedAt)
  if not (started and finished) then return "-" end
  return string.format("%ds", finished - started)
end

local client = workflows.new {}
local row = "%-24s %-22s %-10s %8s %10s %s"
print(row:format("run", "started", "trigger", "took", "CU", "re-run of"))

local ok, err = pcall(function()
  local count = 0
  for run in client:runs(workflow_id, { status = "failure", max = max }) do
    count = count + 1
    print(row:format(run.id, run.startedAt or "-", run.triggerSource or "-", duration(run),
                     run.totalCu and string.format("%.2f", run.totalCu) or "-",
                     run.sourceRunId or ""))
  end
  print(string.format("%d failed run%s of %s", count, count == 1 and "" or "s", workflow_id))
end)
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
