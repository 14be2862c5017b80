local fixtures = require "spec.support.fixtures"

local fields = fixtures.fields

local CLOSED = {
  kind = "invalid_argument",
  message = "the client is closed",
  attempts = 0,
}

describe("client:close()", function()
  local sb = fixtures.sandbox { client = { timeout = 2 } }

  -- Runs `fn` with a full collection every `every` instructions. A window of a few
  -- instructions needs a collection in it; a whole walk needs only some, and a full
  -- collection every 10 instructions of a walk takes minutes late in a long suite on
  -- Lua 5.1.
  local function collecting(every, fn)
    debug.sethook(function() collectgarbage() end, "", every)
    local ok, a, b = pcall(fn)
    debug.sethook()
    assert(ok, a)
    return a, b
  end

  it("is not closed by the collector while a call of a client nobody holds runs", function()
    -- the client is unreachable once list_runs has handed on its `self`
    local page, err = collecting(10, function()
      -- a retry, so that the call goes round its wait loop a few times
      return sb:new_client():list_runs(("wf_demo;status=503;times=1;n=gc-%d"):format(os.time()),
        { limit = 2 })
    end)
    assert.is_nil(err)
    assert.equal(2, #page.items)
  end)

  it("is not closed by the collector while a walk of a client nobody holds runs", function()
    local count = collecting(1000, function()
      local n = 0
      for _ in sb:new_client { prefetch = 1 }:runs("wf_demo;latency=5", { limit = 50 }) do
        n = n + 1
      end
      return n
    end)
    assert.equal(250, count)
  end)

  it("cancels what is in flight at once", function()
    local client = sb:new_client { prefetch = 3 }
    -- every answer takes 300 ms, so the pages requested ahead are surely still out
    local id = ("wf_big;latency=300;n=close-%d"):format(os.time())
    local iterator = client:runs(id, { limit = 10 })
    assert.is_string(iterator().id)
    assert.equal(3, client:in_flight())
    client:close()
    assert.equal(0, client:in_flight())
  end)

  it("makes later calls fail with an invalid_argument error", function()
    local client = sb:new_client()
    assert(client:list_runs("wf_demo", { limit = 1 }))
    client:close()
    local page, err = client:list_runs("wf_demo", { limit = 1 })
    assert.is_nil(page)
    assert.same(CLOSED, fields(err))
    assert.equal("workflows: invalid argument: the client is closed", tostring(err))
    local ok, raised = pcall(client.runs, client, "wf_demo")
    assert.is_false(ok)
    assert.same(CLOSED, fields(raised))
  end)

  it("ends a walk begun before it with the same error", function()
    local client = sb:new_client { prefetch = 2 }
    local seen = 0
    local ok, err = pcall(function()
      for _ in client:runs("wf_demo", { limit = 10 }) do
        seen = seen + 1
        if seen == 15 then client:close() end
      end
    end)
    assert.is_false(ok)
    assert.same(CLOSED, fields(err))
    assert.equal(19, seen)    -- the runs of the page already in hand still come out (10, then 9)
  end)

  it("can be called again", function()
    local client = sb:new_client()
    client:close()
    client:close()
    assert.equal(0, client:in_flight())
  end)

  it("is the client's closing value on Lua 5.4", function()
    if _VERSION ~= "Lua 5.4" or rawget(_G, "jit") then
      -- no <close> before 5.4: the method is what older Luas have
      assert.is_function(sb:new_client().close)
      return
    end
    local chunk = assert(load([[
      local sb = ...
      local client
      do
        local scoped <close> = sb:new_client { prefetch = 3 }
        client = scoped
        local iterator = scoped:runs("wf_big", { limit = 10 })
        iterator()
      end
      return client
    ]]))
    local client = chunk(sb)
    assert.equal(0, client:in_flight())
    local _, err = client:list_runs("wf_demo")
    assert.same(CLOSED, fields(err))
  end)
end)
