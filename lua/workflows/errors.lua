-- The error object that every failure of the client turns into: a plain table
-- whose fields callers read, with a metatable that gives it one readable line.

local setmetatable = setmetatable
local tostring, type = tostring, type
local floor = math.floor
local concat = table.concat
local format, find, sub = string.format, string.find, string.sub
local string = string

local retry = require "workflows.retry"

local M = {}

-- Reason phrases for the statuses this API and the proxies in front of it send.
local REASONS = {
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [407] = "Proxy Authentication Required",
  [406] = "Not Acceptable", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [422] = "Unprocessable Content",
  [425] = "Too Early", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
  [505] = "HTTP Version Not Supported",
}
M.REASONS = REASONS

local LABELS = {
  invalid_argument = "invalid argument",
  network = "network",
  timeout = "timeout",
  decode = "decode",
  cancelled = "cancelled",
}

local Error = {}

-- "HTTP 404 Not Found: workflow not found" or "timeout: <message>": the part of
-- the line that says what went wrong, also used to describe an earlier failure.
local function headline(err)
  if err.kind == "http" then
    local line = "HTTP " .. tostring(err.status)
    local reason = REASONS[err.status]
    if reason then line = line .. " " .. reason end
    if err.message then line = line .. ": " .. err.message end
    return line
  end
  local line = LABELS[err.kind] or tostring(err.kind)
  if err.message then line = line .. ": " .. err.message end
  return line
end
M.headline = headline

-- Whole seconds print without a fraction on every Lua, so lines read the same.
local function seconds(value)
  if value == floor(value) and value < 1e15 then return format("%d s", value) end
  return format("%.1f s", value)
end
M.seconds = seconds

local function details(err)
  local parts = {}
  if err.requestId then parts[#parts + 1] = "request " .. tostring(err.requestId) end
  if type(err.attempts) == "number" and err.attempts > 1 then
    parts[#parts + 1] = format("%d attempts", err.attempts)
  end
  if err.retry_after then parts[#parts + 1] = "retry after " .. seconds(err.retry_after) end
  if #parts == 0 then return "" end
  return " (" .. concat(parts, "; ") .. ")"
end

function Error.__tostring(err)
  return "workflows: " .. headline(err) .. details(err)
end

-- Code written for string errors keeps working: `err:find(...)`, `err:match(...)`
-- and `"..." .. err` act on the error's line. No field of the error is named
-- like a string function, so nothing is shadowed.
function Error.__index(_, key)
  local method = string[key]
  if method == nil then return nil end
  return function(self, ...) return method(Error.__tostring(self), ...) end
end

function Error.__concat(a, b)
  return tostring(a) .. tostring(b)
end

local function new(fields)
  return setmetatable(fields, Error)
end

-- A secret shorter than this is hidden only where it stands as a word of its
-- own: every "a" or "42" in a message would otherwise turn into "***".
local SHORTEST_HIDDEN_EVERYWHERE = 8

-- Characters a token is made of: a short secret next to one of them is part of
-- a longer word, not the secret itself.
local WORD_CHARACTER = "[%w%-%._~%+/=]"

local function stands_alone(text, first, last)
  return not find(sub(text, first - 1, first - 1), WORD_CHARACTER)
    and not find(sub(text, last + 1, last + 1), WORD_CHARACTER)
end

-- `text` with each occurrence of `secret` replaced by "***". A secret of
-- SHORTEST_HIDDEN_EVERYWHERE bytes or more goes wherever it appears; a shorter
-- one wherever it stands alone, which is how an echoed token appears.
function M.without_secret(text, secret)
  if type(text) ~= "string" or type(secret) ~= "string" or secret == "" then return text end
  local everywhere = #secret >= SHORTEST_HIDDEN_EVERYWHERE
  local parts, from = {}, 1
  while true do
    local first, last = find(text, secret, from, true)
    if not first then break end
    if everywhere or stands_alone(text, first, last) then
      parts[#parts + 1] = sub(text, from, first - 1)
      parts[#parts + 1] = "***"
    else
      parts[#parts + 1] = sub(text, from, last)
    end
    from = last + 1
  end
  if from == 1 then return text end
  parts[#parts + 1] = sub(text, from)
  return concat(parts)
end

-- `text` without any of `secrets`, a list in which false stands for a secret not set.
function M.without_secrets(text, secrets)
  for i = 1, #secrets do
    if secrets[i] then text = M.without_secret(text, secrets[i]) end
  end
  return text
end
local without_secret = M.without_secret

function M.invalid_argument(message)
  return new { kind = "invalid_argument", message = message, attempts = 0 }
end

-- A redirect never carries an envelope; say why the client stopped there.
local function http_message(outcome)
  if outcome.message == nil and outcome.status and outcome.status >= 300
      and outcome.status < 400 then
    return "redirect not followed"
  end
  return outcome.message
end

-- A client that was given no base URL talks to the built-in default, a host that
-- does not exist; its failure must say so, or the caller looks for the fault in
-- their DNS, proxy or nginx's resolver.
local function default_base_url_message(host)
  return format("Could not resolve host: %s (the built-in default base URL, used because "
    .. "no base_url was given and WORKFLOWS_BASE_URL is not set)", host)
end

-- The error a failed attempt ends with, as the core reported it (doc/core.md).
-- Servers may echo what they were sent, so `token` is kept out of its text;
-- Retry-After is passed on only when it asked for more than the client sleeps.
-- `base_url_is_default` is true when the client runs on the built-in base URL.
-- `status` is the HTTP status of an `http` error only: a transfer that failed
-- after the status line (a reset, a cut body, a body that did not decode) did not
-- answer with that status.
function M.from_outcome(outcome, attempts, token, base_url_is_default)
  local message = outcome.message
  if outcome.kind == "http" then message = http_message(outcome) end
  local host = base_url_is_default and retry.unresolved_host(outcome)
  if host then message = default_base_url_message(host) end
  local retry_after = outcome.retry_after
  if retry_after and retry_after <= retry.LONGEST_WAIT then retry_after = nil end
  return new {
    kind = outcome.kind,
    status = outcome.kind == "http" and outcome.status or nil,
    code = outcome.code,
    message = without_secret(message, token),
    requestId = without_secret(outcome.request_id, token),
    attempts = attempts,
    retry_after = retry_after,
  }
end

function M.timeout(message, attempts)
  return new { kind = "timeout", message = message, attempts = attempts }
end

function M.cancelled(message)
  return new { kind = "cancelled", message = message, attempts = 0 }
end

function M.decode(message, attempts, request_id)
  return new { kind = "decode", message = message, attempts = attempts, requestId = request_id }
end

return M
