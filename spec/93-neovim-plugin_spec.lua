-- The Neovim example plugin (examples/nvim) in `nvim --headless -u NONE`, against the
-- sandbox: its buffers show what the blocking client gets, it can be stopped, and
-- :checkhealth reports on it.
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"

package.path = "examples/nvim/lua/?.lua;" .. package.path
local render = require "workflow_runs.render"

local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

local function has_nvim()
  return succeeded "command -v nvim >/dev/null 2>&1"
end

local describe_nvim = has_nvim() and describe or pending

describe_nvim("the Neovim plugin (examples/nvim)", function()
  local sb, report

  lazy_setup(function()
    assert(succeeded "make -s LUA=luajit >/dev/null", "make LUA=luajit failed")
    sb = sandbox.start {}
    local out = os.tmpname()
    local command = table.concat({
      "env -u LD_PRELOAD",
      "WF_OUT=" .. out,
      "WORKFLOWS_BASE_URL=" .. sb.url,
      "WORKFLOWS_API_TOKEN=" .. sb.token,
      "timeout 120 nvim --headless -u NONE --cmd 'set rtp+=examples/nvim'",
      "-c 'luafile spec/support/nvim_plugin.lua' -c 'qa!' >/dev/null 2>&1",
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

  local function expected_lines(status)
    local client = fixtures.sandbox_client(sb, {})
    local lines = { render.header() }
    for run in client:runs("wf_demo", { status = status }) do lines[#lines + 1] = render.line(run) end
    client:close()
    return lines
  end

  local function step(n)
    assert.is_true(report.ok, report.error)
    return report.steps[n]
  end

  it(":WorkflowRuns {id} fills a scratch buffer with every run, as the blocking walk sees them", function()
    local shown = step(1)
    assert.is_true(shown.settled)
    local lines = shown.lines
    assert.matches("^wf_demo 250 runs, 3 pages in %d+%.%d%d s$", table.remove(lines, 1))
    assert.same(expected_lines(nil), lines)
    assert.equal("done", shown.state.state)
    assert.is_false(shown.modifiable)
    assert.matches("workflow%-runs://wf_demo$", shown.name)
  end)

  it(":WorkflowRuns {id} {status} lists the runs of that status", function()
    local shown = step(2)
    local lines = shown.lines
    local expected = expected_lines("failure")
    assert.equal(("wf_demo [failure] %d runs, 1 page in "):format(#expected - 1),
                 table.remove(lines, 1):match("^(.- in )"))
    assert.same(expected, lines)
  end)

  it(":WorkflowRunsStop stops a walk, keeps what arrived, and leaves nothing in flight", function()
    local stopped = step(3)
    assert.is_true(stopped.settled)
    assert.equal("stopped", stopped.state.state)
    assert.equal(stopped.runs_at_stop, stopped.state.runs)
    assert.is_true(stopped.state.runs >= 100 and stopped.state.runs < 20000)
    assert.equal(stopped.state.runs + 2, #stopped.lines)
    assert.matches(" stopped$", stopped.lines[1])
    assert.equal(0, stopped.in_flight)
    assert.is_true(stopped.ticks > 100, stopped.ticks .. " timer ticks while it walked")
  end)

  it("q stops the walk and wipes the buffer", function()
    local quit = step(4)
    assert.is_true(quit.buffer_gone)
    assert.equal(0, quit.in_flight)
  end)

  it("shows a failure on the progress line", function()
    local failed = step(5)
    assert.is_true(failed.settled)
    assert.equal("failed", failed.state.state)
    assert.matches("^wf_missing 0 runs, 0 pages failed: workflows: HTTP 404 Not Found: workflow not found "
      .. "%(request req_%x+%)$", failed.lines[1])
  end)

  it("counts the retries on the progress line", function()
    local retried = step(6)
    assert.is_true(retried.settled)
    assert.equal("done", retried.state.state)
    -- one a request: each page's, and any the walk made to check where the listing ends
    assert.is_true(retried.state.retries >= 3)
    assert.matches(("^wf_demo;status=503;times=1;n=nvim%%-retries 250 runs, 3 pages, %d retries "
      .. "in %%d+%%.%%d%%d s$"):format(retried.state.retries), retried.lines[1])
  end)

  it("reports the core, libcurl, the token and the server in :checkhealth", function()
    local text = table.concat(report.health, "\n")
    assert.matches("OK: lua%-workflows %d+%.%d+%.%d+, core loaded, libcurl %d", text)
    assert.matches("OK: a token is set", text)
    assert.matches("OK: the server answers and accepts the token", text)
    assert.not_matches("ERROR", text)
  end)
end)

describe_nvim("the Neovim plugin without a core built for LuaJIT", function()
  local scratch

  lazy_teardown(function()
    if scratch then os.execute("rm -rf '" .. scratch .. "'") end
  end)

  it("says in one line what to build, and to run :checkhealth", function()
    assert(succeeded "make -s >/dev/null", "make failed")  -- Lua 5.4's ./workflows/core.so
    local pipe = assert(io.popen("pwd"))
    local root = pipe:read("*l")
    pipe:close()
    scratch = os.tmpname()
    -- a library with its Lua files only; an empty directory; one holding the core
    -- that `make` builds for Lua 5.4, as Neovim started in the checkout finds it
    assert(succeeded(("rm -f '%s' && mkdir -p '%s/library' '%s/empty' '%s/other/workflows' && "
      .. "ln -s '%s/lua' '%s/library/lua' && cp '%s/workflows/core.so' '%s/other/workflows/'")
      :format(scratch, scratch, scratch, scratch, root, scratch, root, scratch)))
    local out = scratch .. "/report.json"
    local command = table.concat({
      "cd '" .. scratch .. "' &&",
      "env -u LD_PRELOAD -u WORKFLOWS_BASE_URL",
      "WF_OUT='" .. out .. "'",
      "WF_LIBRARY='" .. scratch .. "/library'",
      "WF_DIRS='" .. scratch .. "/empty:" .. scratch .. "/other'",
      "WORKFLOWS_API_TOKEN=t",
      "timeout 60 nvim --headless -u NONE --cmd 'set rtp+=" .. root .. "/examples/nvim'",
      "-c 'luafile " .. root .. "/spec/support/nvim_plugin_no_core.lua' -c 'qa!' >/dev/null 2>&1",
    }, " ")
    assert(succeeded(command), "nvim failed: " .. command)
    local file = assert(io.open(out))
    local report = cjson.decode(file:read "*a")
    file:close()
    assert.is_true(report.ok, report.error)
    local advice = "run `make LUA=luajit` in " .. scratch .. "/library, then :checkhealth workflow_runs"
    assert.same({
      { message = "workflow_runs: the lua-workflows core is not built for LuaJIT: " .. advice,
        level = 4 },
      { message = "workflow_runs: the lua-workflows core found is not one for LuaJIT: " .. advice,
        level = 4 },
    }, report.notes)
  end)
end)
