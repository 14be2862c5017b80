-- Tasks on standalone luv under load and through failures, over real TCP against
-- the sandbox: many tasks walking at once on one client, a task whose answers are
-- already in, and retries, deadlines and faults, each ending as the blocking path
-- ends on the same answers without blocking the loop while it waits. `make test`
-- runs this file under every Lua; each test drives uv.run() itself until its tasks
-- end, behind a safety timer that fails the test instead of hanging.
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"
local luv_tasks = require "spec.support.luv_tasks"

local uv = loop.uv
local describe_luv = uv and describe or pending
local requests_for = fixtures.requests_for
local drain, comparable = luv_tasks.drain, luv_tasks.comparable
local WAIT = luv_tasks.WAIT

describe_luv("tasks on standalone luv (" .. _VERSION .. ")", function()
  local sb, client_with, in_task, blocking_client = luv_tasks.block()
  local unique = fixtures.demo_id_maker("luv")

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
end)
