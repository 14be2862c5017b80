-- The cosocket transport inside nginx (OpenResty's Lua module), one call at a time:
-- the same pages and errors as the curl transport, a chunked answer, pooled
-- connections, the attempts a client has in flight, and what it could not reach.
--
-- Each test sends a Lua chunk to nginx's /eval location (spec/support/openresty.lua),
-- which runs it in a content handler and answers its JSON; the same chunk runs here
-- on the curl transport.
local sandbox = require "spec.support.sandbox"
local openresty = require "spec.support.openresty"

if openresty.skipped("the nginx transport") then return end

local run_in, run_here, comparable, fresh =
  openresty.run_in, openresty.run_here, openresty.comparable, openresty.fresh

-- A page sent with chunked framing, in pieces, by nginx's own worker.
local CHUNKED = [[
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
]]

describe("the nginx transport", function()
  local sb, server

  lazy_setup(function()
    sb = sandbox.start {}
    server = openresty.start(sb, { server = CHUNKED })
  end)

  lazy_teardown(function() openresty.stop(server, sb) end)

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
      local inside, outside = openresty.both(server, sb.url, code)
      assert.same(outside, inside)
      assert.equal(50, #inside[1].items)
      local entry = sb:log(seq)[1]
      assert.is_nil(entry.headers["Accept-Encoding"])
      assert.equal("application/json", entry.headers["Accept"])
      assert.equal("Bearer ***", entry.headers["Authorization"])
      assert.matches("^lua%-workflows/", entry.headers["User-Agent"])
      assert.matches("^127%.0%.0%.1:%d+$", entry.headers["Host"])
    end)

    it("starts no thread in the worker for the curl transport", function()
      local code = [[
        local function threads()
          local listing = io.popen("ls /proc/" .. ngx.worker.pid() .. "/task")
          local count = 0
          for _ in listing:lines() do count = count + 1 end
          listing:close()
          return count
        end
        local before = threads()
        local client = workflows.new { token = "sandbox-token", base_url = SB, transport = "curl" }
        local page = assert(client:list_runs("wf_demo", { limit = 3 }))
        local during = threads()
        client:close()
        return { before = before, during = during, items = #page.items }
      ]]
      local result = openresty.run_in(server, sb.url, code)
      assert.same({ before = result.before, during = result.before, items = 3 }, result)
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
          code = code:gsub("n=ngx(%d+)", "n=curl%1")
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
        local cosockets = require "workflows.transport.ngx.driver"
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

    it("waits out a backoff without spinning on sub-millisecond sleeps", function()
      -- nginx runs ngx.sleep below 1 ms as ngx.sleep(0), which returns at once and warns:
      -- a wait that ends just short of a retry's due time would spin until it came
      local before = #server:error_log()
      local retried = run_in(server, sb.url, [[
        local client = workflows.new { token = "sandbox-token", base_url = SB, max_retries = 3 }
        local started = ngx.now()
        local page, err = client:list_runs(]] .. string.format("%q", fresh("status=503;times=3"))
          .. [[, { limit = 2 })
        return { items = page and #page.items, err = err and err.message,
          waited = ngx.now() - started }
      ]])
      assert.same({ items = 2 }, { items = retried.items, err = retried.err })
      assert.is_true(retried.waited > 0.05, "three backoffs took " .. retried.waited .. " s")
      local log = server:error_log():sub(before + 1)
      assert.is_nil(log:find("ngx.sleep(0) called", 1, true), log:sub(1, 600))
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
end)
