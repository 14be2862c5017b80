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
  location = /traced {
    content_by_lua_block {
      local events = {}
      local client = require("workflows").new {
        headers = { traceparent = "00-trace-span-01", ["X-Request-Tag"] = ngx.var.arg_tag },
        on_event = function(ev) events[#events + 1] = ev end,
      }
      local page, err = client:list_runs("wf_demo", { limit = 2 })
      ngx.say(require("cjson").encode { items = page and #page.items, events = events })
    }
  }
  location = /raising {
    content_by_lua_block {
      local client = require("workflows").new { on_event = function() error("hook boom") end }
      local first = client:list_runs("wf_demo", { limit = 1 })
      local second = client:list_runs("wf_demo", { limit = 1 })
      ngx.say(#first.items + #second.items, " ", client:event_failures())
    }
  }
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
  local function retry_after_race(shared, deadline)
    local heard, first, second = fresh("heard"), fresh("first"), fresh("second")
    plans.send(server, 0, { name = first, shared = shared, signal = heard,
      id = "wf_demo;status=429;retry_after=2;times=1;n=" .. first })
    plans.send(server, 1, { name = second, shared = shared, wait_for = heard,
      id = "wf_demo;n=" .. second, deadline = deadline })
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

  it("fails at once a call in another worker whose deadline the pause would pass", function()
    local _, second = retry_after_race(true, 1)
    assert.same({ 1, 0, 1 }, { second.failures, second.attempts, #second.errors })
    assert.matches("^workflows: timeout: deadline exceeded: the server asked for a [%d.]+ s "
      .. "pause %(Retry%-After, shared by the nginx workers%) before attempt 1 would start",
      second.errors[1])
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

  it("gives the clients of one worker one budget without it", function()
    local storm = "wf_demo;status=503;n=" .. fresh("per-worker")
    local first, second = fresh("first"), fresh("second")
    -- a setting no other test uses: a bucket of its own
    plans.send(server, 0, { name = first, retry_budget = { reserve = 3 }, id = storm })
    local before = plans.result(server, first)
    plans.send(server, 0, { name = second, retry_budget = { reserve = 3 }, id = storm })
    local after = plans.result(server, second)
    -- the second client, made after the first, finds the one token the first left
    assert.same({ 3, 0, 2, 1 }, { before.attempts, before.refused, after.attempts, after.refused })
  end)

  it("halves the window of a walk in one worker when another is pushed back", function()
    local walking, pushed, first, second = fresh("walking"), fresh("pushed"), fresh("first"),
      fresh("second")
    plans.send(server, 0, { name = first, shared = true, id = "wf_big",
      walk = { limit = 10, max = 300, pause_at = 150, walking = walking, resume = pushed } })
    plans.send(server, 1, { name = second, shared = true, wait_for = walking, done = pushed,
      id = "wf_demo;status=429;times=1;n=" .. second, walk = { limit = 5, max = 10 } })
    local walked, pushing = plans.result(server, first), plans.result(server, second)
    assert.same({ 300, 10 }, { walked.runs, pushing.runs })
    local shared_halvings = 0
    for _, change in ipairs(walked.windows) do
      if change[3] == "shared_pushback" then
        shared_halvings = shared_halvings + 1
        assert.equal(math.floor(change[1] / 2), change[2])
      end
      assert.is_not.equal("pushback", change[3])  -- its own pages never met a 429
    end
    assert.is_true(shared_halvings >= 1)
  end)

  it("sends the extra headers and reports events from the cosocket transport", function()
    local seq = sb:last_seq()
    local status, body = server:get("/traced?tag=ngx-7")
    assert.equal(200, status)
    local answer = require("cjson").decode(body)
    assert.equal(2, answer.items)
    local types, transports = {}, {}
    for i, ev in ipairs(answer.events) do
      types[i] = ev.type
      if ev.transport then transports[ev.transport] = true end
      for _, value in pairs(ev) do assert.is_nil(tostring(value):find(sb.token, 1, true)) end
    end
    assert.same({ "attempt_start", "attempt", "page" }, types)
    assert.same({ ngx = true }, transports)
    assert.same({ 200, "ok" }, { answer.events[2].status, answer.events[2].kind })
    assert.is_true(answer.events[2].bytes > 100)
    local sent
    for _, entry in ipairs(sb:log(seq)) do
      if entry.workflow_id == "wf_demo" then sent = entry.headers end
    end
    assert.same({ "00-trace-span-01", "ngx-7" }, { sent.Traceparent, sent["X-Request-Tag"] })
  end)

  it("reports a hook that raises once, in the error log, and goes on", function()
    local status, body = server:get("/raising")
    assert.same({ 200, "2 6\n" }, { status, body })
    local _, count = server:error_log():gsub("the on_event hook raised an error [^\n]*hook boom", "")
    assert.equal(1, count)
  end)

  it("names a lua_shared_dict nginx does not have", function()
    local status, body = server:get("/missing")
    assert.same({ 200, 'option "shared_dict": nginx has no lua_shared_dict "nope" (declare it '
      .. "in the http block, e.g. lua_shared_dict nope 1m;)\n" }, { status, body })
  end)
end)
