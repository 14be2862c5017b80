-- Starts nginx with its Lua module (Debian's nginx-light + libnginx-mod-http-lua) for
-- a spec or a benchmark, with this checkout's Lua files and the LuaJIT build of the
-- core on its paths, and stops it again.
--
--   local nginx = require "spec.support.nginx"
--   local available, why = nginx.available()      -- false, reason when not installed
--   local server = nginx.start {
--     http = "...",        -- more directives for the http block (lua_shared_dict, ...)
--     main = "...",        -- more directives for the main block
--     server = "...",      -- the server block's locations
--     env = { "NAME" },    -- environment variables nginx passes on to Lua
--     setenv = { NAME = "value" },  -- set for nginx, and passed on
--     log_level = "debug", -- error_log level (default "info")
--     workers = nil,       -- nil: one process, no master (the default)
--     unset = { "NAME" },  -- environment variables nginx must not see
--   }
--   nginx.start { prefix = dir, conf = function(port) return text end, ready = "/ping" }
--                        -- a whole nginx.conf of one's own (an example's), written to
--                        -- dir/nginx.conf; `ready` answers 200 once it runs
--   server.url, server.port, server.prefix, server.pid
--   server:get(path [, max_time]) -> status, body, content type   (with curl)
--   server:error_log()          -> the error log's text
--   server:stop()               -> SIGTERM (then SIGKILL), by pid; idempotent
--
-- Specs call server:stop() in lazy_teardown, so that it runs when a test fails.

local cli = require "spec.support.cli"

local M = {}

-- Started without the sanitizer runtime that make test-asan preloads into the
-- specs: nginx and curl are not built for it, and curl hangs with it.
local NGINX_PATH = "/usr/sbin/nginx"
local NGINX = "env -u LD_PRELOAD " .. NGINX_PATH
local CURL = "env -u LD_PRELOAD curl"
local MODULES = "/usr/lib/nginx/modules"
local READY_TIMEOUT = 10
local POLL_INTERVAL = 0.05

local shell_quote, read_file, write_file = cli.shell_quote, cli.read_file, cli.write_file

local function command_output(command)
  local pipe = assert(io.popen(command))
  local output = pipe:read("*a")
  pipe:close()
  return output
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

-- The repository root as an absolute path, found from this file's location.
local function root_dir()
  local source = debug.getinfo(1, "S").source
  local dir = source:match("^@(.-)spec[/\\]support[/\\]nginx%.lua$") or ""
  if dir:sub(1, 1) ~= "/" then
    dir = command_output("pwd"):gsub("%s+$", "") .. "/" .. dir
  end
  return (dir:gsub("/%./", "/"):gsub("/$", ""))
end
M.root = root_dir

function M.available()
  if not read_file(NGINX_PATH) then return false, "nginx is not installed (apt-get install nginx-light)" end
  if not read_file(MODULES .. "/ngx_http_lua_module.so") then
    return false, "nginx's Lua module is not installed (apt-get install libnginx-mod-http-lua)"
  end
  if not read_file("/usr/share/lua/5.1/resty/core.lua") then
    return false, "lua-resty-core is not installed (apt-get install lua-resty-core)"
  end
  local core = root_dir() .. "/build/luajit/workflows/core.so"
  if not read_file(core) then  -- make test builds it after the other Luas' runs
    os.execute("make -s -C " .. shell_quote(root_dir()) .. " LUA=luajit >/dev/null 2>&1")
    if not read_file(core) then
      return false, "the core does not build for LuaJIT (make LUA=luajit)"
    end
  end
  return true
end

-- Started by root with a master, nginx runs its workers as "nobody", who cannot read a
-- checkout in a directory only root may enter (mktemp -d makes those): the workers
-- then stay root too.
local AS_ROOT_WORKERS = command_output("id -u"):match("^0%s") and " -g 'user root;'" or ""

