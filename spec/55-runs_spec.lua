local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

local unpack = table.unpack or unpack

local fields = fixtures.fields
local requests_for = fixtures.requests_for

describe("runs()", function()
  local sb = fixtures.sandbox { client = { timeout = 2, max_retries = 1 } }
  local client
  local unique = fixtures.demo_id_maker("runs")

  local walks = 0

  -- The ids of every run of a walk, and the log entries the walk made. The walk
  -- goes to an id of its own (same runs), so that pages an earlier walk prefetched
  -- and cancelled cannot land in this walk's slice of the request log.
  local function walk(walker, id, options)
    walks = walks + 1
    local own_id = ("%s;n=runs-walk-%d-%d"):format(id, walks, os.time())
    local seq, ids = sb:last_seq(), {}
    for run in walker:runs(own_id, options) do ids[#ids + 1] = run.id end
    return ids, requests_for(sb, own_id, seq)
  end

  -- The ids of the runs list_runs gives page after page, for comparison.
  local function listed(id, options)
    local ids, offset = {}, 0
    repeat
      local page = assert(client:list_runs(id, { limit = 100, offset = offset,
        status = options and options.status }))
      for _, run in ipairs(page.items) do ids[#ids + 1] = run.id end
      offset = offset + #page.items
    until not page.hasMore
    return ids
  end

  local function duplicates(ids)
    local seen, twice = {}, {}
    for _, id in ipairs(ids) do
      if seen[id] then twice[#twice + 1] = id end
      seen[id] = true
    end
    return twice
  end

  lazy_setup(function()
    client = sb:new_client()
  end)

  describe("walks", function()
    it("every run in order, each once", function()
      local ids = walk(client, "wf_demo")
      assert.equal(250, #ids)
      assert.same(listed("wf_demo"), ids)
      assert.same({}, duplicates(ids))
    end)

    it("with the largest page size, 100, unless limit is given", function()
      local _, entries = walk(client, "wf_demo")
      for _, entry in ipairs(entries) do assert.equal("100", entry.query.limit) end
      local ids, limited = walk(client, "wf_demo", { limit = 30 })
      assert.equal(250, #ids)
      for _, entry in ipairs(limited) do assert.equal("30", entry.query.limit) end
    end)

    it("only the runs of one status when asked", function()
      -- wf_demo's runs under an id of its own: requests that earlier walks cancelled
      -- may still reach the sandbox's log as wf_demo.
      local id = ("wf_demo;n=runs-status-%d"):format(os.time())
      local seq, count = sb:last_seq(), 0
      for run in client:runs(id, { status = "failure" }) do
        count = count + 1
        assert.equal("failure", run.status)
      end
      assert.equal(#listed(id, { status = "failure" }), count)
      assert.equal("failure", requests_for(sb, id, seq)[1].query.status)
    end)

    it("nothing for a workflow without runs", function()
      local ids, entries = walk(client, "wf_empty")
      assert.same({}, ids)
      assert.equal(1, #entries)
    end)

    it("runs as plain tables with JSON null as nil", function()
      local unfinished = 0
      for run in client:runs("wf_demo", { max = 100 }) do
        assert.equal("string", type(run.id))
        if run.status == "running" then
          unfinished = unfinished + 1
          assert.is_nil(run.finishedAt)
        end
      end
      assert.is_true(unfinished > 0)
    end)
  end)

  describe("max", function()
    it("stops after max runs", function()
      local ids = walk(client, "wf_demo", { max = 150 })
      assert.equal(150, #ids)
      assert.same({ unpack(listed("wf_demo"), 1, 150) }, ids)
    end)

    it("requests no page it will not need", function()
      local _, entries = walk(sb:new_client { prefetch = 2 }, "wf_demo", { max = 150 })
      assert.equal(2, #entries)
      local _, one = walk(sb:new_client { prefetch = 2 }, "wf_demo", { max = 5 })
      assert.equal(1, #one)
    end)

    it("leaves nothing in flight once reached", function()
      local walker = sb:new_client { prefetch = 3 }
      local count = 0
      for _ in walker:runs("wf_demo", { max = 120, limit = 20 }) do count = count + 1 end
      assert.equal(120, count)
      assert.equal(0, walker:in_flight())
    end)
  end)

  describe("dedupe", function()
    it("sees new runs at the head shift the listing", function()
      local id = unique("live=5")
      local first = assert(client:list_runs(id, { limit = 10 }))
      local second = assert(client:list_runs(id, { limit = 10, offset = 10 }))
      local shown = {}
      for _, run in ipairs(first.items) do shown[run.id] = true end
      local again = 0
      for _, run in ipairs(second.items) do if shown[run.id] then again = again + 1 end end
      assert.equal(5, again)
    end)

    it("yields no run twice while runs arrive at the head, and misses none", function()
      local ids = walk(sb:new_client { prefetch = 0 }, unique("live=5"), { limit = 50 })
      assert.same({}, duplicates(ids))
      local yielded = {}
      for _, id in ipairs(ids) do yielded[id] = true end
      for _, id in ipairs(listed("wf_demo")) do assert.is_true(yielded[id], id) end
    end)

    it("yields no run twice while runs arrive at the head, with pages in flight", function()
      local ids = walk(sb:new_client { prefetch = 2 }, unique("live=5"), { limit = 50 })
      assert.same({}, duplicates(ids))
      assert.is_true(#ids > 200, #ids .. " runs")
    end)

    it("remembers a bounded window of ids, not every id: memory stays flat", function()
      local used_kb = require("spec.support.heap").used_kb
      local count, early = 0, nil
      -- keeping every id would add over 1 MB between runs 5,000 and 20,000; the walk
      -- keeps a few thousand at most
      for _ in sb:new_client { prefetch = 2 }:runs("wf_big") do
        count = count + 1
        if count == 5000 then early = used_kb() end
        if count == 20000 then
          local growth = used_kb() - early
          assert.is_true(growth < 500, ("%.0f KB more after %d runs"):format(growth, count))
        end
      end
      assert.equal(20000, count)
    end)
  end)

  describe("deadline", function()
    it("bounds the whole walk", function()
      local walker = sb:new_client { prefetch = 0 }
      local started, count = core.now(), 0
      local ok, err = pcall(function()
        for _ in walker:runs(unique("latency=300"), { limit = 50, deadline = 0.7 }) do
          count = count + 1
        end
      end)
      local took = core.now() - started
      assert.is_false(ok)
      assert.equal("timeout", err.kind)
      assert.is_true(count >= 50 and count < 250, count .. " runs")
      assert.is_true(took < 1.2, "took " .. took)
    end)

    it("fails a page whose first attempt would start after it", function()
      local walker = sb:new_client { prefetch = 0 }
      local ok, err = pcall(function()
        for _ in walker:runs("wf_demo", { deadline = 0.3 }) do core.sleep(0.01) end
      end)
      assert.is_false(ok)
      assert.same({ kind = "timeout", attempts = 0,
        message = "deadline exceeded before attempt 1 could start" }, fields(err))
    end)

    it("of the client bounds each page with its retries", function()
      local walker = sb:new_client { prefetch = 0, max_retries = 3, deadline = 0.5 }
      local ok, err = pcall(function()
        for _ in walker:runs(unique("status=503;retry_after=1")) do end
      end)
      assert.is_false(ok)
      assert.equal("timeout", err.kind)
      assert.equal(1, err.attempts)
    end)
  end)

  describe("errors", function()
    it("are raised as the error object for pcall to return", function()
      local seq = sb:last_seq()
      local ok, err = pcall(function()
        for _ in client:runs("wf_nowhere") do end
      end)
      assert.is_false(ok)
      local entries = requests_for(sb, "wf_nowhere", seq)
      assert.same({ kind = "http", status = 404, code = 404, message = "workflow not found",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
    end)

    it("come after the runs of the pages before them", function()
      local count = 0
      local ok, err = pcall(function()
        for _ in sb:new_client { prefetch = 0 }:runs(unique("fault=stuck_offset")) do
          count = count + 1
        end
      end)
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      assert.equal(100, count)
    end)
  end)
end)
