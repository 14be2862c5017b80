local retry = require "workflows.retry"

local function constant(value) return function() return value end end

describe("workflows.retry", function()
  describe("is_retryable()", function()
    local cases = {
      { { kind = "network", message = "Connection refused" }, true },
      { { kind = "network", tls = true, message = "TLS verification failed" }, false },
      { { kind = "network", message = "Could not resolve host: api.invalid" }, false },
      { { kind = "network", message = "Could not resolve host: api.invalid (nginx has no "
        .. "resolver: add a resolver directive to nginx.conf, e.g. resolver 127.0.0.53;)" }, false },
      { { kind = "network", proxy_status = 407, message = "proxy refused CONNECT to a:443: 407" },
        false },
      { { kind = "network", proxy_status = 502, message = "proxy refused CONNECT to a:443: 502" },
        true },
      { { kind = "timeout" }, true },
      { { kind = "http", status = 408 }, true },
      { { kind = "http", status = 429 }, true },
      { { kind = "http", status = 500 }, true },
      { { kind = "http", status = 502 }, true },
      { { kind = "http", status = 503 }, true },
      { { kind = "http", status = 504 }, true },
      { { kind = "http", status = 501 }, false },
      { { kind = "http", status = 400 }, false },
      { { kind = "http", status = 401 }, false },
      { { kind = "http", status = 404 }, false },
      { { kind = "http", status = 302 }, false },
      { { kind = "decode" }, false },
      { { kind = "decode", too_large = true }, false },
    }
    for _, case in ipairs(cases) do
      local outcome = case[1]
      it(("says %s for %s %s%s"):format(tostring(case[2]), outcome.kind,
          tostring(outcome.status or outcome.message or ""), outcome.tls and " (tls)" or ""), function()
        assert.equal(case[2], retry.is_retryable(outcome))
      end)
    end
  end)

  describe("unresolved_host()", function()
    it("names the host of a failure to resolve, in libcurl's words and nginx's", function()
      assert.equal("api.invalid", retry.unresolved_host { kind = "network",
        message = "Could not resolve host: api.invalid" })
      assert.equal("api.invalid", retry.unresolved_host { kind = "network",
        message = "Could not resolve host: api.invalid (nginx has no resolver: ...)" })
    end)

    it("is nil for every other failure", function()
      assert.is_nil(retry.unresolved_host { kind = "network", message = "Connection refused" })
      assert.is_nil(retry.unresolved_host { kind = "network" })
      assert.is_nil(retry.unresolved_host { kind = "timeout",
        message = "Could not resolve host: api.invalid" })
    end)
  end)

  describe("backoff()", function()
    it("draws from [0, 0.5 * 2^(attempt-1)] with full jitter", function()
      assert.equal(0, retry.backoff(1, constant(0)))
      assert.equal(0.25, retry.backoff(1, constant(0.5)))
      assert.equal(0.5, retry.backoff(2, constant(0.5)))
      assert.equal(1, retry.backoff(3, constant(0.5)))
    end)

    it("never lets the ceiling pass 8 seconds", function()
      assert.equal(4, retry.backoff(5, constant(0.5)))
      assert.equal(4, retry.backoff(6, constant(0.5)))
      assert.equal(4, retry.backoff(30, constant(0.5)))
    end)
  end)

  describe("wait()", function()
    it("waits at least what Retry-After asked for", function()
      assert.equal(5, retry.wait({ kind = "http", status = 503, retry_after = 5 }, 1, constant(0.9)))
    end)

    it("keeps a longer backoff over a shorter Retry-After", function()
      assert.equal(3.6, retry.wait({ kind = "http", status = 503, retry_after = 1 }, 4,
        constant(0.9)))
    end)
  end)

  describe("delay()", function()
    it("waits and retries while retries are left", function()
      assert.equal(0.5, retry.delay({ kind = "timeout" }, 2, 2, constant(0.5)))
    end)

    it("gives up when max_retries are used", function()
      assert.is_nil(retry.delay({ kind = "timeout" }, 3, 2, constant(0.5)))
      assert.is_nil(retry.delay({ kind = "timeout" }, 1, 0, constant(0.5)))
    end)

    it("gives up at once on what is not retryable", function()
      assert.is_nil(retry.delay({ kind = "http", status = 404 }, 1, 5, constant(0)))
    end)

    it("gives up instead of sleeping through a wait longer than 60 s", function()
      assert.is_nil(retry.delay({ kind = "http", status = 429, retry_after = 61 }, 1, 2,
        constant(0)))
    end)

    it("sleeps through exactly 60 s", function()
      assert.equal(60, retry.delay({ kind = "http", status = 429, retry_after = 60 }, 1, 2,
        constant(0)))
    end)
  end)

  describe("random_source()", function()
    it("stays in [0, 1) and varies", function()
      local random = retry.random_source(12345)
      local seen = {}
      for _ = 1, 1000 do
        local value = random()
        assert.is_true(value >= 0 and value < 1)
        seen[math.floor(value * 10)] = true
      end
      for decile = 0, 9 do assert.is_true(seen[decile], "decile " .. decile) end
    end)

    it("differs between seeds", function()
      assert.are_not.equal(retry.random_source(1)(), retry.random_source(2)())
    end)
  end)
end)
