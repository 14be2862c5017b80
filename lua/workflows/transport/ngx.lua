--[[ The OpenResty transport: HTTP/1.1 over nginx's cosockets, so that a call made in
a request handler or a timer never blocks the worker.

Each attempt runs on a light thread (ngx.thread.spawn) that connects, sends the
request, feeds what it reads to workflows.http1 and hands the raw body to the core
(core.response_outcome), so pages and errors are exactly the curl path's. Waits
are an ngx.semaphore posted when an attempt finishes, or ngx.sleep for a backoff.
Connections go back to nginx's pool (setkeepalive), one pool per scheme, host and
port.

Cosockets and light threads belong to the request that made them: there is one
transport per client per request (or timer), kept in ngx.ctx. Where cosockets do
not work (init, init_worker, set, log, the filters) a call fails with kind
invalid_argument instead of falling back to blocking libcurl. ]]

local core = require "workflows.core"
local http1 = require "workflows.http1"

local setmetatable, getmetatable, pcall, tostring, type, rawget, pairs, error = setmetatable,
  getmetatable, pcall, tostring, type, rawget, pairs, error
local format, find, match, lower, upper, sub = string.format, string.find, string.match,
  string.lower, string.upper, string.sub
local concat = table.concat
local floor, min = math.floor, math.min
local now = core.now

local M = {}

local TUNING = {
  read_size = 65536,       -- bytes asked of the socket at a time
  -- seconds of decoding in one turn of nginx's event loop after which a page waits
  -- for a later turn (see take_turn)
  slice = 0.0005,
}

-- nginx's shortest sleep: ngx.sleep rounds to whole milliseconds.
local SHORTEST_WAIT = 0.001

-- Phases in which cosockets, light threads and semaphores work.
local COSOCKET_PHASES = { rewrite = true, server_rewrite = true, access = true,
  content = true, timer = true, ssl_cert = true, ssl_session_fetch = true,
  ssl_client_hello = true }

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then return ngx end
  return nil
end

-- true when running inside nginx's Lua module (OpenResty).
function M.inside_nginx()
  return ngx_api() ~= nil
end

-- Why this code cannot use cosockets, or nil when it can.
function M.unavailable()
  local ngx = ngx_api()
  if not ngx then
    return 'transport "ngx" needs OpenResty: the ngx API is not available here'
  end
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return nil end
  return format("nginx's %s phase has no cosockets, and the client will not block the "
    .. "worker with libcurl: make the call from a timer (ngx.timer.at(0, function() ... end)) "
    .. "or from a rewrite, access or content handler, or pass transport = \"curl\" to block "
    .. "on purpose", phase == "init_worker" and "init_worker_by_lua*"
      or phase == "exit_worker" and "exit_worker_by_lua*"
      or tostring(phase) .. "_by_lua*")
end

-- -------------------------------------------------------------- attempts

local Attempt = {}
Attempt.__index = Attempt

function Attempt:done()
  return self.outcome ~= nil
end

function Attempt:result()
  local outcome = self.outcome
  if outcome == nil then error("the attempt is still running", 2) end
  return outcome
end

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

local function failure(kind, message, extra)
  local outcome = { ok = false, kind = kind, message = message }
  if extra then for key, value in pairs(extra) do outcome[key] = value end end
  return outcome
end

local function ms(seconds)
  local n = floor(seconds * 1000 + 0.5)
  return n < 1 and 1 or n
end

local function capitalised(text)
  return upper(sub(text, 1, 1)) .. sub(text, 2)
end

-- The outcome of an attempt whose walk was dropped: nobody reads it.
local function abandoned_failure()
  return failure("network", "the attempt was abandoned")
end

local function timed_out(started, received)
  return failure("timeout", format(
    "request timed out (Operation timed out after %d milliseconds with %d bytes received)",
    floor((now() - started) * 1000 + 0.5), received))
end

-- A certificate failure as the curl path words it, and what to do about it here.
local TRUST_HINT = "inside nginx the trusted CAs are those of lua_ssl_trusted_certificate: "
  .. "set it (with lua_ssl_verify_depth) to a bundle holding the server's CA, e.g. "
  .. "/etc/ssl/certs/ca-certificates.crt"

local function handshake_failure(err, target)
  err = tostring(err)
  if find(err, "^%d+: ") then  -- "20: unable to get local issuer certificate"
    return failure("network", format("TLS verification failed (SSL certificate problem: %s; %s)",
      match(err, "^%d+: (.*)$"), TRUST_HINT), { tls = true })
  end
  if find(err, "host mismatch", 1, true) then
    return failure("network", format("TLS verification failed (the certificate does not "
      .. "name %s)", target.host), { tls = true })
  end
  return failure("network", format("TLS handshake with %s port %d failed: %s", target.host,
    target.port, err))
