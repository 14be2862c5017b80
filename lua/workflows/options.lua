-- Checking of the options of workflows.new and of the calls. Every message names
-- the option and what it expected, since the message is all a caller sees.

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local floor, huge, min, max = math.floor, math.huge, math.min, math.max
local format, find, lower = string.format, string.find, string.lower
local sub, gsub, byte = string.sub, string.gsub, string.byte
local sort, concat = table.sort, table.concat

local M = {}

-- What workflows.new uses for an option it was not given. `deadline`, `ca_file`
-- and `ca_path` default to nil; `token`, `base_url` and `user_agent` come from the
-- environment and the core when absent (see M.client).
local DEFAULTS = {
  base_url = "https://api.example.com",
  timeout = 30,
  connect_timeout = 10,
  max_retries = 2,
  prefetch = "auto",
  prefetch_cap = 8,
  max_body_bytes = 32 * 1024 * 1024,
  walk_limit = 100,       -- page size of runs/pages when no limit is given
  watch_interval = 10,    -- seconds between two polls of a watch
  watch_horizon = 100,    -- runs from the head a watch keeps in view
  transport = "auto",     -- the registry's choice (workflows.transport)
  pool_size = 30,         -- inside nginx: kept-alive connections per host and port
  pool_idle_timeout = 60, -- inside nginx: seconds an idle pooled connection is kept
  transfer_thread = true, -- the blocking transport moves its transfers on a thread
}
M.DEFAULTS = DEFAULTS

local STATUSES = { "running", "success", "failure", "waiting", "cancelled" }
local IS_STATUS = {}
for _, status in ipairs(STATUSES) do IS_STATUS[status] = true end

function M.statuses()
  local copy = {}
  for i, status in ipairs(STATUSES) do copy[i] = status end
  return copy
end

local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"',
  ["\\"] = "\\\\" }

local function escape(char)
  return ESCAPES[char] or format("\\%d", byte(char))
end

-- A value as it appears after "(got ...)": strings quoted and escaped, numbers
-- written alike on every Lua, other values by type.
local function describe(value)
  local kind = type(value)
  if kind == "string" then return '"' .. gsub(value, '[%c"\\]', escape) .. '"' end
  if kind == "number" then
    if value ~= value then return "nan" end
    if value == huge then return "inf" end
    if value == -huge then return "-inf" end
    return tostring(value)
  end
  if kind == "nil" or kind == "boolean" then return tostring(value) end
  return kind
end
M.describe = describe

local function distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current, char = { [0] = i }, sub(a, i, i)
    for j = 1, #b do
      local cost = char == sub(b, j, j) and 0 or 1
      current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

