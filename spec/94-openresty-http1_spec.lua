-- workflows.http1, the push parser behind the cosocket transport: plain Lua, so it
-- runs on every Lua. Valid responses cut at random points parse as they do whole;
-- cut-short and malformed input ends in a clear message, never a hang or a raise.
local http1 = require "workflows.http1"

-- A generator of its own (Park and Miller), so every Lua sees the same cases.
local function random_source(seed)
  local state = seed % 2147483646 + 1
  return function(low, high)
    state = state * 16807 % 2147483647
    return low + state % (high - low + 1)
  end
end

local function parse_in_pieces(bytes, sizes, max_body_bytes)
  local parser = http1.response_parser(max_body_bytes)
  local at, i, result, message = 1, 1, false, nil
  while at <= #bytes do
    local size = sizes[(i - 1) % #sizes + 1]
    result, message = parser:feed(bytes:sub(at, at + size - 1))
    at, i = at + size, i + 1
    if result ~= false then break end
  end
  if result == false then result, message = parser:finish() end
  return parser, result, message
end

local function parse_whole(bytes, max_body_bytes)
  return parse_in_pieces(bytes, { #bytes > 0 and #bytes or 1 }, max_body_bytes)
end

local function chunked(body, random, with_extensions)
  local parts, at = {}, 1
  while at <= #body do
    local size = random(1, 700)
    local piece = body:sub(at, at + size - 1)
    local ext = with_extensions and random(0, 2) == 0 and ";name=value" or ""
    -- concatenated: Lua 5.1's %s stops at a zero byte
    parts[#parts + 1] = string.format("%x", #piece) .. ext .. "\r\n" .. piece .. "\r\n"
    at = at + size
  end
  parts[#parts + 1] = with_extensions and "0\r\nX-Trailer: yes\r\n\r\n" or "0\r\n\r\n"
  return table.concat(parts)
end

local function random_body(random)
  local bytes = {}
  for i = 1, random(0, 3000) do bytes[i] = string.char(random(0, 255)) end
  return table.concat(bytes)
end

-- A valid response of one of the framings, and what parsing it must give.
local function valid_response(random)
  local body = random_body(random)
  local framing = ({ "length", "chunked", "close", "continue" })[random(1, 4)]
  local head = { "HTTP/1.1 200 OK", "Content-Type: application/json",
    "x-request-id: req_" .. random(1, 99999), "Retry-After:  7 " }
  local wire_body, keep_alive = body, true
  if framing == "chunked" then
    head[#head + 1] = "Transfer-Encoding: chunked"
    wire_body = chunked(body, random, random(0, 1) == 1)
  elseif framing == "close" then
    head[#head + 1] = "Connection: close"
    keep_alive = false
  else
    head[#head + 1] = "Content-Length: " .. #body
  end
  local prefix = framing == "continue" and "HTTP/1.1 100 Continue\r\n\r\n" or ""
  return prefix .. table.concat(head, "\r\n") .. "\r\n\r\n" .. wire_body,
    { body = body, keep_alive = keep_alive, close_delimited = framing == "close" }
end

describe("workflows.http1", function()
  describe("response_parser():feed()", function()
    it("reads a Content-Length response with its headers", function()
      local parser, result = parse_whole("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n"
        .. "X-Request-Id: req_1\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n{}")
      assert.is_true(result)
      assert.equal(404, parser.status)
      assert.equal("Not Found", parser.reason)
      assert.same({ ["content-length"] = "2", ["x-request-id"] = "req_1",
        ["set-cookie"] = "a, b" }, parser.headers)
      assert.equal("{}", parser:body())
      assert.is_true(parser.keep_alive)
      assert.is_false(parser.too_large)
    end)

    it("reads a chunked body with extensions and trailers", function()
      local parser, result = parse_whole("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        .. "3;x=y\r\nabc\r\n0A\r\n0123456789\r\n0\r\nT: 1\r\n\r\n")
      assert.is_true(result)
      assert.equal("abc0123456789", parser:body())
      assert.is_true(parser.keep_alive)
    end)

    it("skips interim 1xx answers and takes the headers of the final one", function()
      local parser, result = parse_whole("HTTP/1.1 100 Continue\r\nX-Request-Id: early\r\n\r\n"
        .. "HTTP/1.1 204 No Content\r\n\r\n")
      assert.is_true(result)
      assert.equal(204, parser.status)
      assert.same({}, parser.headers)
      assert.equal("", parser:body())
    end)

    it("reads a body framed by the close, and never keeps that connection", function()
      local parser = http1.response_parser()
      assert.is_false(parser:feed("HTTP/1.0 200 OK\r\n\r\nhello"))
      assert.is_false(parser:feed(" world"))
      assert.is_true(parser:finish())
      assert.equal("hello world", parser:body())
      assert.is_false(parser.keep_alive)
    end)

    it("keeps an HTTP/1.0 connection only when the server says keep-alive", function()
      local parser = parse_whole("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
      assert.is_true(parser.keep_alive)
      parser = parse_whole("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
      assert.is_false(parser.keep_alive)
    end)

    it("does not keep a connection that sent bytes past the response", function()
      local parser, result = parse_whole("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk")
      assert.is_true(result)
      assert.equal("{}", parser:body())
      assert.is_false(parser.keep_alive)
    end)

    it("stops at max_body_bytes, from the Content-Length or while reading", function()
      local parser = http1.response_parser(10)
      assert.is_true(parser:feed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"))
      assert.is_true(parser.too_large)
      assert.is_false(parser.keep_alive)
      parser = http1.response_parser(10)
      assert.is_false(parser:feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n"))
      assert.is_true(parser:feed("8\r\n12345678\r\n"))
      assert.is_true(parser.too_large)
      parser = http1.response_parser(10)
      assert.is_false(parser:feed("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n1234567890"))
      assert.is_true(parser:feed("1"))
      assert.is_true(parser.too_large)
    end)

    it("gives the same result whatever the split points (500 random responses)", function()
      local random = random_source(20261130)
      for case = 1, 500 do
        local bytes, expected = valid_response(random)
        local sizes = {}
        for i = 1, random(1, 6) do sizes[i] = random(1, case % 3 == 0 and 3 or 200) end
        local whole, whole_result = parse_whole(bytes)
        local split, split_result, message = parse_in_pieces(bytes, sizes)
        assert.is_true(whole_result, "case " .. case)
        assert.is_true(split_result, "case " .. case .. ": " .. tostring(message))
        assert.equal(200, split.status)
        assert.equal(expected.body, split:body())
        assert.equal(expected.body, whole:body())
        assert.same(whole.headers, split.headers)
        assert.equal("7", split.headers["retry-after"])
        assert.equal(expected.keep_alive, split.keep_alive)
      end
    end)

    it("reports every cut-short response at the end of the stream", function()
      local random = random_source(7)
      for case = 1, 120 do
        local bytes, expected = valid_response(random)
        local cut = random(0, #bytes - 1)
        local parser, result, message = parse_in_pieces(bytes:sub(1, cut), { random(1, 50) })
        if expected.close_delimited and result then
          assert.is_true(#parser:body() <= #expected.body)
        else
          assert.is_nil(result, "case " .. case .. " cut at " .. cut)
          assert.is_string(message)
          assert.is_false(parser.keep_alive)
        end
      end
    end)

    it("names what is missing when the stream ends early", function()
      local _, result, message = parse_in_pieces("", { 1 })
      assert.same({ nil, "Empty reply from server" }, { result, message })
      _, result, message = parse_whole("HTTP/1.1 200 OK\r\nContent-Le")
      assert.same({ nil, "connection closed before the end of the response headers" },
        { result, message })
      _, result, message = parse_whole("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234")
      assert.same({ nil, "transfer closed with 6 bytes remaining to read" }, { result, message })
      _, result, message = parse_whole("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
      assert.same({ nil, "transfer closed with outstanding read data remaining" },
        { result, message })
    end)

    it("refuses malformed input with a message that quotes it", function()
      for _, case in ipairs {
        { "HTTP/2 200 OK\r\n", 'invalid status line "HTTP/2 200 OK"' },
        { "SSH-2.0-OpenSSH_9.2\r\n", 'invalid status line "SSH-2.0-OpenSSH_9.2"' },
        { "HTTP/1.1 20 OK\r\n", 'invalid status line "HTTP/1.1 20 OK"' },
        { "HTTP/1.1 200OK\r\n", 'invalid status line "HTTP/1.1 200OK"' },
        { "HTTP/1.1 101 Switching Protocols\r\n", "unexpected 101 Switching Protocols" },
        { "HTTP/1.1 200 OK\r\n bad: fold\r\n", 'invalid header line " bad: fold"' },
        { "HTTP/1.1 200 OK\r\nno colon\r\n", 'invalid header line "no colon"' },
        { "HTTP/1.1 200 OK\r\nA\1: b\r\n", 'invalid header line "A\\x01: b"' },
        { "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 'invalid Content-Length "-1"' },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", 'invalid Content-Length "1, 2"' },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 'invalid chunk size "zz"' },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1azz\r\n", 'invalid chunk size "1azz"' },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "missing CRLF after chunk data" },
      } do
        local parser = http1.response_parser()
        local result, message = parser:feed(case[1])
        assert.same({ nil, case[2] }, { result, message })
        -- and it stays failed
        assert.same({ nil, case[2] }, { parser:feed("HTTP/1.1 200 OK\r\n\r\n") })
        assert.same({ nil, case[2] }, { parser:finish() })
      end
    end)

    it("does not buffer without bound: endless lines fail at a fixed size", function()
      local parser = http1.response_parser()
      local result, message = false, nil
      for _ = 1, 100 do
        result, message = parser:feed(string.rep("x", 1000))
        if result ~= false then break end
      end
      assert.same({ nil, "response head larger than 65536 bytes" }, { result, message })
      parser = http1.response_parser()
      parser:feed("HTTP/1.1 200 OK\r\n")
      for _ = 1, 100 do
        result, message = parser:feed("X-A: " .. string.rep("y", 995) .. "\r\n")
        if result ~= false then break end
      end
      assert.same({ nil, "response head larger than 65536 bytes" }, { result, message })
      parser = http1.response_parser()
      parser:feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
      assert.same({ nil, "chunk line longer than 1024 bytes" }, { parser:feed(string.rep("1", 2000)) })
    end)

    it("never raises on random bytes, whole or after a valid head", function()
      local random = random_source(99)
      for case = 1, 300 do
        local garbage = random_body(random)
        if case % 2 == 0 then garbage = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. garbage end
        local ok, parser, result, message = pcall(parse_in_pieces, garbage, { random(1, 64) })
        assert.is_true(ok, tostring(parser))
        assert.is_true(result == true or (result == nil and type(message) == "string"),
          "case " .. case)
      end
    end)
  end)
end)
