-- A poll-mode session's transfer thread (src/worker.c): the transfers it moves end as
-- those of a session without one, a wait ends when one finishes, and releasing,
-- closing or collecting at any moment takes its transfers out and ends the thread.
-- The thread is counted in /proc/self/task.
local core = require "workflows.core"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local faults = require "spec.support.faults"

local MARGIN, EARLY = faults.MARGIN, faults.EARLY

-- fork is reachable from Lua through LuaJIT's FFI: the case after runs there.
local has_ffi, ffi = pcall(require, "ffi")
if has_ffi then
  ffi.cdef [[
    int fork(void);
    int waitpid(int pid, int *status, int options);
    int kill(int pid, int signal);
    void _exit(int status);
  ]]
end
local WNOHANG, SIGKILL = 1, 9

-- This process's id: /proc/self in a command would be the command's own.
local function process_id()
  local stat = assert(io.open("/proc/self/stat"))
  local pid = stat:read("*l"):match("^(%d+)")
  stat:close()
  return pid
end

local TASKS = "/proc/" .. process_id() .. "/task"

local function thread_count()
  local count = 0
  local listing = assert(io.popen("ls " .. TASKS))
  for _ in listing:lines() do count = count + 1 end
  listing:close()
  return count
end

local comparable = fixtures.comparable_outcome

local function finish(session, transfer)
  while not transfer:done() do session:drive(5) end
  return transfer:result()
end

