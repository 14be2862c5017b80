-- client:watch in the hosts that must not block: a task on standalone luv (and its
-- callback form) and a coroutine of a cqueues controller. The watch reports what the
-- blocking watch reports, and the host's other work goes on between its polls.
-- Under every Lua that has luv or lua-cqueues.
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"
local luv_tasks = require "spec.support.luv_tasks"
local controller = require "spec.support.cqueues_loop"
local sandbox = require "spec.support.sandbox"

local INTERVAL = 0.1
local BURSTS = 2
local BURST = 150     -- more than a page
local WAIT = 20

-- A listing of wf_empty that gets BURSTS bursts of BURST runs, 200 ms apart.
local function bursting(suffix)
  return ("wf_empty;every_ms=200;burst=%d;ticks=%d;%s"):format(BURST, BURSTS, suffix())
end

-- The ids a watch reported as added, until it has `wanted` of them; through an
-- explicit loop, which yields from its iterator on every Lua.
local function added_ids(client, id, wanted)
  local iterator, _, _, watch = client:watch(id, { interval = INTERVAL, deadline = 10 })
  local ids = {}
  while #ids < wanted do
    local event = iterator()
    if event == nil then break end
    assert.equal("added", event.type)
    ids[#ids + 1] = event.run.id
  end
  watch:close()
  table.sort(ids)
  return ids
end

local function sorted(list)
  table.sort(list)
  return list
end

local describe_luv = loop.uv and describe or pending

describe_luv("client:watch() in a task on standalone luv (" .. _VERSION .. ")", function()
  local sb, client_with, in_task = luv_tasks.block()
  local suffix = fixtures.suffix_maker("watch-luv")

  it("reports every arrival once, and the loop keeps turning between polls", function()
    local id = bursting(suffix)
    local client = client_with()
    local ticker = loop.ticker()
    local returned, ended = in_task(client, function()
      return added_ids(client, id, BURSTS * BURST)
    end)
    ticker.stop()
    assert.same({ ok = true }, ended)
    assert.same(sorted(sb:present(id)), returned[1])
    assert.is_true(ticker.ticks > 100, ticker.ticks .. " ticks")
  end)

  it("runs as a task with on_event, and task:cancel() ends it at once", function()
    local id = bursting(suffix)
    local client = client_with()
    local got, ends = {}, 0
    local task = client:watch(id, { interval = INTERVAL }, function(event, err)
      if event == nil then
        ends = ends + 1
        error(err)
      end
      got[#got + 1] = event.run.id
    end)
    loop.run_until(function() return #got >= BURSTS * BURST end, WAIT)
    assert.is_true(task:running())
    task:cancel()
    assert.is_false(task:running())
    assert.equal(0, ends)
    assert.same(sorted(sb:present(id)), sorted(got))
  end)

  it("cancelled in the middle of a poll, leaves nothing in flight and no handle open", function()
    local client = client_with()
    local task = client:spawn(function()
      local iterator = client:watch("wf_demo;latency=2000", { interval = INTERVAL })
      while iterator() do end
    end)
    loop.run_until(function() return client:in_flight() == 1 end, WAIT)
    task:cancel()
    loop.run_until(function() return client:in_flight() == 0 end, WAIT)
    assert.is_false(task:running())
  end)

  it("closed from outside its task during a poll, ends once that poll is in", function()
    local client = client_with()
    local iterator, _, _, watch = client:watch("wf_demo;latency=300", { initial = true })
    local got, ended = "none", nil
    client:spawn(function() got = iterator() end, function(ok, err) ended = { ok = ok, err = err } end)
    loop.run_until(function() return client:in_flight() == 1 end, WAIT)
    watch:close()
    loop.run_until(function() return ended ~= nil end, WAIT)
    assert.same({ ok = true }, ended)
    assert.is_nil(got)
    assert.equal(0, client:in_flight())
  end)

  it("dropped between polls without close, is collected without touching the loop", function()
    local client = client_with()
    local polled = false
    local task = client:spawn(function()
      local iterator = client:watch("wf_demo", { initial = true, interval = 60 })
      iterator()
      polled = true
    end)
    loop.run_until(function() return polled and not task:running() end, WAIT)
    collectgarbage()
    collectgarbage()
    assert.equal(0, client:in_flight())
  end)

  it("stops when on_event returns false, between two polls of a slow interval", function()
    local client = client_with()
    local got = 0
    local task = client:watch("wf_demo", { initial = true, interval = 60 }, function()
      got = got + 1
      return got < 3
    end)
    loop.run_until(function() return not task:running() end, WAIT)
    assert.equal(3, got)
  end)
end)

describe("client:watch() in a cqueues controller (" .. _VERSION .. ")", function()
  if not controller.cqueues then
    pending("skipped: lua-cqueues is not installed for this Lua (apt-get install lua-cqueues)")
    return
  end
  local sb
  local suffix = fixtures.suffix_maker("watch-cq")
  lazy_setup(function() sb = sandbox.start() end)
  lazy_teardown(function() sb:stop() end)

  it("reports every arrival once, and the controller's other coroutines run", function()
    local id = bursting(suffix)
    local client = fixtures.sandbox_client(sb, { timeout = 5 })
    local ticks, done = 0, false
    local ended = controller.run({
      function()
        local ids = added_ids(client, id, BURSTS * BURST)
        done = true
        return ids
      end,
      function()
        while not done do
          ticks = ticks + 1
          controller.cqueues.sleep(0.005)
        end
      end,
    }, WAIT)
    client:close()
    assert.is_true(ended[1].ok, tostring(ended[1].err))
    assert.same(sorted(sb:present(id)), ended[1][1])
    assert.is_true(ticks > 50, ticks .. " ticks")
  end)
end)
