-- client:spawn and the callback form of list_runs on standalone luv, over real
-- TCP against the sandbox: a call and a walk in a task, and the callback form.
-- `make test` runs this file under every Lua; each test drives uv.run() itself
-- until its tasks end, behind a safety timer that fails the test instead of
-- hanging. What a task gets is compared with what the blocking path gets for the
-- same requests.
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"
local luv_tasks = require "spec.support.luv_tasks"

local describe_luv = loop.uv and describe or pending
local drain, comparable = luv_tasks.drain, luv_tasks.comparable
local YIELDS_IN_FOR, WAIT = luv_tasks.YIELDS_IN_FOR, luv_tasks.WAIT

describe_luv("tasks on standalone luv (" .. _VERSION .. ")", function()
  local sb, client_with, in_task, blocking_client = luv_tasks.block()
  local unique = fixtures.demo_id_maker("luv")

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
end)
