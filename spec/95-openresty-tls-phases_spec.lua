-- The cosocket transport inside nginx (OpenResty's Lua module): TLS through nginx's
-- trust store, the phases where it refuses to run and the timer where it walks, and
-- no token in nginx's debug log.
--
-- nginx's /eval location (spec/support/openresty.lua) runs a posted Lua chunk in a
-- content handler and answers its JSON.
local sandbox = require "spec.support.sandbox"
local openresty = require "spec.support.openresty"
local cjson = require "cjson"

if openresty.skipped("the nginx transport") then return end

local run_in = openresty.run_in

-- What the phases report: the core loaded, a call and a walk tried in init_by_lua, a
-- call in init_worker_by_lua and a walk in the timer it starts (read at /init), and a
-- call in log_by_lua (kept for /eval to read).
local PHASES_HTTP = [[
  lua_shared_dict probe 1m;
  init_by_lua_block {
    local shared = (function() ]] .. openresty.SHARED .. [[ end)()
    -- this process's pid: /proc/self in a command would be the command's own
    local stat = io.open("/proc/self/stat")
    local pid = stat:read("*l"):match("^%d+")
    stat:close()
    local function count(what)  -- the fewest of five counts
      return shared.fewest_entries("/proc/" .. pid .. "/" .. what, 5)
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
]]

local PHASES_SERVER = [[
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
]]

-- A location that lists 5 runs from the TLS sandbox at `url` with the trust
-- directives `trust`, and answers how many came or the error.
local function tls_location(name, trust, url)
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
]], name, trust, url)
end

-- A location that lists 5 runs from the TLS sandbox at `url`, trusting `cert`, on
-- sockets whose first handshake (every one with ?every=1) ends as nginx ends one that
-- refused the certificate without saying so (see the tests); it answers the
-- handshakes made too.
local function silent_refusal_location(cert, url)
  return string.format([[
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
]], cert):format(url)
end

describe("the nginx transport", function()
  local sb, tls_sb, server

  lazy_setup(function()
    sb = sandbox.start {}
    tls_sb = sandbox.start { tls = true }
    local tls_url = tls_sb.url:gsub("127%.0%.0%.1", "localhost")
    local trusted = "lua_ssl_trusted_certificate " .. tls_sb.cert .. "; lua_ssl_verify_depth 2;"
    server = openresty.start(sb, { http = PHASES_HTTP, server = PHASES_SERVER
      .. tls_location("tls_trusted", trusted, tls_url)
      .. tls_location("tls_untrusted", "", tls_url)
      .. tls_location("tls_wrong_ca",
        "lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt; lua_ssl_verify_depth 3;", tls_url)
      .. tls_location("tls_by_address", trusted, tls_url):gsub("localhost", "127.0.0.1")
      .. silent_refusal_location(tls_sb.cert, tls_url) })
  end)

  lazy_teardown(function() openresty.stop(server, sb, tls_sb) end)

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

  it("never writes the token to nginx's error log, even at debug level", function()
    local log = server:error_log()
    assert.matches("[debug]", log, 1, true)
    assert.matches("lua tcp socket", log, 1, true)
    assert.is_nil(log:find("sandbox-token", 1, true))
  end)
end)
