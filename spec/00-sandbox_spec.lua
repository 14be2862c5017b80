-- The spec helper that runs the sandbox server; every later spec relies on it.

local sandbox = require "spec.support.sandbox"

local function process_exists(pid)
  local status = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return status == true or status == 0
end

-- One GET through Python's urllib, so this spec needs nothing but the server's own
-- interpreter; returns the HTTP status as a number.
local FETCH = [[
import ssl, sys, urllib.error, urllib.request
url, token, cafile = sys.argv[1], sys.argv[2], sys.argv[3] or None
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
context = ssl.create_default_context(cafile=cafile) if cafile else None
try:
    print(urllib.request.urlopen(request, context=context, timeout=10).status)
except urllib.error.HTTPError as error:
    print(error.code)
]]

local function fetch_status(sb, path, token)
  local function quote(text)
    return "'" .. text:gsub("'", "'\\''") .. "'"
  end
  local command = table.concat({
    "python3 -c", quote(FETCH), quote(sb.url .. path), quote(token or sb.token),
    quote(sb.cert or ""),
  }, " ")
  local pipe = assert(io.popen(command))
  local output = pipe:read("*a")
  pipe:close()
  return tonumber(output)
end

describe("spec.support.sandbox", function()
  describe("start()", function()
    it("serves plain HTTP on a free 127.0.0.1 port with the default token", function()
      local sb = sandbox.start()
      finally(function() sb:stop() end)
      assert.matches("^http://127%.0%.0%.1:%d+$", sb.url)
      assert.are.equal("number", type(sb.pid))
      assert.is_true(process_exists(sb.pid))
      assert.are.equal("sandbox-token", sb.token)
      assert.is_nil(sb.cert)
      assert.are.equal(200, fetch_status(sb, "/v1/workflows/wf_empty/runs"))
    end)

    it("passes the token option to the server", function()
      local sb = sandbox.start { token = "s3cret" }
      finally(function() sb:stop() end)
      assert.are.equal("s3cret", sb.token)
      assert.are.equal(200, fetch_status(sb, "/v1/workflows/wf_empty/runs"))
      assert.are.equal(401, fetch_status(sb, "/v1/workflows/wf_empty/runs", "sandbox-token"))
    end)

    it("serves HTTPS and names a certificate that verifies it with tls = true", function()
      local sb = sandbox.start { tls = true }
      finally(function() sb:stop() end)
      assert.matches("^https://127%.0%.0%.1:%d+$", sb.url)
      assert.matches("%.pem$", sb.cert)
      assert.are.equal(200, fetch_status(sb, "/v1/workflows/wf_empty/runs"))
    end)

    it("raises on an unknown option", function()
      local ok, err = pcall(sandbox.start, { port = 8080 })
      assert.is_false(ok)
      assert.are.equal("sandbox.start: unknown option 'port'", err)
    end)
  end)

  describe("log()", function()
    local sb

    lazy_setup(function()
      sb = sandbox.start()
    end)

    lazy_teardown(function()
      sb:stop()
    end)

    it("is empty before any request, and last_seq() is 0", function()
      assert.are.same({}, sb:log())
      assert.are.equal(0, sb:last_seq())
    end)

    it("decodes each request with JSON null as nil, and since_seq skips older ones", function()
      assert.are.equal(200, fetch_status(sb, "/v1/workflows/wf_demo/runs?limit=2"))
      assert.are.equal(404, fetch_status(sb, "/v1/workflows/wf%2Fnope/runs"))
      local entries = sb:log()
      assert.are.equal(2, #entries)
      local first, second = entries[1], entries[2]
      assert.are.equal(1, first.seq)
      assert.are.equal("GET", first.method)
      assert.are.equal("wf_demo", first.workflow_id)
      assert.are.same({ limit = "2" }, first.query)
      assert.are.equal("Bearer ***", first.headers.Authorization)
      assert.are.equal("valid", first.auth)
      assert.are.equal(200, first.status)
      assert.is_nil(first.fault)
      assert.are.equal(first.connection + 1, second.connection)
      assert.are.equal("wf/nope", second.workflow_id)
      assert.are.equal(404, second.status)
      assert.are.equal(2, sb:last_seq())
      assert.are.same({ second }, sb:log(1))
      assert.are.same({}, sb:log(2))
    end)
  end)

  describe("history", function()
    local sb

    lazy_setup(function()
      sb = sandbox.start()
    end)

    lazy_teardown(function()
      sb:stop()
    end)

    local function runs_path(workflow_id, query)
      local encoded = workflow_id:gsub("[^%w%-%._~]", function(c)
        return string.format("%%%02X", c:byte())
      end)
      return "/v1/workflows/" .. encoded .. "/runs?" .. query
    end

    local function as_set(ids)
      local set = {}
      for _, id in ipairs(ids) do
        set[id] = true
      end
      return set
    end

    it("reads versions and who was in a filtered listing over a window", function()
      local id = "wf_demo;churn=2;live=1;n=history-spec"
      assert.are.equal(0, sb:version(id))
      local before, version = sb:present(id, "success")
      assert.are.equal(0, version)
      assert.is_true(#before > 100)
      for _, offset in ipairs({ 0, 100, 200 }) do
        local query = "status=success&limit=100&offset=" .. offset
        assert.are.equal(200, fetch_status(sb, runs_path(id, query)))
      end
      assert.are.equal(9, sb:version(id))
      local throughout, after = sb:present_throughout(id, "success", 0)
      local any = sb:present_any(id, "success", 0)
      assert.are.equal(9, after)
      assert.is_true(#throughout < #any)
      local any_set, before_set = as_set(any), as_set(before)
      for _, run_id in ipairs(throughout) do
        assert.is_true(before_set[run_id] and any_set[run_id])
      end
      for _, run_id in ipairs(before) do
        assert.is_true(any_set[run_id])
      end
      local window = sb:history(id, "success", 0)
      assert.are.same({ "success", 0, 9 }, { window.status, window.since, window.version })
      assert.are.same(throughout, window.throughout)
      -- Unfiltered, nobody leaves: the three arrivals join.
      local all = sb:present_any(id, nil, 0)
      assert.are.equal(253, #all)
      assert.are.equal(250, #sb:present_throughout(id, nil, 0))
    end)

    it("raises with the server's message", function()
      local ok, err = pcall(sb.version, sb, "wf_nope")
      assert.is_false(ok)
      assert.matches("sandbox history: workflow not found", err)
      ok, err = pcall(sb.present_any, sb, "wf_demo", "success", 5)
      assert.is_false(ok)
      assert.matches("expected at most the current version 0", err)
    end)
  end)

  describe("stop()", function()
    it("ends the server process and can be called again", function()
      local sb = sandbox.start()
      local pid = sb.pid
      sb:stop()
      assert.is_false(process_exists(pid))
      sb:stop()
      assert.is_false(process_exists(pid))
    end)
  end)
end)
