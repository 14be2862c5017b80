-- Bad input to workflows.new() and to list_runs(), runs() and pages(): each value is
-- either refused with an invalid_argument error that names the problem, before any
-- request, or used correctly (an id of any bytes arrives as one path segment). Never
-- a crash.
local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"
local bad_input = require "spec.support.bad_input"

local format, rep = string.format, string.rep
local huge = math.huge
local NAN = 0 / 0
local without_position, raised_by = bad_input.without_position, bad_input.raised_by

-- Negative zero, made at run time: before Lua 5.3 a -0.0 written in the source
-- can share its constant slot with a 0 of the same function. It is written "-0.0"
-- from Lua 5.3 on, which has a float subtype, and "-0" before.
local MINUS_ZERO = -1 / huge
local MINUS_ZERO_SHOWN = math.type and "-0.0" or "-0"

-- What an id must look like in the request line: every byte but A-Z a-z 0-9 - . _ ~
-- as %XX, and a dot-segment ("." or "..") with its dots encoded too.
local function encoded(id)
  if id == "." or id == ".." then return (id:gsub("%.", "%%2E")) end
  return (id:gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

-- Every bad value is given with the text the message shows for it after "(got ",
-- written out: the expected messages are spelled here, not computed the way the
-- code under test computes them.
local function bad_numbers(extra)
  local values = {
    { NAN, "nan" }, { huge, "inf" }, { -huge, "-inf" }, { -1, "-1" }, { -1e308, "-1e+308" },
    { "1", '"1"' }, { true, "true" }, { {}, "table" }, { print, "function" },
  }
  for _, value in ipairs(extra or {}) do values[#values + 1] = value end
  return values
end

-- option, the phrase after "must be", bad values, good extremes that must work
local CLIENT_NUMBERS = {
  { "timeout", "a positive number", bad_numbers { { 0, "0" }, { MINUS_ZERO, MINUS_ZERO_SHOWN } },
    { { 1e308, "1e+308" } } },
  { "connect_timeout", "a positive number", bad_numbers { { 0, "0" } }, { { 1e308, "1e+308" } } },
  { "deadline", "a positive number", bad_numbers { { 0, "0" } }, { { 1e308, "1e+308" } } },
  { "max_retries", "a non-negative integer", bad_numbers { { 0.5, "0.5" }, { 1.5, "1.5" } },
    { { 0, "0" }, { 1e300, "1e+300" } } },
  { "prefetch", 'an integer in 0..64 or "auto"', bad_numbers { { 65, "65" }, { 1e300, "1e+300" }, { 2.5, "2.5" } },
    { { 0, "0" }, { 64, "64" } } },
  { "max_body_bytes", "a positive integer", bad_numbers { { 0, "0" }, { 0.5, "0.5" } },
    { { 1e300, "1e+300" }, { 2 ^ 70, "2^70" } } },
}

local CALL_NUMBERS = {
  { "limit", "an integer in 1..100",
    bad_numbers { { 0, "0" }, { 101, "101" }, { 1e300, "1e+300" }, { 50.5, "50.5" } } },
  { "offset", "a non-negative integer", bad_numbers { { 0.5, "0.5" } } },
  { "deadline", "a positive number", bad_numbers { { 0, "0" } } },
}

local WALK_NUMBERS = {
  { "max", "a positive integer", bad_numbers { { 0, "0" }, { 0.5, "0.5" } } },
}

local BAD_IDS = {
  { nil, "nil" }, { "", '""' }, { 42, "42" }, { true, "true" }, { false, "false" },
  { {}, "table" }, { print, "function" }, { NAN, "nan" },
}

local GOOD_IDS = {
  "a/b", "a?b=c", "a#frag", "100%", "%2F", "..", ".", "...", "a/../b", "../wf_demo",
  "with space", " ", "tab\there", "new\nline", "nul\0byte", "semi;colon=1", "plus+sign",
  "wörkflow ✓", "日本語", "\240\159\152\128", rep("x", 10240), rep("é", 5120),
}

describe("bad input", function()
  local sb = fixtures.sandbox { client = { timeout = 5, max_retries = 0 } }
  local client

  lazy_setup(function()
    client = sb:new_client()
  end)

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
      for _, bad_value in ipairs(bad) do
        local value, got = bad_value[1], bad_value[2]
        it(format("refuses %s = %s", name, got), function()
          local err = raised_by(workflows.new, { [name] = value })
          assert.equal(format('option "%s" must be %s (got %s)', name, expected, got),
            without_position(err))
        end)
      end
      for _, good_value in ipairs(good) do
        local value = good_value[1]
        it(format("takes %s = %s and still lists a page", name, good_value[2]), function()
          local c = sb:new_client { [name] = value }
          local page, err = c:list_runs("wf_demo", { limit = 3 })
          assert.is_nil(err)
          assert.equal(3, #page.items)
        end)
      end
    end

    local string_options = {
      { "base_url", "an http:// or https:// URL without query or fragment", {
        { "", '""' }, { "ftp://x", '"ftp://x"' }, { "http://", '"http://"' },
        { "http://h/?q=1", '"http://h/?q=1"' }, { "http://h/#f", '"http://h/#f"' },
        { "http://h x", '"http://h x"' }, { 42, "42" }, { {}, "table" }, { true, "true" } } },
      { "user_agent", "a non-empty string without control characters", {
        { "", '""' }, { "a\r\nX-Evil: 1", '"a\\r\\nX-Evil: 1"' }, { "\0", '"\\0"' },
        { 42, "42" }, { {}, "table" }, { false, "false" } } },
      { "ca_file", "a non-empty string", { { "", '""' }, { 42, "42" }, { {}, "table" }, { true, "true" } } },
      { "ca_path", "a non-empty string", { { "", '""' }, { 42, "42" }, { {}, "table" }, { true, "true" } } },
    }
    for _, case in ipairs(string_options) do
      local name, expected, bad = case[1], case[2], case[3]
      for _, bad_value in ipairs(bad) do
        local value, got = bad_value[1], bad_value[2]
        it(format("refuses %s = %s", name, got), function()
          local err = raised_by(workflows.new, { [name] = value })
          assert.equal(format('option "%s" must be %s (got %s)', name, expected, got),
            without_position(err))
        end)
      end
    end

    for _, value in ipairs { 42, true, {}, NAN, "with\nnewline", "with\0nul" } do
      it(format("refuses token = %s without showing it", type(value)), function()
        local err = raised_by(workflows.new, { token = value })
        local message = without_position(err)
        local suffix = type(value) == "string" and "" or format(" (got %s)", type(value))
        assert.equal('option "token" must be a string without control characters'
          .. suffix, message)
        if type(value) == "string" then assert.is_nil(message:find(value, 1, true)) end
      end)
    end

    for _, case in ipairs { { "x", '"x"' }, { 42, "42" }, { true, "true" }, { print, "function" } } do
      local given, got = case[1], case[2]
      it(format("refuses options that are a %s", type(given)), function()
        local err = raised_by(workflows.new, given)
        assert.equal(format("options must be a table (got %s)", got),
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
        assert.equal(case[2], without_position(raised_by(workflows.new, case[1])))
      end
    end)
  end)

  describe("list_runs(), runs() and pages()", function()
    for _, case in ipairs(BAD_IDS) do
      local id, got = case[1], case[2]
      it(format("refuse the id %s", got), function()
        check_every_call(id, nil, format("workflow id must be a non-empty string (got %s)", got))
      end)
    end

    for _, case in ipairs(CALL_NUMBERS) do
      local name, expected, bad = case[1], case[2], case[3]
      for _, bad_value in ipairs(bad) do
        local value, got = bad_value[1], bad_value[2]
        it(format("refuse %s = %s", name, got), function()
          check_every_call("wf_demo", { [name] = value },
            format('option "%s" must be %s (got %s)', name, expected, got))
        end)
      end
    end

    -- Offsets past 2^53, which no Lua can write into a query string as they are.
    for _, case in ipairs { { 2 ^ 63, "2^63" }, { 1e300, "1e+300" } } do
      local value = case[1]
      it(format("refuse offset = %s, past what a number keeps exactly", case[2]), function()
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

    local statuses = {
      { NAN, "nan", 'option "status" must be a string (got nan)' },
      { huge, "inf", 'option "status" must be a string (got inf)' },
      { "all", '"all"', 'invalid status "all" (expected one of "running", "success", "failure", '
        .. '"waiting", "cancelled")' },
      { 0, "0", 'option "status" must be a string (got 0)' },
      { -5, "-5", 'option "status" must be a string (got -5)' },
      { 1.5, "1.5", 'option "status" must be a string (got 1.5)' },
      { {}, "table", 'option "status" must be a string (got table)' },
    }
    for _, case in ipairs(statuses) do
      local value, message = case[1], case[3]
      it(format("refuse status = %s", case[2]), function()
        local results = requests_during(function() return client:list_runs("wf_demo", { status = value }) end)
        assert.equal("invalid_argument", results[3].kind)
        assert.equal(message, results[3].message)
      end)
    end

    for _, case in ipairs(WALK_NUMBERS) do
      local name, expected, bad = case[1], case[2], case[3]
      for _, bad_value in ipairs(bad) do
        local value, got = bad_value[1], bad_value[2]
        it(format("runs and pages refuse %s = %s", name, got), function()
          for _, method in ipairs { "runs", "pages" } do
            local results, requests = requests_during(function()
              return client[method](client, "wf_demo", { [name] = value })
            end)
            assert.is_false(results[1])
            check_invalid(results[2], format('option "%s" must be %s (got %s)', name, expected, got))
            assert.equal(0, requests)
          end
        end)
      end
    end

    it("take a huge max and walk to the end", function()
      -- no prefetch: a page requested past the end could reach the sandbox's log
      -- after this test, where the next one counts requests
      local c = sb:new_client { prefetch = 0 }
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
      local label = '"' .. id:gsub("%c", "?") .. '"'
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
end)
