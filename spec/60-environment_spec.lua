local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"

-- Runs `body` (Lua source) in a fresh interpreter with `env` (name -> value, or
-- false to unset) and returns its stdout, its stderr and whether it succeeded.
local function run_child(env, body)
  local unset, set = {}, {}
  for _, name in ipairs { "WORKFLOWS_API_TOKEN", "WORKFLOWS_BASE_URL", "WORKFLOWS_DEBUG" } do
    local value = env[name]
    if value then
      set[#set + 1] = name .. "=" .. cli.shell_quote(value)
    else
      unset[#unset + 1] = "-u " .. name
    end
  end
  local out, err, status = cli.run_lua(body, table.concat({ "env", table.concat(unset, " "),
    table.concat(set, " ") }, " "))
  return out, err, status == 0
end

describe("environment", function()
  local sb = fixtures.sandbox()
  local unique = fixtures.demo_id_maker("env")

  describe("WORKFLOWS_API_TOKEN", function()
    it("is the token when the option is not given", function()
      local seq = sb:last_seq()
      local out, err, ok = run_child({ WORKFLOWS_API_TOKEN = sb.token }, ([[
        local client = require("workflows").new { base_url = %q }
        local page, failure = client:list_runs("wf_demo", { limit = 2 })
        print(page and #page.items, failure)
      ]]):format(sb.url))
      assert.is_true(ok, err)
      assert.equal("2\tnil\n", out)
      assert.equal("valid", sb:log(seq)[1].auth)
    end)

    it("gives way to the token option", function()
      local out, err, ok = run_child({ WORKFLOWS_API_TOKEN = "not-the-token" }, ([[
        local client = require("workflows").new { base_url = %q, token = %q }
        local page = assert(client:list_runs("wf_demo", { limit = 1 }))
        print(#page.items)
      ]]):format(sb.url, sb.token))
      assert.is_true(ok, err)
      assert.equal("1\n", out)
    end)

    it("missing, makes the first request an invalid_argument error", function()
      local out, err, ok = run_child({}, ([[
        local client = require("workflows").new { base_url = %q }
        local page, failure = client:list_runs("wf_demo")
        print(page, failure.kind, failure.attempts, tostring(failure))
      ]]):format(sb.url))
      assert.is_true(ok, err)
      assert.equal("nil\tinvalid_argument\t0\tworkflows: invalid argument: no API token: pass "
        .. "the token option to workflows.new or set WORKFLOWS_API_TOKEN\n", out)
    end)
  end)

  describe("WORKFLOWS_BASE_URL", function()
    it("is the base URL when the option is not given, without its trailing slash", function()
      local out, err, ok = run_child({ WORKFLOWS_API_TOKEN = sb.token,
        WORKFLOWS_BASE_URL = sb.url .. "/" }, [[
        local client = require("workflows").new()
        local page = assert(client:list_runs("wf_demo", { limit = 3 }))
        print(tostring(client), #page.items)
      ]])
      assert.is_true(ok, err)
      assert.equal("workflows.client(" .. sb.url .. ")\t3\n", out)
    end)

    it("unset, leaves https://api.example.com", function()
      local out, err, ok = run_child({}, [[
        print(tostring(require("workflows").new()))
      ]])
      assert.is_true(ok, err)
      assert.equal("workflows.client(https://api.example.com)\n", out)
    end)

    it("gives way to the base_url option", function()
      local out, err, ok = run_child({ WORKFLOWS_BASE_URL = "http://elsewhere.test" }, [[
        print(tostring(require("workflows").new { base_url = "http://here.test" }))
      ]])
      assert.is_true(ok, err)
      assert.equal("workflows.client(http://here.test)\n", out)
    end)

    it("must be an http(s) URL: workflows.new raises", function()
      local out, err, ok = run_child({ WORKFLOWS_BASE_URL = "api.example.com" }, [[
        local ok, err = pcall(require("workflows").new)
        print(ok, err.kind, err.message)
      ]])
      assert.is_true(ok, err)
      assert.truthy(out:find('false\tinvalid_argument\tenvironment variable WORKFLOWS_BASE_URL must be '
        .. 'an http:// or https:// URL without query or fragment (got "api.example.com")', 1,
        true), out)
    end)
  end)

  describe("WORKFLOWS_DEBUG=1", function()
    it("logs one line per attempt to stderr, never the token", function()
      local id = unique("status=503;times=1")
      local seq = sb:last_seq()
      local out, err, ok = run_child({ WORKFLOWS_DEBUG = "1", WORKFLOWS_API_TOKEN = sb.token }, ([[
        local client = require("workflows").new { base_url = %q, max_retries = 1 }
        local page = assert(client:list_runs(%q, { limit = 4 }))
        print(#page.items)
      ]]):format(sb.url, id))
      assert.is_true(ok, err)
      assert.equal("4\n", out)
      local entries = sb:log(seq)
      assert.equal(2, #entries)
      local url = sb.url .. entries[1].raw_path
      local lines = {}
      for line in err:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equal(2, #lines)
      local pattern = "^workflows: GET (%S+) %-> (%S+) (%d+)ms attempt (%d) request (%S+)$"
      local first = { lines[1]:match(pattern) }
      local second = { lines[2]:match(pattern) }
      assert.same({ url, "503", "1", entries[1].request_id },
        { first[1], first[2], first[4], first[5] })
      assert.same({ url, "200", "2", entries[2].request_id },
        { second[1], second[2], second[4], second[5] })
      assert.is_nil(err:find(sb.token, 1, true))
    end)

    it("names the kind of a failure that has no status", function()
      local out, err, ok = run_child({ WORKFLOWS_DEBUG = "1", WORKFLOWS_API_TOKEN = sb.token }, ([[
        local client = require("workflows").new { base_url = %q, max_retries = 0, timeout = 0.2 }
        local _, failure = client:list_runs(%q)
        print(failure.kind)
      ]]):format(sb.url, unique("fault=silent")))
      assert.is_true(ok, err)
      assert.equal("timeout\n", out)
      assert.truthy(err:match("^workflows: GET http://%S+ %-> timeout %d+ms attempt 1\n$"), err)
    end)

    it("is off unless set: nothing on stderr", function()
      local out, err, ok = run_child({ WORKFLOWS_API_TOKEN = sb.token }, ([[
        local client = require("workflows").new { base_url = %q }
        print(#assert(client:list_runs("wf_demo", { limit = 1 })).items)
      ]]):format(sb.url))
      assert.is_true(ok, err)
      assert.equal("1\n", out)
      assert.equal("", err)
    end)
  end)

  describe("this process", function()
    it("can make clients whatever its environment says", function()
      assert.truthy(tostring(workflows.new { base_url = sb.url }):find(sb.url, 1, true))
    end)
  end)
end)
