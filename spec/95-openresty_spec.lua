-- The cosocket transport inside nginx (OpenResty's Lua module): the same pages and
-- errors as the curl transport, kept-alive connections, TLS through nginx's trust
-- store, the phases where it refuses to run, and no token in nginx's debug log.
--
-- Each test sends a Lua chunk to an /eval location, which runs it in a content
-- handler and answers its JSON; the same chunk runs here on the curl transport.
local nginx = require "spec.support.nginx"
local sandbox = require "spec.support.sandbox"
local cli = require "spec.support.cli"
local cjson = require "cjson"

local available, why = nginx.available()
if not available then
  describe("the nginx transport", function()
    pending("skipped: " .. why)
  end)
  return
end

-- What both sides use to turn results into comparable JSON: runs as sorted
-- "key=value" strings (numbers through %.17g, so every Lua writes them alike),
-- errors as their fields.
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
return { runs_of = runs_of, error_of = error_of, page_of = page_of, walk = walk }
]]

local load_chunk = loadstring or load  -- luacheck: ignore (loadstring: Lua 5.1, LuaJIT)

local shell_quote, read_file = cli.shell_quote, cli.read_file

-- The /eval location: runs the posted chunk with `shared` (above), `workflows`,
-- and `sb` (the sandbox's URL) in scope; the chunk returns a value to send as JSON.
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

-- Sends `code` (with the shared helpers and SB set to `url`) to nginx; returns the
-- decoded result. Raises with the handler's answer when it fails.
local function run_in(server, url, code, max_time)
  local chunk = "local shared = (function() " .. SHARED .. " end)()\n"
    .. "local workflows = require 'workflows'\nlocal SB = " .. string.format("%q", url) .. "\n"
    .. code
  local path = os.tmpname()
  local file = assert(io.open(path, "wb"))
  file:write(chunk)
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
local function run_here(url, code)
  local chunk = assert(load_chunk("local shared = (function() " .. SHARED .. " end)()\n"
    .. "local workflows = require 'workflows'\nlocal SB = " .. string.format("%q", url) .. "\n"
    .. code))
  -- through JSON like the other side, so that both compare alike
  return cjson.decode(cjson.encode(chunk()))
end

-- What varies from one request to the next: timings and request ids, and the
-- bytes left of a cut body (the curl transport asks for gzip, this one does not).
local function without_figures(text)
  return (tostring(text):gsub("%d+ milliseconds", "N milliseconds"):gsub("%d+ ms", "N ms")
    :gsub("req_%x+", "req_X"):gsub("closed with %d+ bytes", "closed with N bytes"))
end

local function comparable(result)
  if type(result) == "table" then
    for key, value in pairs(result) do
      if type(value) == "string" then result[key] = without_figures(value)
      else comparable(value) end
    end
  end
  return result
end

describe("the nginx transport", function()
  local sb, tls_sb, server
  local unique = 0

  local function fresh(directives)
    unique = unique + 1
    return string.format("wf_demo;%s;n=ngx%d", directives, unique)
  end

  lazy_setup(function()
    sb = sandbox.start {}
    tls_sb = sandbox.start { tls = true }
    local tls_url = tls_sb.url:gsub("127%.0%.0%.1", "localhost")
    local function tls_location(name, trust)
      return string.format([[
  location = /%s {
    %s
    content_by_lua_block {
      local workflows = require "workflows"
      local client = workflows.new { token = "sandbox-token", base_url = %q, max_retries = 0 }
      local page, err = client:list_runs("wf_demo", { limit = 5 })
      if not page then
        ngx.say(require("cjson").encode { kind = err.kind, message = err.message })
      else
        ngx.say(require("cjson").encode { items = #page.items })
      end
    }
  }
]], name, trust, tls_url)
    end
    server = nginx.start {
      env = { "SB_URL" },
      main = "",
      http = [[
  lua_shared_dict probe 1m;
  lua_check_client_abort on;
  init_by_lua_block {
    -- this process's pid: /proc/self in a command would be the command's own
    local stat = io.open("/proc/self/stat")
    local pid = stat:read("*l"):match("^%d+")
    stat:close()
    -- the fewest of a few counts: while `ls` reads the list, this process may not
    -- have closed its copy of the pipe's other end yet, which counts one more
    local function count(what)
      local fewest = math.huge
      for _ = 1, 5 do
        local pipe = io.popen("ls /proc/" .. pid .. "/" .. what)
        local n = 0
        for _ in pipe:lines() do n = n + 1 end
        pipe:close()
        fewest = math.min(fewest, n)
      end
      return fewest
    end
    local fds, tasks = count("fd"), count("task")
    local core = require "workflows.core"
    INIT_LOAD = { fds_before = fds, fds_after = count("fd"), tasks_before = tasks,
      tasks_after = count("task"), loaded = type(core.response_outcome) == "function" }
    local workflows = require "workflows"
    local client = workflows.new { token = "t", base_url = "http://127.0.0.1:9" }
    local page, err = client:list_runs("wf_demo")
    INIT_CALL = { page = page ~= nil, kind = err and err.kind, message = err and err.message }
    local ok, raised = pcall(function() for _ in client:runs("wf_demo") do end end)
    INIT_WALK = { ok = ok, kind = type(raised) == "table" and raised.kind or tostring(raised) }
  }
  init_worker_by_lua_block {
    local workflows = require "workflows"
    local client = workflows.new { token = "sandbox-token", base_url = os.getenv("SB_URL") }
    local page, err = client:list_runs("wf_demo")
    local dict = ngx.shared.probe
    dict:set("init_worker", require("cjson").encode { page = page ~= nil,
      kind = err and err.kind, message = err and err.message })
    ngx.timer.at(0, function()
      local n, pages = 0, 0
      local ok, walk_err = pcall(function()
        for page in client:pages("wf_demo", { limit = 40 }) do
          pages = pages + 1
          n = n + #page.items
        end
      end)
      dict:set("timer", require("cjson").encode { ok = ok, runs = n, pages = pages,
        err = not ok and tostring(walk_err) or nil })
    end)
  }
]],
      server = EVAL .. [[
  location = /failures { content_by_lua_file ]] .. nginx.root() .. [[/examples/openresty/failures.lua; }
  # a page sent with chunked framing, in pieces, by this same worker
  location = /v1/workflows/chunked/runs {
    keepalive_timeout 1s;  # closes the client's pooled connections behind its back
    content_by_lua_block {
      local page = '{"code":200,"data":{"hasMore":false,"items":[{"id":"run_1","totalCu":1.5,'
        .. '"workflowVersion":3,"sourceRunId":null},{"id":"run_2","totalCu":2}],"limit":20,'
        .. '"offset":0},"message":"success","requestId":"req_chunked"}'
      ngx.header["Content-Type"] = "application/json"
      for at = 1, #page, 40 do
        ngx.print(page:sub(at, at + 39))
        ngx.flush(true)
      end
    }
  }
  location = /init { content_by_lua_block {
    ngx.say(require("cjson").encode { load = INIT_LOAD, call = INIT_CALL, walk = INIT_WALK,
      init_worker = require("cjson").decode(ngx.shared.probe:get("init_worker") or "null"),
      timer = require("cjson").decode(ngx.shared.probe:get("timer") or "null") })
  } }
  location = /log_phase {
    content_by_lua_block { ngx.say("ok") }
    log_by_lua_block {
      local workflows = require "workflows"
      local client = workflows.new { token = "t", base_url = os.getenv("SB_URL") }
      local page, err = client:list_runs("wf_demo")
      ngx.shared.probe:set("log", require("cjson").encode { page = page ~= nil,
        kind = err and err.kind, message = err and err.message })
    }
  }
]] .. tls_location("tls_trusted", "lua_ssl_trusted_certificate " .. tls_sb.cert
        .. "; lua_ssl_verify_depth 2;")
        .. tls_location("tls_untrusted", "")
        .. tls_location("tls_wrong_ca",
          "lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt; lua_ssl_verify_depth 3;")
        .. tls_location("tls_by_address", "lua_ssl_trusted_certificate " .. tls_sb.cert
        .. "; lua_ssl_verify_depth 2;"):gsub("localhost", "127.0.0.1")
        .. string.format([[
  location = /tls_silent_refusal {
    lua_ssl_trusted_certificate %s;
    lua_ssl_verify_depth 2;
    content_by_lua_block {
      local workflows = require "workflows"
      local tcp, handshakes = ngx.socket.tcp, 0
      local every = ngx.var.arg_every
      ngx.socket.tcp = function()
        local sock = tcp()
        local real = sock.sslhandshake
        function sock.sslhandshake(self, ...)
          handshakes = handshakes + 1
          local shaken, err = real(self, ...)
          if shaken and (every or handshakes == 1) then self:close() end
          return shaken, err
        end
        return sock
      end
      local client = workflows.new { token = "sandbox-token", base_url = %%q, max_retries = 0 }
      local page, err = client:list_runs("wf_demo;n=silent" .. ngx.now(), { limit = 5 })
      ngx.socket.tcp = tcp
      local cjson = require "cjson"
      if page then
        ngx.say(cjson.encode { items = #page.items, handshakes = handshakes })
      else
        ngx.say(cjson.encode { kind = err.kind, message = err.message, handshakes = handshakes })
      end
    }
  }
]], tls_sb.cert):format(tls_url),
      log_level = "debug",
      setenv = { SB_URL = sb.url, WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = sb.token },
    }
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if sb then sb:stop() end
    if tls_sb then tls_sb:stop() end
  end)

  local function both(code)
    return run_in(server, sb.url, code), run_here(sb.url, code)
  end

  describe("list_runs()", function()
    it("gives the curl transport's pages, without asking for gzip", function()
      local seq = sb:last_seq()
      local code = [[
        local client = workflows.new { token = "sandbox-token", base_url = SB }
        return {
          shared.page_of(client:list_runs("wf_demo", { limit = 50, offset = 10 })),
          shared.page_of(client:list_runs("wf_demo", { status = "failure", limit = 7 })),
          shared.page_of(client:list_runs("wf_empty")),
        }
      ]]
      local inside, outside = both(code)
      assert.same(outside, inside)
      assert.equal(50, #inside[1].items)
      local entry = sb:log(seq)[1]
      assert.is_nil(entry.headers["Accept-Encoding"])
      assert.equal("application/json", entry.headers["Accept"])
      assert.equal("Bearer ***", entry.headers["Authorization"])
      assert.matches("^lua%-workflows/", entry.headers["User-Agent"])
      assert.matches("^127%.0%.0%.1:%d+$", entry.headers["Host"])
    end)

    local faults = {
      { "a 400", "status=400" },
      { "a 401", nil, "token = 'wrong'" },
      { "a 404", nil, nil, "wf_nope" },
      { "a 503 with Retry-After, retried", "status=503;retry_after=1;times=1", "max_retries = 1" },
      { "a 503 with a long Retry-After", "status=503;retry_after=120" },
      { "a connection reset", "fault=reset" },
      { "a short body", "fault=short" },
      { "invalid JSON", "fault=invalid_json" },
      { "JSON of the wrong shape", "fault=wrong_shape" },
      { "an HTML error page", "fault=html" },
      { "a redirect", "fault=redirect" },
      { "a silent server", "fault=silent", "timeout = 0.5" },
      { "the deadline", "latency=800", "deadline = 0.4" },
      { "a body past max_body_bytes", nil, "max_body_bytes = 1000" },
    }
    for _, case in ipairs(faults) do
      it("fails as the curl transport does on " .. case[1], function()
        local id = case[4] or (case[2] and fresh(case[2])) or "wf_demo"
        local code = string.format([[
          local client = workflows.new { token = "sandbox-token", base_url = SB,
            max_retries = 0, %s }
          return shared.page_of(client:list_runs(%q, { limit = 20 }))
        ]], case[3] or "", id)
        local inside = run_in(server, sb.url, code)
        if case[2] and case[2]:find("times=") then  -- a fresh id for the curl side
          code = code:gsub("n=ngx%d+", "n=curl" .. unique)
        end
        local outside = run_here(sb.url, code)
        assert.same(comparable(outside), comparable(inside))
      end)
    end

    it("reads a chunked answer, here from its own worker, which it does not block", function()
      local inside = run_in(server, sb.url, string.format([[
        local client = workflows.new { token = "t", base_url = %q }
        local page, err = client:list_runs("chunked")
        if not page then return { error = shared.error_of(err) } end
        return { items = shared.runs_of(page.items), requestId = page.requestId }
      ]], server.url))
      assert.same({ requestId = "req_chunked", items = {
        "{id:run_1,totalCu:1.5,workflowVersion:3}", "{id:run_2,totalCu:2}" } }, inside)
    end)

    -- nginx drops a pooled connection from the pool when its server closes it; the
    -- transport's own retry covers only the race where that close comes as it is reused
    it("takes a fresh connection when the server closed the pooled one meanwhile", function()
      local result = run_in(server, sb.url, string.format([[
        local client = workflows.new { token = "t", base_url = %q, max_retries = 0 }
        local first = assert(client:list_runs("chunked"))
        ngx.sleep(1.5)
        local second, err = client:list_runs("chunked")
        return { first = #first.items, second = second and #second.items,
          err = err and tostring(err) }
      ]], server.url))
      assert.same({ first = 2, second = 2 }, result)
    end)

    it("counts and releases a client's attempts in the running request", function()
      local result = run_in(server, sb.url, [[
        local cosockets = require "workflows.transport.ngx"
        local registry = require "workflows.transport"
        local client = { config = { pool_size = 4, pool_idle_timeout = 5, transport = "auto" },
          transports = {} }
        local transport = registry.current(client)
        local attempt = transport:start { url = SB .. "/v1/workflows/wf_demo%3Blatency%3D400/runs",
          token = "sandbox-token", timeout = 5, connect_timeout = 1 }
        local running = registry.in_flight(client)
        registry.close_all(client)
        registry.close_all(client)
        return { running = running, after = registry.in_flight(client),
          done = attempt:done(), same = cosockets.transport_for(client) == transport }
      ]])
      assert.same({ running = 1, after = 0, done = false, same = false }, result)
    end)

    it("says what it could not connect to", function()
      local inside = run_in(server, sb.url, [[
        local client = workflows.new { token = "t", base_url = "http://127.0.0.1:9", max_retries = 0 }
        return shared.page_of(client:list_runs("wf_demo"))
      ]])
      assert.equal("network", inside.error.kind)
      assert.matches("^Failed to connect to 127%.0%.0%.1 port 9 after %d+ ms: Connection refused$",
        inside.error.message)
    end)

    it("asks for a resolver when nginx has none", function()
      local inside = run_in(server, sb.url, [[
        local client = workflows.new { token = "t", base_url = "http://api.invalid", max_retries = 0 }
        return shared.page_of(client:list_runs("wf_demo"))
      ]])
      assert.equal("network", inside.error.kind)
      assert.equal("Could not resolve host: api.invalid (nginx has no resolver: add a resolver "
        .. "directive to nginx.conf, e.g. resolver 127.0.0.53;)", inside.error.message)
    end)
  end)

  describe("runs() and pages()", function()
    for prefetch = 0, 4 do
      it("give the curl transport's runs at prefetch " .. prefetch, function()
        local code = string.format([[
          local client = workflows.new { token = "sandbox-token", base_url = SB, prefetch = %d }
          return {
            shared.walk(client, "runs", "wf_demo", { limit = 30 }),
            shared.walk(client, "pages", "wf_demo", { limit = 45, status = "success" }),
            shared.walk(client, "runs", "wf_demo", { limit = 20, max = 55 }),
          }
        ]], prefetch)
        local inside, outside = both(code)
        assert.equal(250, #inside[1].got)
        assert.equal(55, #inside[3].got)
        assert.same(outside, inside)
      end)
    end

    it("raise the error a page failed with, as the curl transport does", function()
      local code = string.format([[
        local client = workflows.new { token = "sandbox-token", base_url = SB, max_retries = 0 }
        return shared.walk(client, "runs", %q, { limit = 10 })
      ]], "wf_demo;fault=invalid_json")
      local inside, outside = both(code)
      assert.equal("decode", inside.error.kind)
      assert.same(comparable(outside), comparable(inside))
    end)

    it("ride kept-alive connections, and later requests take them from the pool", function()
      local seq = sb:last_seq()
      local code = [[
        local client = workflows.new { token = "sandbox-token", base_url = SB, prefetch = 2 }
        return shared.walk(client, "pages", "wf_demo", { limit = 25, max = 10 })
      ]]
      assert.equal(10, #run_in(server, sb.url, code).got)
      local first = {}
      local entries = sb:log(seq)
      for _, entry in ipairs(entries) do first[entry.connection] = true end
      local opened = 0
      for _ in pairs(first) do opened = opened + 1 end
      assert.equal(10, #entries)
      assert.is_true(opened <= 3, "connections opened for 10 pages: " .. opened)
      seq = sb:last_seq()
      assert.equal(10, #run_in(server, sb.url, code).got)
      for _, entry in ipairs(sb:log(seq)) do
        assert.is_true(first[entry.connection], "a new connection: " .. entry.connection)
      end
    end)

    it("stop their prefetching threads at once on walk:close()", function()
      local seq = sb:last_seq()
      local id = fresh("latency=600")
      local started = os.time()
      local result = run_in(server, sb.url, string.format([[
        local client = workflows.new { token = "sandbox-token", base_url = SB, prefetch = 4 }
        local now = require("workflows.core").now
        local t0 = now()
        local iterator, _, _, walk = client:pages(%q, { limit = 10 })
        local first = iterator()
        local function descriptors()  -- the fewest of three counts (see count above)
          local fewest = math.huge
          for _ = 1, 3 do
            local pipe = io.popen("ls /proc/" .. ngx.worker.pid() .. "/fd")
            local n = 0
            for _ in pipe:lines() do n = n + 1 end
            pipe:close()
            fewest = math.min(fewest, n)
          end
          return fewest
        end
        local before = descriptors()
        local t1 = now()
        walk:close()
        local close_wait = now() - t1
        return { first = #first.items, page_wait = t1 - t0, close_wait = close_wait,
          closed = before - descriptors() }
      ]], id))
      assert.equal(10, result.first)
      assert.is_true(result.close_wait < 0.05, "close took " .. result.close_wait)
      -- the four pages in flight had a connection each, once their threads ran (on a
      -- loaded machine one may not have connected yet)
      assert.is_true(result.closed >= 3, result.closed .. " descriptors closed")
      assert.is_true(os.time() - started < 4)
      -- the first page, and the pages prefetched once it came: nothing after
      local count = #sb:log(seq)
      assert.is_true(count <= 6, "requests: " .. count)
    end)

    it("end the request without waiting for pages in flight after a break", function()
      local id = fresh("latency=1500")
      local started = require("workflows.core").now()
      local result = run_in(server, sb.url, string.format([[
        local client = workflows.new { token = "sandbox-token", base_url = SB, prefetch = 3 }
        local n = 0
        local iterator, _, _, walk = client:pages(%q, { limit = 10 })
        for page in iterator do
          n = n + 1
          if n == 1 then break end
        end
        walk:close()  -- Lua 5.1 semantics: LuaJIT has no closing values
        return { pages = n }
      ]], id))
      local elapsed = require("workflows.core").now() - started
      assert.equal(1, result.pages)
      assert.is_true(elapsed < 2.9, "the request took " .. elapsed .. " s")
    end)

    it("refuse to go on in another request than the one that began them", function()
      local result = run_in(server, sb.url, [[
        local client = workflows.new { token = "sandbox-token", base_url = SB, prefetch = 1 }
        local iterator = client:runs("wf_demo;latency=300;n=other_request", { limit = 10 })
        iterator()
        local done
        ngx.timer.at(0, function()
          local ok, err = pcall(function() for _ = 1, 30 do iterator() end end)
          done = { ok = ok, kind = type(err) == "table" and err.kind, message = tostring(err) }
        end)
        for _ = 1, 100 do
          if done then break end
          ngx.sleep(0.02)
        end
        return done
      ]])
      assert.is_false(result.ok)
      assert.equal("invalid_argument", result.kind)
      assert.matches("cosockets belong to the request that made them", result.message, 1, true)
    end)
  end)

  describe("TLS", function()
    -- A TLS location's JSON answer, decoded, and its text for failure messages.
    local function tls_answer(path)
      local _, body = server:get(path)
      return cjson.decode(body), body
    end

    it("fails as a certificate problem without lua_ssl_trusted_certificate", function()
      local result, body = tls_answer("/tls_untrusted")
      assert.equal("network", result.kind, body)
      assert.matches("^TLS verification failed %(SSL certificate problem: .*lua_ssl_trusted_certificate",
        result.message)
    end)

    it("fails as a certificate problem with the wrong CA", function()
      local result, body = tls_answer("/tls_wrong_ca")
      assert.equal("network", result.kind, body)
      assert.matches("^TLS verification failed %(SSL certificate problem: ", result.message)
    end)

    it("refuses a certificate that cannot be checked against an address", function()
      local result, body = tls_answer("/tls_by_address")
      assert.equal("network", result.kind, body)
      assert.equal("TLS verification failed (the certificate does not name 127.0.0.1)",
        result.message)
    end)

    -- nginx's Lua module 0.10.23 returns true from a handshake that completed at once
    -- even when it refused the certificate, and closes the connection: the location
    -- makes every handshake, or the first, end that way.
    it("never sends on a connection whose certificate nginx refused without saying so", function()
      local result = tls_answer("/tls_silent_refusal?every=1")
      assert.equal("network", result.kind)
      assert.matches("^TLS verification failed %(nginx refused the server's certificate; its "
        .. "error log says why; inside nginx the trusted CAs are", result.message)
      assert.equal(3, result.handshakes)
    end)

    it("shakes hands afresh when nginx refused a certificate without saying so", function()
      local result = tls_answer("/tls_silent_refusal")
      assert.same({ items = 5, handshakes = 2 }, result)
    end)

    -- last: connections it verified are pooled, and the other locations would take them
    it("verifies the server against lua_ssl_trusted_certificate", function()
      local status, body = server:get("/tls_trusted")
      assert.equal(200, status)
      assert.same({ items = 5 }, cjson.decode(body))
    end)

  end)

  describe("phases", function()
    local init

    lazy_setup(function()
      for _ = 1, 100 do
        local _, body = server:get("/init")
        init = cjson.decode(body)
        if init.timer ~= cjson.null then break end
        os.execute("sleep 0.05")
      end
    end)

    it("loads the core without opening a descriptor or starting a thread", function()
      assert.is_true(init.load.loaded)
      assert.is_true(init.load.fds_before > 3)
      assert.equal(init.load.fds_before, init.load.fds_after)
      assert.equal(init.load.tasks_before, init.load.tasks_after)
    end)

    it("refuses a call in init_by_lua, naming the phase and ngx.timer.at", function()
      assert.is_false(init.call.page)
      assert.equal("invalid_argument", init.call.kind)
      assert.matches("nginx's init_by_lua* phase has no cosockets", init.call.message, 1, true)
      assert.matches("ngx.timer.at(0, function() ... end)", init.call.message, 1, true)
      assert.same({ ok = false, kind = "invalid_argument" }, init.walk)
    end)

    it("refuses a call in init_worker_by_lua", function()
      assert.equal("invalid_argument", init.init_worker.kind)
      assert.matches("init_worker_by_lua* phase", init.init_worker.message, 1, true)
    end)

    it("refuses a call in log_by_lua", function()
      server:get("/log_phase")
      local result
      for _ = 1, 40 do
        result = run_in(server, sb.url, [[
          return require("cjson").decode(ngx.shared.probe:get("log") or "null")
        ]])
        if result ~= cjson.null then break end
        os.execute("sleep 0.05")
      end
      assert.equal("invalid_argument", result.kind)
      assert.matches("log_by_lua* phase", result.message, 1, true)
    end)

    it("walks in a timer", function()
      assert.same({ ok = true, runs = 250, pages = 7 }, init.timer)
    end)
  end)

  describe("examples/openresty/failures.lua", function()
    it("streams the failed runs as NDJSON, the runs the curl transport lists", function()
      local status, body = server:get("/failures?wf=wf_demo&limit=7")
      assert.equal(200, status)
      local streamed = {}
      for line in body:gmatch("[^\n]+") do streamed[#streamed + 1] = cjson.decode(line).id end
      local listed = run_here(sb.url, [[
        local client = workflows.new { token = "sandbox-token", base_url = SB }
        local ids = {}
        for run in client:runs("wf_demo", { status = "failure" }) do ids[#ids + 1] = run.id end
        return ids
      ]])
      assert.equal(40, #streamed)
      assert.same(listed, streamed)
    end)

    it("answers a failure before any run with its status and a JSON line", function()
      local status, body = server:get("/failures?wf=wf_nope")
      assert.equal(404, status)
      local failure = cjson.decode(body)
      assert.equal("http", failure.kind)
      assert.matches("^workflows: HTTP 404 Not Found: workflow not found", failure.error)
    end)

    it("stops walking when the client hangs up", function()
      local id = fresh("latency=300")
      local function requests()
        local n = 0
        for _, entry in ipairs(sb:log()) do
          if entry.workflow_id == id then n = n + 1 end
        end
        return n
      end
      -- curl gives up after 0.5 s, one or two pages in
      server:get("/failures?limit=3&wf=" .. id:gsub(";", "%%3B"):gsub("=", "%%3D"), 0.5)
      os.execute("sleep 0.4")
      local after_hangup = requests()
      os.execute("sleep 1.5")
      assert.is_true(after_hangup >= 1 and after_hangup < 14, "requests: " .. after_hangup)
      assert.equal(after_hangup, requests())
      assert.matches("client prematurely closed connection", server:error_log(), 1, true)
    end)
  end)

  it("never writes the token to nginx's error log, even at debug level", function()
    local log = server:error_log()
    assert.matches("[debug]", log, 1, true)
    assert.matches("lua tcp socket", log, 1, true)
    assert.is_nil(log:find("sandbox-token", 1, true))
  end)
end)
