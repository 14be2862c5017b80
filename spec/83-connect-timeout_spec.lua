-- connect_timeout on loopback: a listener whose accept queue is full leaves new
-- connections hanging in the handshake, as an unreachable host would.

local workflows = require "workflows"
local core = require "workflows.core"

local HELPER = "spec/support/full_backlog.py"

describe("connect_timeout", function()
  local pipe, port, pid

  lazy_setup(function()
    pipe = assert(io.popen("exec python3 " .. HELPER, "r"))
    port, pid = (pipe:read("*l") or ""):match("^(%d+) (%d+)$")
    assert(port, "the full-backlog listener did not start")
  end)

  lazy_teardown(function()
    if pid then os.execute("kill " .. pid) end
    if pipe then pipe:close() end
  end)

  local function client(options)
    local all = { base_url = "http://127.0.0.1:" .. port, token = "t", max_retries = 0 }
    for key, value in pairs(options) do all[key] = value end
    return workflows.new(all)
  end

  it("ends an attempt that cannot connect after connect_timeout, not timeout", function()
    local started = core.now()
    local page, err = client({ connect_timeout = 0.3, timeout = 10 }):list_runs("wf_demo")
    local took = core.now() - started
    assert.is_nil(page)
    assert.equal("timeout", err.kind)
    assert.truthy(err.message:find("onnect", 1, true), err.message)
    assert.is_true(took >= 0.25 and took < 3, ("took %.2f s"):format(took))
  end)

  it("is retried like any other timeout", function()
    local _, err = client({ connect_timeout = 0.2, timeout = 10, max_retries = 1 })
      :list_runs("wf_demo")
    assert.equal("timeout", err.kind)
    assert.equal(2, err.attempts)
  end)
end)
