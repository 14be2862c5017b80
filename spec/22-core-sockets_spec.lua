-- The C core's socket mode (core.socket_session) driven by standalone luv, the way
-- an event-loop transport drives it: every change libcurl asks for becomes a
-- uv_poll watcher keyed by descriptor, or the one uv timer, and readiness goes back
-- through socket_action / timer_expired (spec/support/socket_driver.lua). Real TCP
-- against the sandbox.
local core = require "workflows.core"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local socket_driver = require "spec.support.socket_driver"

local uv = socket_driver.uv
local new_driver, run_for = socket_driver.new, socket_driver.run_for
local fd_open, count_fds = socket_driver.fd_open, socket_driver.count_fds
local getinfo, sethook = debug.getinfo, debug.sethook


local function without_position(message)
  return (tostring(message):gsub("^[^:]*:%d+: ", ""))
end

local function raised_by(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return err
end

local function page_without_request_id(outcome)
  assert(outcome.ok, outcome.message)
  local page = outcome.page
  return { items = page.items, hasMore = page.hasMore, limit = page.limit, offset = page.offset }
end

local describe_luv = uv and describe or pending

describe_luv("core.socket_session()", function()
  local sb

  lazy_setup(function() sb = sandbox.start {} end)
  lazy_teardown(function() sb:stop() end)

  local function url(id, query)
    return fixtures.runs_url(sb, id, query)
  end

  it("says which mode a session is in when driven the other way", function()
    local poll, sockets = core.session(), core.socket_session()
    assert.equal("session is in socket mode: drive it with socket_action",
      without_position(raised_by(sockets.drive, sockets, 0)))
    for _, method in ipairs { "changes", "timer_expired", "close_removed" } do
      assert.equal("session is in poll mode: drive it with drive",
        without_position(raised_by(poll[method], poll)))
    end
    assert.equal("session is in poll mode: drive it with drive",
      without_position(raised_by(poll.socket_action, poll, 3, "r")))
    assert.matches("bad argument #3 to '.-' %(invalid option 'x'%)",
      raised_by(sockets.socket_action, sockets, 3, "x"))
    assert.matches("^workflows.session %(socket mode, ", tostring(sockets))
    poll:close()
    sockets:close()
    assert.equal("attempt to use a closed session",
      without_position(raised_by(sockets.changes, sockets)))
  end)

  it("records libcurl's requests and hands them out only through changes()", function()
    local s = core.socket_session()
    local sockets, timer = s:changes()
    assert.same({}, sockets)
    assert.is_nil(timer)
    local transfer = s:start { url = url("wf_demo", "?limit=1"), token = sb.token }
    -- adding the handle asked for a timer; nothing else ran
    sockets, timer = s:changes()
    assert.same({}, sockets)
    assert.equal(0, timer)
    sockets, timer = s:changes()                -- cleared by the call before
    assert.same({}, sockets)
    assert.is_nil(timer)
    -- a call hook sees any Lua function run meanwhile (the collector is stopped, so
    -- that no finalizer of an earlier test runs)
    local lua_calls = {}
    collectgarbage("stop")
    sethook(function()
      local info = getinfo(2, "S")
      if info.what ~= "C" then lua_calls[#lua_calls + 1] = info.short_src .. ":" .. info.linedefined end
    end, "c")
    local running = s:timer_expired()           -- connecting now: a socket to watch for writing
    sethook()
    collectgarbage("restart")
    assert.same({}, lua_calls)
    assert.equal(1, running)
    sockets = s:changes()
    assert.equal(2, #sockets)
    assert.equal("number", type(sockets[1]))
    assert.equal("w", sockets[2])
    assert.is_false(transfer:done())
    local fd = sockets[1]
    transfer:release()
    -- the aborted connection goes: libcurl 7.88 closes a connecting socket itself,
    -- without the close callback, so the session reports that it is closed
    sockets = s:changes()
    local reported = {}
    for i = 1, #sockets, 2 do reported[#reported + 1] = sockets[i] .. " " .. sockets[i + 1] end
    assert.same({ fd .. " remove", fd .. " close" }, reported)
    if not fd_open(fd) then
      assert.same({}, (s:changes()))             -- reported once
    end
    s:close()
  end)

  it("completes a transfer with the same outcome as the poll path", function()
    local s = core.socket_session()
    local driver = new_driver(s)
    local transfer = s:start { url = url("wf_demo", "?limit=3&offset=7"), token = sb.token }
    driver:wait { transfer }
    local outcome = transfer:result()
    assert.is_true(outcome.ok)
    assert.equal(200, outcome.status)
    assert.equal(outcome.page.requestId, outcome.request_id)
    local poll = core.session()
    local expected = poll:start { url = url("wf_demo", "?limit=3&offset=7"), token = sb.token }
    while not expected:done() do poll:drive(0.5) end
    assert.same(page_without_request_id(expected:result()), page_without_request_id(outcome))
    driver:stop()
    s:close()
    poll:close()
  end)

  it("works over TLS", function()
    local tls = sandbox.start { tls = true }
    finally(function() tls:stop() end)
    local s = core.socket_session()
    local driver = new_driver(s)
    local transfers = {}
    for i = 1, 3 do
      transfers[i] = s:start { url = tls.url .. "/v1/workflows/wf_demo/runs?limit=2&offset=" .. i,
        token = tls.token, ca_file = tls.cert }
    end
    driver:wait(transfers)
    for i = 1, 3 do
      local outcome = transfers[i]:result()
      assert.is_true(outcome.ok, outcome.message)
      assert.equal(i, outcome.page.offset)
    end
    local untrusted = s:start { url = tls.url .. "/v1/workflows/wf_demo/runs", token = tls.token }
    driver:wait { untrusted }
    assert.is_true(untrusted:result().tls)
    driver:stop()
    s:close()
  end)

  it("keeps a kept-alive connection on one descriptor across transfers", function()
    local s = core.socket_session()
    local driver = new_driver(s)
    local first = s:start { url = url("wf_demo", "?limit=1"), token = sb.token }
    driver:wait { first }
    local second = s:start { url = url("wf_demo", "?limit=1&offset=1"), token = sb.token }
    driver:wait { second }
    assert.is_false(first:result().reused)
    assert.is_true(second:result().reused)
    assert.equal(1, #driver:fds())
    -- idle in the cache, unwatched, still open
    local last_socket_change
    for _, entry in ipairs(driver.log) do
      if entry[1] then last_socket_change = entry end
    end
    assert.same({ driver:fds()[1], "remove" }, last_socket_change)
    assert.is_true(fd_open(driver:fds()[1]))
    driver:stop()
    s:close()
  end)

  it("keeps a removed descriptor open until close_removed()", function()
    local s = core.socket_session()
    local driver = new_driver(s)
    driver.hold_closes = true
    -- Connection: close and a cut body: libcurl closes the connection when it is done
    local transfer = s:start { url = url("wf_demo;fault=short", "?limit=5"), token = sb.token }
    driver:wait { transfer }
    assert.equal("network", transfer:result().kind)
    assert.equal(1, #driver.removed)
    local fd = driver.removed[1].fd
    assert.is_true(driver.removed[1].open_at_remove)
    assert.is_true(fd_open(fd))                 -- libcurl has closed it; the session holds it
    assert.equal(1, driver:release_closes())
    assert.is_false(fd_open(fd))
    assert.equal(0, s:close_removed())
    driver:stop()
    s:close()
  end)

  it("closes only what changes() has reported", function()
    local s = core.socket_session()
    local driver = new_driver(s)
    local transfer = s:start { url = url("wf_demo;latency=5000", "?limit=1"), token = sb.token }
    local deadline = uv.now() + 5000
    driver:apply()
    while not driver.watchers[driver:fds()[1] or -1] do
      assert.is_true(uv.now() < deadline)
      run_for(10)
    end
    local fd = driver:fds()[1]
    transfer:release()                          -- closes the connection: queued, not reported yet
    assert.equal(0, s:close_removed())
    assert.is_true(fd_open(fd))
    driver:apply()                              -- reports the removal, then closes
    assert.is_false(fd_open(fd))
    assert.same({ fd = fd, open_at_remove = true, open_after = false }, driver.removed[1])
    driver:stop()
    s:close()
  end)

  it("asks to stop the timer with -1 once nothing is left, and -1 never fires", function()
    local s = core.socket_session()
    local driver = new_driver(s)
    local transfer = s:start { url = url("wf_demo", "?limit=1"), token = sb.token }
    driver:wait { transfer }
    local last_timer
    for _, entry in ipairs(driver.log) do
      if entry.timer then last_timer = entry.timer end
    end
    assert.equal(-1, last_timer)
    assert.is_false(driver.timer:is_active())
    local fired = driver.timer_fired
    run_for(100)
    assert.equal(fired, driver.timer_fired)
    local sockets, timer = s:changes()
    assert.same({}, sockets)
    assert.is_nil(timer)
    driver:stop()
    s:close()
  end)

  it("fails a transfer whose socket reports a poll error instead of stalling", function()
    local s = core.socket_session()
    local driver = new_driver(s)
    local transfer = s:start { url = url("wf_demo;latency=5000", "?limit=1"), token = sb.token }
    local deadline = uv.now() + 5000
    local fd
    driver:apply()
    repeat                                      -- until the request is out and an answer awaited
      assert.is_true(uv.now() < deadline)
      run_for(10)
      local last = driver.log[#driver.log]
      if last and last[2] == "r" then fd = last[1] end
    until fd
    run_for(50)
    assert.is_false(transfer:done())
    assert.equal(0, s:socket_action(fd, "e"))
    assert.is_true(transfer:done())
    local outcome = transfer:result()
    assert.is_false(outcome.ok)
    assert.equal("network", outcome.kind)
    assert.equal(55, outcome.curl_code)         -- CURLE_SEND_ERROR
    assert.equal("select/poll returned error", outcome.message)
    driver:apply()
    assert.is_false(fd_open(fd))
    driver:stop()
    s:close()
  end)

  it("runs 20 concurrent transfers to the same results as the poll path", function()
    local id = "wf_demo;latency=50"
    local s = core.socket_session()
    local driver = new_driver(s)
    local transfers = {}
    for i = 1, 20 do
      transfers[i] = s:start { url = url(id, "?limit=5&offset=" .. (i - 1) * 5), token = sb.token }
    end
    assert.equal(20, s:running())
    driver:wait(transfers, 20)
    assert.equal(0, s:running())
    local poll = core.session()
    local expected = {}
    for i = 1, 20 do
      expected[i] = poll:start { url = url(id, "?limit=5&offset=" .. (i - 1) * 5), token = sb.token }
    end
    while poll:drive(0.5) > 0 do end
    for i = 1, 20 do
      assert.same(page_without_request_id(expected[i]:result()),
        page_without_request_id(transfers[i]:result()))
    end
    assert.is_true(#driver:fds() > 1)
    driver:stop()
    s:close()
    poll:close()
  end)

  it("leaves no descriptor behind when closed with transfers in flight and closes queued",
    function()
      local before = count_fds()
      local s = core.socket_session()
      local driver = new_driver(s)
      driver.hold_closes = true
      local short = s:start { url = url("wf_demo;fault=short", "?limit=5"), token = sb.token }
      driver:wait { short }
      local slow = {}
      for i = 1, 5 do
        slow[i] = s:start { url = url("wf_demo;latency=5000", "?limit=1&offset=" .. i),
          token = sb.token }
      end
      driver:apply()
      local deadline = uv.now() + 5000
      -- the first connection opens at once; the others wait to learn whether it
      -- multiplexes (CURLOPT_PIPEWAIT), which an HTTP/1.1 answer tells 5 s later
      while #driver:fds() < 2 do
        assert.is_true(uv.now() < deadline)
        run_for(10)
      end
      assert.is_true(count_fds() >= before + 2)
      driver:stop()                             -- the loop stops watching first
      s:close()
      assert.equal(before, count_fds())
      for i = 1, 5 do assert.equal("transfer was cancelled",
        without_position(raised_by(slow[i].result, slow[i]))) end
    end)

  it("leaves no descriptor behind when collected", function()
    -- what earlier specs left for the collector would otherwise close meanwhile
    collectgarbage()
    collectgarbage()
    local before = count_fds()
    do
      local s = core.socket_session()
      local driver = new_driver(s)
      local transfer = s:start { url = url("wf_demo", "?limit=1"), token = sb.token }
      driver:wait { transfer }
      driver:stop()
    end
    collectgarbage()
    collectgarbage()
    assert.equal(before, count_fds())
  end)
end)
