-- The error object that every failure of the client turns into: a plain table
-- whose fields callers read, with a metatable that gives it one readable line.

local setmetatable, getmetatable = setmetatable, getmetatable
local tostring, type = tostring, type
local floor = math.floor
local concat = table.concat
local format = string.format

local M = {}

-- Reason phrases for the statuses this API and the proxies in front of it send.
local REASONS = {
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
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

local function new(fields)
  return setmetatable(fields, Error)
end
M.new = new

function M.is_error(value)
  return getmetatable(value) == Error
end

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

-- The error for a failed attempt as the core reported it (doc/core.md).
function M.from_outcome(outcome, attempts)
  local message = outcome.message
  if outcome.kind == "http" then message = http_message(outcome) end
  return new {
    kind = outcome.kind,
    status = outcome.status,
    code = outcome.code,
    message = message,
    requestId = outcome.request_id,
    attempts = attempts,
  }
end

function M.timeout(message, attempts)
  return new { kind = "timeout", message = message, attempts = attempts }
end

function M.decode(message, attempts, request_id)
  return new { kind = "decode", message = message, attempts = attempts, requestId = request_id }
end

return M
