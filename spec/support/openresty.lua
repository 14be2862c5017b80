-- What the specs of the cosocket transport inside nginx share
-- (spec/95-openresty-*_spec.lua): an nginx whose /eval location runs a posted Lua
-- chunk, the same chunk run here on the curl transport, and the helpers both sides
-- use to turn their results into JSON that compares alike.
--
--   local openresty = require "spec.support.openresty"
--   if openresty.skipped("the nginx transport") then return end
--   local server = openresty.start(sb, { http = "...", server = "..." })  -- in lazy_setup
--   openresty.run_in(server, sb.url, code [, max_time]) -> the chunk's result inside nginx
--   openresty.run_here(sb.url, code)                    -> the same on this process's Lua
--   openresty.comparable(result)     -> result without timings, request ids, byte counts
--   openresty.fresh(directives)      -> "wf_demo;<directives>;n=ngxN", an id no test used
--
-- A chunk has `shared` (runs_of, error_of, page_of, walk, fewest_entries: below),
-- `workflows` and SB
-- (the sandbox's URL) in scope, and returns the value to compare.
local nginx = require "spec.support.nginx"
local cli = require "spec.support.cli"
local cjson = require "cjson"

local M = {}

-- Whether nginx and its Lua module are missing here: then a pending test named
-- after `title` says what is missing, and the spec file returns.
function M.skipped(title)
  local available, why = nginx.available()
  if available then return false end
  local busted = require "busted"
  busted.describe(title, function()
    busted.pending("skipped: " .. why)
  end)
  return true
end

-- What both sides use to turn results into comparable JSON: runs as sorted
-- "key=value" strings (numbers through %.17g, so every Lua writes them alike),
-- errors as their fields; and a count of a process's descriptors or threads.
local SHARED = [[
local type, pairs, tostring, format = type, pairs, tostring, string.format
local function value_text(v)
  if type(v) == "number" then return format("%.17g", v) end
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in ipairs(keys) do keys[i] = k .. ":" .. value_text(v[k]) end
    return "{" .. table.concat(keys, ",") .. "}"
  end
  return tostring(v)
end
local function runs_of(items)
  local out = {}
  for i, run in ipairs(items) do out[i] = value_text(run) end
  return out
end
local function error_of(err)
  if type(err) ~= "table" then return { raised = tostring(err) } end
  return { kind = err.kind, status = err.status, code = err.code, message = err.message,
    attempts = err.attempts, retry_after = err.retry_after, tls = err.tls, line = tostring(err) }
end
local function page_of(page, err)
  if not page then return { error = error_of(err) } end
  return { items = runs_of(page.items), hasMore = page.hasMore, limit = page.limit,
    offset = page.offset }
end
local function walk(client, mode, id, opts)
  local got = {}
  local ok, err = pcall(function()
    for item in client[mode](client, id, opts) do
      if mode == "pages" then
        got[#got + 1] = { offset = item.offset, items = runs_of(item.items) }
      else
        got[#got + 1] = value_text(item)
      end
    end
  end)
  if not ok then return { error = error_of(err), got = #got } end
  return { got = got }
end
-- the fewest entries of `dir` in `tries` listings: while `ls` reads the list, this
-- process may not have closed its copy of the pipe's other end yet, which counts one more
local function fewest_entries(dir, tries)
  local fewest = math.huge
  for _ = 1, tries do
    local pipe = io.popen("ls " .. dir)
    local n = 0
    for _ in pipe:lines() do n = n + 1 end
    pipe:close()
    fewest = math.min(fewest, n)
  end
  return fewest
end
return { runs_of = runs_of, error_of = error_of, page_of = page_of, walk = walk,
  fewest_entries = fewest_entries }
]]
M.SHARED = SHARED

local load_chunk = loadstring or load  -- luacheck: ignore (loadstring: Lua 5.1, LuaJIT)

local shell_quote, read_file = cli.shell_quote, cli.read_file

-- The /eval location: runs the posted chunk with `shared` (above), `workflows`,
-- and SB (the sandbox's URL) in scope; the chunk returns a value to send as JSON.
local EVAL = [[
  client_body_buffer_size 1m;
  client_max_body_size 1m;
  location = /eval {
    content_by_lua_block {
      ngx.req.read_body()
      local chunk, problem = loadstring(ngx.req.get_body_data() or "", "=eval")
      if not chunk then ngx.status = 500 ngx.say(problem) return end
      local ok, result = pcall(chunk)
      if not ok then ngx.status = 500 ngx.say(tostring(result)) return end
      ngx.say(require("cjson").encode(result))
    }
  }
]]

-- Starts nginx for one spec file against the sandbox `sb`, at log level debug, with
-- the /eval location and the file's own `http` directives and `server` locations.
-- nginx sees SB_URL, and WORKFLOWS_BASE_URL and WORKFLOWS_API_TOKEN for `sb`.
function M.start(sb, own)
  return nginx.start {
    env = { "SB_URL" },
    main = "",
    http = "  lua_check_client_abort on;\n" .. (own.http or ""),
    server = EVAL .. (own.server or ""),
    log_level = "debug",
    setenv = { SB_URL = sb.url, WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = sb.token },
  }
end

local function chunk_text(url, code)
  return "local shared = (function() " .. SHARED .. " end)()\n"
    .. "local workflows = require 'workflows'\nlocal SB = " .. string.format("%q", url) .. "\n"
    .. code
end

-- Sends `code` (with the shared helpers and SB set to `url`) to nginx; returns the
-- decoded result. Raises with the handler's answer when it fails.
function M.run_in(server, url, code, max_time)
  local path = os.tmpname()
  local file = assert(io.open(path, "wb"))
  file:write(chunk_text(url, code))
  file:close()
  local out = os.tmpname()
  local pipe = assert(io.popen("curl -s -o " .. shell_quote(out) .. " -w '%{http_code}' --max-time "
    .. (max_time or 60) .. " --data-binary @" .. shell_quote(path) .. " "
    .. shell_quote(server.url .. "/eval")))
  local status = pipe:read("*a")
  pipe:close()
  local body = read_file(out) or ""
  os.remove(path)
  os.remove(out)
  if status ~= "200" then error("nginx answered " .. status .. ": " .. body .. "\n"
    .. server:error_log():sub(-2000), 2) end
  return cjson.decode(body)
end

-- The same code on this process's Lua, with the curl transport.
function M.run_here(url, code)
  local chunk = assert(load_chunk(chunk_text(url, code)))
  -- through JSON like the other side, so that both compare alike
  return cjson.decode(cjson.encode(chunk()))
end

-- The chunk's result inside nginx and here.
function M.both(server, url, code)
  return M.run_in(server, url, code), M.run_here(url, code)
end

-- Stops nginx and the sandboxes a spec file started, whichever did start.
function M.stop(server, ...)
  if server then server:stop() end
  for i = 1, select("#", ...) do
    local sb = select(i, ...)
    if sb then sb:stop() end
  end
end

-- What varies from one request to the next: timings and request ids, and the
-- bytes left of a cut body (the curl transport asks for gzip, this one does not).
local function without_figures(text)
  return (tostring(text):gsub("%d+ milliseconds", "N milliseconds"):gsub("%d+ ms", "N ms")
    :gsub("req_%x+", "req_X"):gsub("closed with %d+ bytes", "closed with N bytes"))
end

function M.comparable(result)
  if type(result) == "table" then
    for key, value in pairs(result) do
      if type(value) == "string" then result[key] = without_figures(value)
      else M.comparable(value) end
    end
  end
  return result
end

-- The sandbox keeps its counters (times=) per workflow id: an id of its own gives a
-- test fresh ones. Each spec file starts a sandbox of its own.
local unique = 0

function M.fresh(directives)
  unique = unique + 1
  return string.format("wf_demo;%s;n=ngx%d", directives, unique)
end

return M
