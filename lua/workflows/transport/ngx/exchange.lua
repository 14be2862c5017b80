-- One attempt of the nginx transport on the wire, run on its light thread: connect
-- (pooled or fresh, with TLS and the check nginx 0.10.23 needs after a handshake),
-- send the request, read the response through workflows.http1, and hand the body to
-- the core, so that pages and errors are exactly the curl path's.

local core = require "workflows.core"
local http1 = require "workflows.http1"
local outcomes = require "workflows.transport.ngx.outcomes"
local network = require "workflows.transport.ngx.network"

local pcall, tostring, tonumber = pcall, tostring, tonumber
local format, find, match, lower = string.format, string.find, string.match, string.lower
local concat = table.concat
local min = math.min
local now = core.now

local failure, ms, abandoned_failure, timed_out = outcomes.failure, outcomes.ms,
  outcomes.abandoned, outcomes.timed_out
local handshake_failure, connect_failure, read_failure = outcomes.handshake, outcomes.connect,
  outcomes.read
local failure_after_head, TRUST_HINT = outcomes.after_head, outcomes.TRUST_HINT

local M = {}

local TUNING = {
  read_size = 65536,       -- bytes asked of the socket at a time
  -- seconds of decoding in one turn of nginx's event loop after which a page waits
  -- for a later turn (see take_turn)
  slice = 0.0005,
}

