-- Handles: creating and dropping 10,000 clients and breaking off 1,000 walks leaves
-- the process's open file descriptors, and its threads, where they started.
local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"

-- Lua 5.4 closes a walk the moment its loop is left; older Luas leave it to the
-- garbage collector.
local CLOSES_AT_BREAK = _VERSION >= "Lua 5.4" and not rawget(_G, "jit")

local function own_pid()
  local file = assert(io.open("/proc/self/stat"))
  local stat = file:read("*l")
  file:close()
  return assert(stat:match("^(%d+)"))
end

-- Open descriptors of this process. The `ls` doing the counting may look before
-- io.popen has closed its copy of the pipe's other end, so each pipe counts once.
local function open_fds(pid)
  local pipe = assert(io.popen("ls -l /proc/" .. pid .. "/fd"))
  local count, pipes = 0, {}
  for line in pipe:lines() do
    local target = line:match(" %-> (.*)$")
    if target and target:find("^pipe:") then
      if not pipes[target] then count = count + 1 end
      pipes[target] = true
    elseif target then
      count = count + 1
    end
  end
  pipe:close()
  return count
end

-- A transfer's finalizer lets go of its session, whose own finalizer runs in the
-- next cycle: three full cycles leave nothing of a dropped client.
local function collect()
  collectgarbage()
  collectgarbage()
  collectgarbage()
end

-- Open descriptors once the collector has caught up. LuaJIT can keep the client
-- dropped last reachable from a stale stack slot until other calls overwrite it,
-- so a count that is off is taken again after more collection (counting itself
-- makes such calls); a real leak stays off however often it is counted.
local function settled_fds(pid, expected)
  local count
  for _ = 1, 10 do
    collect()
    count = open_fds(pid)
    if count == expected then break end
    -- on a loaded machine the last finalizers and closes may take a moment
    require("workflows.core").sleep(0.02)
  end
  return count
end

-- Threads of this process: each client that made a request has a transfer thread
-- until it is closed or collected.
local function threads(pid)
  local pipe = assert(io.popen("ls /proc/" .. pid .. "/task"))
  local count = 0
  for _ in pipe:lines() do count = count + 1 end
  pipe:close()
  return count
end

-- Open descriptors once collecting no longer closes any: on Lua 5.1 the finalizers
-- of what earlier specs dropped can take several cycles to run out.
local function stable_fds(pid)
  local count = open_fds(pid)
  for _ = 1, 10 do
    collect()
    local now = open_fds(pid)
    if now == count then break end
    count = now
  end
  return count
end

-- Checked every CHECKPOINT rounds, so that a leak fails the test long before the
-- process runs out of descriptors (and cannot even stop its sandbox).
local CHECKPOINT = 100

describe("file descriptors", function()
  local sb = fixtures.sandbox()
  local pid

  lazy_setup(function()
    pid = own_pid()
    -- libcurl's (and the TLS library's) one-time set-up happens with the process's
    -- first session and keeps what it opens: do it before anything is counted
    local client = sb:new_client()
    assert(client:list_runs("wf_empty"))
    client:close()
  end)

  -- One client, used once and dropped. Each runs in a function of its own, so that
  -- no stack slot of the test keeps the client (and its connections) reachable.
  local function use_and_drop_client(served_by_sandbox)
    if served_by_sandbox then
      local client = sb:new_client { max_retries = 0 }
      return client:list_runs("wf_empty") ~= nil
    end
    local client = workflows.new { base_url = "http://127.0.0.1:9", token = "x", max_retries = 0 }
    local _, err = client:list_runs("wf_empty")
    return err ~= nil and err.kind == "network"
  end

  -- A walk started on a fresh client and broken off at its first run; returns
  -- whether it started and how many transfers the client still had in flight.
  local function break_off_walk()
    local client = sb:new_client { prefetch = 2 }
    local started = false
    for _ in client:runs("wf_big", { limit = 10 }) do  -- luacheck: ignore 512
      started = true
      break
    end
    return started, client:in_flight()
  end

  it("are all given back after 10,000 clients were made, used and dropped", function()
    local before = stable_fds(pid)
    local threads_before = threads(pid)
    local worked = 0
    for i = 1, 10000 do
      -- every tenth client talks to the sandbox; the others meet a closed port,
      -- which costs a session, a socket and an error just the same
      if use_and_drop_client(i % 10 == 0) then worked = worked + 1 end
      if i % CHECKPOINT == 0 then
        assert.equal(before, settled_fds(pid, before), "after " .. i .. " clients")
      end
    end
    assert.equal(10000, worked)
    assert.equal(before, settled_fds(pid, before))
    assert.equal(threads_before, threads(pid), "the dropped clients' transfer threads")
  end)

  it("are all given back after 1,000 walks were broken off", function()
    local before = stable_fds(pid)
    local threads_before = threads(pid)
    local started, left_running = 0, 0
    for i = 1, 1000 do
      local ok, in_flight = break_off_walk()
      if ok then started = started + 1 end
      left_running = left_running + in_flight
      if i % CHECKPOINT == 0 then
        assert.equal(before, settled_fds(pid, before), "after " .. i .. " walks")
      end
    end
    assert.equal(1000, started)
    if CLOSES_AT_BREAK then
      assert.equal(0, left_running)       -- released at the break, not at collection
    else
      assert.is_true(left_running > 0)    -- the collector released them
    end
    assert.equal(before, settled_fds(pid, before))
    assert.equal(threads_before, threads(pid), "the broken-off walks' transfer threads")
  end)

  it("stay put while one client breaks off walk after walk", function()
    local client = sb:new_client { prefetch = 3 }
    assert(client:list_runs("wf_empty"))      -- the client's connection is open from here
    local before = stable_fds(pid)
    for _ = 1, 100 do
      for _ in client:runs("wf_big", { limit = 10 }) do break end  -- luacheck: ignore 512
      collect()
    end
    -- the connection cache may keep a few more connections than the one it had
    assert.is_true(open_fds(pid) <= before + 4, open_fds(pid) .. " open, " .. before .. " before")
    client = nil                              -- luacheck: ignore 311
    collect()
    assert.is_true(open_fds(pid) < before, "the client's connections outlived it")
  end)
end)
