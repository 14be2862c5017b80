-- examples/openresty as its nginx.conf says to run it (in a copy of the checkout's
-- layout, on a free port), against the sandbox: what a caller's mistake, the API's
-- and the network's failures and a missing base URL are answered with.
local cjson = require "cjson"
local nginx = require "spec.support.nginx"
local sandbox = require "spec.support.sandbox"
local cli = require "spec.support.cli"
local fixtures = require "spec.support.fixtures"

local available, why = nginx.available()
if not available then
  describe("examples/openresty", function()
    pending("skipped: " .. why)
  end)
  return
end

local shell_quote = cli.shell_quote
local id_of = fixtures.demo_id_maker("openresty-example")

local function succeeded(command)
  local status = os.execute(command)
  return status == true or status == 0
end

local function escaped(text)
  return (text:gsub("[^%w_.-]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- A directory laid out like the checkout, with the example's nginx.conf as it is
-- but for its port: `nginx -p <dir>/examples/openresty -c nginx.conf`.
local function start_example(environment, unset)
  local root = nginx.root()
  local top = os.tmpname()
  assert(succeeded("rm -f " .. shell_quote(top) .. " && mkdir -p " .. shell_quote(top
    .. "/examples/openresty/logs") .. " && ln -s " .. shell_quote(root .. "/lua") .. " "
    .. shell_quote(top .. "/lua") .. " && ln -s " .. shell_quote(root .. "/build") .. " "
    .. shell_quote(top .. "/build") .. " && ln -s " .. shell_quote(root
    .. "/examples/openresty/failures.lua") .. " " .. shell_quote(top .. "/examples/openresty/")
    .. " && ln -s " .. shell_quote(root .. "/examples/openresty/metrics.lua") .. " "
    .. shell_quote(top .. "/examples/openresty/")))
  local example = assert(cli.read_file(root .. "/examples/openresty/nginx.conf"))
  local server = nginx.start {
    prefix = top .. "/examples/openresty",
    conf = function(port)
      local conf, changed = example:gsub("listen 127%.0%.0%.1:8081;", "listen 127.0.0.1:" .. port .. ";")
      assert(changed == 1, "nginx.conf no longer listens on 127.0.0.1:8081")
      return conf
    end,
    ready = "/ping",
    setenv = environment,
    unset = unset,
  }
  return server, top
end

describe("examples/openresty", function()
  local sb, server, top, bare, bare_top

  lazy_setup(function()
    sb = sandbox.start {}
    server, top = start_example({ WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = sb.token })
    bare, bare_top = start_example({ WORKFLOWS_API_TOKEN = sb.token }, { "WORKFLOWS_BASE_URL" })
  end)

  lazy_teardown(function()
    if server then server:stop() end
    if bare then bare:stop() end
    if sb then sb:stop() end
    for _, dir in ipairs { top, bare_top } do
      if dir then os.execute("rm -rf " .. shell_quote(dir)) end
    end
  end)

  local function get(path, with)
    local status, body, content_type = (with or server):get(path)
    return status, content_type, cjson.decode((body or ""):match("^[^\n]*") or "null")
  end

  it("streams a workflow's failed runs as NDJSON", function()
    local status, body, content_type = server:get("/failures?wf=wf_demo&limit=7")
    assert.same({ 200, "application/x-ndjson" }, { status, content_type })
    local lines = 0
    for line in body:gmatch("[^\n]+") do
      assert.equal("failure", cjson.decode(line).status)
      lines = lines + 1
    end
    assert.equal(40, lines)
  end)

  describe("answers a caller's mistake with 400 and the library's message, as JSON", function()
    local cases = {
      { "?wf=wf_demo&limit=0", 'option "limit" must be an integer in 1..100 (got 0)' },
      { "?wf=wf_demo&limit=abc", 'option "limit" must be an integer in 1..100 (got "abc")' },
      { "?wf=wf_demo&limit=101", 'option "limit" must be an integer in 1..100 (got 101)' },
      { "?wf=wf_demo&limit=", 'option "limit" must be an integer in 1..100 (got "")' },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local status, content_type, failure = get("/failures" .. case[1])
        assert.same({ 400, "application/json" }, { status, content_type })
        assert.same({ kind = "invalid_argument",
          error = "workflows: invalid argument: " .. case[2] }, failure)
      end)
    end

    it("no ?wf=", function()
      local status, content_type, failure = get("/failures?limit=5")
      assert.same({ 400, "application/json" }, { status, content_type })
      assert.same({ kind = "invalid_argument", error = "missing ?wf=WORKFLOW_ID" }, failure)
    end)
  end)

  describe("answers a failure before the first run", function()
    it("an unknown workflow: 404, with the API's status", function()
      local status, content_type, failure = get("/failures?wf=wf_nope")
      assert.same({ 404, "application/json", "http", 404 },
        { status, content_type, failure.kind, failure.status })
      assert.matches("^workflows: HTTP 404 Not Found: workflow not found", failure.error)
    end)

    it("a connection reset after the API's 200 status line: 502, with no status", function()
      local status, content_type, failure = get("/failures?wf=" .. escaped(id_of("fault=reset")))
      assert.same({ 502, "application/json", "network" }, { status, content_type, failure.kind })
      assert.is_nil(failure.status)
      assert.matches("^workflows: network: Recv failure: Connection reset by peer", failure.error)
    end)

    it("an API that keeps failing: 502, with the API's status", function()
      local status, _, failure = get("/failures?wf=" .. escaped(id_of("status=503")))
      assert.same({ 502, "http", 503 }, { status, failure.kind, failure.status })
    end)

    it("no base URL: 502 at once, saying it was not given", function()
      local started = os.time()
      local status, content_type, failure = get("/failures?wf=wf_demo", bare)
      assert.same({ 502, "application/json" }, { status, content_type })
      assert.same({ kind = "network", error = "workflows: network: Could not resolve host: "
        .. "api.example.com (the built-in default base URL, used because no base_url was given "
        .. "and WORKFLOWS_BASE_URL is not set)" }, failure)
      assert.is_true(os.time() - started <= 1)
    end)
  end)

  describe("GET /metrics", function()
    -- `name{labels} value` lines by their name and labels
    local function samples(text)
      local found = {}
      for line in text:gmatch("[^\n]+") do
        if not line:find("^#") then
          local series, value = line:match("^(%S+) (%S+)$")
          assert(series, "not a sample line: " .. line)
          found[series] = tonumber(value)
        end
      end
      return found
    end

    it("counts requests by status and kind, retries and latency, in Prometheus' text format", function()
      local before_status, before = server:get("/metrics")
      assert.equal(200, before_status)
      local earlier = samples(before)
      assert.equal(200, (server:get("/failures?wf=wf_demo&limit=7")))
      assert.equal(404, (get("/failures?wf=wf_nope")))
      server:get("/failures?wf=" .. escaped(id_of("status=503;times=1")) .. "&limit=5")
      local status, text, content_type = server:get("/metrics")
      assert.same({ 200, "text/plain; version=0.0.4" }, { status, content_type })
      assert.matches("# TYPE workflows_requests_total counter\n", text, 1, true)
      assert.matches("# TYPE workflows_request_duration_seconds histogram\n", text, 1, true)
      local now = samples(text)
      local function grew(series) return (now[series] or 0) - (earlier[series] or 0) end
      assert.is_true(grew('workflows_requests_total{status="200",kind="ok"}') >= 2)
      assert.equal(1, grew('workflows_requests_total{status="404",kind="http"}'))
      -- each page's first attempt answers 503, and is retried unless the retry budget
      -- (which earlier tests' storms spent) refuses it
      local failed = grew('workflows_requests_total{status="503",kind="http"}')
      assert.is_true(failed >= 1)
      assert.equal(failed, grew('workflows_retries_total{why="503"}')
        + grew("workflows_retry_budget_refusals_total"))
      local count = now.workflows_request_duration_seconds_count
      assert.equal(count, now['workflows_request_duration_seconds_bucket{le="+Inf"}'])
      local previous = 0
      for _, bound in ipairs { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
          "2.5", "5", "10" } do
        local bucket = now['workflows_request_duration_seconds_bucket{le="' .. bound .. '"}']
        assert.is_true(bucket >= previous and bucket <= count, bound)
        previous = bucket
      end
      assert.is_true(now.workflows_request_duration_seconds_sum > 0)
      assert.is_nil(text:find(sb.token, 1, true))
    end)
  end)
end)
