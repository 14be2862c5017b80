-- A base URL whose host name does not resolve (a typo, or no base URL at all, so
-- the built-in default): one attempt, at once, and a message that names the host
-- and, for the default, why the client talked to it. In a blocking call and in a
-- task on standalone luv; spec/99-openresty-example_spec.lua covers nginx.
local cjson = require "cjson"
local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"
local loop = require "spec.support.luv_loop"

local fields = fixtures.fields
local uv = loop.uv

local TYPO = "http://wf-nowhere.invalid"   -- RFC 6761: never resolves
local DEFAULT_HOST = "api.example.com"
local DEFAULT_MESSAGE = "Could not resolve host: api.example.com (the built-in default base URL, "
  .. "used because no base_url was given and WORKFLOWS_BASE_URL is not set)"

local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

-- The built-in default is a placeholder; where it does resolve, its failure is
-- another one and these tests have nothing to say.
local default_resolves = succeeded("getent hosts " .. DEFAULT_HOST .. " >/dev/null 2>&1")
local describe_default = default_resolves and pending or describe

-- Lists wf_demo in a child interpreter with no WORKFLOWS_BASE_URL (`options` is Lua
-- source for workflows.new's table, `in_task` runs the call in a luv task) and
-- returns the error's fields, its line and the seconds the call took.
local function child_failure(options, in_task)
  local out, stderr, status = cli.run_lua([[
    local cjson = require "cjson"
    local workflows = require "workflows"
    local core = require "workflows.core"
    local options = ]] .. options .. [[
    local started = core.now()
    local function report(page, err)
      io.write(cjson.encode { page = page ~= nil, kind = err and err.kind,
        message = err and err.message, status = err and err.status,
        attempts = err and err.attempts, line = tostring(err),
        seconds = core.now() - started })
    end
    if ]] .. tostring(in_task) .. [[ then
      local uv = require "luv"
      options.loop = uv
      local client = workflows.new(options)
      client:list_runs("wf_demo", nil, function(page, err) report(page, err) client:close() end)
      uv.run()
    else
      report(workflows.new(options):list_runs("wf_demo"))
    end
  ]], "env -u WORKFLOWS_BASE_URL WORKFLOWS_API_TOKEN=t")
  assert.equal(0, status, stderr)
  return cjson.decode(out)
end

describe("a base URL whose host does not resolve", function()
  describe("in a blocking call", function()
    it("fails after one attempt, naming the host", function()
      local client = workflows.new { base_url = TYPO, token = "t", max_retries = 2 }
      local page, err = client:list_runs("wf_demo")
      client:close()
      assert.is_nil(page)
      assert.same({ kind = "network", message = "Could not resolve host: wf-nowhere.invalid",
        attempts = 1 }, fields(err))
    end)

    it("raises the same error from a walk", function()
      local client = workflows.new { base_url = TYPO, token = "t", max_retries = 2 }
      local ok, err = pcall(function() for _ in client:runs("wf_demo") do end end)
      client:close()
      assert.is_false(ok)
      assert.same({ kind = "network", message = "Could not resolve host: wf-nowhere.invalid",
        attempts = 1 }, fields(err))
    end)
  end)

  local describe_luv = uv and describe or pending
  describe_luv("in a task on standalone luv", function()
    lazy_teardown(function() loop.close_all() end)

    it("fails after one attempt, naming the host", function()
      local client = workflows.new { base_url = TYPO, token = "t", max_retries = 2, loop = uv }
      local got
      client:list_runs("wf_demo", nil, function(page, err) got = { page = page, err = err } end)
      loop.run_until(function() return got ~= nil end, 10)
      client:close()
      loop.drain()
      assert.is_nil(got.page)
      assert.same({ kind = "network", message = "Could not resolve host: wf-nowhere.invalid",
        attempts = 1 }, fields(got.err))
    end)
  end)

  describe_default("when it is the built-in default", function()
    it("says that no base URL was given, after one attempt", function()
      local failure = child_failure("{ max_retries = 2 }", false)
      assert.same({ page = false, kind = "network", message = DEFAULT_MESSAGE, attempts = 1,
        line = "workflows: network: " .. DEFAULT_MESSAGE }, { page = failure.page,
        kind = failure.kind, message = failure.message, attempts = failure.attempts,
        line = failure.line })
      assert.is_nil(failure.status)
      assert.is_true(failure.seconds < 2, failure.seconds .. " s")
    end)

    local it_luv = uv and it or pending
    it_luv("says the same in a task on luv", function()
      local failure = child_failure("{ max_retries = 2 }", true)
      assert.same({ kind = "network", message = DEFAULT_MESSAGE, attempts = 1 },
        { kind = failure.kind, message = failure.message, attempts = failure.attempts })
    end)

    it("says nothing of the kind when that URL was given", function()
      local failure = child_failure('{ base_url = "https://api.example.com" }', false)
      assert.same({ kind = "network", message = "Could not resolve host: api.example.com",
        attempts = 1 }, { kind = failure.kind, message = failure.message,
        attempts = failure.attempts })
    end)
  end)
end)
