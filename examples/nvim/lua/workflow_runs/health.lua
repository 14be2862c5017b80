-- :checkhealth workflow_runs
-- luacheck: globals vim
local M = {}

-- vim.health (0.10: start/ok/...; 0.8, 0.9: report_*), or the 0.7 `health` module.
local function reporter()
  local health = vim.health or require "health"
  return {
    start = health.start or health.report_start,
    ok = health.ok or health.report_ok,
    info = health.info or health.report_info,
    warn = health.warn or health.report_warn,
    error = health.error or health.report_error,
  }
end

function M.check()
  local report = reporter()
  local runs = require "workflow_runs"
  report.start("workflow_runs: the lua-workflows library")
  local workflows, problem, message = runs.library()
  if not workflows then
    report.error("cannot load the library: " .. tostring(problem), {
      "build the core for LuaJIT: make LUA=luajit (in the lua-workflows checkout)",
      "or point setup { library = \"/path/to/lua-workflows\" } at it",
    })
    report.info("require said: " .. tostring(message))
    return
  end
  local core = require "workflows.core"
  report.ok(("lua-workflows %s, core loaded, libcurl %s, %s"):format(workflows.VERSION,
    core.curl_version, jit and jit.version or _VERSION))
  if not (vim.uv or vim.loop) then
    report.error("no vim.uv or vim.loop: walks would block the editor")
  end

  report.start("workflow_runs: the API")
  local client, made_problem = runs.client()
  if not client then
    report.error("cannot make a client: " .. tostring(made_problem))
    return
  end
  if (vim.env.WORKFLOWS_API_TOKEN or "") == "" and not runs.config().token then
    report.error("no token", { "set WORKFLOWS_API_TOKEN, or setup { token = ... }" })
    return
  end
  report.ok("a token is set")
  report.info("base URL: " .. tostring(client):match("^workflows%.client%((.*)%)$"))
  -- a 404 for a workflow that cannot exist proves the server answers and takes the token
  local _, err = client:list_runs("workflow_runs-health-check", { limit = 1, deadline = 5 })
  if err == nil or (err.kind == "http" and err.status == 404) then
    report.ok("the server answers and accepts the token")
  elseif err.kind == "http" and err.status == 401 then
    report.error("the server refuses the token: " .. tostring(err))
  else
    report.error("the server does not answer: " .. tostring(err))
  end
end

return M
