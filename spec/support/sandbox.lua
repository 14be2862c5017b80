-- Starts the sandbox API server (sandbox/server.py) for a spec, and stops it again.
--
--   local sandbox = require "spec.support.sandbox"
--
--   describe("something that needs a server", function()
--     local sb
--     lazy_setup(function() sb = sandbox.start { tls = false } end)
--     lazy_teardown(function() sb:stop() end)   -- always: also runs when a test fails
--     ...
--   end)
--
-- Every spec that starts a sandbox must call `sb:stop()` in `teardown` or
-- `lazy_teardown` (or in a `finally` inside one test). As a last resort the server
-- runs with --watch-parent and exits by itself when the test process dies.
--
-- sandbox.start(options) -> sb    raises when the server is not ready within 10 s
--   options: tls (boolean), latency_ms (number), token (string), seed (string or number)
-- sb.url, sb.token, sb.cert (with tls), sb.pid
-- proxy = true: a forward proxy instead of the API (proxy_auth = "user:password" makes it
-- ask for Basic Proxy-Authorization); sb:log() then lists what went through it
-- client_ca = true (with tls): the API requires a client certificate; sb.client holds
-- cert, key, key_encrypted, key_password, stranger_cert, stranger_key
-- sb:log([since_seq])  -> array of log entries (doc/sandbox.md), JSON null as nil
-- sb:last_seq()        -> seq of the newest entry, 0 when there is none
-- sb:stop()            -> SIGTERM, up to 5 s, then SIGKILL; idempotent
--
-- The listing's history (GET /_sandbox/history, doc/sandbox.md). `workflow_id` is
-- the whole id with its directives, as passed to the client; `status` nil means
-- the unfiltered listing; `since` a version read earlier. Each raises on an error.
-- sb:history(workflow_id, [status], [since]) -> the decoded answer: with since
--                      {version, since, throughout = {ids}, any = {ids}}, else
--                      {version, present = {ids}}; ids in listing order
-- sb:version(workflow_id)                        -> events so far for that id
-- sb:present(workflow_id, [status])              -> {ids} now, version
-- sb:present_throughout(workflow_id, status, since) -> {ids} in the listing from
--                      version `since` until now without a break, version
-- sb:present_any(workflow_id, status, since)     -> {ids} in it at any moment, version

local cjson = require "cjson"

local M = {}

local DEFAULT_TOKEN = "sandbox-token"
local READY_TIMEOUT = 10    -- seconds
local STOP_TIMEOUT = 5      -- seconds
local POLL_INTERVAL = 0.05  -- seconds
local OPTIONS = { tls = "boolean", latency_ms = "number", token = "string", seed = true,
  proxy = "boolean", proxy_auth = "string", client_ca = "boolean" }
-- Log fields that are JSON integers; lua-cjson 2.1 decodes every number as a float.
local INTEGER_FIELDS = { "seq", "connection", "status" }

local tointeger = math.tointeger  -- nil before Lua 5.3, where floats are all there is

local Sandbox = {}
Sandbox.__index = Sandbox

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then
    return nil
  end
  local content = file:read("*a")
  file:close()
  return content
end

-- The repository root as seen from this file ("" when it was loaded relative to it).
local function root_dir()
  local source = debug.getinfo(1, "S").source
  return source:match("^@(.-)spec[/\\]support[/\\]sandbox%.lua$") or ""
end

local proc_mounted = read_file("/proc/self/stat") ~= nil

-- True once `pid` (a child of ours, so its pid cannot be reused before we reap it)
-- has exited; an unreaped zombie counts as exited.
local function exited(pid)
  if proc_mounted then
    local stat = read_file("/proc/" .. pid .. "/stat")
    return stat == nil or stat:match(".*%)%s+(%a)") == "Z"
  end
  local ps = io.popen("ps -o stat= -p " .. pid .. " 2>/dev/null")
  local state = ps:read("*a") or ""
  ps:close()
  return state:match("^%s*$") ~= nil or state:match("^%s*Z") ~= nil
end

local function wait_for_exit(pid, seconds)
  for _ = 1, math.ceil(seconds / POLL_INTERVAL) do
    if exited(pid) then
      return true
    end
    sleep(POLL_INTERVAL)
  end
  return exited(pid)
end

local function check_options(options)
  for key, value in pairs(options) do
    local expected = OPTIONS[key]
    if expected == nil then
      error("sandbox.start: unknown option '" .. tostring(key) .. "'", 3)
    end
    if expected ~= true and type(value) ~= expected then
      error("sandbox.start: option '" .. key .. "' must be a " .. expected
        .. ", got " .. type(value), 3)
    end
  end
end

