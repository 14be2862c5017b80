-- Tasks that end early leave nothing behind: after 1,000 cancelled tasks no extra
-- descriptor is open (/proc/self/fd), no uv handle of the client is alive
-- (uv.walk), and memory stays flat. Standalone luv, under every Lua.
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local loop = require "spec.support.luv_loop"
local heap = require "spec.support.heap"

local uv = loop.uv
local describe_luv = uv and describe or pending

local BATCHES, PER_BATCH = 20, 50
local WAIT = 20

local full_collect = heap.full_collect

describe_luv("tasks that end early (" .. _VERSION .. ")", function()
  local sb
  local suffix = fixtures.suffix_maker("leaks")

  lazy_setup(function()
    sb = sandbox.start()
  end)

  lazy_teardown(function()
    loop.close_all()
    sb:stop()
  end)

  -- One batch: PER_BATCH walks of a slow listing, cancelled at different points:
  -- before they start, with the first request on the wire, mid-walk with pages
  -- prefetched, and from inside their own body. Returns how many on_done calls.
  local function batch(client, number)
    local id = "wf_demo;latency=20;" .. suffix()
    local tasks, done = {}, 0
    for i = 1, PER_BATCH do
      local task
      task = client:spawn(function()
        local next_run = client:runs(id, { limit = 10 })
        local seen = 0
        while next_run() do
          seen = seen + 1
          if i % 5 == 0 and seen == 3 then task:cancel() end
        end
      end, function() done = done + 1 end)
      tasks[i] = task
    end
    local moment = number % 4
    if moment > 0 then loop.run_for(moment * 0.025) end
    local in_flight = client:in_flight()
    for _, task in ipairs(tasks) do task:cancel() end
    for _, task in ipairs(tasks) do assert.is_false(task:running()) end
    assert.equal(0, client:in_flight())
    loop.drain()
    return done, in_flight
  end

  it("leave no descriptor, handle or memory behind after 1,000 cancelled tasks", function()
    -- clients that earlier specs dropped close their connections when collected: that
    -- happens first, so that only this spec's descriptors are counted
    full_collect()
    loop.drain()
    local descriptors_before = loop.descriptors()
    assert.same({}, loop.handles())
    local client = fixtures.sandbox_client(sb, { loop = uv, prefetch = 3, timeout = 5 })
    finally(function() client:close() end)
    local seq = sb:last_seq()
    local ended = batch(client, 1) + batch(client, 2)
    local memory_before = heap.used_kb()
    local most_in_flight = 0
    for number = 3, BATCHES do
      local done, in_flight = batch(client, number)
      ended, most_in_flight = ended + done, math.max(most_in_flight, in_flight)
    end
    -- walks collected now queue what they held on the loop's reaper: one turn settles
    -- it (doc/lifecycle.md)
    full_collect()
    loop.drain()
    local memory_after = heap.used_kb()

    assert.equal(BATCHES * PER_BATCH, ended)
    assert.is_true(most_in_flight >= PER_BATCH, "cancelled with at most " .. most_in_flight .. " in flight")
    assert.is_true(#sb:log(seq) > 0)         -- requests really left (cancelled ones may not be logged)
    -- the client keeps only libcurl's timer, stopped: nothing keeps the loop going
    local handles = loop.handles()
    assert.is_true(#handles <= 1 and (handles[1] == nil or handles[1] == "timer"),
                   table.concat(handles, " "))
    assert.is_false(uv.loop_alive())
    assert.is_true(memory_after - memory_before < 256,
                   ("memory grew by %.0f KB"):format(memory_after - memory_before))

    client:close()
    loop.drain()
    assert.same({}, loop.handles())
    assert.equal(descriptors_before, loop.descriptors())
  end)

  it("close everything of a client that is dropped without client:close()", function()
    full_collect()
    loop.drain()
    local descriptors_before = loop.descriptors()
    local client = fixtures.sandbox_client(sb, { loop = uv, prefetch = 3, timeout = 5 })
    local finished = 0
    for _ = 1, 10 do
      client:spawn(function()
        local next_run = client:runs("wf_demo", { limit = 50 })
        while next_run() do end
      end, function(ok) if ok then finished = finished + 1 end end)
    end
    local cancelled = client:spawn(function()
      local next_run = client:runs("wf_demo;latency=1000;" .. suffix(), { limit = 50 })
      while next_run() do end
    end)
    loop.run_until(function() return finished == 10 end, WAIT)
    cancelled:cancel()
    assert.is_true(loop.descriptors() > descriptors_before)   -- kept-alive connections
    client, cancelled = nil, nil                              -- luacheck: ignore
    full_collect()
    loop.drain()
    assert.same({}, loop.handles())
    assert.equal(descriptors_before, loop.descriptors())
  end)
end)

-- luv frees a handle whose close is still pending when the Lua state closes, and
-- libuv then crashes: a script must be able to end at any point without that. Each
-- case runs in a child process of this Lua, which must exit cleanly.
describe_luv("a script on luv that ends (" .. _VERSION .. ")", function()
  local cli = require "spec.support.cli"
  local sb

  lazy_setup(function()
    sb = sandbox.start()
  end)

  lazy_teardown(function()
    sb:stop()
  end)

  -- Runs `body` after a prelude that makes `client` (on luv, against the sandbox)
  -- and `walk(n)`, a task that walks wf_demo and stops the loop after n runs.
  -- Returns the exit status and what the child wrote to stderr.
  local function run_script(body)
    local _, stderr, status = cli.run_lua(([[
local uv = require "luv"
local workflows = require "workflows"
local client = workflows.new { base_url = %q, token = %q, loop = uv, prefetch = 3 }
local function walk(n)
  return client:spawn(function()
    local next_run, seen = client:runs("wf_demo;latency=20", { limit = 10 }), 0
    while next_run() do
      seen = seen + 1
      if seen == n then uv.stop() end
    end
  end)
end
]]):format(sb.url, sb.token) .. body)
    return status, stderr
  end

  local cases = {
    { "after its walk, with the client still open", "walk(0) uv.run()" },
    { "right after client:close()", "walk(0) uv.run() client:close()" },
    { "in the middle of a walk", "walk(15) uv.run()" },
    { "in the middle of a walk, after client:close()", "walk(15) uv.run() client:close()" },
    { "right after task:cancel()", "local task = walk(15) uv.run() task:cancel()" },
    { "after a client in the middle of a walk was collected",
      "walk(15) uv.run() client = nil collectgarbage() collectgarbage()" },
  }
  for _, case in ipairs(cases) do
    it("exits cleanly " .. case[1], function()
      local status, stderr = run_script(case[2])
      assert.equal("", stderr)
      assert.equal(0, status)
    end)
  end
end)
