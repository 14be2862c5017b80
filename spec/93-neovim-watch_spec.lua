-- :WorkflowWatch of the Neovim example plugin (examples/nvim) in `nvim --headless -u
-- NONE`, against the sandbox's listing that lives by the clock: new runs come on top,
-- finished runs are redrawn where they are, each failure raises a warning, the editor
-- keeps running, and :WorkflowRunsStop stops it.
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"

package.path = "examples/nvim/lua/?.lua;" .. package.path
local render = require "workflow_runs.render"

local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

local describe_nvim = succeeded "command -v nvim >/dev/null 2>&1" and describe or pending

-- 20 runs, 10 every 100 ms, each finishing 150 ms after it came (one in four fails);
-- a server of this spec's own, so the listing starts with the watch
local ID = "wf_empty;every_ms=100;burst=10;ticks=2;finish_ms=150"
local RUNS = 20

describe_nvim("the Neovim plugin's :WorkflowWatch (examples/nvim)", function()
  local sb, report

  lazy_setup(function()
    assert(succeeded "make -s LUA=luajit >/dev/null", "make LUA=luajit failed")
    sb = sandbox.start {}
    local out = os.tmpname()
    local command = table.concat({
      "env -u LD_PRELOAD",
      "WF_OUT=" .. out,
      "WF_WATCH_ID='" .. ID .. "'",
      "WF_WATCH_RUNS=" .. RUNS,
      "WORKFLOWS_BASE_URL=" .. sb.url,
      "WORKFLOWS_API_TOKEN=" .. sb.token,
      "timeout 120 nvim --headless -u NONE --cmd 'set rtp+=examples/nvim'",
      "-c 'luafile spec/support/nvim_watch.lua' -c 'qa!' >/dev/null 2>&1",
    }, " ")
    assert(succeeded(command), "nvim failed: " .. command)
    local file = assert(io.open(out))
    report = cjson.decode(file:read "*a")
    file:close()
    os.remove(out)
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
  end)

  it("shows every run, newest on top, as it finally is", function()
    assert.is_true(report.ok, report.error)
    assert.is_true(report.settled)
    assert.matches("workflow%-watch://wf_empty;every_ms=100", report.name)
    local lines = report.lines
    assert.equal(("%s %d added, %d changed watching… (<C-c> stops, q closes)"):format(ID, RUNS, RUNS),
      table.remove(lines, 1))
    local client = fixtures.sandbox_client(sb, {})
    local expected = { render.header() }
    for run in client:runs(ID) do expected[#expected + 1] = render.line(run) end
    client:close()
    assert.same(expected, lines)
    assert.is_true(report.ticks > 100, report.ticks .. " timer ticks while it watched")
  end)

  it("warns once for each run that failed", function()
    local failed = sb:present(ID, "failure")
    assert.is_true(#failed > 0)
    local warned = {}
    for _, note in ipairs(report.notes) do
      assert.equal(3, note.level)   -- vim.log.levels.WARN
      warned[#warned + 1] = note.message:match("^workflow " .. ID:gsub("%p", "%%%0") .. ": run (run_%x+) failed$")
    end
    table.sort(warned)
    table.sort(failed)
    assert.same(failed, warned)
  end)

  it("stops on :WorkflowRunsStop and leaves nothing in flight", function()
    assert.equal("stopped", report.stopped.state)
    assert.matches(" stopped$", report.stopped_line)
    assert.equal(0, report.in_flight)
  end)
end)