describe("a poll-mode session's transfer thread", function()
  local sb

  lazy_setup(function() sb = sandbox.start {} end)
  lazy_teardown(function() sb:stop() end)

  local function url(id, query)
    return fixtures.runs_url(sb, id, query)
  end

  local function request(id, query)
    return { url = url(id, query), token = sb.token }
  end

  it("ends each transfer as a session without one does", function()
    local threaded, plain = core.session(), core.session { thread = false }
    for _, case in ipairs {
      { "wf_demo", "?limit=3&offset=2" }, { "wf_nope" }, { "wf_demo;fault=invalid_json" },
      { "wf_demo;status=503;retry_after=7" }, { "wf_demo;status=204" },
    } do
      local with_thread = finish(threaded, threaded:start(request(case[1], case[2])))
      local without = finish(plain, plain:start(request(case[1], case[2])))
      assert.same(comparable(without), comparable(with_thread), case[1])
    end
    threaded:close()
    plain:close()
  end)

  it("starts no thread before the first transfer, one for all, none without", function()
    local before = thread_count()
    local session = core.session()
    assert.equal(before, thread_count())
    local transfers = {}
    for i = 1, 4 do transfers[i] = session:start(request("wf_demo", "?limit=2")) end
    for _, transfer in ipairs(transfers) do assert.is_true(finish(session, transfer).ok) end
    assert.equal(before + 1, thread_count())
    session:close()
    assert.equal(before, thread_count())
    local plain = core.session { thread = false }
    assert.is_true(finish(plain, plain:start(request("wf_demo"))).ok)
    assert.equal(before, thread_count())
    plain:close()
  end)

  it("ends a wait when a transfer finishes, long before the wait is over", function()
    local session = core.session()
    local transfer = session:start(request("wf_demo"))
    local started = core.now()
    while not transfer:done() do session:drive(30) end
    assert.is_true(core.now() - started < 5, "took " .. core.now() - started .. " s")
    assert.is_true(transfer:result().ok)
    session:close()
  end)

  it("waits the whole wait on a silent server and leaves its transfer running", function()
    local session = core.session()
    local transfer = session:start(request("wf_demo;fault=silent;n=thread-wait"))
    local started = core.now()
    assert.equal(1, session:drive(0.3))
    local elapsed = core.now() - started
    assert.is_true(elapsed >= 0.3 - EARLY and elapsed < 0.3 + MARGIN, "took " .. elapsed .. " s")
    assert.is_false(transfer:done())
    session:close()
    assert.error_matches(function() transfer:result() end, "transfer was cancelled")
  end)

  it("takes out a transfer released while the thread runs it, and goes on", function()
    local session = core.session()
    local silent = session:start(request("wf_demo;fault=silent;n=thread-release"))
    session:drive(0.05)
    local started = core.now()
    silent:release()
    assert.is_true(core.now() - started < 1, "took " .. core.now() - started .. " s")
    assert.equal(0, session:running())
    assert.is_true(finish(session, session:start(request("wf_demo"))).ok)
    session:close()
  end)

  it("stays sound when transfers are released at any moment of their life", function()
    local before = thread_count()
    local session = core.session()
    for i = 1, 40 do
      local transfer = session:start(request("wf_demo", "?limit=5"))
      if i % 4 == 1 then session:drive(0) end
      -- moments from before the thread adds the handle to after it finished it
      if i % 2 == 0 then core.sleep((i % 10) * 0.0004) end
      transfer:release()
    end
    assert.equal(0, session:running())
    local transfers = {}
    for i = 1, 3 do transfers[i] = session:start(request("wf_demo", "?limit=5")) end
    for _, transfer in ipairs(transfers) do assert.is_true(finish(session, transfer).ok) end
    assert.equal(before + 1, thread_count())
    session:close()
    assert.equal(before, thread_count())
  end)

  it("ends the thread when closed with transfers in flight, cancelling them", function()
    local before = thread_count()
    local session = core.session()
    local transfers = {}
    for i = 1, 3 do transfers[i] = session:start(request("wf_demo;fault=silent;n=thread-close-" .. i)) end
    transfers[4] = session:start(request("wf_demo"))
    session:drive(0.05)
    local started = core.now()
    session:close()
    assert.is_true(core.now() - started < 1, "took " .. core.now() - started .. " s")
    assert.equal(before, thread_count())
    for i = 1, 3 do
      assert.error_matches(function() transfers[i]:result() end, "transfer was cancelled")
    end
  end)

  it("ends the thread when the session is collected with transfers in flight", function()
    local before = thread_count()
    do
      local session = core.session()
      for i = 1, 3 do session:start(request("wf_demo;fault=silent;n=thread-gc-" .. i)) end
      session:drive(0.05)
      assert.equal(before + 1, thread_count())
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, thread_count())
  end)

  if has_ffi then
    it("in a child made by fork, refuses the parent's session and lets go of it at once", function()
      local session = core.session()
      assert.is_true(finish(session, session:start(request("wf_demo"))).ok)
      local running = session:start(request("wf_demo;fault=silent;n=thread-fork"))
      session:drive(0.05)
      local path = os.tmpname()
      local pid = ffi.C.fork()
      if pid == 0 then
        -- the child: what each call gives, then out without running any finalizer
        local answers = {}
        local function try(fn, ...)
          local ok, err = pcall(fn, ...)
          answers[#answers + 1] = ok and "ok" or tostring(err):gsub("^[^:]*:%d+: ", "")
        end
        try(session.start, session, request("wf_demo"))
        try(session.drive, session, 1)
        try(running.release, running)
        try(session.close, session)
        try(session.running, session)
        local file = io.open(path, "w")
        file:write(table.concat(answers, "\n"), "\n")
        file:close()
        ffi.C._exit(0)
      end
      assert.is_true(pid > 0, "fork failed")
      local status = ffi.new("int[1]")
      local deadline = core.now() + 10
      while ffi.C.waitpid(pid, status, WNOHANG) == 0 do
        if core.now() > deadline then
          ffi.C.kill(pid, SIGKILL)
          ffi.C.waitpid(pid, status, 0)
          error("the child hung")
        end
        core.sleep(0.01)
      end
      local file = assert(io.open(path))
      local answers = {}
      for line in file:lines() do answers[#answers + 1] = line end
      file:close()
      os.remove(path)
      local refused = "session belongs to the process it was made in: make a new client after fork"
      assert.same({ refused, refused, "ok", "ok", "attempt to use a closed session" }, answers)
      assert.equal(0, status[0], "the child's exit status")
      -- the parent's session and transfer are as they were
      assert.is_false(running:done())
      assert.equal(1, session:running())
      assert.is_true(finish(session, session:start(request("wf_demo"))).ok)
      session:close()
    end)
  end

  it("serves a client's calls and walks on one thread, or none with transfer_thread = false", function()
    local workflows = require "workflows"
    local before = thread_count()
    for _, threaded in ipairs { true, false } do
      local client = workflows.new { base_url = sb.url, token = sb.token, transfer_thread = threaded }
      assert.equal(before, thread_count())
      assert.truthy(client:list_runs("wf_demo", { limit = 2 }))
      local count = 0
      for _ in client:runs("wf_demo", { limit = 7 }) do count = count + 1 end
      assert.is_true(count > 7)
      assert.equal(threaded and before + 1 or before, thread_count())
      client:close()
      assert.equal(before, thread_count())
    end
  end)

  it("refuses options that are not a table", function()
    assert.error_matches(function() core.session("fast") end,
      "bad argument #1 to '%w+' %(table expected, got string%)")
  end)
end)
