local cjson = require "cjson"
local fixtures = require "spec.support.fixtures"

-- Runs a shell command and returns its exit status as a boolean on every Lua.
local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

describe("inside Neovim", function()
  local server = fixtures.sandbox()

  lazy_setup(function()
    assert(succeeded "make -s LUA=luajit >/dev/null", "make LUA=luajit failed")
  end)

  it("walks wf_demo from nvim --headless on LuaJIT", function()
    local out = os.tmpname()
    local command = table.concat({
      "env -u LD_PRELOAD",
      "WF_ROOT=" .. os.getenv("PWD"),
      "WF_OUT=" .. out,
      "WF_WORKFLOW=wf_demo",
      "WORKFLOWS_BASE_URL=" .. server.url,
      "WORKFLOWS_API_TOKEN=" .. server.token,
      "timeout 60 nvim --headless --clean",
      "-c 'luafile spec/support/nvim_walk.lua' -c 'qa!' >/dev/null 2>&1",
    }, " ")
    assert.is_true(succeeded(command))
    local file = assert(io.open(out))
    local report = cjson.decode(file:read "*a")
    file:close()
    os.remove(out)

    assert.are.same({ true, "Lua 5.1" }, { report.ok, report.lua })
    assert.matches("^LuaJIT 2%.1", report.jit)
    assert.are.equal(250, report.count)
    for _, status in ipairs { "running", "success", "failure", "waiting", "cancelled" } do
      assert.is_true(report.statuses[status] > 0, status)
    end
    assert.is_true(report.integral_versions)
    assert.is_true(report.nulls_absent)
    assert.are.same({ n = 3, limit = 3, offset = 1 }, report.page)
    assert.are.same({
      kind = "http",
      status = 404,
      text = report.missing.text,
    }, report.missing)
    assert.matches("^workflows: HTTP 404 Not Found: workflow not found %(request [%w_%-]+%)$",
                   report.missing.text)
  end)
end)
