local workflows = require "workflows"
local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

local RUN_FIELDS = {
  id = "string", workflowId = "string", workflowVersion = "number", status = "string",
  startedAt = "string", finishedAt = "string", totalCu = "number", triggerSource = "string",
  triggeredBy = "string", sourceRunId = "string", isSimulation = "boolean",
  isDustTest = "boolean",
}

local function is_integer(value)
  if math.type then return math.type(value) == "integer" end
  return type(value) == "number" and value == math.floor(value)
end

local function is_float(value)
  if math.type then return math.type(value) == "float" end
  return type(value) == "number"
end

describe("list_runs()", function()
  local sb = fixtures.sandbox { client = { timeout = 2 } }
  local client
  local suffix = fixtures.suffix_maker("list")

  -- `id` under a name that no other test uses.
  local function unique(id)
    return id .. ";" .. suffix()
  end

  lazy_setup(function()
    client = sb:new_client()
  end)

  describe("on success", function()
    it("returns the page with items, hasMore, limit, offset and requestId", function()
      local seq = sb:last_seq()
      local page, err = client:list_runs("wf_demo", { limit = 50, offset = 100 })
      assert.is_nil(err)
      assert.equal(50, #page.items)
      assert.is_true(page.hasMore)
      assert.equal(50, page.limit)
      assert.equal(100, page.offset)
      assert.is_true(is_integer(page.limit) and is_integer(page.offset))
      local entries = sb:log(seq)
      assert.equal(1, #entries)
      assert.equal(entries[1].request_id, page.requestId)
    end)

    it("says hasMore = false on the last page", function()
      local page = assert(client:list_runs("wf_demo", { limit = 100, offset = 200 }))
      assert.equal(50, #page.items)
      assert.is_false(page.hasMore)
    end)

    it("returns an empty page for a workflow without runs", function()
      local page = assert(client:list_runs("wf_empty"))
      assert.same({}, page.items)
      assert.is_false(page.hasMore)
      assert.equal(20, page.limit)
      assert.equal(0, page.offset)
    end)

    it("returns runs as plain tables with the API's field names", function()
      local page = assert(client:list_runs("wf_demo", { limit = 100 }))
      for _, run in ipairs(page.items) do
        assert.is_nil(getmetatable(run))
        for key, value in pairs(run) do
          assert.equal(RUN_FIELDS[key], type(value), "field " .. key)
        end
        assert.equal("wf_demo", run.workflowId)
      end
    end)

    it("turns JSON integers into Lua integers", function()
      local page = assert(client:list_runs("wf_demo", { limit = 100 }))
      for _, run in ipairs(page.items) do
        assert.is_true(is_integer(run.workflowVersion), run.id)
      end
    end)

    it("keeps numbers with a fraction as floats", function()
      local page = assert(client:list_runs("wf_demo", { limit = 100 }))
      local fractional = 0
      for _, run in ipairs(page.items) do
        if run.totalCu ~= math.floor(run.totalCu) then
          fractional = fractional + 1
          assert.is_true(is_float(run.totalCu), run.id)
        end
      end
      assert.is_true(fractional > 0, "the sandbox serves fractional totalCu")
    end)

    it("turns JSON null into nil, never a sentinel", function()
      local page = assert(client:list_runs("wf_demo", { limit = 100 }))
      local unfinished = 0
      for _, run in ipairs(page.items) do
        if run.status == "running" or run.status == "waiting" then
          unfinished = unfinished + 1
          assert.is_nil(run.finishedAt)
        end
      end
      assert.is_true(unfinished > 0, "the sandbox serves runs without finishedAt")
    end)

    it("filters by status", function()
      local page = assert(client:list_runs("wf_demo", { status = "failure", limit = 100 }))
      assert.is_true(#page.items > 0)
      for _, run in ipairs(page.items) do assert.equal("failure", run.status) end
    end)
  end)

  describe("on the wire", function()
    local function sent(id, options)
      local seq = sb:last_seq()
      assert(client:list_runs(id, options))
      local entries = sb:log(seq)
      assert.equal(1, #entries)
      return entries[1]
    end

    it("sends only the query options given, in the order limit, offset, status", function()
      assert.equal("/v1/workflows/wf_demo/runs", sent("wf_demo").raw_path)
      assert.equal("/v1/workflows/wf_demo/runs?offset=7", sent("wf_demo", { offset = 7 }).raw_path)
      assert.equal("/v1/workflows/wf_demo/runs?limit=5&offset=10&status=success",
        sent("wf_demo", { status = "success", offset = 10, limit = 5 }).raw_path)
      assert.equal("/v1/workflows/wf_demo/runs?status=waiting",
        sent("wf_demo", { status = "waiting" }).raw_path)
    end)

    it("writes integral floats as integers", function()
      assert.equal("/v1/workflows/wf_demo/runs?limit=5&offset=10",
        sent("wf_demo", { limit = 5.0, offset = 10.0 }).raw_path)
    end)

    it("percent-encodes the id as one path segment", function()
      local seq = sb:last_seq()
      local page, err = client:list_runs("a/b c")
      assert.is_nil(page)
      assert.equal(404, err.status)
      local entry = sb:log(seq)[1]
      assert.equal("/v1/workflows/a%2Fb%20c/runs", entry.raw_path)
      assert.equal("a/b c", entry.workflow_id)
      assert.equal(core.escape_segment("a/b c"), "a%2Fb%20c")
    end)

    it("carries the bearer token, Accept, Accept-Encoding and the User-Agent", function()
      local entry = sent("wf_demo", { limit = 1 })
      assert.equal("valid", entry.auth)
      assert.equal("Bearer ***", entry.headers.Authorization)
      assert.equal("application/json", entry.headers.Accept)
      assert.truthy(entry.headers["Accept-Encoding"]:find("gzip", 1, true))
      assert.equal("lua-workflows/" .. workflows.VERSION .. " libcurl/" .. core.curl_version,
        entry.headers["User-Agent"])
    end)

    it("sends the user_agent option instead when given", function()
      local own = sb:new_client { user_agent = "probe/2.0" }
      local seq = sb:last_seq()
      assert(own:list_runs("wf_demo", { limit = 1 }))
      assert.equal("probe/2.0", sb:log(seq)[1].headers["User-Agent"])
    end)

    it("reuses one connection across calls of one client", function()
      local seq = sb:last_seq()
      for offset = 0, 4 do assert(client:list_runs("wf_demo", { limit = 1, offset = offset })) end
      local entries = sb:log(seq)
      assert.equal(5, #entries)
      for _, entry in ipairs(entries) do assert.equal(entries[1].connection, entry.connection) end
    end)

    it("keeps a path prefix of base_url", function()
      local prefixed = sb:new_client { base_url = sb.url .. "/api/" }
      local seq = sb:last_seq()
      local _, err = prefixed:list_runs("wf_demo")
      assert.equal("http", err.kind)
      assert.equal("/api/v1/workflows/wf_demo/runs", sb:log(seq)[1].raw_path)
    end)

    it("answers an unknown workflow with a 404 error of the contract's shape", function()
      local seq = sb:last_seq()
      local id = unique("wf_missing")
      local page, err = client:list_runs(id)
      assert.is_nil(page)
      local entry = sb:log(seq)[1]
      assert.same({ kind = "http", status = 404, code = 404, message = "workflow not found",
        requestId = entry.request_id, attempts = 1 }, setmetatable(err, nil))
    end)
  end)
end)
