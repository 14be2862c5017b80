local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"

local fields = fixtures.fields
local requests_for = fixtures.requests_for

describe("list_runs() failures", function()
  local sb = fixtures.sandbox { client = { timeout = 1, max_retries = 1 } }
  local client
  local unique = fixtures.demo_id_maker("failures")

  -- Calls list_runs and returns the error with the log entries the call made.
  local function failing(id, options, with)
    local seq = sb:last_seq()
    local page, err = (with or client):list_runs(id, options)
    assert.is_nil(page)
    assert.is_table(err)
    return err, requests_for(sb, id, seq)
  end

  lazy_setup(function()
    client = sb:new_client()
  end)

  describe("an HTTP error", function()
    it("401 with a wrong token is never retried", function()
      local intruder = sb:new_client { token = "wrong-token", max_retries = 2 }
      local err, entries = failing("wf_demo", nil, intruder)
      assert.equal(1, #entries)
      assert.equal("invalid", entries[1].auth)
      assert.same({ kind = "http", status = 401, code = 401, message = "invalid bearer token",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
      assert.equal("workflows: HTTP 401 Unauthorized: invalid bearer token (request "
        .. entries[1].request_id .. ")", tostring(err))
      assert.is_nil(tostring(err):find("wrong-token", 1, true))
    end)

    it("404 for an unknown workflow is never retried", function()
      local err, entries = failing("wf_nowhere")
      assert.equal(1, #entries)
      assert.same({ kind = "http", status = 404, code = 404, message = "workflow not found",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
      assert.equal("workflows: HTTP 404 Not Found: workflow not found (request "
        .. entries[1].request_id .. ")", tostring(err))
    end)

    it("400 is never retried", function()
      local err, entries = failing(unique("status=400"))
      assert.equal(1, #entries)
      assert.same({ kind = "http", status = 400, code = 400, message = "bad request",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
    end)

    it("503 is retried up to max_retries and then returned", function()
      local err, entries = failing(unique("status=503"))
      assert.equal(2, #entries)
      assert.same({ kind = "http", status = 503, code = 503, message = "service unavailable",
        requestId = entries[2].request_id, attempts = 2 }, fields(err))
      assert.equal("workflows: HTTP 503 Service Unavailable: service unavailable (request "
        .. entries[2].request_id .. "; 2 attempts)", tostring(err))
    end)

    it("502 with an HTML page takes the request id from X-Request-Id", function()
      local err, entries = failing(unique("fault=html"))
      assert.equal(2, #entries)
      assert.same({ kind = "http", status = 502, requestId = entries[2].request_id,
        attempts = 2 }, fields(err))
      assert.equal("workflows: HTTP 502 Bad Gateway (request " .. entries[2].request_id
        .. "; 2 attempts)", tostring(err))
    end)

    it("a redirect is not followed: the token never travels on", function()
      local err, entries = failing(unique("fault=redirect"))
      assert.equal(1, #entries)
      assert.same({ kind = "http", status = 302, code = 302, message = "found",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
    end)
  end)

  describe("a body that is not the documented JSON", function()
    it("invalid JSON is a decode error, never retried", function()
      local err, entries = failing(unique("fault=invalid_json"))
      assert.equal(1, #entries)
      assert.equal("decode", err.kind)
      assert.is_nil(err.status)  -- the status line said 200; the answer was no page
      assert.equal(1, err.attempts)
      assert.truthy(err.message:match("^invalid JSON: "), err.message)
      assert.equal(entries[1].request_id, err.requestId)
      assert.equal("workflows: decode: " .. err.message .. " (request " .. entries[1].request_id
        .. ")", tostring(err))
    end)

    it("the wrong shape is a decode error saying what was wrong and where", function()
      local err, entries = failing(unique("fault=wrong_shape"), { limit = 3 })
      assert.equal(1, #entries)
      assert.same({ kind = "decode", message =
        "data.items is an object, expected an array", requestId = entries[1].request_id,
        attempts = 1 }, fields(err))
    end)

    it("a body over max_body_bytes stops the transfer and is never retried", function()
      local small = sb:new_client { max_body_bytes = 4096,
        max_retries = 2 }
      local err, entries = failing(unique("fault=huge;huge_bytes=1048576"), nil, small)
      assert.equal(1, #entries)
      assert.same({ kind = "decode",
        message = "response body is larger than max_body_bytes (4096 bytes)",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
    end)

    it("a page under max_body_bytes is fine", function()
      local roomy = sb:new_client { max_body_bytes = 1048576 }
      local page = assert(roomy:list_runs("wf_demo", { limit = 100 }))
      assert.equal(100, #page.items)
    end)
  end)

  describe("a broken transfer", function()
    it("a body cut short is a network error, retried", function()
      local err, entries = failing(unique("fault=short"))
      assert.equal(2, #entries)
      assert.equal("network", err.kind)
      assert.is_nil(err.status)
      assert.equal(2, err.attempts)
      assert.equal("string", type(err.message))
      assert.equal(entries[2].request_id, err.requestId)
      assert.equal("workflows: network: " .. err.message .. " (request " .. entries[2].request_id
        .. "; 2 attempts)", tostring(err))
    end)

    it("a connection reset is a network error, retried, with no status", function()
      local err, entries = failing(unique("fault=reset"))
      assert.equal(2, #entries)
      assert.equal(200, entries[2].status)  -- the status line went out before the reset
      assert.equal("network", err.kind)
      assert.is_nil(err.status)
      assert.equal(2, err.attempts)
    end)

    it("a refused connection is a network error, retried", function()
      local closed = workflows.new { base_url = "http://127.0.0.1:9", token = "t",
        max_retries = 1 }
      local page, err = closed:list_runs("wf_demo")
      assert.is_nil(page)
      assert.equal("network", err.kind)
      assert.is_nil(err.status)
      assert.equal(2, err.attempts)
    end)

    it("a host name that does not resolve fails at once, naming it", function()
      local nowhere = workflows.new { base_url = "http://wf-nowhere.invalid", token = "t",
        max_retries = 2 }
      local started = os.time()
      local page, err = nowhere:list_runs("wf_demo")
      assert.is_nil(page)
      assert.same({ kind = "network", message = "Could not resolve host: wf-nowhere.invalid",
        attempts = 1 }, fields(err))
      assert.equal("workflows: network: Could not resolve host: wf-nowhere.invalid",
        tostring(err))
      assert.is_true(os.time() - started <= 2)
      nowhere:close()
    end)

    it("a server that never answers is a timeout after `timeout` seconds, retried", function()
      local impatient = sb:new_client { timeout = 0.3,
        max_retries = 1 }
      local err, entries = failing(unique("fault=silent"), nil, impatient)
      assert.equal(2, #entries)
      assert.equal("timeout", err.kind)
      assert.is_nil(err.status)
      assert.equal(2, err.attempts)
      assert.truthy(err.message:match("^request timed out"), err.message)
      assert.equal("workflows: timeout: " .. err.message .. " (2 attempts)", tostring(err))
    end)
  end)

  describe("pages that walks refuse", function()
    it("are returned as they came by list_runs: hasMore with no items", function()
      local page = assert(client:list_runs(unique("fault=empty_has_more")))
      assert.same({}, page.items)
      assert.is_true(page.hasMore)
    end)

    it("are returned as they came by list_runs: an offset that does not advance", function()
      local page = assert(client:list_runs(unique("fault=stuck_offset"), { offset = 40 }))
      assert.equal(0, page.offset)
    end)
  end)
end)

describe("list_runs() over TLS", function()
  local sb = fixtures.sandbox { tls = true }

  it("verifies the server against ca_file", function()
    local client = sb:new_client { ca_file = sb.cert }
    local page = assert(client:list_runs("wf_demo", { limit = 2 }))
    assert.equal(2, #page.items)
  end)

  it("verifies the server against a ca_path directory", function()
    local directory = os.tmpname()
    os.remove(directory)
    assert(os.execute("mkdir " .. directory .. " && cp " .. sb.cert .. " " .. directory
      .. "/sandbox.pem && openssl rehash " .. directory .. " >/dev/null 2>&1"))
    local client = sb:new_client { ca_path = directory }
    local page, err = client:list_runs("wf_demo", { limit = 3 })
    os.execute("rm -rf " .. directory)
    assert.is_nil(err)
    assert.equal(3, #page.items)
  end)

  it("never retries a certificate it cannot verify", function()
    local client = sb:new_client { max_retries = 2 }
    local seq = sb:last_seq()
    local page, err = client:list_runs("wf_demo")
    assert.is_nil(page)
    assert.equal("network", err.kind)
    assert.equal(1, err.attempts)
    assert.truthy(err.message:match("^TLS verification failed"), err.message)
    assert.same({}, sb:log(seq))
  end)
end)
