-- on_event: one table per event, for metrics and tracing, from every transport.
local fixtures = require "spec.support.fixtures"
local retry = require "workflows.retry"
local luv_loop = require "spec.support.luv_loop"
local cqueues_loop = require "spec.support.cqueues_loop"
local core = require "workflows.core"

local unique = fixtures.demo_id_maker("events")

local function types_of(events)
  local types = {}
  for i, ev in ipairs(events) do types[i] = ev.type end
  return types
end

local function of_type(events, wanted)
  local found = {}
  for _, ev in ipairs(events) do
    if ev.type == wanted then found[#found + 1] = ev end
  end
  return found
end

describe("on_event", function()
  local sb = fixtures.sandbox { client = { timeout = 5 } }
  local base

  -- retries come after a wait of at most a few milliseconds here
  before_each(function() base = retry.BASE; retry.BASE = 0.002 end)
  after_each(function() retry.BASE = base end)

  local function recording_client(options)
    local events = {}
    options = options or {}
    options.on_event = function(ev) events[#events + 1] = ev end
    return sb:new_client(options), events
  end

  it("reports each attempt, the retry between them, and the page", function()
    local client, events = recording_client { max_retries = 1 }
    local id = unique("status=503;times=1")
    local page = assert(client:list_runs(id, { limit = 2 }))
    assert.same({ "attempt_start", "attempt", "retry", "attempt_start", "attempt", "page" },
      types_of(events))
    local url = sb.url .. "/v1/workflows/" .. core.escape_segment(id) .. "/runs?limit=2"
    local start, failed, again, succeeded = events[1], events[2], events[3], events[5]
    assert.same({ type = "attempt_start", method = "GET", url = url, attempt = 1,
      transport = "curl" }, start)
    assert.same({ "GET", url, 503, "http", 1, "curl", false },
      { failed.method, failed.url, failed.status, failed.kind, failed.attempt,
        failed.transport, failed.reused })
    assert.matches("^req_", failed.request_id)
    assert.is_true(failed.bytes > 0 and failed.elapsed >= 0)
    assert.same({ url, 1, "503" }, { again.url, again.attempt, again.why })
    assert.is_true(again.delay >= 0 and again.delay <= retry.BASE)
    assert.same({ 200, "ok", 2, page.requestId }, { succeeded.status, succeeded.kind,
      succeeded.attempt, succeeded.request_id })
    assert.is_true(succeeded.bytes > 100)
    assert.same({ type = "page", url = url, offset = 0, items = 2, limit = 2, has_more = true,
      request_id = page.requestId, attempts = 2 }, events[6])
  end)

  it("names the kind of a failure without a status", function()
    local client, events = recording_client { base_url = "http://127.0.0.1:1", max_retries = 0 }
    assert.is_nil(client:list_runs("wf_demo"))
    local attempt = of_type(events, "attempt")[1]
    assert.same({ "network", nil, 0 }, { attempt.kind, attempt.status, attempt.bytes })
  end)

  it("reports the pages of a walk and a window that grows and halves", function()
    local client, events = recording_client { prefetch = "auto" }
    local count = 0
    -- every page's first attempt answers 503: each page after the first halves the window
    for _ in client:runs(unique("status=503;times=1"), { limit = 5, max = 20 }) do
      count = count + 1
    end
    assert.equal(20, count)
    local pages, items = of_type(events, "page"), 0
    assert.equal(0, pages[1].offset)
    for i, ev in ipairs(pages) do
      items = items + ev.items
      if i > 1 then assert.is_true(ev.offset > pages[i - 1].offset) end
    end
    assert.is_true(items >= 20)  -- the last page may hold more than `max` takes
    local whys = {}
    for _, ev in ipairs(of_type(events, "window")) do
      whys[ev.why] = true
      if ev.why == "pushback" then assert.equal(math.floor(ev.from / 2), ev.to) end
      if ev.why == "grow" then assert.equal(ev.from + 1, ev.to) end
    end
    assert.same({ grow = true, pushback = true }, whys)
    for _, ev in ipairs(of_type(events, "attempt_start")) do
      assert.equal("number", type(ev.window))  -- the walk's window when it was sent
    end
  end)

  it("reports the budget's state when it refuses a retry", function()
    local client, events = recording_client { max_retries = 2, retry_budget = { reserve = 1 } }
    local storm = unique("status=503")
    local _, first = client:list_runs(storm)
    local _, second = client:list_runs(storm)
    assert.same({ 2, 1 }, { first.attempts, second.attempts })
    local refusals = of_type(events, "budget")
    assert.equal(2, #refusals)  -- the first call's second retry, the second call's first
    assert.same({ type = "budget", url = refusals[2].url, attempt = 1, why = "503",
      tokens = 0, reserve = 1, ratio = 0.2, shared = false }, refusals[2])
  end)

  it("never carries the token", function()
    local client, events = recording_client { max_retries = 1, prefetch = 2 }
    assert(client:list_runs(unique("status=429;retry_after=0;times=1")))
    for _ in client:runs("wf_demo", { limit = 10, max = 30 }) do end
    client:list_runs("wf_missing")
    assert.is_true(#events > 10)
    for _, ev in ipairs(events) do
      for key, value in pairs(ev) do
        assert.is_nil(tostring(value):find(sb.token, 1, true), key)
      end
    end
  end)

  describe("a hook that raises", function()
    local stderr, written
    before_each(function()
      stderr, written = io.stderr, {}
      -- the warning goes to io.stderr: a stand-in that keeps what is written
      rawset(io, "stderr", { write = function(_, ...)
        for i = 1, select("#", ...) do written[#written + 1] = select(i, ...) end
      end })
    end)
    after_each(function() rawset(io, "stderr", stderr) end)

    it("never breaks a walk, and is reported once", function()
      local calls = 0
      local client = sb:new_client { on_event = function()
        calls = calls + 1
        error("hook failed " .. calls)
      end }
      local count = 0
      for _ in client:runs("wf_demo", { limit = 10, max = 40 }) do count = count + 1 end
      local page = client:list_runs("wf_demo", { limit = 3 })
      rawset(io, "stderr", stderr)
      assert.equal(40, count)
      assert.equal(3, #page.items)
      assert.is_true(calls > 8)
      assert.equal(calls, client:event_failures())
      local text = table.concat(written)
      assert.matches("^workflows: the on_event hook raised an error %(.-hook failed 1%); later "
        .. "ones are only counted %(client:event_failures%(%)%)\n$", text)
    end)
  end)

  local describe_luv = luv_loop.uv and describe or pending
  describe_luv("in a libuv task", function()
    it("names the uv transport", function()
      local client, events = recording_client { loop = luv_loop.uv }
      local done
      client:spawn(function() assert(client:list_runs("wf_demo", { limit = 1 })) end,
        function(ok, err) done = { ok, err } end)
      luv_loop.run_until(function() return done ~= nil end, 20)
      client:close()
      assert.same({ true }, done)
      assert.same({ "attempt_start", "attempt", "page" }, types_of(events))
      assert.same({ "libuv", "libuv", 200 }, { events[1].transport, events[2].transport,
        events[2].status })
    end)
  end)

  local describe_cqueues = cqueues_loop.cqueues and describe or pending
  describe_cqueues("in a cqueues controller", function()
    it("names the cqueues transport", function()
      local client, events = recording_client()
      local ended = cqueues_loop.run({ function()
        return client:list_runs("wf_demo", { limit = 1 }) ~= nil
      end }, 20)
      client:close()
      assert.same({ n = 1, ok = true, true }, ended[1])
      assert.same({ "cqueues", 200 }, { events[2].transport, events[2].status })
    end)
  end)
end)
