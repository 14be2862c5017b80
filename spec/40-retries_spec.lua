local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

local fields = fixtures.fields
local requests_for = fixtures.requests_for

describe("retries", function()
  local sb = fixtures.sandbox { client = { timeout = 2 } }
  local unique = fixtures.demo_id_maker("retries")

  -- Runs list_runs and returns its two results, the log entries it made and
  -- the seconds it took.
  local function timed(client, id, options)
    local seq, started = sb:last_seq(), core.now()
    local page, err = client:list_runs(id, options)
    return page, err, requests_for(sb, id, seq), core.now() - started
  end


  describe("list_runs()", function()
    it("retries a 503 and returns the page that follows", function()
      local page, err, entries = timed(sb:new_client { max_retries = 2 },
        unique("status=503;times=2"), { limit = 3 })
      assert.is_nil(err)
      assert.equal(3, #page.items)
      assert.equal(3, #entries)
      assert.same({ 503, 503, 200 }, { entries[1].status, entries[2].status, entries[3].status })
      for _, entry in ipairs(entries) do assert.equal(entries[1].raw_path, entry.raw_path) end
    end)

    for _, status in ipairs { 408, 429, 500, 502, 504 } do
      it("retries " .. status, function()
        local page, _, entries = timed(sb:new_client { max_retries = 1 },
          unique("status=" .. status .. ";times=1"), { limit = 1 })
        assert.equal(1, #page.items)
        assert.equal(2, #entries)
        assert.equal(status, entries[1].status)
      end)
    end

    for _, status in ipairs { 403, 409, 422, 501 } do
      it("never retries " .. status, function()
        local _, err, entries = timed(sb:new_client { max_retries = 2 },
          unique("status=" .. status .. ";times=1"))
        assert.equal(1, #entries)
        assert.equal(status, err.status)
        assert.equal(1, err.attempts)
      end)
    end

    it("makes one attempt only with max_retries = 0", function()
      local _, err, entries = timed(sb:new_client { max_retries = 0 }, unique("status=503"))
      assert.equal(1, #entries)
      assert.equal(1, err.attempts)
    end)

    it("backs off at most 0.5 s, then 1 s, between attempts", function()
      local _, err, entries, took = timed(sb:new_client { max_retries = 2 }, unique("status=500"))
      assert.equal(3, #entries)
      assert.equal(3, err.attempts)
      assert.is_true(took < 1.5 + 0.5, "took " .. took)
      assert.is_true(entries[2].ts - entries[1].ts <= 0.5 + 0.1)
      assert.is_true(entries[3].ts - entries[2].ts <= 1 + 0.1)
    end)

    it("waits at least Retry-After seconds", function()
      local page, _, entries, took = timed(sb:new_client { max_retries = 1 },
        unique("status=503;retry_after=1;times=1"), { limit = 1 })
      assert.equal(1, #page.items)
      assert.equal(2, #entries)
      assert.is_true(took >= 1, "took " .. took)
      assert.is_true(took < 2, "took " .. took)
      assert.is_true(entries[2].ts - entries[1].ts >= 0.95)
    end)

    it("waits until a Retry-After date", function()
      local page, _, entries, took = timed(sb:new_client { max_retries = 1 },
        unique("status=429;retry_after_date=2;times=1"), { limit = 1 })
      assert.equal(1, #page.items)
      assert.equal(2, #entries)
      -- The date has whole seconds: two seconds ahead is one to two seconds away.
      assert.is_true(took >= 0.95, "took " .. took)
      assert.is_true(took < 3, "took " .. took)
    end)

    it("fails at once with retry_after when asked to wait longer than 60 s", function()
      local page, err, entries, took = timed(sb:new_client { max_retries = 2 },
        unique("status=429;retry_after=120"))
      assert.is_nil(page)
      assert.equal(1, #entries)
      assert.is_true(took < 0.5, "took " .. took)
      assert.same({ kind = "http", status = 429, code = 429, message = "too many requests",
        requestId = entries[1].request_id, attempts = 1, retry_after = 120 }, fields(err))
      assert.equal("workflows: HTTP 429 Too Many Requests: too many requests (request "
        .. entries[1].request_id .. "; retry after 120 s)", tostring(err))
    end)

    it("fails at once with retry_after for a Retry-After date an hour ahead", function()
      local _, err, entries = timed(sb:new_client { max_retries = 2 },
        unique("status=503;retry_after_date=3600"))
      assert.equal(1, #entries)
      assert.is_true(err.retry_after > 3590 and err.retry_after <= 3600, err.retry_after)
    end)

    it("sets no retry_after for a wait it slept through", function()
      local _, err = timed(sb:new_client { max_retries = 1 }, unique("status=503;retry_after=1"))
      assert.equal(2, err.attempts)
      assert.is_nil(err.retry_after)
    end)
  end)

  describe("deadline", function()
    it("fails at once with a timeout when a wait would overrun it", function()
      local _, err, entries, took = timed(sb:new_client { max_retries = 2, deadline = 0.8 },
        unique("status=503;retry_after=1"))
      assert.equal(1, #entries)
      assert.is_true(took < 0.5, "took " .. took)
      assert.same({ kind = "timeout", attempts = 1, message = "deadline exceeded: a 1 s wait "
        .. "before attempt 2 would pass it (after HTTP 503 Service Unavailable: service "
        .. "unavailable)" }, fields(err))
      assert.equal("workflows: timeout: " .. err.message, tostring(err))
    end)

    it("given to list_runs, replaces the client's", function()
      local _, err, entries = timed(sb:new_client { max_retries = 2, deadline = 60 },
        unique("status=503;retry_after=1"), { deadline = 0.8 })
      assert.equal(1, #entries)
      assert.equal("timeout", err.kind)
    end)

    it("clips each attempt's timeout to what is left of it", function()
      local _, err, entries, took = timed(sb:new_client { timeout = 5, max_retries = 2,
        deadline = 0.5 }, unique("fault=silent"))
      assert.equal(1, #entries)
      assert.is_true(took >= 0.45 and took < 1.5, "took " .. took)
      assert.equal("timeout", err.kind)
      assert.equal(1, err.attempts)
      assert.truthy(err.message:match("^deadline exceeded during attempt 1 %(request timed out"),
        err.message)
    end)

    it("leaves room for retries that fit in it", function()
      local page, err, entries = timed(sb:new_client { max_retries = 2, deadline = 10 },
        unique("status=503;times=1"), { limit = 2 })
      assert.is_nil(err)
      assert.equal(2, #page.items)
      assert.equal(2, #entries)
    end)
  end)
end)