local function exited(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat == nil or stat:match(".*%)%s+(%a)") == "Z"
end

local function free_port()
  return tonumber(command_output("python3 -c 'import socket; s = socket.socket(); "
    .. "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"))
end

local function config_text(options, root, prefix, port)
  local env = {}
  for _, name in ipairs(options.env or {}) do env[#env + 1] = "env " .. name .. ";" end
  for name in pairs(options.setenv or {}) do env[#env + 1] = "env " .. name .. ";" end
  local workers = options.workers
  return table.concat({
    "load_module " .. MODULES .. "/ndk_http_module.so;",
    "load_module " .. MODULES .. "/ngx_http_lua_module.so;",
    "daemon off;",
    workers and "master_process on;" or "master_process off;",
    "worker_processes " .. (workers or 1) .. ";",
    "pid " .. prefix .. "/nginx.pid;",
    "error_log " .. prefix .. "/error.log " .. (options.log_level or "info") .. ";",
    table.concat(env, "\n"),
    options.main or "",
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. prefix .. "/client_body;",
    "  proxy_temp_path " .. prefix .. "/proxy;",
    "  fastcgi_temp_path " .. prefix .. "/fastcgi;",
    "  uwsgi_temp_path " .. prefix .. "/uwsgi;",
    "  scgi_temp_path " .. prefix .. "/scgi;",
    -- the trailing ;; keeps the default path, where resty.core lives
    "  lua_package_path '" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root
      .. "/?.lua;;';",
    "  lua_package_cpath '" .. root .. "/build/luajit/?.so;;';",
    options.http or "",
    "  server {",
    "    listen 127.0.0.1:" .. port .. ";",
    "    location = /__ready { return 200 'ready'; }",
    options.server or "",
    "  }",
    "}",
  }, "\n") .. "\n"
end

local Server = {}
Server.__index = Server

local function try_start(options, root)
  local prefix = options.prefix or command_output("mktemp -d"):gsub("%s+$", "")
  local port = free_port()
  local conf = prefix .. "/nginx.conf"
  write_file(conf, options.conf and options.conf(port) or config_text(options, root, prefix, port))
  local out = prefix .. "/stdout.log"
  local assignments = {}
  for _, name in ipairs(options.unset or {}) do
    assignments[#assignments + 1] = "unset " .. name .. "; "
  end
  for name, value in pairs(options.setenv or {}) do
    assignments[#assignments + 1] = name .. "=" .. shell_quote(value) .. " "
  end
  local pipe = assert(io.popen("echo $$; " .. table.concat(assignments) .. "exec " .. NGINX
    .. " -p " .. shell_quote(prefix)
    .. " -c " .. shell_quote(conf) .. " -e " .. shell_quote(prefix .. "/error.log")
    .. AS_ROOT_WORKERS
    .. " </dev/null >" .. shell_quote(out) .. " 2>&1", "r"))
  local pid = tonumber(pipe:read("*l"))
  local server = setmetatable({ pid = pid, port = port, prefix = prefix, _pipe = pipe,
    url = "http://127.0.0.1:" .. port }, Server)
  for _ = 1, math.ceil(READY_TIMEOUT / POLL_INTERVAL) do
    if not pid or exited(pid) then
      local why = (read_file(out) or "") .. (read_file(prefix .. "/error.log") or "")
      server:stop()
      return nil, why
    end
    local status = server:get(options.ready or "/__ready")
    if status == 200 then return server end
    sleep(POLL_INTERVAL)
  end
  local why = read_file(prefix .. "/error.log") or ""
  server:stop()
  return nil, "not ready within " .. READY_TIMEOUT .. " s: " .. why
end

function M.start(options)
  options = options or {}
  local root = root_dir()
  local why
  for _ = 1, 3 do  -- another process may take the free port first
    local server
    server, why = try_start(options, root)
    if server then return server end
    if not why:find("Address already in use", 1, true) then break end
  end
  error("nginx did not start: " .. tostring(why), 2)
end

-- GET `path` with the curl tool: the status, the body and the Content-Type.
-- `max_time` in seconds.
function Server:get(path, max_time)
  local body_path = os.tmpname()
  local written = command_output(CURL .. " -s -o " .. shell_quote(body_path)
    .. " -w '%{http_code} %{content_type}' --max-time " .. (max_time or 60) .. " "
    .. shell_quote(self.url .. path))
  local body = read_file(body_path)
  os.remove(body_path)
  local status, content_type = written:match("^(%d+) ?(.*)$")
  return tonumber(status), body, content_type
end

function Server:error_log()
  return read_file(self.prefix .. "/error.log") or ""
end

function Server:stop()
  if self._stopped then return end
  self._stopped = true
  if self.pid and not exited(self.pid) then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if exited(self.pid) then break end
      sleep(POLL_INTERVAL)
    end
    if not exited(self.pid) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  end
  self._pipe:close()
  if self.prefix and self.prefix:match("^/tmp/") then
    os.execute("rm -rf " .. shell_quote(self.prefix))
  end
end

return M
