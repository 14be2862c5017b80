-- client:spawn and the callback form of list_runs on standalone luv, over real
-- TCP against the sandbox. `make test` runs this file under every Lua; each test
-- drives uv.run() itself until its tasks end, behind a safety timer that fails
-- the test instead of hanging. What a task gets is compared with what the
-- blocking path gets for the same requests.
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"

local uv = loop.uv
local fields, requests_for = fixtures.fields, fixtures.requests_for
local describe_luv = uv and describe or pending

-- PUC Lua 5.1 cannot yield from a for-loop's iterator; every other Lua can.
local YIELDS_IN_FOR = not (_VERSION == "Lua 5.1" and not rawget(_G, "jit"))

local WAIT = 20   -- seconds before a test that did not end fails

-- Every value of an iterator, through the explicit loop that runs on every Lua.
local function drain(iterator)
  local values = {}
  while true do
    local value = iterator()
    if value == nil then break end
    values[#values + 1] = value
  end
  return values
end

-- An error's fields without the request id, which differs from request to request.
local function comparable(err)
  local copy = fields(err)
  copy.requestId = nil
  copy.text = tostring(err):gsub(" %(request [%w_]+", " (request *")
  -- libcurl's own timing in a timeout's message ("after 95 milliseconds")
  if copy.message then copy.message = copy.message:gsub("after %d+ milliseconds", "after N milliseconds") end
  copy.text = copy.text:gsub("after %d+ milliseconds", "after N milliseconds")
  return copy
end

describe_luv("tasks on standalone luv (" .. _VERSION .. ")", function()
  local sb
  local unique = fixtures.demo_id_maker("luv")
  local clients = {}

  local function client_with(options)
    local client = fixtures.sandbox_client(sb, { timeout = 5, loop = uv }, options)
    clients[#clients + 1] = client
    return client
  end

  local function blocking_client(options)
    local given = { timeout = 5 }
    for key, value in pairs(options or {}) do given[key] = value end
    given.loop = nil
    local client = fixtures.sandbox_client(sb, given)
    clients[#clients + 1] = client
    return client
  end

  -- Spawns `body` and runs the loop until it ends; returns what it returned in a
  -- table, and how it ended ({ ok, err }).
  local function in_task(client, body)
    local returned, ended
    client:spawn(function() returned = { body() } end,
      function(ok, err) ended = { ok = ok, err = err } end)
    loop.run_until(function() return ended ~= nil end, WAIT)
    return returned, ended
  end

  lazy_setup(function()
    sb = sandbox.start()
  end)

  lazy_teardown(function()
    for _, client in ipairs(clients) do client:close() end
    loop.close_all()
    sb:stop()
  end)

  after_each(function()
    for _, client in ipairs(clients) do client:close() end
    clients = {}
    loop.drain()
    assert.same({}, loop.handles())
  end)

  describe("client:list_runs() in a task", function()
    it("returns the page the blocking call returns", function()
      local options = { status = "failure", limit = 7, offset = 3 }
      local expected = assert(blocking_client():list_runs("wf_demo", options))
      local client = client_with()
      local returned, ended = in_task(client, function()
        return client:list_runs("wf_demo", options)
      end)
      assert.same({ ok = true }, ended)
      local page = returned[1]
      assert.is_nil(returned[2])
      assert.same(expected.items, page.items)
      assert.same({ expected.hasMore, expected.limit, expected.offset },
                  { page.hasMore, page.limit, page.offset })
      assert.matches("^req_", page.requestId)
    end)

    it("returns the error the blocking call returns", function()
      local _, expected = blocking_client():list_runs("wf_missing")
      local client = client_with()
      local returned = in_task(client, function() return client:list_runs("wf_missing") end)
      assert.is_nil(returned[1])
      assert.same(comparable(expected), comparable(returned[2]))
      assert.equal("http", returned[2].kind)
    end)

    it("leaves the loop running while it waits for the answer", function()
      local client = client_with()
      local ticker = loop.ticker()
      local returned = in_task(client, function()
        return client:list_runs("wf_demo;latency=300", { limit = 1 })
      end)
      ticker.stop()
      assert.equal(1, #returned[1].items)
      assert.is_true(ticker.ticks > 50, ticker.ticks .. " ticks in 300 ms")
    end)

    it("blocks as before outside a task, on a client with a loop", function()
      local client = client_with()
      local page = assert(client:list_runs("wf_demo", { limit = 2 }))
      assert.equal(2, #page.items)
      assert.same({}, loop.handles())
    end)
  end)

  describe("client:runs() and client:pages() in a task", function()
    for _, prefetch in ipairs { 0, 3, 8, "auto" } do
      it("walks the runs the blocking walk walks (prefetch " .. prefetch .. ")", function()
        local expected = drain(blocking_client { prefetch = prefetch }:runs("wf_demo", { limit = 40 }))
        local client = client_with { prefetch = prefetch }
        local returned, ended = in_task(client, function()
          return drain(client:runs("wf_demo", { limit = 40 }))
        end)
        assert.same({ ok = true }, ended)
        assert.equal(250, #returned[1])
        assert.same(expected, returned[1])
      end)
    end

    it("honours status and max as the blocking walk does", function()
      local options = { status = "success", max = 30, limit = 12 }
      local expected = drain(blocking_client():runs("wf_demo", options))
      local client = client_with()
      local returned = in_task(client, function() return drain(client:runs("wf_demo", options)) end)
      assert.equal(30, #returned[1])
      assert.same(expected, returned[1])
    end)

    it("walks the pages the blocking walk walks", function()
      local expected = drain(blocking_client():pages("wf_demo", { limit = 100 }))
      local client = client_with()
      local returned = in_task(client, function()
        return drain(client:pages("wf_demo", { limit = 100 }))
      end)
      assert.equal(3, #returned[1])
      for i, page in ipairs(returned[1]) do
        assert.same(expected[i].items, page.items)
        assert.same({ expected[i].offset, expected[i].hasMore }, { page.offset, page.hasMore })
      end
    end)

    if YIELDS_IN_FOR then
      it("runs a for loop over the walk unchanged", function()
        local client = client_with()
        local returned = in_task(client, function()
          local ids = {}
          for run in client:runs("wf_demo", { limit = 50 }) do ids[#ids + 1] = run.id end
          return ids
        end)
        assert.equal(250, #returned[1])
      end)
    else
      it("ends a task that waits in a for loop with an error that shows the while loop", function()
        local client = client_with()
        local returned, ended = in_task(client, function()
          for _ in client:runs("wf_demo", { limit = 50 }) do end
          return "unreachable"
        end)
        assert.is_nil(returned)
        assert.is_false(ended.ok)
        assert.equal("invalid_argument", ended.err.kind)
        assert.equal("workflows: invalid argument: a task cannot wait inside a for loop's "
          .. "iterator or across pcall on Lua 5.1; call the iterator from a while loop instead: "
          .. "local next_run = client:runs(id) while true do local run = next_run() if run == nil "
          .. "then break end ... end", tostring(ended.err))
        assert.equal(0, client:in_flight())
      end)
    end

    it("raises a walk's failure in the task, as the blocking walk raises it", function()
      local id = unique("status=404")
      local _, expected = pcall(drain, blocking_client():runs(id))
      local client = client_with()
      local returned, ended = in_task(client, function() return drain(client:runs(id)) end)
      assert.is_nil(returned)
      assert.is_false(ended.ok)
      assert.same(comparable(expected), comparable(ended.err))
    end)
  end)

  describe("the callback form of client:list_runs()", function()
    it("calls back once with the page and returns the task", function()
      local client = client_with()
      local calls = {}
      local task = client:list_runs("wf_demo", { limit = 4 }, function(...)
        calls[#calls + 1] = { n = select("#", ...), ... }
      end)
      assert.equal("workflows.task (running)", tostring(task))
      assert.same({}, calls)        -- never before the loop runs
      loop.run_until(function() return not task:running() end, WAIT)
      assert.equal(1, #calls)
      assert.equal(4, #calls[1][1].items)
      assert.is_nil(calls[1][2])
    end)

    it("calls back with nil and the error the blocking call returns", function()
      local _, expected = blocking_client():list_runs("wf_missing")
      local client = client_with()
      local got
      local task = client:list_runs("wf_missing", nil, function(page, err) got = { page, err } end)
      loop.run_until(function() return not task:running() end, WAIT)
      assert.is_nil(got[1])
      assert.same(comparable(expected), comparable(got[2]))
    end)

    it("calls back with a bad argument's error, no request made", function()
      local client = client_with()
      local seq = sb:last_seq()
      local got
      local task = client:list_runs("wf_demo", { limit = 0 }, function(page, err) got = { page, err } end)
      loop.run_until(function() return not task:running() end, WAIT)
      assert.is_nil(got[1])
      assert.equal("workflows: invalid argument: option \"limit\" must be an integer in 1..100 (got 0)",
                   tostring(got[2]))
      assert.same({}, sb:log(seq))
    end)

    it("returns nil and an error for a callback that is not a function", function()
      local client = client_with()
      local task, err = client:list_runs("wf_demo", nil, "not a function")
      assert.is_nil(task)
      assert.equal("workflows: invalid argument: callback must be a function (got \"not a function\")",
                   tostring(err))
    end)

    it("blocks and calls back before returning on a client without a loop", function()
      local client = blocking_client()
      local got
      local task = client:list_runs("wf_demo", { limit = 2 }, function(page, err) got = { page, err } end)
      assert.equal(2, #got[1].items)
      assert.is_false(task:running())
    end)
  end)

  describe("many tasks on one client", function()
    it("walk at once on shared connections, each getting what the blocking walk gets", function()
      local expected = drain(blocking_client():runs("wf_demo", { limit = 25 }))
      local client = client_with()
      local id = unique("latency=20")
      local seq = sb:last_seq()
      local results, ended, order = {}, 0, {}
      for i = 1, 20 do
        client:spawn(function()
          local next_page = client:pages(id, { limit = 25 })
          local runs = {}
          while true do
            local page = next_page()
            if page == nil then break end
            order[#order + 1] = i
            for _, run in ipairs(page.items) do runs[#runs + 1] = run end
          end
          results[i] = runs
        end, function(ok, err)
          assert(ok, tostring(err))
          ended = ended + 1
        end)
      end
      loop.run_until(function() return ended == 20 end, WAIT)
      for i = 1, 20 do assert.same(expected, results[i], "task " .. i) end
      -- interleaved: some other task got a page before the first task's last one
      local first_done_at
      for at, i in ipairs(order) do if i == 1 then first_done_at = at end end
      assert.is_true(first_done_at > 10, "the first task finished before the others began")
      local entries = requests_for(sb, id, seq)
      local connections = {}
      for _, entry in ipairs(entries) do connections[entry.connection] = true end
      local count = 0
      for _ in pairs(connections) do count = count + 1 end
      assert.is_true(#entries >= 20 * 10)      -- and the pages asked for past the end
      assert.is_true(count < #entries / 2, count .. " connections for " .. #entries .. " requests")
    end)
  end)

  describe("a task whose answers are already in", function()
    it("still lets the loop turn while it works through them", function()
      local expected = #drain(blocking_client():pages("wf_demo", { limit = 10 }))
      local client = client_with { prefetch = 8 }
      local ticker = loop.ticker()
      local ticks_at = {}                    -- page number -> ticks when it was taken
      local returned = in_task(client, function()
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
          local until_ns = uv.hrtime() + 1e6   -- a slow consumer: 1 ms a page
          while uv.hrtime() < until_ns do end
        end
        return pages
      end)
      ticker.stop()
      assert.equal(expected, returned[1])
      -- pages 2 to 9 were in hand: 8 ms of work with no wait, yet the timer ran
      assert.is_true(ticks_at[9] - ticks_at[2] >= 2, "ticks at each page: " .. table.concat(ticks_at, " "))
    end)
  end)

  describe("retries, deadlines and faults", function()
    it("waits out a Retry-After without blocking the loop, then returns the page", function()
      local expected = assert(blocking_client():list_runs("wf_demo", { limit = 3 }))
      local client = client_with()
      local id = unique("status=503;times=1;retry_after=1")
      local seq = sb:last_seq()
      local ticker = loop.ticker()
      local returned = in_task(client, function() return client:list_runs(id, { limit = 3 }) end)
      ticker.stop()
      assert.same(expected.items, returned[1].items)
      local entries = requests_for(sb, id, seq)
      assert.same({ 503, 200 }, { entries[1].status, entries[2].status })
      assert.is_true(entries[2].ts - entries[1].ts >= 0.95, "retried after "
        .. (entries[2].ts - entries[1].ts) .. " s")
      assert.is_true(ticker.ticks > 300, ticker.ticks .. " ticks during a 1 s Retry-After")
    end)

    it("retries a walk's page with backoff as the blocking walk does", function()
      local id = unique("status=503;times=1")
      local expected = drain(blocking_client():runs(id, { limit = 100 }))
      local client = client_with()
      local id2 = unique("status=503;times=1")
      local seq = sb:last_seq()
      local returned = in_task(client, function() return drain(client:runs(id2, { limit = 100 })) end)
      assert.same(expected, returned[1])
      local statuses = {}                      -- offset -> statuses in order
      for _, entry in ipairs(requests_for(sb, id2, seq)) do
        local offset = entry.query.offset or "0"
        statuses[offset] = (statuses[offset] or "") .. entry.status .. " "
      end
      local pages = 0
      for offset, seen in pairs(statuses) do
        if tonumber(offset) < 250 then          -- pages asked for past the end are dropped
          pages = pages + 1
          assert.equal("503 200 ", seen, "offset " .. offset)   -- every page retried once
        end
      end
      assert.is_true(pages >= 3)
    end)

    it("gives up after the retries with the blocking call's error", function()
      local options = { max_retries = 1 }
      local _, expected = blocking_client(options):list_runs(unique("status=503;retry_after=0"))
      local client = client_with(options)
      local returned = in_task(client, function()
        return client:list_runs(unique("status=503;retry_after=0"))
      end)
      assert.same(comparable(expected), comparable(returned[2]))
      assert.equal(2, returned[2].attempts)
    end)

    it("hands back a Retry-After longer than it will wait, as the blocking call does", function()
      local _, expected = blocking_client():list_runs(unique("status=503;retry_after=120"))
      local client = client_with()
      local returned = in_task(client, function()
        return client:list_runs(unique("status=503;retry_after=120"))
      end)
      assert.same(comparable(expected), comparable(returned[2]))
      assert.equal(120, returned[2].retry_after)
    end)

    it("ends at the deadline on a silent server, as the blocking call does", function()
      local _, expected = blocking_client():list_runs(unique("fault=silent"), { deadline = 0.3 })
      local client = client_with()
      local returned = in_task(client, function()
        return client:list_runs(unique("fault=silent"), { deadline = 0.3 })
      end)
      assert.same(comparable(expected), comparable(returned[2]))
      assert.equal("timeout", returned[2].kind)
    end)

    it("ends a walk at its deadline, as the blocking walk does", function()
      local id = unique("latency=200")
      local _, expected = pcall(drain, blocking_client { prefetch = 0 }:runs(id, { limit = 10, deadline = 0.5 }))
      local client = client_with { prefetch = 0 }
      local _, ended = in_task(client, function()
        return drain(client:runs(unique("latency=200"), { limit = 10, deadline = 0.5 }))
      end)
      assert.is_false(ended.ok)
      assert.same(comparable(expected), comparable(ended.err))
    end)

    it("times an attempt out on a silent server and retries it", function()
      local options = { timeout = 0.3, max_retries = 1 }
      local _, expected = blocking_client(options):list_runs(unique("fault=silent"))
      local client = client_with(options)
      local returned = in_task(client, function() return client:list_runs(unique("fault=silent")) end)
      assert.same(comparable(expected), comparable(returned[2]))
      assert.same({ "timeout", 2 }, { returned[2].kind, returned[2].attempts })
    end)

    it("times an attempt out on a silent server while another task of its client is cancelled",
      function()
      local client = client_with { timeout = 0.5, max_retries = 0 }
      local patient = client:spawn(function()
        client:list_runs(unique("fault=silent;n=patient"), { timeout = 5 })
      end)
      local returned, ended
      client:spawn(function() returned = { client:list_runs(unique("fault=silent;n=hasty")) } end,
        function(ok, err) ended = { ok = ok, err = err } end)
      loop.run_for(0.1)
      patient:cancel()
      loop.run_until(function() return ended ~= nil end, WAIT)
      assert.same({ "timeout", 1 }, { returned[2].kind, returned[2].attempts })
    end)

    it("reports a reset connection as the blocking call does", function()
      local options = { max_retries = 0 }
      local _, expected = blocking_client(options):list_runs(unique("fault=reset"))
      local client = client_with(options)
      local returned = in_task(client, function() return client:list_runs(unique("fault=reset")) end)
      assert.same(comparable(expected), comparable(returned[2]))
      assert.equal("network", returned[2].kind)
    end)

    it("retries a reset connection and returns the page", function()
      local client = client_with()
      local returned = in_task(client, function()
        return client:list_runs(unique("fault=reset;times=1"), { limit = 5 })
      end)
      assert.equal(5, #returned[1].items)
    end)
  end)

  describe("ending early", function()
    local function count_requests(id, seq) return #requests_for(sb, id, seq) end

    it("releases what is in flight when the body leaves a walk", function()
      local client = client_with { prefetch = 4 }
      local id = unique("latency=100")
      local in_flight_after
      local _, ended = in_task(client, function()
        local next_run, _, _, walk = client:runs(id, { limit = 10 })
        for _ = 1, 15 do next_run() end
        walk:close()                           -- what `break` does on Lua 5.4
        in_flight_after = client:in_flight()
      end)
      assert.same({ ok = true }, ended)
      assert.equal(0, in_flight_after)
    end)

    if YIELDS_IN_FOR then
      it("releases what is in flight on break", function()
        local client = client_with { prefetch = 4 }
        local in_flight_after
        in_task(client, function()
          local seen = 0
          for _ in client:runs(unique("latency=100"), { limit = 10 }) do
            seen = seen + 1
            if seen == 15 then break end
          end
          -- before Lua 5.4 the collector finds the walk; its finalizer only queues the
          -- release, which the loop's next turn (this wait) carries out
          collectgarbage()
          collectgarbage()
          assert(client:list_runs(unique("latency=20"), { limit = 1 }))
          in_flight_after = client:in_flight()
        end)
        assert.equal(0, in_flight_after)
      end)
    end

    it("task:cancel() from outside stops the walk and releases it at once", function()
      local client = client_with { prefetch = 4 }
      local id = unique("latency=100")
      local seq = sb:last_seq()
      local seen, ended = 0, {}
      local task = client:spawn(function()
        local next_run = client:runs(id, { limit = 10 })
        while next_run() do seen = seen + 1 end
      end, function(ok, err) ended[#ended + 1] = { ok, err } end)
      loop.run_until(function() return seen >= 15 end, WAIT)
      local in_flight = client:in_flight()
      assert.is_true(in_flight > 0)
      task:cancel()
      assert.equal(0, client:in_flight())
      assert.is_false(task:running())
      assert.equal(1, #ended)
      assert.is_false(ended[1][1])
      assert.equal("workflows: cancelled: the task was cancelled", tostring(ended[1][2]))
      local seen_then, requests_then = seen, count_requests(id, seq)
      task:cancel()                            -- idempotent
      loop.run_for(0.4)
      assert.equal(seen_then, seen)
      assert.equal(1, #ended)
      -- no request after the cancel: only those already on the wire may still be logged
      assert.is_true(count_requests(id, seq) <= requests_then + in_flight)
      assert.is_false(uv.loop_alive())         -- nothing of the task keeps the loop going
    end)

    it("task:cancel() from inside its body ends it at its next wait", function()
      local client = client_with { prefetch = 2 }
      local seen, ended, task = 0, {}, nil
      task = client:spawn(function()
        local next_run = client:runs(unique("latency=50"), { limit = 10 })
        while next_run() do
          seen = seen + 1
          if seen == 5 then task:cancel() end
        end
      end, function(ok, err) ended[#ended + 1] = { ok, err and err.kind } end)
      loop.run_until(function() return #ended > 0 end, WAIT)
      loop.run_for(0.3)
      assert.same({ { false, "cancelled" } }, ended)
      assert.equal(10, seen)                   -- the rest of the page in hand, then no more
      assert.equal(0, client:in_flight())
    end)

    it("task:cancel() from its own on_done and the list_runs callback is harmless", function()
      local client = client_with()
      local calls = 0
      local task
      task = client:spawn(function() return client:list_runs("wf_demo", { limit = 1 }) end,
        function() calls = calls + 1 task:cancel() end)
      local callback_task
      callback_task = client:list_runs("wf_demo", { limit = 1 }, function()
        calls = calls + 1
        callback_task:cancel()
      end)
      loop.run_until(function() return calls == 2 end, WAIT)
      loop.run_for(0.1)
      assert.equal(2, calls)
    end)

    it("client:close() ends every task and leaves no handle or descriptor", function()
      local before = loop.descriptors()
      local client = client_with { prefetch = 3 }
      local ended = {}
      for i = 1, 5 do
        client:spawn(function()
          local next_run = client:runs(unique("latency=100"), { limit = 10 })
          while next_run() do end
        end, function(ok, err) ended[i] = { ok, tostring(err) } end)
      end
      loop.run_until(function() return client:in_flight() >= 10 end, WAIT)
      assert.is_true(loop.descriptors() > before)
      client:close()
      assert.equal(0, client:in_flight())
      for i = 1, 5 do
        assert.same({ false, "workflows: invalid argument: the client is closed" }, ended[i])
      end
      loop.drain()
      assert.same({}, loop.handles())
      assert.equal(before, loop.descriptors())
      local _, err = client:list_runs("wf_demo")
      assert.equal("invalid_argument", err.kind)
      assert.has_error(function() client:spawn(function() end) end)
    end)
  end)
end)
