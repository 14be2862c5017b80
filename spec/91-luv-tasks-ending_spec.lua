-- Tasks and walks on standalone luv ended early, over real TCP against the sandbox:
-- walk:close(), break, task:cancel() from outside, from inside and from on_done, and
-- client:close() each release what was in flight at once and leave no handle or
-- descriptor. `make test` runs this file under every Lua; each test drives uv.run()
-- itself until its tasks end, behind a safety timer that fails the test instead of
-- hanging.
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"
local luv_tasks = require "spec.support.luv_tasks"

local uv = loop.uv
local describe_luv = uv and describe or pending
local YIELDS_IN_FOR, WAIT = luv_tasks.YIELDS_IN_FOR, luv_tasks.WAIT

describe_luv("tasks on standalone luv (" .. _VERSION .. ")", function()
  local sb, client_with, in_task = luv_tasks.block()
  local unique = fixtures.demo_id_maker("luv")

  describe("ending early", function()
    local function count_requests(id, seq) return #fixtures.requests_for(sb, id, seq) end

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
      -- inside the first page: the pages prefetched when it came are on the wire for
      -- 100 ms yet (further on, they may all have come in with the page waited for)
      loop.run_until(function() return seen >= 5 end, WAIT)
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
