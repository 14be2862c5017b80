-- Calls and walks made in the coroutines of a cqueues controller (lua-cqueues), over
-- real TCP against the sandbox. What a coroutine gets is compared with what the
-- blocking path gets for the same requests; several coroutines walk on one client at
-- once; the controller's other coroutines keep running while a walk waits; and what
-- ends early leaves no descriptor behind. Under every Lua that has lua-cqueues.
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local controller = require "spec.support.cqueues_loop"

local cqueues = controller.cqueues
local requests_for = fixtures.requests_for

local YIELDS_IN_FOR = fixtures.YIELDS_IN_FOR
-- Lua 5.4 closes a walk the moment its loop is left; older Luas leave it to the
-- garbage collector.
local CLOSES_AT_BREAK = _VERSION >= "Lua 5.4" and not rawget(_G, "jit")

local WAIT = 20   -- seconds before a test whose coroutines did not end fails

local drain, comparable = fixtures.drain, fixtures.comparable

local full_collect = require("spec.support.heap").full_collect

describe("calls inside a cqueues controller (" .. _VERSION .. ")", function()
  if not cqueues then
    pending("skipped: lua-cqueues is not installed for this Lua (apt-get install lua-cqueues)")
    return
  end

  local sb
  local unique = fixtures.demo_id_maker("cqueues")
  local clients = {}

  local function client_with(options)
    local client = fixtures.sandbox_client(sb, { timeout = 5 }, options)
    clients[#clients + 1] = client
    return client
  end

  -- The same options on a client whose calls are made outside any controller: the
  -- blocking transport.
  local blocking_client = client_with

  -- Runs each body in a coroutine of one controller until all have ended.
  local function in_controller(...)
    return controller.run({ ... }, WAIT)
  end

  lazy_setup(function()
    sb = sandbox.start()
  end)

  lazy_teardown(function()
    for _, client in ipairs(clients) do client:close() end
    sb:stop()
  end)

  after_each(function()
    for _, client in ipairs(clients) do client:close() end
    clients = {}
  end)

  describe("client:list_runs()", function()
    it("returns the page the blocking call returns", function()
      local options = { status = "failure", limit = 7, offset = 3 }
      local expected = assert(blocking_client():list_runs("wf_demo", options))
      local client = client_with()
      local ended = in_controller(function() return client:list_runs("wf_demo", options) end)
      assert.is_true(ended[1].ok, tostring(ended[1].err))
      local page = ended[1][1]
      assert.is_nil(ended[1][2])
      assert.same(expected.items, page.items)
      assert.same({ expected.hasMore, expected.limit, expected.offset },
                  { page.hasMore, page.limit, page.offset })
      assert.matches("^req_", page.requestId)
    end)

    it("returns the 404 the blocking call returns", function()
      local _, expected = blocking_client():list_runs("wf_missing")
      local client = client_with()
      local ended = in_controller(function() return client:list_runs("wf_missing") end)
      assert.is_nil(ended[1][1])
      assert.equal("http", ended[1][2].kind)
      assert.equal(404, ended[1][2].status)
      assert.same(comparable(expected), comparable(ended[1][2]))
    end)

    it("returns the refused connection's error the blocking call returns", function()
      -- a port nobody listens on: the connection is refused at once
      local options = { base_url = "http://127.0.0.1:1", max_retries = 0 }
      local _, expected = blocking_client(options):list_runs("wf_demo")
      local client = client_with(options)
      local ended = in_controller(function() return client:list_runs("wf_demo") end)
      assert.is_nil(ended[1][1])
      assert.equal("network", ended[1][2].kind)
      assert.same(comparable(expected), comparable(ended[1][2]))
    end)

    it("retries a 503 with Retry-After, then returns the page, as the blocking call does", function()
      local expected = assert(blocking_client():list_runs("wf_demo", { limit = 3 }))
      local client = client_with()
      local id = unique("status=503;times=1;retry_after=1")
      local seq = sb:last_seq()
      local ended = in_controller(function() return client:list_runs(id, { limit = 3 }) end)
      assert.same(expected.items, ended[1][1].items)
      local entries = requests_for(sb, id, seq)
      assert.same({ 503, 200 }, { entries[1].status, entries[2].status })
      assert.is_true(entries[2].ts - entries[1].ts >= 0.95)
    end)
  end)

  describe("client:runs() and client:pages()", function()
    for _, prefetch in ipairs { 0, 3, 8, "auto" } do
      it("walks the runs the blocking walk walks (prefetch " .. prefetch .. ")", function()
        local expected = drain(blocking_client { prefetch = prefetch }:runs("wf_demo", { limit = 40 }))
        local client = client_with { prefetch = prefetch }
        local ended = in_controller(function() return drain(client:runs("wf_demo", { limit = 40 })) end)
        assert.is_true(ended[1].ok, tostring(ended[1].err))
        assert.equal(250, #ended[1][1])
        assert.same(expected, ended[1][1])
      end)

      it("walks the pages the blocking walk walks (prefetch " .. prefetch .. ")", function()
        local expected = drain(blocking_client { prefetch = prefetch }:pages("wf_demo", { limit = 30 }))
        local client = client_with { prefetch = prefetch }
        local ended = in_controller(function() return drain(client:pages("wf_demo", { limit = 30 })) end)
        local pages = ended[1][1]
        assert.equal(#expected, #pages)
        for i, page in ipairs(pages) do
          assert.same(expected[i].items, page.items)
          assert.same({ expected[i].offset, expected[i].hasMore }, { page.offset, page.hasMore })
        end
      end)
    end

    it("honours status and max as the blocking walk does", function()
      local options = { status = "success", max = 30, limit = 12 }
      local expected = drain(blocking_client():runs("wf_demo", options))
      local client = client_with()
      local ended = in_controller(function() return drain(client:runs("wf_demo", options)) end)
      assert.equal(30, #ended[1][1])
      assert.same(expected, ended[1][1])
    end)

    it("raises a walk's 404 as the blocking walk raises it", function()
      local id = unique("status=404")
      local _, expected = pcall(drain, blocking_client():runs(id))
      local client = client_with()
      local ended = in_controller(function() return drain(client:runs(id)) end)
      assert.is_false(ended[1].ok)
      assert.equal(404, ended[1].err.status)
      assert.same(comparable(expected), comparable(ended[1].err))
    end)

    if YIELDS_IN_FOR then
      it("runs a for loop over the walk unchanged", function()
        local client = client_with { prefetch = 2 }
        local ended = in_controller(function()
          local ids = {}
          for run in client:runs("wf_demo", { limit = 50 }) do ids[#ids + 1] = run.id end
          return ids
        end)
        assert.equal(250, #ended[1][1])
      end)
    else
      it("ends a coroutine that waits in a for loop with an error that shows the while loop", function()
        local client = client_with()
        local ended = in_controller(function()
          for _ in client:runs("wf_demo", { limit = 50 }) do end
          return "unreachable"
        end)
        assert.is_false(ended[1].ok)
        assert.equal("invalid_argument", ended[1].err.kind)
        assert.equal("workflows: invalid argument: a cqueues coroutine cannot wait inside a for "
          .. "loop's iterator or across pcall on Lua 5.1; call the iterator from a while loop "
          .. "instead: local next_run = client:runs(id) while true do local run = next_run() if "
          .. "run == nil then break end ... end", tostring(ended[1].err))
        full_collect()
        assert.equal(0, client:in_flight())
      end)
    end
  end)

  describe("several coroutines on one client", function()
    it("walk at once on shared connections, each getting what the blocking walk gets", function()
      local expected = drain(blocking_client():runs("wf_demo", { limit = 25 }))
      local client = client_with { prefetch = 2 }
      local id = unique("latency=20")
      local seq = sb:last_seq()
      local order, bodies = {}, {}
      for i = 1, 10 do
        bodies[i] = function()
          local next_page = client:pages(id, { limit = 25 })
          local runs = {}
          while true do
            local page = next_page()
            if page == nil then break end
            order[#order + 1] = i
            for _, run in ipairs(page.items) do runs[#runs + 1] = run end
          end
          return runs
        end
      end
      local ended = controller.run(bodies, WAIT)
      for i = 1, 10 do
        assert.is_true(ended[i].ok, tostring(ended[i].err))
        assert.same(expected, ended[i][1], "coroutine " .. i)
      end
      -- interleaved: the others got pages before the first coroutine got its last one
      local first_done_at
      for at, i in ipairs(order) do if i == 1 then first_done_at = at end end
      assert.is_true(first_done_at > 10, "the first coroutine finished before the others began")
      local entries = requests_for(sb, id, seq)
      local connections = {}
      for _, entry in ipairs(entries) do connections[entry.connection] = true end
      local count = 0
      for _ in pairs(connections) do count = count + 1 end
      assert.is_true(#entries >= 10 * 10)
      assert.is_true(count < #entries / 2, count .. " connections for " .. #entries .. " requests")
      assert.equal(0, client:in_flight())
    end)

    it("call list_runs at once, each getting its own page", function()
      local client = client_with()
      local bodies = {}
      for i = 1, 8 do
        bodies[i] = function()
          return client:list_runs(unique("latency=" .. (10 * (9 - i))), { limit = 1, offset = i })
        end
      end
      local ended = controller.run(bodies, WAIT)
      for i = 1, 8 do
        assert.is_true(ended[i].ok, tostring(ended[i].err))
        assert.equal(i, ended[i][1].offset)
      end
    end)

    it("end their walks with the closed client's error when one coroutine closes it", function()
      local client = client_with { prefetch = 3 }
      local bodies = {}
      for i = 1, 3 do
        bodies[i] = function() return drain(client:runs(unique("latency=300"), { limit = 10 })) end
      end
      bodies[4] = function()
        cqueues.sleep(0.1)
        client:close()
        return client:in_flight()
      end
      local ended = controller.run(bodies, WAIT)
      for i = 1, 3 do
        assert.is_false(ended[i].ok)
        assert.equal("workflows: invalid argument: the client is closed", tostring(ended[i].err))
      end
      assert.same({ ok = true, n = 1, 0 }, ended[4])
    end)
  end)

  describe("the controller", function()
    it("keeps running its other coroutines while a walk waits", function()
      -- one page at a time: six round trips of 100 ms
      local client = client_with { prefetch = 0 }
      local ticker = controller.ticker(0.005)
      local started = cqueues.monotime()
      local ended = in_controller(function()
        local runs = drain(client:runs(unique("latency=100"), { limit = 50 }))
        ticker.stop()
        return runs
      end, ticker.body)
      local took = cqueues.monotime() - started
      assert.equal(250, #ended[1][1])
      assert.is_true(took >= 0.5, ("the walk took %.3f s"):format(took))
      assert.is_true(ticker.ticks >= took / 0.005 / 2,
        ticker.ticks .. (" ticks in %.3f s"):format(took))
      -- one round trip waited for in the controller's own thread would hold it 100 ms;
      -- a loaded machine alone was seen to hold it 43 ms
      assert.is_true(ticker.longest < 0.090,
        ("the controller was held for %.1f ms"):format(ticker.longest * 1000))
    end)

    it("lets its other coroutines run while a walk works through answers already in", function()
      local expected = #drain(blocking_client():pages("wf_demo", { limit = 10 }))
      local client = client_with { prefetch = 8 }
      local ticker = controller.ticker(0.001)
      local ticks_at = {}                      -- page number -> ticks when it was taken
      local ended = in_controller(function()
        local next_page = client:pages("wf_demo", { limit = 10 })
        local pages = 0
        while true do
          local page = next_page()
          if page == nil then break end
          pages = pages + 1
          ticks_at[pages] = ticker.ticks
          if pages == 1 then
            -- a wait of its own, during which the 8 pages prefetched come in
            assert(client:list_runs("wf_demo;latency=300", { limit = 1 }))
          end
          local until_t = cqueues.monotime() + 0.001   -- a slow consumer: 1 ms a page
          while cqueues.monotime() < until_t do end
        end
        ticker.stop()
        return pages
      end, ticker.body)
      assert.equal(expected, ended[1][1])
      -- pages 2 to 9 were in hand: 8 ms of work with no wait, yet the ticker ran
      assert.is_true(ticks_at[9] - ticks_at[2] >= 2, "ticks at each page: " .. table.concat(ticks_at, " "))
    end)

    it("is used by the transport option \"curl\" too, which names libcurl", function()
      local client = client_with { transport = "curl" }
      local ticker = controller.ticker(0.005)
      local ended = in_controller(function()
        local page = client:list_runs(unique("latency=200"), { limit = 1 })
        ticker.stop()
        return page
      end, ticker.body)
      assert.equal(1, #ended[1][1].items)
      assert.is_true(ticker.longest < 0.1, ("held for %.1f ms"):format(ticker.longest * 1000))
    end)
  end)

  describe("ending early", function()
    it("walk:close() releases what is in flight at once", function()
      local client = client_with { prefetch = 4 }
      local ended = in_controller(function()
        local next_run, _, _, walk = client:runs(unique("latency=100"), { limit = 10 })
        -- inside the first page: the pages prefetched when it came are on the wire for
        -- 100 ms yet (further on, they may all have come in with the page waited for)
        for _ = 1, 5 do next_run() end
        local in_flight = client:in_flight()
        walk:close()                           -- what `break` does on Lua 5.4
        return in_flight, client:in_flight()
      end)
      assert.is_true(ended[1][1] > 0)
      assert.equal(0, ended[1][2])
    end)

    it("a walk left by break releases its pages and leaves no descriptor open", function()
      full_collect()
      local before = controller.descriptors()
      local client = client_with { prefetch = 8 }
      local ended = in_controller(function()
        -- break inside the first page: the pages prefetched when it came are on the
        -- wire for 100 ms yet (at the second page, on a loaded machine, all eight may
        -- have come in with the page waited for, and nothing is left to release)
        local seen = 0
        if YIELDS_IN_FOR then
          for _ in client:runs(unique("latency=100"), { limit = 10 }) do
            seen = seen + 1
            if seen == 5 then break end
          end
        else
          local next_run = client:runs(unique("latency=100"), { limit = 10 })
          while next_run() do
            seen = seen + 1
            if seen == 5 then break end
          end
          next_run = nil                       -- luacheck: ignore
        end
        local left = client:in_flight()
        -- before Lua 5.4 the collector finds the walk; its finalizer only queues the
        -- release, which the transport's next call carries out
        full_collect()
        return left, client:in_flight()
      end)
      assert.is_true(ended[1].ok, tostring(ended[1].err))
      if CLOSES_AT_BREAK then assert.equal(0, ended[1][1]) else assert.is_true(ended[1][1] > 0) end
      assert.equal(0, ended[1][2])
      client:close()
      full_collect()
      assert.equal(before, controller.descriptors())
    end)

    it("a client dropped without close() leaves no descriptor open once collected", function()
      full_collect()
      local before = controller.descriptors()
      local during
      local ended = in_controller(function()
        local client = fixtures.sandbox_client(sb, { prefetch = 3, timeout = 5 })
        drain(client:runs("wf_demo", { limit = 50 }))  -- connections kept alive
        local next_run = client:runs(unique("latency=300"), { limit = 10 })
        next_run()
        next_run()                              -- pages in flight, never closed
        during = controller.descriptors()
        return client:in_flight()
      end)
      assert.is_true(ended[1].ok, tostring(ended[1].err))
      assert.is_true(ended[1][1] > 0)
      assert.is_true(during > before)
      full_collect()
      assert.equal(before, controller.descriptors())
    end)
  end)
end)