local function server_command(options, log_path, out_path)
  local args = {
    "exec python3", shell_quote(root_dir() .. "sandbox/server.py"),
    "--port 0 --watch-parent --log", shell_quote(log_path),
  }
  if options.tls then
    args[#args + 1] = "--tls"
  end
  if options.client_ca then args[#args + 1] = "--client-ca" end
  if options.proxy then args[#args + 1] = "--proxy" end
  if options.proxy_auth then args[#args + 1] = "--proxy-auth " .. shell_quote(options.proxy_auth) end
  if options.latency_ms then
    args[#args + 1] = string.format("--latency-ms %d", math.floor(options.latency_ms))
  end
  if options.token then
    args[#args + 1] = "--token " .. shell_quote(options.token)
  end
  if options.seed then
    args[#args + 1] = "--seed " .. shell_quote(tostring(options.seed))
  end
  -- `echo $$` names the shell that `exec` turns into the server: its pid is ours to
  -- signal, and its parent is this process, which --watch-parent watches.
  return "echo $$; " .. table.concat(args, " ")
    .. " </dev/null >" .. shell_quote(out_path) .. " 2>&1"
end

-- Polls the server's output for the ready line (and the certificate line with tls).
local function wait_until_ready(pid, out_path, tls)
  for _ = 1, math.ceil(READY_TIMEOUT / POLL_INTERVAL) do
    local output = read_file(out_path) or ""
    local url = output:match("listening (%S+)\n")
    local cert = output:match("certificate (%S+)\n")
    if url and (cert or not tls) and (not tls or tls ~= "client_ca"
        or output:find("client-key-password ", 1, true)) then
      return url, cert, output
    end
    if exited(pid) then
      return nil, "the server exited: " .. output
    end
    sleep(POLL_INTERVAL)
  end
  return nil, "no ready line within " .. READY_TIMEOUT .. " s: " .. (read_file(out_path) or "")
end

function M.start(options)
  options = options or {}
  check_options(options)
  local log_path, out_path = os.tmpname(), os.tmpname()
  local pipe = assert(io.popen(server_command(options, log_path, out_path), "r"))
  local pid = tonumber(pipe:read("*l"))
  local sb = setmetatable({
    pid = pid,
    token = options.token or DEFAULT_TOKEN,
    _pipe = pipe,
    _log_path = log_path,
    _out_path = out_path,
  }, Sandbox)
  if not pid then
    sb:stop()
    error("sandbox.start: could not start the server", 2)
  end
  local url, cert_or_problem, output = wait_until_ready(pid, out_path,
    options.client_ca and "client_ca" or options.tls)
  if not url then
    sb:stop()
    error("sandbox.start: " .. cert_or_problem, 2)
  end
  sb.url = url
  sb.cert = cert_or_problem
  if options.client_ca then
    -- sb.client = { cert, key, key_encrypted, key_password, stranger_cert, stranger_key }
    sb.client = {}
    for name, path in output:gmatch("\n([%w-]+) (%S+)") do
      sb.client[(name:gsub("^client%-", ""):gsub("%-", "_"))] = path
    end
  end
  return sb
end

local function without_nulls(value)
  if type(value) == "table" then
    for key, item in pairs(value) do
      if item == cjson.null then
        value[key] = nil
      else
        without_nulls(item)
      end
    end
  end
  return value
end

function Sandbox:log(since_seq)
  since_seq = since_seq or 0
  local entries = {}
  -- Only whole lines: the server may be writing the next one right now.
  for line in (read_file(self._log_path) or ""):gmatch("([^\n]*)\n") do
    local entry = without_nulls(cjson.decode(line))
    if tointeger then
      for _, field in ipairs(INTEGER_FIELDS) do
        entry[field] = entry[field] and tointeger(entry[field]) or entry[field]
      end
    end
    if entry.seq > since_seq then
      entries[#entries + 1] = entry
    end
  end
  return entries
end

function Sandbox:last_seq()
  local entries = self:log()
  local newest = entries[#entries]
  return newest and newest.seq or 0
end

-- One GET of a /_sandbox/ endpoint through the server's own interpreter, so that
-- the helper needs no HTTP library; prints the body, exits 2 on an HTTP error.
local FETCH = [[
import ssl, sys, urllib.error, urllib.request
url, cafile = sys.argv[1], sys.argv[2] or None
context = ssl.create_default_context(cafile=cafile) if cafile else None
try:
    with urllib.request.urlopen(url, context=context, timeout=30) as answer:
        body, code = answer.read(), 0
except urllib.error.HTTPError as error:
    body, code = error.read(), 2
sys.stdout.write(body.decode("utf-8"))
sys.exit(code)
]]

local function url_encode(text)
  return (tostring(text):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

function Sandbox:history(workflow_id, status, since)
  local query = { "workflow=" .. url_encode(workflow_id) }
  if status ~= nil then
    query[#query + 1] = "status=" .. url_encode(status)
  end
  if since ~= nil then
    query[#query + 1] = string.format("since=%d", since)
  end
  local url = self.url .. "/_sandbox/history?" .. table.concat(query, "&")
  local pipe = assert(io.popen(table.concat({
    "python3 -c", shell_quote(FETCH), shell_quote(url), shell_quote(self.cert or ""),
  }, " ")))
  local output = pipe:read("*a")
  local ok = pipe:close()
  local decoded_ok, body = pcall(cjson.decode, output)
  if not decoded_ok or type(body) ~= "table" then
    error("sandbox history: unreadable answer: " .. output, 2)
  end
  body = without_nulls(body)
  if not ok or body.code then
    error("sandbox history: " .. tostring(body.message), 2)
  end
  for _, field in ipairs({ "version", "since" }) do
    if tointeger and body[field] then
      body[field] = tointeger(body[field])
    end
  end
  return body
end

function Sandbox:version(workflow_id)
  return self:history(workflow_id).version
end

function Sandbox:present(workflow_id, status)
  local body = self:history(workflow_id, status)
  return body.present, body.version
end

function Sandbox:present_throughout(workflow_id, status, since)
  assert(since ~= nil, "present_throughout: since is required")
  local body = self:history(workflow_id, status, since)
  return body.throughout, body.version
end

function Sandbox:present_any(workflow_id, status, since)
  assert(since ~= nil, "present_any: since is required")
  local body = self:history(workflow_id, status, since)
  return body.any, body.version
end

function Sandbox:stop()
  if self._stopped then
    return
  end
  self._stopped = true
  if self.pid and not exited(self.pid) then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not wait_for_exit(self.pid, STOP_TIMEOUT) then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    end
  end
  self._pipe:close()  -- reaps the server, so that its pid is really gone
  os.remove(self._log_path)
  os.remove(self._out_path)
end

return M
