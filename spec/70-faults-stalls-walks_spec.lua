-- The sandbox's faults in time and across pages (doc/sandbox.md), and what the
-- client makes of them: servers that stall, a redirect, listings that do not advance,
-- and walks that come through retried faults whole. The exact error the contract
-- promises, the attempts the sandbox's request log saw, and the time it took.
local fixtures = require "spec.support.fixtures"
local faults = require "spec.support.faults"

local format = string.format
local MARGIN, EARLY = faults.MARGIN, faults.EARLY

describe("faults", function()
  local sb = fixtures.sandbox { client = { max_retries = 1, timeout = 5 } }
  local faulty, list, walk_error = faults.helpers(sb)

  describe("a server that stalls", function()
    -- Timeouts of half a second or less: the waits are real, and these run on every Lua.
    it("a body dripping a byte a second ends at timeout", function()
      local id = faulty("fault=drip")
      local _, err, requests, elapsed = list(sb:new_client { timeout = 0.5, max_retries = 0 }, id)
      assert.equal(1, #requests)
      assert.equal("timeout", err.kind)
      assert.equal(1, err.attempts)
      assert.equal(requests[1].request_id, err.requestId)
      assert.matches("^request timed out %(Operation timed out after %d+ milliseconds with "
        .. "%d+ out of %d+ bytes received%)$", err.message)
      assert.is_true(elapsed >= 0.5 - EARLY and elapsed < 0.5 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("a server that never answers ends at timeout, without status or request id", function()
      local id = faulty("fault=silent")
      local _, err, requests, elapsed = list(sb:new_client { timeout = 0.5, max_retries = 0 }, id)
      assert.equal(1, #requests)
      assert.same({ kind = "timeout", attempts = 1 }, { kind = err.kind, attempts = err.attempts })
      local waited = tonumber(err.message:match("^request timed out %(Operation timed out after "
        .. "(%d+) milliseconds with 0 bytes received%)$"))
      assert.is_true(waited and waited >= 500 - EARLY * 1000 and waited < 500 + MARGIN * 1000, err.message)
      assert.is_nil(err.status)
      assert.is_nil(err.requestId)
      assert.is_true(elapsed >= 0.5 - EARLY and elapsed < 0.5 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("timeouts are retried, each attempt within timeout", function()
      local id = faulty("fault=silent")
      local _, err, requests, elapsed = list(sb:new_client { timeout = 0.3, max_retries = 1 }, id)
      assert.equal(2, #requests)
      assert.equal("timeout", err.kind)
      assert.equal(2, err.attempts)
      -- two attempts and one backoff of at most 0.5 s
      assert.is_true(elapsed >= 0.6 - EARLY and elapsed < 0.6 + 0.5 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("the deadline cuts retries of a silent server short", function()
      local id = faulty("fault=silent")
      local _, err, _, elapsed = list(sb:new_client { timeout = 0.4, max_retries = 5, deadline = 0.8 }, id)
      assert.equal("timeout", err.kind)
      assert.matches("^deadline exceeded", err.message)
      -- the first attempt runs its whole timeout; the deadline ends whatever follows
      assert.is_true(elapsed >= 0.4 - EARLY and elapsed < 0.8 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("latency beyond timeout is a timeout; latency within it is no fault", function()
      local slow = faulty("latency=1500")
      local _, err, _, elapsed = list(sb:new_client { timeout = 0.5, max_retries = 0 }, slow)
      assert.equal("timeout", err.kind)
      assert.is_true(elapsed < 0.5 + MARGIN, "took " .. elapsed .. " s")
      local page, late = list(sb:new_client { timeout = 2 }, faulty("latency=100"))
      assert.is_nil(late)
      assert.equal(20, #page.items)
    end)
  end)

  describe("a redirect", function()
    it("is not followed: a 302 is an http error and no second request is made", function()
      local id = faulty("fault=redirect")
      local seq = sb:last_seq()
      local _, err, requests = list(sb:new_client { max_retries = 2 }, id)
      assert.equal(1, #requests)
      assert.equal(1, #sb:log(seq))
      assert.same({ kind = "http", status = 302, attempts = 1, requestId = requests[1].request_id },
        { kind = err.kind, status = err.status, attempts = err.attempts, requestId = err.requestId })
    end)
  end)

  describe("a listing that does not advance", function()
    it("hasMore with no items: one page is returned, a walk raises a decode error", function()
      local id = faulty("fault=empty_has_more")
      local page, none = list(sb:new_client(), id)
      assert.is_nil(none)
      assert.is_true(page.hasMore)
      assert.equal(0, #page.items)
      local err, requests = walk_error(sb:new_client(), id)
      assert.equal(1, #requests)
      assert.equal("decode", err.kind)
      assert.equal("data.hasMore is true but data.items is empty (offset 0)", err.message)
      assert.equal(requests[1].request_id, err.requestId)
    end)

    it("an offset stuck at 0 ends the walk with a decode error", function()
      local id = faulty("fault=stuck_offset")
      local err, _, elapsed, count = walk_error(sb:new_client { prefetch = 0 }, id, { limit = 50 })
      assert.equal(50, count)
      assert.equal("decode", err.kind)
      assert.truthy(err.message:match("^data%.offset is 0 where %d+ was requested, twice in a row$"),
        err.message)
      assert.is_true(elapsed < MARGIN, "took " .. elapsed .. " s")
    end)
  end)

  describe("a walk", function()
    local all_ids

    -- wf_demo's 250 run ids in listing order, from a walk without faults.
    local function demo_ids()
      if not all_ids then
        all_ids = {}
        for run in sb:new_client():runs("wf_demo") do all_ids[#all_ids + 1] = run.id end
        assert.equal(250, #all_ids)
      end
      return all_ids
    end

    local survivable = {
      "status=503;times=1", "status=429;times=1", "status=500;times=1", "fault=html;times=1",
      "fault=reset;times=1", "fault=short;times=1", "fault=silent;times=1", "fault=drip;times=1",
    }
    for _, directives in ipairs(survivable) do
      it(format("through %s yields every run exactly once", directives), function()
        local expected = demo_ids()
        local id = faulty(directives)
        local seq = sb:last_seq()
        local ids = {}
        for run in sb:new_client { timeout = 0.5 }:runs(id) do ids[#ids + 1] = run.id end
        assert.same(expected, ids)
        -- every page failed once, then came through (pages past the end may be cancelled)
        local per_offset = {}
        for _, entry in ipairs(sb:requests_for(id, seq)) do
          local offset = entry.query.offset
          per_offset[offset] = (per_offset[offset] or 0) + 1
        end
        assert.same({ 2, 2, 2 }, { per_offset["0"], per_offset["99"], per_offset["198"] })
      end)
    end

    -- Runs that arrive at the head push the listing down between two page requests.
    local function live_walk(prefetch)
      local seen, duplicates, missing = {}, 0, 0
      for run in sb:new_client { prefetch = prefetch }:runs(faulty("live=7"), { limit = 40 }) do
        if seen[run.id] then duplicates = duplicates + 1 end
        seen[run.id] = true
      end
      for _, id in ipairs(demo_ids()) do
        if not seen[id] then missing = missing + 1 end
      end
      return duplicates, missing
    end

    it("with runs arriving at the head yields no run twice (prefetch 2)", function()
      local duplicates = live_walk(2)
      assert.equal(0, duplicates)
    end)

    it("with runs arriving at the head and no prefetch yields every run once", function()
      local duplicates, missing = live_walk(0)
      assert.same({ 0, 0 }, { duplicates, missing })
    end)

    it("raises the error of a fault that persists, after the retries", function()
      local id = faulty("status=500")
      local err, requests = walk_error(sb:new_client(), id)
      assert.same({ kind = "http", status = 500, attempts = 2, message = "internal server error" },
        { kind = err.kind, status = err.status, attempts = err.attempts, message = err.message })
      -- the first page and the prefetched ones each tried twice, and nothing more
      assert.is_true(#requests >= 2 and #requests <= 6, #requests .. " requests")
    end)
  end)
end)
