-- The retry budget: on by default, it bounds the retries of a storm of failures by
-- the successes, refills on success, and leaves rare failures retried as before.
local fixtures = require "spec.support.fixtures"
local retry = require "workflows.retry"
local budget = require "workflows.budget"
local workflows = require "workflows"

local unique = fixtures.demo_id_maker("budget")

describe("workflows.budget", function()
  it("spends a token a retry and refuses once the reserve is spent", function()
    local bucket = budget.local_bucket(budget.settings(true))
    for _ = 1, budget.RESERVE do assert.is_true(bucket:withdraw()) end
    assert.is_false(bucket:withdraw())
    assert.same({ 0, 10, 0.2, false }, { bucket:state() })
  end)

  it("puts `ratio` back per success, never past the reserve", function()
    local bucket = budget.local_bucket(budget.settings { ratio = 0.5, reserve = 2 })
    assert.is_true(bucket:withdraw())
    assert.is_true(bucket:withdraw())
    bucket:deposit()
    assert.is_false(bucket:withdraw())
    bucket:deposit()
    assert.is_true(bucket:withdraw())
    for _ = 1, 10 do bucket:deposit() end
    assert.equal(2, (bucket:state()))
  end)

  it("is off with false", function()
    assert.is_nil(budget.settings(false))
  end)
end)

describe("the retry budget", function()
  local sb = fixtures.sandbox { client = { timeout = 5, max_retries = 2 } }
  local base

  before_each(function() base = retry.BASE; retry.BASE = 0.002 end)
  after_each(function() retry.BASE = base end)

  -- Makes `calls` calls of `id_of(i)` and returns the requests they made.
  local function requests_of(client, calls, id_of)
    local seq, made = sb:last_seq(), 0
    local ids = {}
    for i = 1, calls do
      local id = id_of(i)
      ids[id] = true
      client:list_runs(id, { limit = 1 })
    end
    for _, entry in ipairs(sb:log(seq)) do
      if ids[entry.workflow_id] then made = made + 1 end
    end
    return made
  end

  it("bounds a storm of 503s: one request a call once the reserve is spent", function()
    local storm = unique("status=503")
    local made = requests_of(sb:new_client(), 40, function() return storm end)
    assert.equal(40 + budget.RESERVE, made)
  end)

  it("retries every failure of a storm when turned off", function()
    local storm = unique("status=503")
    assert.equal(36, requests_of(sb:new_client { retry_budget = false }, 12,
      function() return storm end))
  end)

  it("refills on success", function()
    local client = sb:new_client { retry_budget = { reserve = 1 } }
    local storm = unique("status=503")
    assert.equal(2, requests_of(client, 1, function() return storm end))  -- the reserve
    assert.equal(1, requests_of(client, 1, function() return storm end))
    assert.equal(5, requests_of(client, 5, function() return "wf_demo" end))
    -- five successes gave one token back: one retry, then none
    local _, err = client:list_runs(storm)
    assert.equal(2, err.attempts)
    _, err = client:list_runs(storm)
    assert.equal(1, err.attempts)
  end)

  it("changes nothing under 5% failures", function()
    local client = sb:new_client()
    local refused = 0
    local seen = sb:new_client { on_event = function(ev)
      if ev.type == "budget" then refused = refused + 1 end
    end }
    for _, each in ipairs { client, seen } do
      local made = requests_of(each, 100, function(i)
        -- one call in twenty meets a 503 on its first attempt
        if i % 20 == 0 then return unique("status=503;times=1") end
        return "wf_demo"
      end)
      assert.equal(105, made)
    end
    assert.equal(0, refused)
  end)

  it("keeps a failing call's error as it was", function()
    local client = sb:new_client { retry_budget = { reserve = 1 }, max_retries = 1 }
    local storm = unique("status=503")
    client:list_runs(storm)
    local page, err = client:list_runs(storm)
    assert.is_nil(page)
    assert.same({ "http", 503, 1 }, { err.kind, err.status, err.attempts })
  end)

  describe("option", function()
    local function problem_of(value)
      local ok, err = pcall(workflows.new, { retry_budget = value })
      assert.is_false(ok)
      return err.message
    end

    it("takes true, false and a table", function()
      for _, value in ipairs { true, false, {}, { ratio = 0 }, { ratio = 1, reserve = 0.5 } } do
        assert.is_true(pcall(workflows.new, { retry_budget = value }))
      end
    end)

    local BAD = {
      { "yes", 'option "retry_budget" must be true, false or a table { ratio = 0..1, '
        .. "reserve = a positive number } (got string)" },
      { { ratio = 2 }, 'option "retry_budget": ratio must be a number in 0..1 (got 2)' },
      { { ratio = "x" }, 'option "retry_budget": ratio must be a number in 0..1 (got string)' },
      { { reserve = 0 }, 'option "retry_budget": reserve must be a positive number (got 0)' },
      { { reserve = 1 / 0 }, 'option "retry_budget": reserve must be a positive number (got inf)' },
      { { size = 3 }, 'option "retry_budget": unknown key "size" (expected ratio or reserve)' },
    }
    for _, case in ipairs(BAD) do
      it("refuses " .. case[2], function() assert.equal(case[2], problem_of(case[1])) end)
    end
  end)

  describe("shared across nginx workers (shared_dict)", function()
    it("is refused outside nginx", function()
      local ok, err = pcall(workflows.new, { shared_dict = "workflows" })
      assert.is_false(ok)
      assert.equal('option "shared_dict" works only inside nginx (OpenResty), where '
        .. 'lua_shared_dict declares the dict (got "workflows" outside nginx)', err.message)
    end)
  end)
end)
