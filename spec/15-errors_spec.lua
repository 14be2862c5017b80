local errors = require "workflows.errors"
local fixtures = require "spec.support.fixtures"

local fields = fixtures.fields

-- An error object with the given fields, as the layer makes them.
local function error_with(given)
  return setmetatable(given, getmetatable(errors.timeout("", 0)))
end

describe("workflows.errors", function()
  describe("__tostring", function()
    local lines = {
      { { kind = "http", status = 404, message = "workflow not found", requestId = "abc-123",
          attempts = 1 },
        "workflows: HTTP 404 Not Found: workflow not found (request abc-123)" },
      { { kind = "http", status = 503, code = 503, message = "service unavailable",
          requestId = "req_1", attempts = 3 },
        "workflows: HTTP 503 Service Unavailable: service unavailable (request req_1; 3 attempts)" },
      { { kind = "http", status = 429, message = "too many requests", attempts = 1,
          retry_after = 120 },
        "workflows: HTTP 429 Too Many Requests: too many requests (retry after 120 s)" },
      { { kind = "http", status = 502, requestId = "req_2", attempts = 1 },
        "workflows: HTTP 502 Bad Gateway (request req_2)" },
      { { kind = "http", status = 599, attempts = 1 }, "workflows: HTTP 599" },
      { { kind = "timeout", message = "request timed out (after 1 s)", attempts = 2 },
        "workflows: timeout: request timed out (after 1 s) (2 attempts)" },
      { { kind = "network", message = "Connection refused", attempts = 1 },
        "workflows: network: Connection refused" },
      { { kind = "decode", message = "data.items is an object, expected an array",
          requestId = "req_3", attempts = 1 },
        "workflows: decode: data.items is an object, expected an array (request req_3)" },
      { { kind = "invalid_argument", message = 'invalid status "failed"', attempts = 0 },
        'workflows: invalid argument: invalid status "failed"' },
      { { kind = "http", status = 503, attempts = 1, retry_after = 90.5 },
        "workflows: HTTP 503 Service Unavailable (retry after 90.5 s)" },
    }
    for _, case in ipairs(lines) do
      it("gives " .. case[2], function()
        assert.equal(case[2], tostring(error_with(case[1])))
      end)
    end
  end)

  describe("from_outcome()", function()
    it("maps the core's failure to the contract's fields", function()
      local err = errors.from_outcome({ ok = false, kind = "http", status = 404, code = 404,
        message = "workflow not found", request_id = "req_9", retry_after = 3, elapsed = 0.1,
        reused = true }, 1)
      assert.same({ kind = "http", status = 404, code = 404, message = "workflow not found",
        requestId = "req_9", attempts = 1 }, fields(err))
      assert.equal(getmetatable(errors.timeout("", 0)), getmetatable(err))
    end)

    it("passes Retry-After on only when it is longer than the client sleeps", function()
      local err = errors.from_outcome({ ok = false, kind = "http", status = 429,
        retry_after = 61 }, 1)
      assert.equal(61, err.retry_after)
    end)

    it("keeps the token out of the message and the request id", function()
      local err = errors.from_outcome({ ok = false, kind = "http", status = 400,
        message = "bad token s3cret-token-1", request_id = "id-s3cret-token-1" }, 1,
        "s3cret-token-1")
      assert.equal("bad token ***", err.message)
      assert.equal("id-***", err.requestId)
    end)

    it("says that a redirect without a body was not followed", function()
      local err = errors.from_outcome({ ok = false, kind = "http", status = 302 }, 1)
      assert.equal("workflows: HTTP 302 Found: redirect not followed", tostring(err))
    end)

    it("keeps the core's message for other kinds", function()
      local err = errors.from_outcome({ ok = false, kind = "network", message = "reset",
        curl_code = 56, tls = nil }, 2)
      assert.same({ kind = "network", message = "reset", attempts = 2 }, fields(err))
    end)

    it("gives the status to http errors only, whatever status line came before", function()
      for _, kind in ipairs { "network", "timeout", "decode" } do
        local err = errors.from_outcome({ ok = false, kind = kind, status = 200,
          message = "Recv failure: Connection reset by peer", request_id = "req_1" }, 1)
        assert.same({ kind = kind, message = "Recv failure: Connection reset by peer",
          requestId = "req_1", attempts = 1 }, fields(err))
      end
    end)

    it("says when a host that does not resolve is the built-in default base URL", function()
      local outcome = { ok = false, kind = "network",
        message = "Could not resolve host: api.example.com", curl_code = 6 }
      assert.equal("workflows: network: Could not resolve host: api.example.com (the built-in "
        .. "default base URL, used because no base_url was given and WORKFLOWS_BASE_URL is not "
        .. "set)", tostring(errors.from_outcome(outcome, 1, nil, true)))
      -- nginx's advice about its resolver would send the caller to the wrong fix
      outcome.message = "Could not resolve host: api.example.com (nginx has no resolver: add a "
        .. "resolver directive to nginx.conf, e.g. resolver 127.0.0.53;)"
      assert.equal("Could not resolve host: api.example.com (the built-in default base URL, "
        .. "used because no base_url was given and WORKFLOWS_BASE_URL is not set)",
        errors.from_outcome(outcome, 1, nil, true).message)
    end)

    it("leaves the message alone when the base URL was given", function()
      local outcome = { ok = false, kind = "network",
        message = "Could not resolve host: api.example.com", curl_code = 6 }
      assert.equal("Could not resolve host: api.example.com",
        errors.from_outcome(outcome, 1, nil, false).message)
      assert.equal("Could not resolve host: api.example.com",
        errors.from_outcome(outcome, 1).message)
    end)
  end)

  describe("invalid_argument()", function()
    it("makes an error of no attempts", function()
      assert.same({ kind = "invalid_argument", message = "bad", attempts = 0 },
        fields(errors.invalid_argument("bad")))
    end)
  end)

  describe("string methods", function()
    it("act on the error's line, so code written for string errors keeps working", function()
      local err = errors.timeout("late", 1)
      assert.equal("workflows: timeout: late", tostring(err))
      assert.equal(12, (err:find("timeout", 1, true)))
      assert.equal("late", err:match("(%a+)$"))
      assert.equal("error: workflows: timeout: late", "error: " .. err)
      assert.is_nil(err.status)
    end)
  end)

  describe("REASONS", function()
    local statuses = { [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
      [404] = "Not Found", [408] = "Request Timeout", [429] = "Too Many Requests",
      [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
      [504] = "Gateway Timeout" }
    for status, phrase in pairs(statuses) do
      it("names " .. status .. " " .. phrase, function()
        assert.equal(phrase, errors.REASONS[status])
      end)
    end
  end)
end)
