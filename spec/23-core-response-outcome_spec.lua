-- core.response_outcome: the outcome table for a response another transport
-- received (OpenResty's cosockets), equal to what transfer:result() gives for the
-- same answer. The raw answers come from the sandbox through the curl command line
-- tool; the curl path's outcomes through a poll session.
local core = require "workflows.core"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"

local function without_position(message)
  return (tostring(message):gsub("^[^:]*:%d+: ", ""))
end

local function raised_by(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return err
end

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local file = assert(io.open(path, "rb"))
  local content = file:read("*a")
  file:close()
  return content
end

-- One GET with the curl tool: status, body and the three headers the outcome reads,
-- as raw as they came (no Accept-Encoding, so no gzip).
local function fetch_raw(url, token)
  local headers_path = os.tmpname()
  -- without the ASan runtime that make test-asan preloads: curl hangs under it
  local pipe = assert(io.popen("env -u LD_PRELOAD curl -s -D " .. shell_quote(headers_path)
    .. " -H " .. shell_quote("Authorization: Bearer " .. token) .. " " .. shell_quote(url)))
  local body = pipe:read("*a")
  pipe:close()
  local head = read_file(headers_path)
  os.remove(headers_path)
  local fields = { body = body, status = tonumber(head:match("^HTTP/%S+ (%d+)")) }
  for name, value in head:gmatch("([%w%-]+):([^\r\n]*)") do
    local lower = name:lower()
    if lower == "x-request-id" then fields.request_id = value end
    if lower == "retry-after" then fields.retry_after = value end
    if lower == "content-type" then fields.content_type = value end
  end
  return fields
end

local function fetch_with_curl_path(url, token, max_body_bytes)
  local session = core.session()
  local transfer = session:start { url = url, token = token, max_body_bytes = max_body_bytes }
  while not transfer:done() do session:drive(0.5) end
  local outcome = transfer:result()
  session:close()
  return outcome
end

local comparable = fixtures.comparable_outcome

describe("core.response_outcome()", function()
  local sb

  lazy_setup(function() sb = sandbox.start {} end)
  lazy_teardown(function() sb:stop() end)

  local function url(id, query)
    return fixtures.runs_url(sb, id, query)
  end

  local cases = {
    { "a page", "wf_demo", "?limit=3&offset=2" },
    { "a 404 with its envelope", "wf_nope" },
    { "invalid JSON", "wf_demo;fault=invalid_json", "?limit=4" },
    { "JSON of the wrong shape", "wf_demo;fault=wrong_shape", "?limit=2" },
    { "an HTML error page, naming its Content-Type", "wf_demo;fault=html" },
    { "a 503 with Retry-After in seconds", "wf_demo;status=503;retry_after=7" },
    { "a 503 with Retry-After as a date", "wf_demo;status=503;retry_after_date=30" },
    { "a 429 with a malformed Retry-After", "wf_demo;status=429;retry_after=soon" },
    { "a 204 without a body", "wf_demo;status=204" },
  }
  for _, case in ipairs(cases) do
    it("gives the curl path's outcome for " .. case[1], function()
      local target = url(case[2], case[3])
      local fields = fetch_raw(target, sb.token)
      fields.elapsed, fields.reused = 0.25, true
      local outcome = core.response_outcome(fields)
      assert.equal(0.25, outcome.elapsed)
      assert.is_true(outcome.reused)
      assert.same(comparable(fetch_with_curl_path(target, sb.token)), comparable(outcome))
    end)
  end

  it("reads a Retry-After date as the seconds left", function()
    local fields = fetch_raw(url("wf_demo;status=503;retry_after_date=30"), sb.token)
    local outcome = core.response_outcome(fields)
    assert.matches("GMT$", fields.retry_after)
    assert.is_true(outcome.retry_after > 25 and outcome.retry_after <= 30, outcome.retry_after)
    assert.equal("http", outcome.kind)
    assert.equal(503, outcome.status)
    assert.equal("service unavailable", outcome.message)
  end)

  it("fails a body past max_body_bytes as too large, as the curl path does", function()
    local target = url("wf_demo", "?limit=50")
    local fields = fetch_raw(target, sb.token)
    fields.max_body_bytes = 100
    local outcome = core.response_outcome(fields)
    assert.same({ ok = false, kind = "decode", too_large = true, status = 200,
      message = "response body is larger than max_body_bytes (100 bytes)",
      request_id = fields.request_id:match("^%s*(.-)%s*$"), elapsed = 0, reused = false,
      bytes = 0 }, outcome)
    local curl_outcome = comparable(fetch_with_curl_path(target, sb.token, 100))
    assert.equal("number", type(curl_outcome.curl_code))   -- only the curl path has one
    curl_outcome.curl_code = nil
    assert.same(curl_outcome, comparable(outcome))
    fields.max_body_bytes = #fields.body
    assert.is_true(core.response_outcome(fields).ok)
  end)

  it("sanitises header values as the curl path does", function()
    local outcome = core.response_outcome { status = 502, body = "<html>",
      request_id = "  abc\1\127-def\r\n", content_type = "\ttext/html\0 ",
      retry_after = " 12 " }
    assert.same({ ok = false, kind = "http", status = 502, request_id = "abc-def",
      retry_after = 12, elapsed = 0, reused = false, bytes = 6 }, outcome)
    outcome = core.response_outcome { status = 200, body = "<html>", content_type = "text/html\r" }
    assert.same({ ok = false, kind = "decode", status = 200, elapsed = 0, reused = false, bytes = 6,
      message = "invalid JSON: Expected value but found invalid token at character 1"
        .. " (Content-Type text/html)" }, outcome)
  end)

  it("refuses fields of the wrong type or range", function()
    local bad = {
      { {}, "response field 'status' must be an integer from 100 to 599" },
      { { status = 99 }, "response field 'status' must be an integer from 100 to 599" },
      { { status = 200.5 }, "response field 'status' must be an integer from 100 to 599" },
      { { status = 0 / 0 }, "response field 'status' must be an integer from 100 to 599" },
      { { status = "200" }, "response field 'status' must be a number" },
      { { status = 200, body = 1 }, "response field 'body' must be a string" },
      { { status = 200, request_id = true }, "response field 'request_id' must be a string" },
      { { status = 200, max_body_bytes = 0 }, "response field 'max_body_bytes' must be at least 1" },
      { { status = 200, elapsed = -1 }, "response field 'elapsed' must be at least 0" },
      { { status = 200, reused = 1 }, "response field 'reused' must be a boolean" },
    }
    for _, case in ipairs(bad) do
      assert.equal(case[2], without_position(raised_by(core.response_outcome, case[1])))
    end
    assert.matches("bad argument #1 to '.-' %(table expected", raised_by(core.response_outcome))
  end)
end)
