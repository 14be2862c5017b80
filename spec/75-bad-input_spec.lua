-- Bad input to every public function: each value is either refused with an
-- invalid_argument error that names the problem, before any request, or used
-- correctly (an id of any bytes arrives as one path segment). Never a crash.
local workflows = require "workflows"
local core = require "workflows.core"
local sandbox = require "spec.support.sandbox"

local format, rep = string.format, string.rep
local huge = math.huge
local NAN = 0 / 0

-- A value as the error messages show it after "(got ...)". Strings with control
-- characters are shown escaped; only their opening quote is checked.
local function shown(value)
  local kind = type(value)
  if kind == "string" then
    if value:find('[%c"\\]') then return nil end
    return '"' .. value .. '"'
  end
  if kind == "number" then
    if value ~= value then return "nan" end
    if value == huge then return "inf" end
    if value == -huge then return "-inf" end
    return tostring(value)
  end
  if kind == "nil" or kind == "boolean" then return tostring(value) end
  return kind
end

-- What an id must look like in the request line: every byte but A-Z a-z 0-9 - . _ ~
-- as %XX, and a dot-segment ("." or "..") with its dots encoded too.
local function encoded(id)
  if id == "." or id == ".." then return (id:gsub("%.", "%%2E")) end
  return (id:gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

local function without_position(message)
  return (tostring(message):gsub("^[^:]*:%d+: ", ""))
end

-- `message` is `head .. " (got " .. shown(value) .. ")"`; for a string that shows
-- escaped, only up to its opening quote.
local function assert_refused(message, head, value)
  local got = shown(value)
  if got then
    assert.equal(format("%s (got %s)", head, got), message)
  else
    assert.equal(head .. ' (got "', message:sub(1, #head + 7))
  end
end

local function raised_by(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

-- A table of bad values for a number option, with the message part that follows
-- 'option "NAME" must be EXPECTED'.
local function bad_numbers(extra)
  local values = { NAN, huge, -huge, -1, -1e308, "1", true, {}, print }
  for _, value in ipairs(extra or {}) do values[#values + 1] = value end
  return values
end

-- option, the phrase after "must be", bad values, good extremes that must work
local CLIENT_NUMBERS = {
  { "timeout", "a positive number", bad_numbers { 0, -0.0 }, { 1e308 } },
  { "connect_timeout", "a positive number", bad_numbers { 0 }, { 1e308 } },
  { "deadline", "a positive number", bad_numbers { 0 }, { 1e308 } },
  { "max_retries", "a non-negative integer", bad_numbers { 0.5, 1.5 }, { 0, 1e300 } },
  { "prefetch", "an integer in 0..64", bad_numbers { 65, 1e300, 2.5 }, { 0, 64 } },
  { "max_body_bytes", "a positive integer", bad_numbers { 0, 0.5 }, { 1e300, 2 ^ 70 } },
}

local CALL_NUMBERS = {
  { "limit", "an integer in 1..100", bad_numbers { 0, 101, 1e300, 50.5 } },
  { "offset", "a non-negative integer", bad_numbers { 0.5 } },
  { "deadline", "a positive number", bad_numbers { 0 } },
}

local WALK_NUMBERS = {
  { "max", "a positive integer", bad_numbers { 0, 0.5 } },
}

-- Wrapped, since a list cannot hold nil.
local BAD_IDS = { { nil }, { "" }, { 42 }, { true }, { false }, { {} }, { print }, { NAN } }

local GOOD_IDS = {
  "a/b", "a?b=c", "a#frag", "100%", "%2F", "..", ".", "...", "a/../b", "../wf_demo",
  "with space", " ", "tab\there", "new\nline", "nul\0byte", "semi;colon=1", "plus+sign",
  "wörkflow ✓", "日本語", "\240\159\152\128", rep("x", 10240), rep("é", 5120),
}

describe("bad input", function()
  local sb, client

  lazy_setup(function()
    sb = sandbox.start()
    client = workflows.new { base_url = sb.url, token = sb.token, timeout = 5, max_retries = 0 }
  end)
  lazy_teardown(function() sb:stop() end)

  -- Runs `fn` and returns what it returned (or raised) and how many requests reached
  -- the sandbox meanwhile.
  local function requests_during(fn)
    local seq = sb:last_seq()
    local results = { pcall(fn) }
    return results, #sb:log(seq)
  end

  local function check_invalid(err, message)
    assert.equal("table", type(err), "expected an error object, got " .. tostring(err))
    assert.same({ kind = "invalid_argument", message = message, attempts = 0 },
      { kind = err.kind, message = err.message, attempts = err.attempts })
    assert.equal("workflows: invalid argument: " .. message, tostring(err))
  end

  -- list_runs returns the error; runs and pages raise it: all three, no request.
  local function check_every_call(id, opts, message)
    local results, requests = requests_during(function() return client:list_runs(id, opts) end)
    assert.is_true(results[1])
    assert.is_nil(results[2])
    check_invalid(results[3], message)
    assert.equal(0, requests)
    for _, method in ipairs { "runs", "pages" } do
      results, requests = requests_during(function() return client[method](client, id, opts) end)
      assert.is_false(results[1], method .. " should raise")
      check_invalid(results[2], message)
      assert.equal(0, requests)
    end
  end

  describe("workflows.new()", function()
    for _, case in ipairs(CLIENT_NUMBERS) do
      local name, expected, bad, good = case[1], case[2], case[3], case[4]
      for _, value in ipairs(bad) do
        it(format("refuses %s = %s", name, shown(value) or "a string with control characters"),
          function()
            local err = raised_by(workflows.new, { [name] = value })
            assert_refused(without_position(err),
              format('workflows.new: option "%s" must be %s', name, expected), value)
          end)
      end
      for _, value in ipairs(good) do
        it(format("takes %s = %s and still lists a page", name, shown(value)), function()
          local c = workflows.new { base_url = sb.url, token = sb.token, [name] = value }
          local page, err = c:list_runs("wf_demo", { limit = 3 })
          assert.is_nil(err)
          assert.equal(3, #page.items)
        end)
      end
    end

    local string_options = {
      { "base_url", "an http:// or https:// URL without query or fragment",
        { "", "ftp://x", "http://", "http://h/?q=1", "http://h/#f", "http://h x", 42, {}, true } },
      { "user_agent", "a non-empty string without control characters",
        { "", "a\r\nX-Evil: 1", "\0", 42, {}, false } },
      { "ca_file", "a non-empty string", { "", 42, {}, true } },
      { "ca_path", "a non-empty string", { "", 42, {}, true } },
    }
    for _, case in ipairs(string_options) do
      local name, expected, bad = case[1], case[2], case[3]
      for _, value in ipairs(bad) do
        it(format("refuses %s = %s", name, shown(value) or "a string with control characters"),
          function()
            local err = raised_by(workflows.new, { [name] = value })
            assert_refused(without_position(err),
              format('workflows.new: option "%s" must be %s', name, expected), value)
          end)
      end
    end

    for _, value in ipairs { 42, true, {}, NAN, "with\nnewline", "with\0nul" } do
      it(format("refuses token = %s without showing it", type(value)), function()
        local err = raised_by(workflows.new, { token = value })
        local message = without_position(err)
        local suffix = type(value) == "string" and "" or format(" (got %s)", type(value))
        assert.equal('workflows.new: option "token" must be a string without control characters'
          .. suffix, message)
        if type(value) == "string" then assert.is_nil(message:find(value, 1, true)) end
      end)
    end

    for _, given in ipairs { "x", 42, true, print } do
      it(format("refuses options that are a %s", type(given)), function()
        local err = raised_by(workflows.new, given)
        assert.equal(format("workflows.new: options must be a table (got %s)", shown(given)),
          without_position(err))
      end)
    end

    it("refuses unknown options, naming the nearest one", function()
      local cases = {
        { { timout = 1 }, 'unknown option "timout" (did you mean "timeout"?)' },
        { { TOKEN = "x" }, 'unknown option "TOKEN" (did you mean "token"?)' },
        { { [1] = true }, "unknown option 1" },
        { { [true] = 1 }, "unknown option true" },
        { { verify = false }, 'unknown option "verify"' },
        { { follow_redirects = true }, 'unknown option "follow_redirects"' },
      }
      for _, case in ipairs(cases) do
        assert.equal("workflows.new: " .. case[2], without_position(raised_by(workflows.new, case[1])))
      end
    end)
  end)

  describe("list_runs(), runs() and pages()", function()
    for _, case in ipairs(BAD_IDS) do
      local id = case[1]
      it(format("refuse the id %s", shown(id)), function()
        check_every_call(id, nil, format("workflow id must be a non-empty string (got %s)", shown(id)))
      end)
    end

    for _, case in ipairs(CALL_NUMBERS) do
      local name, expected, bad = case[1], case[2], case[3]
      for _, value in ipairs(bad) do
        it(format("refuse %s = %s", name, shown(value)), function()
          check_every_call("wf_demo", { [name] = value },
            format('option "%s" must be %s (got %s)', name, expected, shown(value)))
        end)
      end
    end

    -- Offsets past 2^53, which no Lua can write into a query string as they are.
    for _, value in ipairs { 2 ^ 63, 1e300 } do
      it(format("refuse offset = %s, past what a number keeps exactly", shown(value)), function()
        local results, requests = requests_during(function()
          return client:list_runs("wf_demo", { offset = value })
        end)
        assert.is_true(results[1], "list_runs raised: " .. tostring(results[2]))
        assert.is_nil(results[2])
        assert.equal("invalid_argument", results[3].kind)
        assert.matches('^option "offset" must be ', results[3].message)
        assert.equal(0, requests)
        for _, method in ipairs { "runs", "pages" } do
          results = requests_during(function() return client[method](client, "wf_demo", { offset = value }) end)
          assert.is_false(results[1])
          assert.equal("table", type(results[2]), method .. " raised " .. tostring(results[2]))
          assert.equal("invalid_argument", results[2].kind)
        end
      end)
    end

    for _, value in ipairs { NAN, huge, "all", 0, -5, 1.5, {} } do
      it(format("refuse status = %s", shown(value)), function()
        local results = requests_during(function() return client:list_runs("wf_demo", { status = value }) end)
        assert.equal("invalid_argument", results[3].kind)
        if type(value) == "string" then
          assert.matches('^invalid status "all"', results[3].message)
        else
          assert.equal(format('option "status" must be a string (got %s)', shown(value)),
            results[3].message)
        end
      end)
    end

    for _, case in ipairs(WALK_NUMBERS) do
      local name, expected, bad = case[1], case[2], case[3]
      for _, value in ipairs(bad) do
        it(format("runs and pages refuse %s = %s", name, shown(value)), function()
          for _, method in ipairs { "runs", "pages" } do
            local results, requests = requests_during(function()
              return client[method](client, "wf_demo", { [name] = value })
            end)
            assert.is_false(results[1])
            check_invalid(results[2], format('option "%s" must be %s (got %s)', name, expected, shown(value)))
            assert.equal(0, requests)
          end
        end)
      end
    end

    it("take a huge max and walk to the end", function()
      -- no prefetch: a page requested past the end could reach the sandbox's log
      -- after this test, where the next one counts requests
      local c = workflows.new { base_url = sb.url, token = sb.token, prefetch = 0 }
      local count = 0
      for _ in c:runs("wf_demo", { max = 1e300 }) do count = count + 1 end
      assert.equal(250, count)
    end)

    it("refuse options that are not a table, and unknown options", function()
      check_every_call("wf_demo", "limit=5", 'options must be a table (got "limit=5")')
      check_every_call("wf_demo", 5, "options must be a table (got 5)")
      check_every_call("wf_demo", { limt = 5 }, 'unknown option "limt" (did you mean "limit"?)')
      check_every_call("wf_demo", { [1] = "failure" }, "unknown option 1")
      check_every_call("wf_demo", { timeout = 1 }, 'unknown option "timeout"')
    end)

    for _, id in ipairs(GOOD_IDS) do
      local label = shown(id) or '"' .. id:gsub("%c", "?") .. '"'
      if #id > 40 then label = format("%d bytes of %s", #id, label:sub(1, 3)) end
      it(format("send the id %s as one path segment", label), function()
        local seq = sb:last_seq()
        local page, err = client:list_runs(id)
        assert.is_nil(page)
        local entries = sb:log(seq)
        assert.equal(1, #entries)
        local entry = entries[1]
        assert.equal("/v1/workflows/" .. encoded(id) .. "/runs", entry.raw_path)
        assert.equal(id, entry.workflow_id)
        assert.same({ kind = "http", status = 404, message = "workflow not found", attempts = 1 },
          { kind = err.kind, status = err.status, message = err.message, attempts = err.attempts })
      end)
    end

    it("send an id of bytes that are not UTF-8 byte for byte", function()
      local id = "bad\255\254utf8"
      local seq = sb:last_seq()
      local _, err = client:list_runs(id)
      assert.equal(404, err.status)
      assert.equal("/v1/workflows/bad%FF%FEutf8/runs", sb:log(seq)[1].raw_path)
    end)

    it("refuse an id too long for the server's request line with its answer", function()
      local _, err = client:list_runs(rep("x", 70000))
      assert.equal("http", err.kind)
      assert.equal(414, err.status)
    end)
  end)

  describe("methods called on something else than a client", function()
    for _, method in ipairs { "list_runs", "runs", "pages", "in_flight" } do
      it(format("%s raises, saying how to call it", method), function()
        for _, self in ipairs { "wf_demo", {}, 42 } do
          local err = raised_by(client[method], self, "wf_demo")
          assert.equal(format("workflows: %s: self is not a workflows client (call it as client:%s(...))",
            method, method), without_position(err))
        end
      end)
    end

    it("tostring and in_flight of a fresh client", function()
      local c = workflows.new { base_url = sb.url .. "/", token = sb.token }
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