end

local function connect_failure(err, target, started)
  if err == "timeout" then
    return failure("timeout", format("request timed out (Connection timed out after %d "
      .. "milliseconds)", floor((now() - started) * 1000 + 0.5)))
  end
  if find(err, "no resolver defined", 1, true) then
    return failure("network", format("Could not resolve host: %s (nginx has no resolver: "
      .. "add a resolver directive to nginx.conf, e.g. resolver 127.0.0.53;)", target.host))
  end
  if find(err, "resolve", 1, true) or find(err, "not found", 1, true) then
    return failure("network", format("Could not resolve host: %s (%s)", target.host, err))
  end
  return failure("network", format("Failed to connect to %s port %d after %d ms: %s",
    target.host, target.port, floor((now() - started) * 1000 + 0.5), capitalised(err)))
end

local function read_failure(err, parser)
  if find(err, "reset", 1, true) then
    return failure("network", "Recv failure: Connection reset by peer")
  end
  return failure("network", format("Recv failure: %s (%d bytes received)", err,
    parser and parser.received or 0))
end

local function request_bytes(request, target)
  local lines = {
    "GET " .. target.path .. " HTTP/1.1",
    "Host: " .. target.host_header,
    "Accept: application/json",
  }
  if request.user_agent then lines[#lines + 1] = "User-Agent: " .. request.user_agent end
  if request.token then lines[#lines + 1] = "Authorization: Bearer " .. request.token end
  lines[#lines + 1] = "\r\n"
  return concat(lines, "\r\n")
end

-- A failure after the response head came in, as the curl path gives it: with the
-- status and the headers' request id and Retry-After (read by the core, which also
-- sanitises them), but no page and nothing from a body.
local function failure_after_head(parser, request, kind, message, extra)
  local headers = parser.headers
  local outcome = core.response_outcome {
    status = parser.status, request_id = headers["x-request-id"],
    retry_after = headers["retry-after"], max_body_bytes = request.max_body_bytes,
    elapsed = parser.elapsed, reused = parser.reused,
  }
  local result = failure(kind, message, extra)
  result.status, result.request_id, result.retry_after = outcome.status, outcome.request_id,
    outcome.retry_after
  result.elapsed, result.reused = outcome.elapsed, outcome.reused
  return result
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
    local ok, err = sock:connect(target.address, target.port,
      { pool = target.pool, pool_size = pool_size })
    if not ok then return nil, connect_failure(tostring(err), target, started) end
    local reused = (sock:getreusedtimes() or 0) > 0
    if target.scheme ~= "https" or reused then return sock, reused, connect_for end
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

-- An error value for a message: a table that is not one of ours is shown with its
-- first fields, which say more than its address.
local function described(value)
  if type(value) ~= "table" or (getmetatable(value) or {}).__tostring then
    return tostring(value)
  end
  local fields = {}
  for key, field in pairs(value) do
    if #fields == 8 then break end
    fields[#fields + 1] = tostring(key) .. "=" .. tostring(field)
  end
  return format("%s {%s}", tostring(value), concat(fields, ", "))
end

local function finish(attempt, outcome)
  if attempt.outcome then return end
  attempt.outcome = outcome
  attempt.thread = nil
  local transport = attempt.transport
  if transport.live[attempt] then
    transport.live[attempt] = nil
    transport.count = transport.count - 1
  end
  local sema = transport.sema
  local waiting = -sema:count()
  if waiting > 0 then sema:post(waiting) end
end

local function perform(attempt, ngx)
  local ok, outcome = pcall(exchange, attempt, ngx)
  if not ok then
    outcome = failure("network", "the nginx transport failed: " .. tostring(outcome))
    if attempt.sock then attempt.sock:close() end
  end
  finish(attempt, outcome)
end

-- Stops the attempt's thread (which closes its socket) unless it has finished;
-- idempotent. Only the coroutine that started an attempt may kill its thread: from
-- another, the thread runs on and closes its connection instead of pooling it.
function Attempt:release()
  if self.released then return end
  self.released = true
  local transport = self.transport
  if transport.live[self] then
    transport.live[self] = nil
    transport.count = transport.count - 1
  end
  local thread = self.thread
  if thread then
    self.thread = nil
    local killed = pcall(self.ngx.thread.kill, thread)
    if killed and self.sock then
      pcall(self.sock.close, self.sock)
      self.sock = nil
    end
  end
end

-- From a finalizer (a walk dropped without close()), which may run in another
-- request or a timer, where this attempt's thread and socket must not be touched:
-- only marks it. Its thread sees the mark at its next step, closes its socket and
-- ends; nginx ends it anyway with the request that made it.
function Attempt:abandon()
  self.abandoned = true
end

-- -------------------------------------------------------------- transports

local Transport = {}
Transport.__index = Transport

-- `settings`: the client's pool_size and pool_idle_timeout.
local function new_transport(settings, ngx)
  return setmetatable({
    settings = settings,
    ngx = ngx,
    request_ctx = ngx.ctx,
    sema = require("ngx.semaphore").new(0),
    live = {},             -- attempt -> true while in flight
    count = 0,
    closed = false,
  }, Transport)
end

local function check_request(self)
  if self.ngx.ctx ~= self.request_ctx then
    local errors = require "workflows.errors"
    error(errors.invalid_argument("a call or walk begun in one nginx request (or timer) cannot "
      .. "go on in another: cosockets belong to the request that made them"), 0)
  end
end

function Transport:start(request)
  local ngx = self.ngx
  local attempt = setmetatable({ transport = self, ngx = ngx, request = request,
    settings = self.settings, outcome = nil, released = false }, Attempt)
  if self.closed then
    attempt.outcome = failure("network", "the nginx transport is closed")
    return attempt
  end
  check_request(self)
  self.live[attempt] = true
  self.count = self.count + 1
  local ok, thread = pcall(ngx.thread.spawn, perform, attempt, ngx)
  if not ok then
    finish(attempt, failure("network", "could not start a light thread: " .. described(thread)))
  elseif not attempt.outcome then
    attempt.thread = thread
  end
  return attempt
end

function Transport:wait(seconds)
  check_request(self)
  -- nginx runs a shorter sleep as ngx.sleep(0), which logs a warning each time and
  -- returns at once: a caller waiting for a due time would spin
  if seconds < SHORTEST_WAIT then seconds = SHORTEST_WAIT end
  if self.count > 0 then
    self.sema:wait(seconds)
  else
    self.ngx.sleep(seconds)
  end
end

function Transport.flush() end  -- each attempt's thread sends at once

function Transport.drop(_, attempt)
  attempt:abandon()
end

-- The client was collected: its transports belong to requests, which end their
-- threads and cosockets themselves.
function Transport.abandon() end

-- Nothing of a task's: tasks run on a libuv loop, never inside nginx.
function Transport.release_task() end

function Transport:running()
  return self.count
end

function Transport:close()
  if self.closed then return end
  self.closed = true
  for attempt in pairs(self.live) do attempt:release() end
end

-- -------------------------------------------------------------- refusals

-- Where no cosocket can run: every attempt ends at once with the reason, kind
-- invalid_argument, so that list_runs returns it and walks raise it.
local Refusal = {}
Refusal.__index = Refusal

function Refusal:start()
  return setmetatable({ outcome = failure("invalid_argument", self.reason), released = false,
    transport = { live = {} } }, Attempt)
end
function Refusal.wait() end
function Refusal.flush() end
function Refusal.running() return 0 end
function Refusal.close() end
function Refusal.drop() end
function Refusal.abandon() end
function Refusal.release_task() end

-- -------------------------------------------------------------- the registry's

M.names = { "ngx" }

-- Serves all code inside nginx (where cosockets do not work, with a refusal).
function M.claims()
  return M.inside_nginx()
end

-- The per-request transports, keyed by this private table inside ngx.ctx.
local REQUEST_KEY = {}

-- The transport for `client` in the running request or timer: one per client per
-- request, made on first use; a refusal where cosockets do not work.
function M.transport_for(client)
  local reason = M.unavailable()
  if reason then return setmetatable({ reason = reason }, Refusal) end
  local ngx = ngx_api()
  local request_ctx = ngx.ctx
  local mine = request_ctx[REQUEST_KEY]
  if not mine then
    mine = setmetatable({}, { __mode = "k" })
    request_ctx[REQUEST_KEY] = mine
  end
  local transport = mine[client]
  if not transport or transport.closed then
    transport = new_transport({ pool_size = client.config.pool_size,
      pool_idle_timeout = client.config.pool_idle_timeout }, ngx)
    mine[client] = transport
  end
  return transport
end

-- The transport `client` has in the running request, if it made one there. Not from
-- a finalizer (it asks nginx for the phase and the request's ctx).
function M.found(client)
  local ngx = ngx_api()
  if not ngx or M.unavailable() then return nil end
  local mine = ngx.ctx[REQUEST_KEY]
  return mine and mine[client]
end

return M
