-- Every fault the sandbox can inject (doc/sandbox.md), and what the client makes of
-- it: the exact error the contract promises, the attempts the sandbox's request log
-- saw, the waits it honoured, and walks that come through retried faults whole.
local workflows = require "workflows"
local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

local format = string.format

-- Slack for "ends within timeout plus a small margin": scheduling, the sandbox's
-- threads, and sanitized builds.
local MARGIN = 0.6
-- libcurl counts its timeouts in whole milliseconds and may end one a little early.
local EARLY = 0.02

describe("faults", function()
  local sb = fixtures.sandbox { client = { max_retries = 1, timeout = 5 } }
  local unique = 0

  -- A workflow id carrying `directives` that no other test uses, so that the
  -- sandbox's per-id counters (times=, live=) start afresh.
  local function faulty(directives, name)
    unique = unique + 1
    return format("%s;%s;n=faults%d", name or "wf_demo", directives, unique)
  end

  -- list_runs(id) timed, with the requests the sandbox saw for it.
  local function list(c, id, opts)
    local seq = sb:last_seq()
    local started = core.now()
    local page, err = c:list_runs(id, opts)
    local elapsed = core.now() - started
    return page, err, sb:requests_for(id, seq), elapsed
  end

  -- The error a walk raises, timed, with the requests the sandbox saw for it.
  local function walk_error(c, id, opts)
    local seq = sb:last_seq()
    local started = core.now()
    local count = 0
    local ok, err = pcall(function()
      for _ in c:runs(id, opts) do count = count + 1 end
    end)
    assert.is_false(ok, "the walk should have failed")
    return err, sb:requests_for(id, seq), core.now() - started, count
  end

  describe("an HTTP error status", function()
    -- directive, status, the envelope's message, retried (max_retries = 1)
    local cases = {
      { 400, "Bad Request", "bad request", false },
      { 401, "Unauthorized", "unauthorized", false },
      { 403, "Forbidden", "forbidden", false },
      { 404, "Not Found", "not found", false },
      { 405, "Method Not Allowed", "method not allowed", false },
      { 409, "Conflict", "conflict", false },
      { 410, "Gone", "gone", false },
      { 501, "Not Implemented", "not implemented", false },
      { 505, "HTTP Version Not Supported", "http version not supported", false },
      { 408, "Request Timeout", "request timeout", true },
      { 429, "Too Many Requests", "too many requests", true },
      { 500, "Internal Server Error", "internal server error", true },
      { 502, "Bad Gateway", "bad gateway", true },
      { 503, "Service Unavailable", "service unavailable", true },
      { 504, "Gateway Timeout", "gateway timeout", true },
    }
    for _, case in ipairs(cases) do
      local status, reason, message, retried = case[1], case[2], case[3], case[4]
      local attempts = retried and 2 or 1
      it(format("%d is an http error after %d attempt(s)", status, attempts), function()
        local id = faulty("status=" .. status)
        local page, err, requests = list(sb:new_client(), id)
        assert.is_nil(page)
        assert.equal(attempts, #requests)
        local last = requests[#requests]
        assert.equal(status, last.status)
        assert.same({
          kind = "http", status = status, code = status, message = message,
          requestId = last.request_id, attempts = attempts,
        }, { kind = err.kind, status = err.status, code = err.code, message = err.message,
             requestId = err.requestId, attempts = err.attempts })
        assert.is_nil(err.retry_after)
        local suffix = retried and format("; %d attempts", attempts) or ""
        assert.equal(format("workflows: HTTP %d %s: %s (request %s%s)", status, reason, message,
          last.request_id, suffix), tostring(err))
      end)
    end

    it("retries up to max_retries and reports every attempt", function()
      local id = faulty("status=503")
      local _, err, requests = list(sb:new_client { max_retries = 3 }, id)
      assert.equal(4, #requests)
      assert.equal(4, err.attempts)
      assert.equal(requests[4].request_id, err.requestId)
    end)

    it("is not retried at all with max_retries = 0", function()
      local id = faulty("status=503")
      local _, err, requests = list(sb:new_client { max_retries = 0 }, id)
      assert.equal(1, #requests)
      assert.equal(1, err.attempts)
      assert.equal("http", err.kind)
    end)

    it("401 from a wrong token is not retried and never names the token", function()
      local c = sb:new_client { token = "not-the-token", max_retries = 2 }
      local page, err, requests = list(c, "wf_demo")
      assert.is_nil(page)
      assert.equal(1, #requests)
      assert.equal("invalid", requests[1].auth)
      assert.equal(format("workflows: HTTP 401 Unauthorized: invalid bearer token (request %s)",
        requests[1].request_id), tostring(err))
      assert.is_nil(tostring(err):find("not-the-token", 1, true))
    end)

    it("an empty token is an invalid_argument before any request", function()
      local c = sb:new_client { token = "" }
      local page, err, requests = list(c, "wf_demo")
      assert.is_nil(page)
      assert.equal(0, #requests)
      assert.same({ kind = "invalid_argument", attempts = 0,
        message = "no API token: pass the token option to workflows.new or set WORKFLOWS_API_TOKEN" },
        { kind = err.kind, attempts = err.attempts, message = err.message })
    end)

    it("a 2xx without a page (204) is a decode error, not retried", function()
      local id = faulty("status=204")
      local _, err, requests = list(sb:new_client(), id)
      assert.equal(1, #requests)
      assert.same({ kind = "decode", attempts = 1,
        message = "response body is empty, expected a JSON object",
        requestId = requests[1].request_id },
        { kind = err.kind, status = err.status, attempts = err.attempts, message = err.message,
          requestId = err.requestId })
    end)
  end)

  describe("Retry-After", function()
    it("in seconds is waited out before the next attempt", function()
      local id = faulty("status=503;retry_after=1;times=1")
      local page, err, requests, elapsed = list(sb:new_client(), id)
      assert.is_nil(err)
      assert.equal(20, #page.items)
      assert.equal(2, #requests)
      assert.equal(503, requests[1].status)
      assert.equal(200, requests[2].status)
      assert.is_true(requests[2].ts - requests[1].ts >= 0.95,
        "the second attempt came after " .. (requests[2].ts - requests[1].ts) .. " s")
      assert.is_true(elapsed >= 1 and elapsed < 1 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("as an HTTP date is waited out until that date", function()
      local id = faulty("status=429;retry_after_date=2;times=1")
      local page, err, requests, elapsed = list(sb:new_client(), id)
      assert.is_nil(err)
      assert.equal(20, #page.items)
      assert.equal(2, #requests)
      -- The date has whole seconds: "2 s ahead" is between 1 and 2 s away.
      local gap = requests[2].ts - requests[1].ts
      assert.is_true(gap >= 0.95 and gap < 2 + MARGIN, "the second attempt came after " .. gap .. " s")
      assert.is_true(elapsed < 2 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("longer than the client sleeps (60 s) ends the call at once with retry_after", function()
      local id = faulty("status=503;retry_after=120")
      local _, err, requests, elapsed = list(sb:new_client { max_retries = 2 }, id)
      assert.equal(1, #requests)
      assert.is_true(elapsed < MARGIN, "took " .. elapsed .. " s")
      assert.same({ kind = "http", status = 503, attempts = 1, retry_after = 120 },
        { kind = err.kind, status = err.status, attempts = err.attempts, retry_after = err.retry_after })
      assert.equal(format("workflows: HTTP 503 Service Unavailable: service unavailable "
        .. "(request %s; retry after 120 s)", requests[1].request_id), tostring(err))
    end)

    it("that cannot be read falls back to the backoff", function()
      local id = faulty("status=503;retry_after=soon")
      local _, err, requests, elapsed = list(sb:new_client(), id)
      assert.equal(2, #requests)
      assert.equal(2, err.attempts)
      assert.is_nil(err.retry_after)
      assert.is_true(elapsed < 0.5 + MARGIN, "took " .. elapsed .. " s")
    end)

    it("past the deadline ends the call with a timeout instead of sleeping", function()
      local id = faulty("status=503;retry_after=5")
      local _, err, requests, elapsed = list(sb:new_client { max_retries = 2, deadline = 2 }, id)
      assert.equal(1, #requests)
      assert.is_true(elapsed < MARGIN, "took " .. elapsed .. " s")
      assert.equal("timeout", err.kind)
      assert.equal(1, err.attempts)
      assert.equal("deadline exceeded: a 5 s wait before attempt 2 would pass it "
        .. "(after HTTP 503 Service Unavailable: service unavailable)", err.message)
    end)
  end)

  describe("a body that is not a page", function()
    it("invalid JSON is a decode error, not retried", function()
      local id = faulty("fault=invalid_json")
      local _, err, requests = list(sb:new_client(), id)
      assert.equal(1, #requests)
      assert.equal("invalid_json", requests[1].fault)
      assert.equal("decode", err.kind)
      assert.is_nil(err.status)
      assert.equal(1, err.attempts)
      assert.equal(requests[1].request_id, err.requestId)
      assert.matches("^invalid JSON: .* at character %d+$", err.message)
    end)

    it("valid JSON of the wrong shape is a decode error naming the field", function()
      local id = faulty("fault=wrong_shape")
      local _, err, requests = list(sb:new_client(), id)
      assert.equal(1, #requests)
      assert.same({ kind = "decode", attempts = 1,
        message = "data.items is an object, expected an array", requestId = requests[1].request_id },
        { kind = err.kind, status = err.status, attempts = err.attempts, message = err.message,
          requestId = err.requestId })
    end)

    it("an HTML error page (502) is an http error with the header's request id", function()
      local id = faulty("fault=html")
      local _, err, requests = list(sb:new_client(), id)
      assert.equal(2, #requests)
      assert.same({ kind = "http", status = 502, attempts = 2, requestId = requests[2].request_id },
        { kind = err.kind, status = err.status, attempts = err.attempts, requestId = err.requestId })
      assert.is_nil(err.message)
      assert.equal(format("workflows: HTTP 502 Bad Gateway (request %s; 2 attempts)",
        requests[2].request_id), tostring(err))
    end)

    it("larger than max_body_bytes is refused as it arrives", function()
      local id = faulty("fault=huge;huge_bytes=1048576")
      local _, err, requests, elapsed = list(sb:new_client { max_body_bytes = 65536 }, id)
      assert.equal(1, #requests)
      assert.same({ kind = "decode", attempts = 1,
        message = "response body is larger than max_body_bytes (65536 bytes)" },
        { kind = err.kind, status = err.status, attempts = err.attempts, message = err.message })
      assert.is_true(elapsed < 1 + MARGIN, "took " .. elapsed .. " s")
    end)
  end)

  describe("a transfer that breaks off", function()
    it("a body shorter than its Content-Length is a network error, retried", function()
      local id = faulty("fault=short")
      local _, err, requests = list(sb:new_client(), id)
      assert.equal(2, #requests)
      assert.equal("network", err.kind)
      assert.is_nil(err.status)  -- the status line said 200; the answer never came whole
      assert.equal(2, err.attempts)
      assert.equal(requests[2].request_id, err.requestId)
      assert.matches("^transfer closed with %d+ bytes remaining to read$", err.message)
    end)

    it("a connection reset is a network error, retried", function()
      local id = faulty("fault=reset")
      local _, err, requests = list(sb:new_client(), id)
      assert.equal(2, #requests)
      assert.same({ kind = "network", attempts = 2,
        message = "Recv failure: Connection reset by peer", requestId = requests[2].request_id },
        { kind = err.kind, status = err.status, attempts = err.attempts, message = err.message,
          requestId = err.requestId })
    end)

    it("a refused connection is a network error after every attempt", function()
      local c = workflows.new { base_url = "http://127.0.0.1:9", token = "tok-12345", max_retries = 1 }
      local page, err = c:list_runs("wf_demo")
      assert.is_nil(page)
      assert.same({ kind = "network", attempts = 2 }, { kind = err.kind, attempts = err.attempts })
      assert.is_nil(err.status)
      assert.matches("^Failed to connect to 127%.0%.0%.1 port 9", err.message)
    end)
  end)

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
