-- Closing from inside: client:close() as the last step of a task's own body, and
-- walk:close() inside the walk's own loop body, on the blocking transport and in
-- tasks on standalone luv. Both are legal, and neither may turn into an error.
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"

local uv = loop.uv
local describe_luv = uv and describe or pending

local WAIT = 20   -- seconds before a test that did not end fails
local STOP_AT = 5 -- runs (or pages) taken before walk:close()

-- PUC Lua 5.1 cannot yield from a for loop's iterator; every other Lua can.
local YIELDS_IN_FOR = not (_VERSION == "Lua 5.1" and not rawget(_G, "jit"))

-- Takes values from `iterator` until it returns nil, closing `walk` once `STOP_AT`
-- were taken. Returns how many were taken, and how many times the iterator was
-- called. `form` "while": the explicit loop, which tasks on every Lua can run;
-- "for": a generic for with the walk as its closing value (Lua 5.4 closes it
-- again as the loop ends).
local function take_and_close(form, iterator, walk)
  local taken, calls = 0, 0
  local function counted()
    calls = calls + 1
    if calls > 1000 then error("the walk went on after walk:close()") end
    return iterator()
  end
  if form == "for" then
    for _ in counted, nil, nil, walk do
      taken = taken + 1
      if taken == STOP_AT then walk:close() end
    end
  else
    while true do
      if counted() == nil then break end
      taken = taken + 1
      if taken == STOP_AT then walk:close() end
    end
  end
  return taken, calls
end

-- The (mode, form) pairs to test: runs and pages, in a while loop and in a for loop.
local CASES = {}
for _, mode in ipairs { "runs", "pages" } do
  for _, form in ipairs { "while", "for" } do CASES[#CASES + 1] = { mode, form } end
end

describe("closing from inside", function()
  local sb
  local clients = {}

  local function client_with(options)
    local client = fixtures.sandbox_client(sb, { timeout = 5, prefetch = 4 }, options)
    clients[#clients + 1] = client
    return client
  end

  lazy_setup(function()
    sb = sandbox.start()
  end)

  lazy_teardown(function()
    for _, client in ipairs(clients) do client:close() end
    clients = {}
    if uv then
      -- a client on a loop closes its connections from the loop's next turn: let
      -- it, so that the next spec file finds no descriptor of ours
      loop.drain()
      loop.close_all()
    end
    collectgarbage()
    collectgarbage()
    sb:stop()
  end)

  describe("walk:close() inside the walk's own loop body", function()
    for _, case in ipairs(CASES) do
      local mode, form = case[1], case[2]
      it("ends a blocking walk of " .. mode .. " (" .. form .. " loop) at the next iteration, without an error",
        function()
        local client = client_with()
        local iterator, _, _, walk = client[mode](client, "wf_demo;latency=5", { limit = 10 })
        local ok, taken, calls = pcall(take_and_close, form, iterator, walk)
        assert.is_true(ok, tostring(taken))
        assert.same({ taken = STOP_AT, calls = STOP_AT + 1 }, { taken = taken, calls = calls })
        assert.equal(0, client:in_flight())
        assert.is_nil(iterator())   -- and stays ended
      end)
    end

    describe_luv("inside a task (" .. _VERSION .. ")", function()
      for _, case in ipairs(CASES) do
        local mode, form = case[1], case[2]
        local test = (form == "while" or YIELDS_IN_FOR) and it or pending
        test("ends a walk of " .. mode .. " (" .. form .. " loop) at the next iteration, and the task with ok",
          function()
          local client = client_with { loop = uv }
          local taken, calls, ended
          client:spawn(function()
            local iterator, _, _, walk = client[mode](client, "wf_demo;latency=5", { limit = 10 })
            taken, calls = take_and_close(form, iterator, walk)
          end, function(ok, err) ended = { ok = ok, err = err and tostring(err) } end)
          loop.run_until(function() return ended ~= nil end, WAIT)
          assert.same({ ok = true }, ended)
          assert.same({ taken = STOP_AT, calls = STOP_AT + 1 }, { taken = taken, calls = calls })
          assert.equal(0, client:in_flight())
        end)
      end
    end)
  end)

  describe_luv("client:close() as the last step of a task (" .. _VERSION .. ")", function()
    it("leaves the task's result alone: on_done gets true", function()
      local client = client_with { loop = uv }
      local runs, closed, ended = 0, false, nil
      client:spawn(function()
        local next_run = client:runs("wf_demo;latency=5", { limit = 10, max = 25 })
        while next_run() do runs = runs + 1 end
        client:close()
        closed = true
      end, function(ok, err) ended = { ok = ok, err = err and tostring(err) } end)
      loop.run_until(function() return ended ~= nil end, WAIT)
      assert.same({ runs = 25, closed = true }, { runs = runs, closed = closed })
      assert.same({ ok = true }, ended)
      -- the client is closed all the same
      local page, err = client:list_runs("wf_demo")
      assert.is_nil(page)
      assert.equal("workflows: invalid argument: the client is closed", tostring(err))
      loop.drain()
      assert.equal(0, client:in_flight())
    end)

    it("leaves the result of a task that broke out of its walk alone too", function()
      local client = client_with { loop = uv }
      local ended
      client:spawn(function()
        local next_run, taken = client:runs("wf_demo;latency=5", { limit = 10 }), 0
        while next_run() do
          taken = taken + 1
          if taken == 12 then break end
        end
        client:close()
      end, function(ok, err) ended = { ok = ok, err = err and tostring(err) } end)
      loop.run_until(function() return ended ~= nil end, WAIT)
      assert.same({ ok = true }, ended)
      loop.drain()
      assert.equal(0, client:in_flight())
    end)

    it("still ends the client's other tasks with \"the client is closed\"", function()
      local client = client_with { loop = uv }
      local closer, other
      client:spawn(function()
        local next_run = client:runs("wf_demo;latency=1000", { limit = 10 })
        while next_run() do end
      end, function(ok, err) other = { ok = ok, err = err and tostring(err) } end)
      client:spawn(function()
        client:list_runs("wf_demo", { limit = 1 })
        client:close()
      end, function(ok, err) closer = { ok = ok, err = err and tostring(err) } end)
      loop.run_until(function() return closer ~= nil and other ~= nil end, WAIT)
      assert.same({ ok = true }, closer)
      assert.same({ ok = false, err = "workflows: invalid argument: the client is closed" }, other)
    end)
  end)
end)
