-- The headers option: extra request headers (traceparent, a request tag) sent with
-- every attempt, which can never replace the client's own.
local fixtures = require "spec.support.fixtures"
local workflows = require "workflows"
local luv_loop = require "spec.support.luv_loop"

local requests_for = fixtures.requests_for
local unique = fixtures.demo_id_maker("headers")

local TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

-- The log entry's headers by lower-case name.
local function headers_of(entry)
  local lowered = {}
  for name, value in pairs(entry.headers) do lowered[name:lower()] = value end
  return lowered
end

local function problem_of(options)
  local ok, err = pcall(workflows.new, options)
  assert.is_false(ok)
  return err.message
end

describe("the headers option", function()
  local sb = fixtures.sandbox { client = { timeout = 5 } }
  local EXTRA = { traceparent = TRACE, tracestate = "vendor=opaque", ["X-Request-Tag"] = "batch-7" }

  it("sends each header with every attempt of a call", function()
    local client = sb:new_client { headers = EXTRA, max_retries = 1 }
    local id, seq = unique("status=503;times=1"), sb:last_seq()
    assert(client:list_runs(id, { limit = 1 }))
    local entries = requests_for(sb, id, seq)
    assert.equal(2, #entries)
    for _, entry in ipairs(entries) do
      local sent = headers_of(entry)
      assert.same({ TRACE, "vendor=opaque", "batch-7", "Bearer ***" },
        { sent.traceparent, sent.tracestate, sent["x-request-tag"], sent.authorization })
    end
  end)

  it("sends them with every page of a walk", function()
    local client = sb:new_client { headers = EXTRA, prefetch = 2 }
    local id, seq = unique("n=walk"), sb:last_seq()
    for _ in client:runs(id, { limit = 5, max = 25 }) do end
    local entries = requests_for(sb, id, seq)
    assert.is_true(#entries >= 5)
    for _, entry in ipairs(entries) do assert.equal(TRACE, headers_of(entry).traceparent) end
  end)

  local it_luv = luv_loop.uv and it or pending
  it_luv("sends them from a libuv task", function()
    local client = sb:new_client { headers = EXTRA, loop = luv_loop.uv }
    local id, seq, done = unique("n=uv"), sb:last_seq(), nil
    client:spawn(function() assert(client:list_runs(id, { limit = 1 })) end,
      function(ok) done = ok end)
    luv_loop.run_until(function() return done ~= nil end, 20)
    client:close()
    assert.is_true(done)
    assert.equal("batch-7", headers_of(requests_for(sb, id, seq)[1])["x-request-tag"])
  end)

  it("leaves the caller's table as it was", function()
    local given = { traceparent = TRACE }
    sb:new_client { headers = given }
    assert.same({ traceparent = TRACE }, given)
  end)

  describe("refuses", function()
    for _, name in ipairs { "Authorization", "authorization", "HOST", "Accept", "User-Agent",
        "Accept-Encoding", "Content-Length", "Transfer-Encoding", "Connection",
        "Proxy-Authorization" } do
      it("to replace " .. name, function()
        local proper = { authorization = "Authorization", host = "Host", accept = "Accept",
          ["user-agent"] = "User-Agent", ["accept-encoding"] = "Accept-Encoding",
          ["content-length"] = "Content-Length", ["transfer-encoding"] = "Transfer-Encoding",
          connection = "Connection", ["proxy-authorization"] = "Proxy-Authorization" }
        assert.equal(('option "headers" cannot set "%s": the client sends %s itself')
          :format(name, proper[name:lower()]), problem_of { headers = { [name] = "x" } })
      end)
    end

    local BAD = {
      { { ["bad name"] = "x" }, 'option "headers": "bad name" is not a header name (letters, '
        .. "digits and !#$%&'*+-.^_`|~ only)" },
      { { ["x:y"] = "x" }, 'option "headers": "x:y" is not a header name (letters, digits and '
        .. "!#$%&'*+-.^_`|~ only)" },
      { { [""] = "x" }, 'option "headers": "" is not a header name (letters, digits and '
        .. "!#$%&'*+-.^_`|~ only)" },
      { { "x" }, 'option "headers": "1" is not a header name (letters, digits and '
        .. "!#$%&'*+-.^_`|~ only)" },
      { { tag = "a\r\nInjected: 1" }, 'option "headers": the value of "tag" must be a string '
        .. "without control characters (got one with them)" },
      { { tag = "a\nb" }, 'option "headers": the value of "tag" must be a string without '
        .. "control characters (got one with them)" },
      { { tag = 5 }, 'option "headers": the value of "tag" must be a string without control '
        .. "characters (got number)" },
      { "traceparent", 'option "headers" must be a table of header names to strings (got string)' },
    }
    for _, case in ipairs(BAD) do
      it(case[2], function()
        assert.equal(case[2], problem_of { headers = case[1] })
      end)
    end
  end)

  describe("in the core's request table", function()
    local core = require "workflows.core"
    local CASES = {
      { { "A: b\r\nC: d" }, "request field 'headers' holds a line that is not one header" },
      { { "no colon" }, "request field 'headers' holds a line that is not one header" },
      { { "A: b\0c" }, "request field 'headers' holds a line that is not one header" },
      { { 5 }, "request field 'headers' must hold strings" },
      { "A: b", "request field 'headers' must be a table" },
    }
    for _, case in ipairs(CASES) do
      it("refuses " .. case[2], function()
        local session = core.session()
        local ok, problem = pcall(session.start, session, { url = sb.url, headers = case[1] })
        session:close()
        assert.is_false(ok)
        assert.matches(case[2], problem, 1, true)
      end)
    end
  end)
end)
