-- The sandbox's faults in what a server answers (doc/sandbox.md), and what the
-- client makes of them: HTTP error statuses, Retry-After in its forms, bodies that are
-- not a page, and transfers that break off. The exact error the contract promises, the
-- attempts the sandbox's request log saw, and the waits it honoured.
local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"
local faults = require "spec.support.faults"

local format, MARGIN = string.format, faults.MARGIN

describe("faults", function()
  local sb = fixtures.sandbox { client = { max_retries = 1, timeout = 5 } }
  local faulty, list = faults.helpers(sb)

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
end)
