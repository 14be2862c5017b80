-- The checks of the production options of workflows.new (on_event, headers,
-- retry_budget), and the header lines every transport sends for `headers`.

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, find, lower, gsub = string.format, string.find, string.lower, string.gsub
local sort = table.sort
local huge = math.huge

local M = {}

-- Headers the client sends itself, or that frame the message: an extra header must not
-- replace them (a second Authorization could carry someone else's token; a second Host
-- or Content-Length could split the request in two on the way).
local RESERVED = {
  authorization = "Authorization", host = "Host", accept = "Accept",
  ["accept-encoding"] = "Accept-Encoding", ["user-agent"] = "User-Agent",
  connection = "Connection", ["content-length"] = "Content-Length",
  ["transfer-encoding"] = "Transfer-Encoding", te = "TE", upgrade = "Upgrade",
  ["keep-alive"] = "Keep-Alive", ["proxy-authorization"] = "Proxy-Authorization",
  expect = "Expect",
}

-- RFC 9110's token: what a field name is made of.
local function is_token(name)
  return type(name) == "string" and find(name, "^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil
end

local function quoted(text)
  return '"' .. gsub(tostring(text), "[%c\"\\]", function(c) return format("\\%d", c:byte()) end)
    .. '"'
end

function M.is_function(v) return type(v) == "function" end

-- The names of `headers`, sorted, so that problems and lines come in one order.
local function sorted_names(headers)
  local names = {}
  for name in pairs(headers) do names[#names + 1] = name end
  sort(names, function(a, b) return tostring(a) < tostring(b) end)
  return names
end

-- Why `headers` cannot be sent, or nil.
local function headers_trouble(headers)
  if type(headers) ~= "table" then
    return format('option "headers" must be a table of header names to strings (got %s)',
      type(headers))
  end
  for _, name in ipairs(sorted_names(headers)) do
    if not is_token(name) then
      return format('option "headers": %s is not a header name (letters, digits and '
        .. "!#$%%&'*+-.^_`|~ only)", quoted(name))
    end
    local reserved = RESERVED[lower(name)]
    if reserved then
      return format('option "headers" cannot set %s: the client sends %s itself', quoted(name),
        reserved)
    end
    local value = headers[name]
    -- CR or LF in a value would smuggle in headers of its own
    if type(value) ~= "string" or find(value, "%c") then
      return format('option "headers": the value of %s must be a string without control '
        .. "characters (got %s)", quoted(name), type(value) == "string" and "one with them"
        or type(value))
    end
  end
  return nil
end

function M.valid_headers(v) return headers_trouble(v) == nil end
function M.headers_problem(v) return headers_trouble(v) end

-- The "Name: value" lines of checked `headers`, or nil when there are none.
function M.header_lines(headers)
  if headers == nil then return nil end
  local lines = {}
  for _, name in ipairs(sorted_names(headers)) do
    lines[#lines + 1] = name .. ": " .. headers[name]
  end
  if #lines == 0 then return nil end
  return lines
end

local BUDGET_KEYS = { ratio = true, reserve = true }

local function budget_trouble(v)
  if v == true or v == false then return nil end
  local expected = 'option "retry_budget" must be true, false or a table '
    .. "{ ratio = 0..1, reserve = a positive number }"
  if type(v) ~= "table" then return format("%s (got %s)", expected, type(v)) end
  for key in pairs(v) do
    if not BUDGET_KEYS[key] then
      return format('option "retry_budget": unknown key %s (expected ratio or reserve)',
        quoted(key))
    end
  end
  local ratio, reserve = v.ratio, v.reserve
  if ratio ~= nil and not (type(ratio) == "number" and ratio >= 0 and ratio <= 1) then
    return format('option "retry_budget": ratio must be a number in 0..1 (got %s)',
      type(ratio) == "number" and tostring(ratio) or type(ratio))
  end
  if reserve ~= nil and not (type(reserve) == "number" and reserve > 0 and reserve < huge) then
    return format('option "retry_budget": reserve must be a positive number (got %s)',
      type(reserve) == "number" and tostring(reserve) or type(reserve))
  end
  return nil
end

function M.valid_budget(v) return budget_trouble(v) == nil end
function M.budget_problem(v) return budget_trouble(v) end

return M
