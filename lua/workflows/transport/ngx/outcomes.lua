-- How the nginx transport words its failures: as the curl path does wherever libcurl
-- has a wording of its own, so that errors read the same in every host, with what to
-- do about it inside nginx.

local core = require "workflows.core"

local getmetatable, tostring, type, pairs = getmetatable, tostring, type, pairs
local format, find, match, upper, sub = string.format, string.find, string.match,
  string.upper, string.sub
local concat = table.concat
local floor = math.floor
local now = core.now

local M = {}

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

M.failure, M.ms, M.abandoned, M.timed_out, M.TRUST_HINT = failure, ms, abandoned_failure,
  timed_out, TRUST_HINT
M.handshake, M.connect, M.read, M.after_head, M.described = handshake_failure,
  connect_failure, read_failure, failure_after_head, described

return M
