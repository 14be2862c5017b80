-- Bad input to the rest: a client's methods called on something else than a client,
-- and workflows.core's functions given arguments of the wrong type or range. Each is
-- refused with an error that says what was wrong, or handled. Never a crash.
local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"
local bad_input = require "spec.support.bad_input"

local without_position, raised_by = bad_input.without_position, bad_input.raised_by
local format, rep, huge, NAN = string.format, string.rep, math.huge, 0 / 0

describe("bad input", function()
  local sb = fixtures.sandbox { client = { timeout = 5, max_retries = 0 } }
  local client
  lazy_setup(function() client = sb:new_client() end)

  describe("methods called on something else than a client", function()
    for _, method in ipairs { "runs", "pages", "in_flight", "spawn", "close" } do
      it(format("%s raises, saying how to call it", method), function()
        for _, self in ipairs { "wf_demo", {}, 42 } do
          local err = raised_by(client[method], self, "wf_demo")
          assert.equal(format("client:%s: self is not a workflows client (call it as client:%s(...))",
            method, method), without_position(err))
        end
      end)
    end

    it("list_runs returns the error, saying how to call it", function()
      for _, self in ipairs { "wf_demo", {}, 42 } do
        local page, err = client.list_runs(self, "wf_demo")
        assert.is_nil(page)
        assert.equal("client:list_runs: self is not a workflows client (call it as "
          .. "client:list_runs(...))", without_position(err))
      end
    end)

    it("tostring and in_flight of a fresh client", function()
      local c = sb:new_client { base_url = sb.url .. "/" }
      assert.equal("workflows.client(" .. sb.url .. ")", tostring(c))
      assert.equal(0, c:in_flight())
    end)
  end)

  describe("workflows.core", function()
    it("raises for arguments of the wrong type", function()
      for _, call in ipairs {
        function() return core.escape_segment(nil) end,
        function() return core.escape_segment({}) end,
        function() return core.decode_page(nil) end,
        function() return core.decode_envelope(true) end,
        function() return core.sleep("soon") end,
      } do
        assert.matches("bad argument #1 to '.-' %(", raised_by(call))
      end
    end)

    it("sleeps not at all for NaN, negatives and -inf", function()
      local started = core.now()
      for _, value in ipairs { NAN, -1, -huge, 0 } do core.sleep(value) end
      assert.is_true(core.now() - started < 0.1)
    end)

    it("decodes anything without raising", function()
      for _, body in ipairs { "", "null", "42", "[]", "{}", "[1,2]", '{"data":[]}', "\0", "{",
          rep("[", 100000), rep("[", 10) .. rep("]", 10), '{"data":{"hasMore":false,"items":[],'
          .. '"limit":1,"offset":0}}', '"' .. rep("x", 100000) .. '"', "1e400", "NaN", "Infinity" } do
        local ok, page, message = pcall(core.decode_page, body)
        assert.is_true(ok, page)
        assert.is_true(page ~= nil or type(message) == "string")
        ok = pcall(core.decode_envelope, body)
        assert.is_true(ok)
      end
    end)

    it("refuses requests with fields of the wrong type or range", function()
      local session = core.session()
      local cases = {
        { {}, "request field 'url' is required" },
        { { url = 42 }, "request field 'url' must be a string" },
        { { url = "http://x", token = {} }, "request field 'token' must be a string" },
        { { url = "http://x", token = "a\r\nb" }, "the token must not contain line breaks" },
        { { url = "http://x", timeout = NAN }, "request field 'timeout' must be positive" },
        { { url = "http://x", timeout = -1 }, "request field 'timeout' must be positive" },
        { { url = "http://x", connect_timeout = "1" }, "request field 'connect_timeout' must be a number" },
        { { url = "http://x", max_body_bytes = 0 }, "request field 'max_body_bytes' must be at least 1" },
        { { url = "http://x", max_body_bytes = NAN }, "request field 'max_body_bytes' must be at least 1" },
      }
      for _, case in ipairs(cases) do
        assert.equal(case[2], without_position(raised_by(session.start, session, case[1])))
      end
      assert.matches("bad argument #2 to '.-' %(table expected", raised_by(session.start, session, "x"))
      session:close()
      assert.equal("attempt to use a closed session",
        without_position(raised_by(session.start, session, { url = "http://x" })))
      session:close()                               -- closing twice is fine
    end)

    it("takes extreme timeouts and body caps without overflowing", function()
      local session = core.session()
      local transfer = session:start { url = sb.url .. "/v1/workflows/wf_demo/runs?limit=1",
        token = sb.token, timeout = 1e308, connect_timeout = huge, max_body_bytes = 2 ^ 80 }
      while not transfer:done() do session:drive(0.5) end
      local outcome = transfer:result()
      assert.is_true(outcome.ok)
      assert.equal(1, #outcome.page.items)
      assert.equal(outcome, transfer:result())
      transfer:release()
      transfer:release()
      assert.equal("transfer was released", without_position(raised_by(transfer.result, transfer)))
      session:close()
    end)

    it("says so when a result is asked for too early", function()
      local session = core.session()
      local transfer = session:start { url = sb.url .. "/v1/workflows/wf_demo;fault=silent/runs" }
      assert.equal("transfer is still running", without_position(raised_by(transfer.result, transfer)))
      session:close()                               -- cancels the transfer
      assert.is_true(transfer:done())
      assert.equal("transfer was cancelled", without_position(raised_by(transfer.result, transfer)))
    end)
  end)
end)
