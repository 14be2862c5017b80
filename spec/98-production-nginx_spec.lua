-- shared_dict inside nginx with a master and two workers: a Retry-After one worker
-- hears pauses the other, and the retry budget is one for both; without the option
-- each worker keeps its own. Each worker carries out a plan in a timer
-- (spec/support/worker_plans.lua), so that the test decides which worker does what.
local nginx = require "spec.support.nginx"
local sandbox = require "spec.support.sandbox"
local plans = require "spec.support.worker_plans"

local available, why = nginx.available()
if not available then
  describe("shared_dict across nginx workers", function()
    pending("skipped: " .. why)
  end)
  return
end

local unique = 0
local function fresh(name)
  unique = unique + 1
  return ("%s-%d-%d"):format(name, unique, os.time())
end

describe("shared_dict across nginx workers", function()
  local sb, server

  lazy_setup(function()
    sb = sandbox.start {}
    server = nginx.start {
      workers = 2,
      http = plans.HTTP,
      server = plans.LOCATIONS .. [[
  location = /missing {
    content_by_lua_block {
      local ok, err = pcall(require("workflows").new, { shared_dict = "nope" })
      ngx.say(tostring(err and err.message or ok))
    }
  }
]],
      setenv = { WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = sb.token },
    }
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if sb then sb:stop() end
  end)

  -- Worker 0 hears a 429 with Retry-After: 2; worker 1 starts its call once worker 0
  -- has scheduled its retry. Returns both results.
  local function retry_after_race(shared)
    local heard, first, second = fresh("heard"), fresh("first"), fresh("second")
    plans.send(server, 0, { name = first, shared = shared, signal = heard,
      id = "wf_demo;status=429;retry_after=2;times=1;n=" .. first })
    plans.send(server, 1, { name = second, shared = shared, wait_for = heard,
      id = "wf_demo;n=" .. second })
    return plans.result(server, first), plans.result(server, second)
  end

  it("pauses every worker for a Retry-After one of them hears", function()
    local first, second = retry_after_race(true)
    assert.same({ 0, 2, 0 }, { first.worker, first.attempts, first.failures })
    assert.same({ 1, 1, 0 }, { second.worker, second.attempts, second.failures })
    -- the other worker's first attempt waited for the end of the pause
    assert.is_true(second.starts[1] - second.heard >= 1.5,
      ("started %.3f s after the Retry-After"):format(second.starts[1] - second.heard))
  end)

  it("leaves the other workers alone without it", function()
    local first, second = retry_after_race(false)
    assert.same({ 2, 1, 0 }, { first.attempts, second.attempts, second.failures })
    assert.is_true(second.starts[1] - second.heard < 1,
      ("started %.3f s after the Retry-After"):format(second.starts[1] - second.heard))
  end)

  -- Worker 0 spends a budget of two retries on a storm of 503s; then worker 1 makes
  -- one call into the same storm.
  local function budget_race(shared)
    local done, first, second = fresh("done"), fresh("first"), fresh("second")
    local storm = "wf_demo;status=503;n=" .. fresh("storm")
    local budget = { reserve = 2 }
    plans.send(server, 0, { name = first, shared = shared, retry_budget = budget, calls = 3,
      done = done, id = storm })
    plans.send(server, 1, { name = second, shared = shared, retry_budget = budget,
      wait_for = done, id = storm })
    return plans.result(server, first), plans.result(server, second)
  end

  it("shares one retry budget between the workers", function()
    local first, second = budget_race(true)
    -- two retries on the first call, then every retry refused, in both workers
    assert.same({ 3, 5, 2 }, { first.failures, first.attempts, first.refused })
    assert.same({ 1, 1, 1 }, { second.failures, second.attempts, second.refused })
    assert.is_true(second.budget.shared)
    assert.is_true(second.budget.tokens < 1)
  end)

  it("gives each worker its own budget without it", function()
    local first, second = budget_race(false)
    assert.same({ 3, 5, 2 }, { first.failures, first.attempts, first.refused })
    assert.same({ 1, 3, 0 }, { second.failures, second.attempts, second.refused })
  end)

  it("names a lua_shared_dict nginx does not have", function()
    local status, body = server:get("/missing")
    assert.same({ 200, 'option "shared_dict": nginx has no lua_shared_dict "nope" (declare it '
      .. "in the http block, e.g. lua_shared_dict nope 1m;)\n" }, { status, body })
  end)
end)