-- The candidate `word` was probably meant to be: close enough to be a slip of
-- the keyboard, or the start of a longer name; nil when none is.
local function suggestion(word, candidates)
  if type(word) ~= "string" then return nil end
  word = lower(word)
  local best, best_distance
  for _, candidate in ipairs(candidates) do
    local d = distance(word, candidate)
    if #word >= 3 and sub(candidate, 1, #word) == word then d = min(d, 1) end
    if best_distance == nil or d < best_distance then best, best_distance = candidate, d end
  end
  if best_distance and best_distance <= max(1, floor(#word / 2)) then return best end
  return nil
end
M.suggestion = suggestion

local function is_finite(v) return type(v) == "number" and v == v and v > -huge and v < huge end
local function is_integer(v) return is_finite(v) and floor(v) == v end
local function positive_number(v) return is_finite(v) and v > 0 end
local function non_negative_integer(v) return is_integer(v) and v >= 0 end
local function positive_integer(v) return is_integer(v) and v >= 1 end
local function prefetch_count(v) return v == "auto" or (non_negative_integer(v) and v <= 64) end
local function prefetch_cap(v) return positive_integer(v) and v <= 64 end
local function page_size(v) return is_integer(v) and v >= 1 and v <= 100 end
local function non_empty_string(v) return type(v) == "string" and v ~= "" end
-- Header values with CR or LF in them could smuggle in headers of their own.
local function header_value(v) return type(v) == "string" and not find(v, "%c") end
local function user_agent(v) return non_empty_string(v) and header_value(v) end

local function http_url(v)
  return type(v) == "string" and find(lower(v), "^https?://[^/?#]") ~= nil
    and not find(v, "[%s%c?#]")
end

local function status_problem(value)
  if type(value) ~= "string" then
    return format('option "status" must be a string (got %s)', describe(value))
  end
  local hint = suggestion(value, STATUSES)
  if hint then return format('invalid status %s (did you mean "%s"?)', describe(value), hint) end
  return format('invalid status %s (expected one of "%s")', describe(value),
    concat(STATUSES, '", "'))
end

-- { name, valid, expected [, problem = custom message] [, secret = true] }
local TOKEN = { "token", header_value, "a string without control characters", secret = true }
local BASE_URL = { "base_url", http_url, "an http:// or https:// URL without query or fragment" }
local TIMEOUT = { "timeout", positive_number, "a positive number" }
local CONNECT_TIMEOUT = { "connect_timeout", positive_number, "a positive number" }
local MAX_RETRIES = { "max_retries", non_negative_integer, "a non-negative integer" }
local DEADLINE = { "deadline", positive_number, "a positive number" }
local PREFETCH = { "prefetch", prefetch_count, 'an integer in 0..64 or "auto"' }
local PREFETCH_CAP = { "prefetch_cap", prefetch_cap, "an integer in 1..64" }
local USER_AGENT = { "user_agent", user_agent, "a non-empty string without control characters" }
-- The luv module: what vim.uv, vim.loop and require "luv" return.
local function luv_module(v)
  return (type(v) == "table" or type(v) == "userdata") and type(v.new_timer) == "function"
    and type(v.new_poll) == "function"
end
local LOOP = { "loop", luv_module, 'a libuv binding such as vim.uv, vim.loop or require "luv"' }
-- The names the transport registry knows: options name no transport of their own.
-- Asked only when the option names one: the registry loads every transport to answer.
local function transport_names() return require("workflows.transport").names() end
local function transport_name(v)
  for _, name in ipairs(transport_names()) do if v == name then return true end end
  return false
end
local function transport_problem(value)
  return format('option "transport" must be one of "%s" (got %s)',
    concat(transport_names(), '", "'), describe(value))
end
local TRANSPORT = { "transport", transport_name, "a name the transport registry knows",
  problem = transport_problem }
local POOL_SIZE = { "pool_size", positive_integer, "a positive integer" }
local POOL_IDLE_TIMEOUT = { "pool_idle_timeout", positive_number, "a positive number" }
local CA_FILE = { "ca_file", non_empty_string, "a non-empty string" }
local CA_PATH = { "ca_path", non_empty_string, "a non-empty string" }
local MAX_BODY_BYTES = { "max_body_bytes", positive_integer, "a positive integer" }
-- Networks (workflows.proxy): the proxy URL and the key's password are secrets.
local function proxy_value(v) return v == false or require("workflows.proxy").parse(v) ~= nil end
local function host_list(v)
  if type(v) == "string" then return not find(v, "%c") end
  if type(v) ~= "table" then return false end
  for key, item in pairs(v) do
    if type(key) ~= "number" or not non_empty_string(item) or find(item, "[%s%c,]") then
      return false
    end
  end
  return true
end
local PROXY = { "proxy", proxy_value, require("workflows.proxy").EXPECTED, secret = true }
local NO_PROXY = { "no_proxy", host_list,
  "a list of host names, domain suffixes and addresses, or one comma-separated string" }
local CLIENT_CERT = { "client_cert", non_empty_string, "the path of a PEM file" }
local CLIENT_KEY = { "client_key", non_empty_string, "the path of a PEM file" }
local CLIENT_KEY_PASSWORD = { "client_key_password", non_empty_string, "a non-empty string",
  secret = true }
local function known_status(v) return IS_STATUS[v] == true end
local STATUS = { "status", known_status, "one of workflows.STATUSES", problem = status_problem }
local LIMIT = { "limit", page_size, "an integer in 1..100" }
-- Past 2^53 a number no longer holds every integer, on any Lua.
local LARGEST_OFFSET = 2 ^ 53
local function offset_value(v) return non_negative_integer(v) and v <= LARGEST_OFFSET end
local function offset_problem(value)
  if non_negative_integer(value) then
    return format('option "offset" must be at most 2^53 (got %s)', describe(value))
  end
  return format('option "offset" must be a non-negative integer (got %s)', describe(value))
end
local OFFSET = { "offset", offset_value, "a non-negative integer", problem = offset_problem }
local MAX = { "max", positive_integer, "a positive integer" }
-- The checks of on_event, headers and retry_budget (workflows.production_options),
-- loaded with the first client given one of them.
local production
local function production_check(name)
  return function(value)
    production = production or require "workflows.production_options"
    return production[name](value)
  end
end
local ON_EVENT = { "on_event", production_check("is_function"), "a function" }
local HEADERS = { "headers", production_check("valid_headers"),
  "a table of header names to strings", problem = production_check("headers_problem") }
local RETRY_BUDGET = { "retry_budget", production_check("valid_budget"),
  "true, false or a table { ratio = 0..1, reserve = a positive number }",
  problem = production_check("budget_problem") }
local SHARED_DICT = { "shared_dict", non_empty_string, "the name of a lua_shared_dict" }
-- A watch polls at most ten times a second: a shorter interval only loads the server.
local SHORTEST_INTERVAL = 0.1
local function interval_seconds(v) return is_finite(v) and v >= SHORTEST_INTERVAL end
local INTERVAL = { "interval", interval_seconds, "a number of seconds, at least 0.1" }
-- The runs a watch keeps in view; past this it would hold more than it could reread.
local LARGEST_HORIZON = 10000
local function horizon_size(v) return positive_integer(v) and v <= LARGEST_HORIZON end
local HORIZON = { "horizon", horizon_size, "an integer in 1..10000" }
local function boolean(v) return type(v) == "boolean" end
local INITIAL = { "initial", boolean, "a boolean" }
local TRANSFER_THREAD = { "transfer_thread", boolean, "a boolean" }

local CLIENT_OPTIONS = { TOKEN, BASE_URL, TIMEOUT, CONNECT_TIMEOUT, MAX_RETRIES, DEADLINE,
  PREFETCH, PREFETCH_CAP, USER_AGENT, CA_FILE, CA_PATH, MAX_BODY_BYTES, LOOP, TRANSPORT,
  POOL_SIZE, POOL_IDLE_TIMEOUT, PROXY, NO_PROXY, CLIENT_CERT, CLIENT_KEY, CLIENT_KEY_PASSWORD,
  ON_EVENT, HEADERS, RETRY_BUDGET, SHARED_DICT, TRANSFER_THREAD }
local LIST_OPTIONS = { STATUS, LIMIT, OFFSET, DEADLINE }
local WALK_OPTIONS = { STATUS, LIMIT, OFFSET, MAX, DEADLINE }
local WATCH_OPTIONS = { STATUS, LIMIT, INTERVAL, HORIZON, INITIAL, DEADLINE }

local function names_of(specs)
  local names = {}
  for i, spec in ipairs(specs) do names[i] = spec[1] end
  return names
end

-- The option names of workflows.new (`client`), of list_runs (`list`), of runs
-- and pages (`walk`) and of watch (`watch`), in the order they are checked: a fresh copy.
function M.names()
  return { client = names_of(CLIENT_OPTIONS), list = names_of(LIST_OPTIONS),
    walk = names_of(WALK_OPTIONS), watch = names_of(WATCH_OPTIONS) }
end

local function value_problem(spec, value)
  if spec.problem then return spec.problem(value) end
  local line = format('option "%s" must be %s', spec[1], spec[3])
  if spec.secret then
    if type(value) == "string" then return line end
    return format("%s (got %s)", line, type(value))
  end
  return format("%s (got %s)", line, describe(value))
end

-- The first key of `given` (in a stable order) that names no option, or nil.
local function unknown_key(given, specs)
  local known, unknown = {}, {}
  for _, spec in ipairs(specs) do known[spec[1]] = true end
  for key in pairs(given) do
    if not known[key] then unknown[#unknown + 1] = key end
  end
  if #unknown == 0 then return nil end
  sort(unknown, function(a, b) return describe(a) < describe(b) end)
  return unknown[1]
end

local function unknown_problem(key, specs)
  local line = "unknown option " .. describe(key)
  local hint = suggestion(key, names_of(specs))
  if hint then line = format('%s (did you mean "%s"?)', line, hint) end
  return line
end

-- A copy of the caller's option table holding the checked values, or nil and
-- the message for the first problem. The caller's table is never changed.
local function checked_copy(given, specs)
  if given == nil then return {} end
  if type(given) ~= "table" then
    return nil, format("options must be a table (got %s)", describe(given))
  end
  local unknown = unknown_key(given, specs)
  if unknown ~= nil then return nil, unknown_problem(unknown, specs) end
  local copy = {}
  for _, spec in ipairs(specs) do
    local value = given[spec[1]]
    if value ~= nil then
      if not spec[2](value) then return nil, value_problem(spec, value) end
      copy[spec[1]] = value
    end
  end
  return copy
end

local function without_trailing_slashes(url)
  return (gsub(url, "/+$", ""))
end

-- The client's settings: the checked options over DEFAULTS and the environment
-- (`getenv` is os.getenv), or nil and a message. `user_agent` stays nil when
-- not given; the caller knows the versions that go into the default one.
function M.client(given, getenv)
  local options, problem = checked_copy(given, CLIENT_OPTIONS)
  if not options then return nil, problem end
  local config = {}
  for key, value in pairs(DEFAULTS) do config[key] = value end
  for key, value in pairs(options) do config[key] = value end
  if options.token == nil then config.token = getenv("WORKFLOWS_API_TOKEN") end
  if options.base_url == nil then
    local from_env = getenv("WORKFLOWS_BASE_URL")
    if from_env ~= nil and from_env ~= "" then
      if not http_url(from_env) then
        return nil, format("environment variable WORKFLOWS_BASE_URL must be %s (got %s)",
          BASE_URL[3], describe(from_env))
      end
      config.base_url = from_env
    else
      config.base_url_is_default = true  -- errors then say why the client talks to it
    end
  end
  config.base_url = without_trailing_slashes(config.base_url)
  return config
end

local function id_problem(id)
  if type(id) ~= "string" or id == "" then
    return format("workflow id must be a non-empty string (got %s)", describe(id))
  end
  return nil
end

local function checked_call(id, given, specs)
  local problem = id_problem(id)
  if problem then return nil, problem end
  return checked_copy(given, specs)
end

-- The checked options of list_runs, or nil and a message.
function M.list_call(id, given) return checked_call(id, given, LIST_OPTIONS) end

-- The checked options of runs and pages, or nil and a message.
function M.walk_call(id, given) return checked_call(id, given, WALK_OPTIONS) end

-- The checked options of watch, or nil and a message.
function M.watch_call(id, given) return checked_call(id, given, WATCH_OPTIONS) end

-- Why no request can be made with this token, or nil when one can. The message
-- never quotes the token.
function M.token_problem(token)
  if token == nil or token == "" then
    return "no API token: pass the token option to workflows.new or set WORKFLOWS_API_TOKEN"
  end
  if type(token) ~= "string" or find(token, "%c") then
    return "the API token (WORKFLOWS_API_TOKEN) contains control characters"
  end
  return nil
end

return M