-- A URL's parts, or nil: the request layer only makes http(s)://host[:port]/path.
local function target_of(url)
  local scheme, authority, path = match(url, "^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then return nil end
  local host, port = match(authority, "^(%[[%x:.]+%]):?(%d*)$")
  if not host then host, port = match(authority, "^([^:@]+):?(%d*)$") end
  if not host then return nil end
  host = lower(host)
  local default_port = scheme == "https" and 443 or 80
  port = port ~= "" and tonumber(port) or default_port
  if port < 1 or port > 65535 then return nil end
  if path == "" then path = "/" end
  local literal = find(host, "^%[") or find(host, "^%d+%.%d+%.%d+%.%d+$")
  return {
    scheme = scheme, host = host, port = port, path = path,
    host_header = port == default_port and host or host .. ":" .. port,
    -- RFC 6761: "localhost" is the loopback, without asking a resolver (nginx's
    -- own resolver does not read /etc/hosts)
    address = host == "localhost" and "127.0.0.1" or host,
    -- nginx checks the certificate against this name, and only against DNS names:
    -- an address literal is passed too, so that it fails rather than goes unchecked
    server_name = literal and (match(host, "^%[(.*)%]$") or host) or host,
    pool = scheme .. "://" .. host .. ":" .. port,
  }
end

local function request_bytes(request, target)
  local lines = {
    "GET " .. target.request_target .. " HTTP/1.1",
    "Host: " .. target.host_header,
    "Accept: application/json",
  }
  if request.user_agent then lines[#lines + 1] = "User-Agent: " .. request.user_agent end
  if request.token then lines[#lines + 1] = "Authorization: Bearer " .. request.token end
  lines[#lines + 1] = network.authorization_line(target)
  local extra = request.headers  -- the headers option's lines, checked by workflows.new
  if extra then for i = 1, #extra do lines[#lines + 1] = extra[i] end end
  lines[#lines + 1] = "\r\n"
  return concat(lines, "\r\n")
end

-- Reads one response from `sock` until the parser has it all. Returns the parser,
-- or nil, a failure outcome and whether the connection ended before any byte came
-- (a pooled connection the server had closed: worth another).
local function receive(sock, parser, deadline, started, read_size, attempt)
  while true do
    local left = deadline - now()
    local complete, problem, outcome
    if attempt.abandoned then
      outcome = abandoned_failure()
    elseif left <= 0 then
      outcome = timed_out(started, parser.received)
    else
      sock:settimeout(ms(left))
      local data, err = sock:receiveany(read_size)
      if data then
        complete, problem = parser:feed(data)
      elseif err == "closed" then
        complete, problem = parser:finish()
      elseif err == "timeout" then
        outcome = timed_out(started, parser.received)
      else
        outcome = read_failure(err, parser)
      end
    end
    if complete then return parser end
    if complete == nil and not outcome then outcome = failure("network", problem) end
    if outcome then
      if parser.status and parser.state ~= "status" and parser.state ~= "headers" then
        parser.elapsed = now() - started
        outcome = failure_after_head(parser, parser.request, outcome.kind, outcome.message)
      end
      return nil, outcome, parser.received == 0
    end
  end
end

-- Decoding a page of 100 runs takes about half a millisecond. When many answers come
-- in the same turn of nginx's event loop they would be decoded back to back, while
-- every other request of the worker waits for the turn to end: once this worker has
-- decoded for a slice of time in this turn, a page waits for a later turn, a few
-- times at most (a worker busy in every turn must not starve it). A turn is told by
-- ngx.now(), the time nginx read when the turn began (millisecond steps, so turns
-- within one millisecond count as one, which only errs towards waiting).
local turn = { began = nil, decoding = 0 }

local function take_turn(ngx)
  for _ = 1, 4 do
    local began = ngx.now()
    if turn.began ~= began then turn.began, turn.decoding = began, 0 end
    if turn.decoding < TUNING.slice then return end
    ngx.sleep(0.001)
  end
end

-- The core's outcome for a whole response, decoded in its turn.
local function decoded(ngx, fields)
  take_turn(ngx)
  local started = now()
  local outcome = core.response_outcome(fields)
  turn.decoding = turn.decoding + (now() - started)
  return outcome
end

-- Fresh handshakes tried when nginx refuses a certificate without saying so.
local SILENT_REFUSAL_RETRIES = 2

-- Why nginx refused the certificate of a handshake it reported as a success (see
-- connected): the reason it recorded, read as lua-resty-core reads it after a
-- handshake that had to wait. nil when that interface is not there.
local function silent_refusal_reason(sock)
  local ok, reason = pcall(function()
    local ffi = require "ffi"
    local base = require "resty.core.base"
    require "resty.core.socket"   -- declares the function
    local message, code, session = ffi.new("char *[1]"), ffi.new("int[1]"), ffi.new("void *[1]")
    local rc = ffi.C.ngx_http_lua_ffi_socket_tcp_get_sslhandshake_result(base.get_request(),
      sock[1], session, message, code)
    if rc ~= base.FFI_ERROR or message[0] == nil then return nil end
    local text = ffi.string(message[0])
    if code[0] ~= 0 then text = code[0] .. ": " .. text end
    return text
  end)
  return ok and reason or nil
end

-- A connection to `target` for the attempt, pooled or fresh, with TLS set up on a
-- fresh one: returns the socket, whether it was pooled and the connect timeout it
-- was given, or nil and the failure.
local function connected(attempt, ngx, target, deadline, started, pool_size)
  for _ = 1, 1 + SILENT_REFUSAL_RETRIES do
    local sock = ngx.socket.tcp()
    attempt.sock = sock
    local left = deadline - now()
    if left <= 0 then return nil, timed_out(started, 0) end
    local request = attempt.request
    local connect_for = min(request.connect_timeout or left, left)
    sock:settimeouts(ms(connect_for), ms(left), ms(left))
    local ok, err = sock:connect(target.connect_address, target.connect_port,
      { pool = target.pool, pool_size = pool_size })
    if not ok then
      return nil, connect_failure(tostring(err), target.proxy or target, started)
    end
    local reused = (sock:getreusedtimes() or 0) > 0
    if target.scheme ~= "https" or reused then return sock, reused, connect_for end
    local unprepared = network.prepare(sock, request, target, ngx, deadline, started, now)
    if unprepared then
      sock:close()
      attempt.sock = nil
      return nil, unprepared
    end
    local shaken, problem = sock:sslhandshake(false, target.server_name, true)
    if shaken ~= true then   -- true is the one success when no session is asked for
      sock:close()
      return nil, handshake_failure(problem or format("no handshake (%s)", tostring(shaken)), target)
    end
    -- nginx's Lua module (0.10.23) returns true from a handshake that completed at
    -- once even when it refused the certificate; it has closed the connection then.
    -- Its reason is read back; failing that, a fresh handshake usually reports it.
    if sock:getreusedtimes() then return sock, false, connect_for end
    local reason = silent_refusal_reason(sock)
    sock:close()
    if reason then return nil, handshake_failure(reason, target) end
  end
  attempt.sock = nil
  return nil, failure("network", "TLS verification failed (nginx refused the server's "
    .. "certificate; its error log says why; " .. TRUST_HINT .. ")", { tls = true })
end

-- One attempt from connect to outcome; runs on the attempt's light thread.
local function exchange(attempt, ngx)
  local request, settings = attempt.request, attempt.settings
  local started = now()
  local deadline = started + request.timeout
  local target = target_of(request.url)
  if not target then
    return failure("network", "unsupported URL for the nginx transport: " .. tostring(request.url))
  end
  network.plan(request, target, ngx)
  local pool_size = settings.pool_size
  local idle_ms = ms(settings.pool_idle_timeout)
  local payload = request_bytes(request, target)
  -- A pooled connection the server has closed meanwhile fails before any byte of an
  -- answer; each such one is dropped and the next taken, then a fresh one.
  for _ = 1, pool_size + 1 do
    local sock, reused_or_failure, connect_for = connected(attempt, ngx, target, deadline,
      started, pool_size)
    if not sock then return reused_or_failure end
    local reused = reused_or_failure
    if attempt.abandoned then
      sock:close()
      attempt.sock = nil
      return abandoned_failure()
    end
    sock:settimeouts(ms(connect_for), ms(deadline - now()), ms(deadline - now()))
    local sent, send_err = sock:send(payload)
    local parser, problem, stale
    if sent then
      local fresh = http1.response_parser(request.max_body_bytes)
      fresh.request, fresh.reused = request, reused
      parser, problem, stale = receive(sock, fresh, deadline, started, TUNING.read_size, attempt)
    elseif send_err == "timeout" then
      problem = timed_out(started, 0)
    else
      problem, stale = failure("network", "Send failure: " .. tostring(send_err)), true
    end
    if parser then
      if parser.too_large then
        sock:close()
        attempt.sock = nil
        parser.elapsed = now() - started
        return failure_after_head(parser, request, "decode", format(
          "response body is larger than max_body_bytes (%d bytes)", request.max_body_bytes),
          { too_large = true })
      end
      local headers = parser.headers
      local fields = {
        status = parser.status, request_id = headers["x-request-id"],
        retry_after = headers["retry-after"], content_type = headers["content-type"],
        max_body_bytes = request.max_body_bytes, elapsed = now() - started, reused = reused,
      }
      fields.body = parser:body()
      if parser.keep_alive and not attempt.released then
        if not sock:setkeepalive(idle_ms, pool_size) then sock:close() end
      else
        sock:close()
      end
      attempt.sock = nil
      return decoded(ngx, fields)
    end
    sock:close()
    attempt.sock = nil
    if not (stale and reused) or attempt.abandoned then return problem end
  end
  return failure("network", "Empty reply from server")
end

-- One attempt from connect to outcome: the outcome. Raises only on a bug.
M.exchange = exchange

return M
