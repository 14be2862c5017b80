-- client:watch on the blocking transport, over real TCP against the sandbox: every
-- run that arrives is reported once (bursts larger than a page too), changes come
-- with their old values, a run that only moves down is no event, and a steady watch
-- costs one request per poll. Listings that live by the clock (every_ms, finish_ms)
-- and by the request (live, churn) come from the sandbox (doc/sandbox.md).
local fixtures = require "spec.support.fixtures"

local INTERVAL = 0.1

local function ids_of(events, kind)
  local ids = {}
  for _, event in ipairs(events) do
    if kind == nil or event.type == kind then ids[#ids + 1] = event.run.id end
  end
  return ids
end

local function sorted(list)
  local copy = {}
  for i, value in ipairs(list) do copy[i] = value end
  table.sort(copy)
  return copy
end

local function count(events, kind)
  return #ids_of(events, kind)
end

local function has(list, wanted)
  for _, value in ipairs(list) do if value == wanted then return true end end
  return false
end

-- The events of a watch, until `enough(events)` holds (checked after each event)
-- or the watch's deadline ends it.
local function collect(client, id, options, enough)
  local events = {}
  local iterator, state, control, watch = client:watch(id, options)
  for event in iterator, state, control do
    events[#events + 1] = event
    if enough and enough(events) then break end
  end
  watch:close()
  return events, watch
end

describe("client:watch()", function()
  local sb = fixtures.sandbox { client = { timeout = 5 } }
  local suffix = fixtures.suffix_maker("watch")

  describe("on a listing that lives by the clock", function()
    it("reports every arrival once as added, bursts larger than a page too", function()
      -- 3 bursts of 150 runs, 200 ms apart: each more than a page of 100
      local id = "wf_empty;every_ms=200;burst=150;ticks=3;" .. suffix()
      local events = collect(sb:new_client(), id, { interval = INTERVAL, deadline = 10 },
        function(seen) return #seen >= 450 end)
      assert.equal(450, #events)
      local arrived = sb:present(id)
      assert.equal(450, #arrived)
      assert.same(sorted(arrived), sorted(ids_of(events, "added")))
    end)

    it("reads further down only when a burst passed the horizon", function()
      local id = "wf_empty;every_ms=200;burst=150;ticks=2;" .. suffix()
      local seq = sb:last_seq()
      collect(sb:new_client(), id, { interval = INTERVAL, deadline = 10 },
        function(seen) return #seen >= 300 end)
      local deeper = 0
      for _, entry in ipairs(sb:requests_for(id, seq)) do
        if entry.query.offset ~= "0" then deeper = deeper + 1 end
      end
      -- one read past the first page per burst (the first poll saw an empty listing)
      assert.equal(2, deeper)
    end)

    it("reports each finished run as changed, with the old values of what changed", function()
      local id = "wf_empty;every_ms=100;burst=5;ticks=2;finish_ms=150;" .. suffix()
      local events = collect(sb:new_client(), id, { interval = INTERVAL, deadline = 10 },
        function(seen) return count(seen, "changed") >= 10 end)
      local added_at = {}
      for i, event in ipairs(events) do
        if event.type == "added" then
          assert.is_nil(added_at[event.run.id])
          added_at[event.run.id] = i
          assert.equal("running", event.run.status)
          assert.is_nil(event.previous)
        end
      end
      local changed = {}
      for i, event in ipairs(events) do
        if event.type == "changed" then
          local run = event.run
          assert.is_true(added_at[run.id] < i)
          assert.is_nil(changed[run.id])
          changed[run.id] = true
          assert.equal("running", event.previous.status)
          assert.is_nil(event.previous.finishedAt)
          assert.is_true(run.status == "success" or run.status == "failure")
          assert.is_string(run.finishedAt)
          assert.is_true(has(event.fields, "status") and has(event.fields, "finishedAt"))
          for _, name in ipairs(event.fields) do
            assert.is_true(name == "status" or name == "finishedAt" or name == "totalCu")
          end
          if has(event.fields, "totalCu") then assert.is_number(event.previous.totalCu) end
        end
      end
      assert.same(sorted(ids_of(events, "added")), sorted(ids_of(events, "changed")))
      assert.same(sorted(sb:present(id)), sorted(ids_of(events, "added")))
    end)

    it("reports only the runs in the listing under its status filter", function()
      local id = "wf_empty;every_ms=100;burst=20;ticks=2;finish_ms=0;" .. suffix()
      local events = collect(sb:new_client(), id, { status = "failure", interval = INTERVAL,
        deadline = 0.6 })
      assert.same(sorted(sb:present(id, "failure")), sorted(ids_of(events, "added")))
      for _, event in ipairs(events) do assert.equal("failure", event.run.status) end
    end)
  end)

  describe("on a listing that changes with each request", function()
    it("reports the runs in view first, then each arrival once and each change", function()
      local id = "wf_demo;live=3;churn=2;" .. suffix()
      local seq = sb:last_seq()
      local events = collect(sb:new_client(), id, { initial = true, interval = INTERVAL },
        function(seen) return count(seen, "added") >= 9 end)
      local entries = sb:requests_for(id, seq)
      assert.equal(4, #entries)   -- one per poll: the first, then three with 3 arrivals each
      local existing = {}
      for i = 1, 100 do
        assert.equal("existing", events[i].type)
        existing[101 - i] = events[i].run.id   -- oldest first: the listing reversed
      end
      local first = assert(sb:new_client():list_runs("wf_demo", { limit = 100 }))
      -- the first request brought 3 arrivals ahead of the demo's own runs
      for i = 4, 100 do assert.equal(first.items[i - 3].id, existing[i]) end
      local window = sb:history(id, nil, entries[1].version)
      local arrivals = {}
      for _, run_id in ipairs(window.any) do
        if not has(window.throughout, run_id) then arrivals[#arrivals + 1] = run_id end
      end
      assert.same(sorted(arrivals), sorted(ids_of(events, "added")))
      local known = {}
      for _, event in ipairs(events) do
        if event.type == "changed" then
          assert.is_true(known[event.run.id])
          assert.are_not.equal(event.previous.status, event.run.status)
          assert.is_true(has(event.fields, "status"))
        else
          known[event.run.id] = true
        end
      end
    end)
  end)

  describe("on a listing whose runs move down", function()
    it("reports the run that arrived and nothing of the runs it pushed down", function()
      -- one arrival before each answer: every poll sees its whole view one place lower
      local id = "wf_demo;live=1;" .. suffix()
      local events, watch = collect(sb:new_client(), id, { interval = INTERVAL },
        function(seen) return #seen >= 5 end)
      assert.equal(6, watch:polls())
      for _, event in ipairs(events) do
        assert.equal("added", event.type)
        assert.equal("running", event.run.status)
      end
    end)
  end)

  describe("at a steady state", function()
    it("makes one request per poll, for the first page only", function()
      local id = "wf_demo;" .. suffix()
      local seq = sb:last_seq()
      local events, watch = collect(sb:new_client(), id, { interval = INTERVAL, deadline = 0.55 })
      assert.same({}, events)
      local entries = sb:requests_for(id, seq)
      assert.is_true(watch:polls() >= 3, watch:polls() .. " polls")
      assert.equal(watch:polls(), #entries)
      for _, entry in ipairs(entries) do assert.same({ limit = "100", offset = "0" }, entry.query) end
    end)

    it("reports no change that a caller made to the runs it was handed", function()
      local id = "wf_demo;" .. suffix()
      local events = {}
      local iterator, state, control, watch = sb:new_client():watch(id,
        { interval = INTERVAL, initial = true, horizon = 10, deadline = 0.45 })
      for event in iterator, state, control do
        events[#events + 1] = event.type
        event.run.status, event.run.totalCu = "cancelled", -1
      end
      watch:close()
      assert.is_true(watch:polls() >= 3, watch:polls() .. " polls")
      assert.equal(10, #events)
      for _, kind in ipairs(events) do assert.equal("existing", kind) end
    end)

    it("asks for no more runs than its horizon, and its status filter", function()
      local id = "wf_demo;" .. suffix()
      local seq = sb:last_seq()
      collect(sb:new_client(), id, { horizon = 10, status = "success", interval = INTERVAL,
        deadline = 0.25 })
      local entries = sb:requests_for(id, seq)
      assert.is_true(#entries >= 2)
      for _, entry in ipairs(entries) do
        assert.same({ limit = "10", offset = "0", status = "success" }, entry.query)
      end
    end)

    it("waits out a Retry-After and polls again an interval after the answer", function()
      local id = "wf_demo;status=429;retry_after=1;times=1;" .. suffix()
      local seq = sb:last_seq()
      collect(sb:new_client(), id, { interval = INTERVAL, deadline = 1.4 })
      local entries = sb:requests_for(id, seq)
      assert.is_true(#entries >= 3, #entries .. " requests")
      assert.equal(429, entries[1].status)
      assert.is_true(entries[2].ts - entries[1].ts >= 0.95)
      assert.is_true(entries[3].ts - entries[2].ts >= INTERVAL * 0.9 - 0.01)
    end)
  end)

  describe("ends", function()
    it("at its deadline, quietly", function()
      local events, watch = collect(sb:new_client(), "wf_demo",
        { initial = true, interval = INTERVAL, deadline = 0.3 })
      assert.equal(100, #events)
      assert.is_true(watch:polls() >= 2)
    end)

    it("when closed, and its iterator then returns nil", function()
      local iterator, _, _, watch = sb:new_client():watch("wf_demo", { initial = true })
      assert.equal("existing", iterator().type)
      watch:close()
      watch:close()
      assert.is_nil(iterator())
    end)

    it("with the error a walk raises, and returns nil after it", function()
      local iterator = sb:new_client():watch("wf_missing", { interval = INTERVAL })
      local ok, err = pcall(iterator)
      assert.is_false(ok)
      assert.same({ "http", 404 }, { err.kind, err.status })
      assert.is_nil(iterator())
    end)
  end)

  describe("with on_event", function()
    it("blocks without a loop, hands each event over and ends when it returns false", function()
      local got = {}
      local task = sb:new_client():watch("wf_demo", { initial = true }, function(event, err)
        got[#got + 1] = { event = event, err = err }
        return #got < 5
      end)
      assert.equal(5, #got)
      assert.is_false(task:running())
    end)

    it("hands over the error once, as on_event(nil, err)", function()
      local got = {}
      sb:new_client():watch("wf_missing", nil, function(event, err)
        got[#got + 1] = { event = event, err = err }
      end)
      assert.equal(1, #got)
      assert.is_nil(got[1].event)
      assert.equal(404, got[1].err.status)
    end)

    it("says on_event(nil) once when the deadline ends it", function()
      local got = 0
      sb:new_client():watch("wf_demo", { interval = INTERVAL, deadline = 0.2 }, function(event, err)
        assert.is_nil(event)
        assert.is_nil(err)
        got = got + 1
      end)
      assert.equal(1, got)
    end)
  end)
end)
