-- Bad input to client:watch(): each is raised as an invalid_argument error naming the
-- problem, before any request. No server: nothing may be sent.
local workflows = require "workflows"

local function client()
  -- port 9 (discard): a request that went out anyway would fail with another error
  return workflows.new { token = "sandbox-token", base_url = "http://127.0.0.1:9" }
end

local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok)
  assert.equal("invalid_argument", err.kind)
  return err.message
end

describe("client:watch() refuses", function()
  local CASES = {
    { { interval = 0.05 }, 'option "interval" must be a number of seconds, at least 0.1 (got 0.05)' },
    { { interval = 0 }, 'option "interval" must be a number of seconds, at least 0.1 (got 0)' },
    { { interval = 1 / 0 }, 'option "interval" must be a number of seconds, at least 0.1 (got inf)' },
    { { interval = "10" }, 'option "interval" must be a number of seconds, at least 0.1 (got "10")' },
    { { horizon = 0 }, 'option "horizon" must be an integer in 1..10000 (got 0)' },
    { { horizon = 10001 }, 'option "horizon" must be an integer in 1..10000 (got 10001)' },
    { { horizon = 2.5 }, 'option "horizon" must be an integer in 1..10000 (got 2.5)' },
    { { initial = "yes" }, 'option "initial" must be a boolean (got "yes")' },
    { { initial = 1 }, 'option "initial" must be a boolean (got 1)' },
    { { deadline = 0 }, 'option "deadline" must be a positive number (got 0)' },
    { { limit = 101 }, 'option "limit" must be an integer in 1..100 (got 101)' },
    { { status = "failed" }, 'invalid status "failed" (did you mean "failure"?)' },
    { { intervall = 5 }, 'unknown option "intervall" (did you mean "interval"?)' },
    { { offset = 5 }, 'unknown option "offset"' },
    { { max = 5 }, 'unknown option "max"' },
    { "fast", 'options must be a table (got "fast")' },
  }
  for _, case in ipairs(CASES) do
    local given, message = case[1], case[2]
    it(message, function()
      assert.equal(message, raised(function() return client():watch("wf_demo", given) end))
    end)
  end

  it("an id that is not a non-empty string", function()
    assert.equal("workflow id must be a non-empty string (got \"\")",
      raised(function() return client():watch("") end))
    assert.equal("workflow id must be a non-empty string (got nil)",
      raised(function() return client():watch() end))
  end)

  it("an on_event that is not a function", function()
    assert.equal("client:watch: on_event must be a function (got true)",
      raised(function() return client():watch("wf_demo", nil, true) end))
  end)

  it("a client without a token, and a closed client", function()
    local tokenless = workflows.new { token = "", base_url = "http://127.0.0.1:9" }
    assert.matches("^no API token", raised(function() return tokenless:watch("wf_demo") end))
    local closed = client()
    closed:close()
    assert.equal("the client is closed", raised(function() return closed:watch("wf_demo") end))
  end)

  it("a call without the colon", function()
    assert.equal("client:watch: self is not a workflows client (call it as client:watch(...))",
      raised(function() return client().watch("wf_demo") end))
  end)
end)
