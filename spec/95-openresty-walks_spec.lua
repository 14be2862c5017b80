-- The cosocket transport inside nginx (OpenResty's Lua module), walking: the same
-- runs and pages as the curl transport at every prefetch, kept-alive connections
-- reused across requests, prefetching threads stopped at once, walks bound to their
-- request, and examples/openresty/failures.lua streaming a walk to its client.
--
-- Each test sends a Lua chunk to nginx's /eval location (spec/support/openresty.lua),
-- which runs it in a content handler and answers its JSON; the same chunk runs here
-- on the curl transport.
local nginx = require "spec.support.nginx"
local sandbox = require "spec.support.sandbox"
local openresty = require "spec.support.openresty"
local cjson = require "cjson"

if openresty.skipped("the nginx transport") then return end

local run_in, run_here, comparable, fresh =
  openresty.run_in, openresty.run_here, openresty.comparable, openresty.fresh

describe("the nginx transport", function()
  local sb, server

  lazy_setup(function()
    sb = sandbox.start {}
    -- what the example's nginx.conf gives failures.lua: its dicts, and metrics.lua
    -- (loaded by path: this nginx.conf's package path is the checkout's)
    server = openresty.start(sb, {
      http = "  lua_shared_dict metrics 1m;\n  lua_shared_dict workflows 1m;\n"
        .. "  init_by_lua_block { package.loaded.metrics = dofile('" .. nginx.root()
        .. "/examples/openresty/metrics.lua') }\n",
      server = "  location = /failures { content_by_lua_file "
        .. nginx.root() .. "/examples/openresty/failures.lua; }\n" })
  end)

  lazy_teardown(function() openresty.stop(server, sb) end)

  local function both(code)
    return openresty.both(server, sb.url, code)
  end

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
        local function descriptors()  -- the fewest of three counts
          return shared.fewest_entries("/proc/" .. ngx.worker.pid() .. "/fd", 3)
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
end)
