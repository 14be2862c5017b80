local fixtures = require "spec.support.fixtures"

local fields = fixtures.fields

local function invalid(message)
  return { kind = "invalid_argument", message = message, attempts = 0 }
end

-- Bad call arguments and what they are reported as, for every call.
local SHARED_CASES = {
  { nil, nil, "workflow id must be a non-empty string (got nil)" },
  { "", nil, 'workflow id must be a non-empty string (got "")' },
  { 42, nil, "workflow id must be a non-empty string (got 42)" },
  { "wf_demo", "status=failure", 'options must be a table (got "status=failure")' },
  { "wf_demo", { status = "failed" }, 'invalid status "failed" (did you mean "failure"?)' },
  { "wf_demo", { status = "canceled" }, 'invalid status "canceled" (did you mean "cancelled"?)' },
  { "wf_demo", { status = "Running" }, 'invalid status "Running" (did you mean "running"?)' },
  { "wf_demo", { status = "done" }, 'invalid status "done" (expected one of "running", '
    .. '"success", "failure", "waiting", "cancelled")' },
  { "wf_demo", { status = 1 }, 'option "status" must be a string (got 1)' },
  { "wf_demo", { limit = 0 }, 'option "limit" must be an integer in 1..100 (got 0)' },
  { "wf_demo", { limit = 101 }, 'option "limit" must be an integer in 1..100 (got 101)' },
  { "wf_demo", { limit = 2.5 }, 'option "limit" must be an integer in 1..100 (got 2.5)' },
  { "wf_demo", { limit = "10" }, 'option "limit" must be an integer in 1..100 (got "10")' },
  { "wf_demo", { offset = -1 }, 'option "offset" must be a non-negative integer (got -1)' },
  { "wf_demo", { offset = 0.5 }, 'option "offset" must be a non-negative integer (got 0.5)' },
  { "wf_demo", { offset = 1 / 0 }, 'option "offset" must be a non-negative integer (got inf)' },
  { "wf_demo", { offset = 2 ^ 63 }, 'option "offset" must be at most 2^53 (got '
    .. tostring(2 ^ 63) .. ")" },
  { "wf_demo", { deadline = 0 }, 'option "deadline" must be a positive number (got 0)' },
  { "wf_demo", { deadline = 0 / 0 }, 'option "deadline" must be a positive number (got nan)' },
  { "wf_demo", { stauts = "failure" }, 'unknown option "stauts" (did you mean "status"?)' },
  { "wf_demo", { limt = 5 }, 'unknown option "limt" (did you mean "limit"?)' },
}

local LIST_ONLY_CASES = {
  { "wf_demo", { max = 5 }, 'unknown option "max"' },
}

local WALK_ONLY_CASES = {
  { "wf_demo", { max = 0 }, 'option "max" must be a positive integer (got 0)' },
  { "wf_demo", { max = 1.5 }, 'option "max" must be a positive integer (got 1.5)' },
  { "wf_demo", { maxx = 5 }, 'unknown option "maxx" (did you mean "max"?)' },
}

local function describe_case(case)
  return ("%s with id %s and options %s"):format(case[3], tostring(case[1]),
    type(case[2]) == "table" and "table" or tostring(case[2]))
end

describe("arguments", function()
  local sb = fixtures.sandbox { client = { timeout = 2 } }
  local client

  lazy_setup(function()
    client = sb:new_client()
  end)

  describe("list_runs()", function()
    local cases = {}
    for _, case in ipairs(SHARED_CASES) do cases[#cases + 1] = case end
    for _, case in ipairs(LIST_ONLY_CASES) do cases[#cases + 1] = case end
    for _, case in ipairs(cases) do
      it("returns nil and an invalid_argument error: " .. describe_case(case), function()
        local seq = sb:last_seq()
        local page, err = client:list_runs(case[1], case[2])
        assert.is_nil(page)
        assert.same(invalid(case[3]), fields(err))
        assert.equal("workflows: invalid argument: " .. case[3], tostring(err))
        assert.same({}, sb:log(seq))
      end)
    end

    it("never changes the caller's option table", function()
      local given = { status = "failure", limit = 5 }
      local page = assert(client:list_runs("wf_demo", given))
      assert.equal(5, #page.items)
      assert.same({ status = "failure", limit = 5 }, given)
    end)

    it("returns the invalid_argument error when called with a dot", function()
      local page, err = client.list_runs("wf_demo")
      assert.is_nil(page)
      assert.same(invalid("client:list_runs: self is not a workflows client (call it as "
        .. "client:list_runs(...))"), fields(err))
    end)
  end)

  for _, method in ipairs { "runs", "pages" } do
    describe(method .. "()", function()
      local cases = {}
      for _, case in ipairs(SHARED_CASES) do cases[#cases + 1] = case end
      for _, case in ipairs(WALK_ONLY_CASES) do cases[#cases + 1] = case end
      for _, case in ipairs(cases) do
        it("raises the invalid_argument error: " .. describe_case(case), function()
          local seq = sb:last_seq()
          local ok, err = pcall(client[method], client, case[1], case[2])
          assert.is_false(ok)
          assert.same(invalid(case[3]), fields(err))
          assert.equal("workflows: invalid argument: " .. case[3], tostring(err))
          assert.same({}, sb:log(seq))
        end)
      end

      it("raises the invalid_argument error when called with a dot", function()
        local ok, err = pcall(function() local iterator = client[method]("wf_demo"); return iterator end)
        assert.is_false(ok)
        assert.same(invalid(("client:%s: self is not a workflows client (call it as "
          .. "client:%s(...))"):format(method, method)), fields(err))
      end)
    end)
  end

  describe("a client without a token", function()
    local anonymous

    lazy_setup(function()
      anonymous = sb:new_client { token = "" }
    end)

    local missing = "no API token: pass the token option to workflows.new or set "
      .. "WORKFLOWS_API_TOKEN"

    it("is made without complaint", function()
      assert.equal("workflows.client(" .. sb.url .. ")", tostring(anonymous))
    end)

    it("returns an invalid_argument error from list_runs before any request", function()
      local seq = sb:last_seq()
      local page, err = anonymous:list_runs("wf_demo")
      assert.is_nil(page)
      assert.same(invalid(missing), fields(err))
      assert.same({}, sb:log(seq))
    end)

    it("raises the invalid_argument error from runs and pages before any request", function()
      local seq = sb:last_seq()
      for _, method in ipairs { "runs", "pages" } do
        local ok, err = pcall(anonymous[method], anonymous, "wf_demo")
        assert.is_false(ok)
        assert.same(invalid(missing), fields(err))
      end
      assert.same({}, sb:log(seq))
    end)

    it("checks the arguments first", function()
      local _, err = anonymous:list_runs("")
      assert.equal('workflow id must be a non-empty string (got "")', err.message)
    end)
  end)
end)
