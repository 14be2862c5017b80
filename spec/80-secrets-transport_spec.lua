-- The token travels only in the Authorization header; TLS is verified; redirects
-- are not followed; bodies past max_body_bytes are refused.
local core = require "workflows.core"
local cjson = require "cjson"
local fixtures = require "spec.support.fixtures"

local format = string.format

local TOKEN = "tok-S3CR3T-7f2a91c4"

local function contains(text, part)
  return text ~= nil and tostring(text):find(part, 1, true) ~= nil
end

-- Every string an error carries, and the line it prints as.
local function error_texts(err)
  local texts = { tostring(err) }
  for key, value in pairs(err) do texts[#texts + 1] = tostring(key) .. "=" .. tostring(value) end
  return table.concat(texts, "\n")
end

-- The interpreter running this suite, to start a child process of the same Lua.
local function interpreter()
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local function read_all(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

describe("secrets", function()
  local sb = fixtures.sandbox { token = TOKEN, client = { max_retries = 1, timeout = 5 } }

  it("travel only in the Authorization header", function()
    local seq = sb:last_seq()
    local page = assert(sb:new_client():list_runs("wf_demo", { limit = 2 }))
    assert.equal(2, #page.items)
    local entries = sb:log(seq)
    assert.equal(1, #entries)
    assert.equal("valid", entries[1].auth)
    assert.equal("Bearer ***", entries[1].headers.Authorization)
    -- The sandbox masks the token wherever it appears: "***" anywhere else is a leak.
    for name, value in pairs(entries[1].headers) do
      if name ~= "Authorization" then assert.is_false(contains(value, "***"), name) end
    end
    assert.is_false(contains(entries[1].raw_path, "***"))
  end)

  it("are in no error, whatever the failure", function()
    local errors = {}
    local function collect(c, id, opts)
      local _, err = c:list_runs(id, opts)
      assert.is_not_nil(err, id)
      errors[#errors + 1] = err
    end
    collect(sb:new_client(), "wf_nope")
    collect(sb:new_client(), "wf_demo;status=503;n=secret1")
    collect(sb:new_client(), "wf_demo;fault=invalid_json")
    collect(sb:new_client(), "wf_demo;fault=wrong_shape")
    collect(sb:new_client(), "wf_demo;fault=html;n=secret2")
    collect(sb:new_client(), "wf_demo;fault=reset;n=secret3")
    collect(sb:new_client { timeout = 0.3, max_retries = 0 }, "wf_demo;fault=silent")
    collect(sb:new_client { max_body_bytes = 1024 }, "wf_demo", { limit = 50 })
    collect(sb:new_client { base_url = "http://127.0.0.1:9" }, "wf_demo")
    collect(sb:new_client { base_url = sb.url:gsub("^http:", "https:") }, "wf_demo")
    collect(sb:new_client(), "")
    local ok, raised = pcall(function()
      for _ in sb:new_client():runs("wf_demo;status=500;n=secret4") do end
    end)
    assert.is_false(ok)
    errors[#errors + 1] = raised
    for _, err in ipairs(errors) do
      assert.is_false(contains(error_texts(err), TOKEN), tostring(err))
    end
  end)

  it("are masked in a message where the server echoes them", function()
    -- The sandbox quotes a bad directive back in its 400 message.
    local _, err = sb:new_client():list_runs("wf_demo;latency=" .. TOKEN)
    assert.equal(400, err.status)
    assert.equal('invalid sandbox directive "latency=***": expected milliseconds from 0 to 600000',
      err.message)
    assert.is_false(contains(error_texts(err), TOKEN))
  end)

  it("are not in tostring(client)", function()
    local c = sb:new_client()
    assert.equal("workflows.client(" .. sb.url .. ")", tostring(c))
    for key, value in pairs(c) do
      assert.is_false(contains(tostring(key) .. tostring(value), TOKEN))
    end
  end)

  it("are not in the WORKFLOWS_DEBUG lines", function()
    local script = [[
      local workflows = require "workflows"
      local c = workflows.new { base_url = os.getenv("SANDBOX_URL"), max_retries = 1 }
      assert(c:list_runs("wf_demo", { limit = 3 }))
      assert(not c:list_runs("wf_nope"))
      assert(not c:list_runs("wf_demo;status=503;n=debug"))
      for _ in c:runs("wf_demo") do end
    ]]
    local stderr = os.tmpname()
    local command = table.concat({
      "WORKFLOWS_DEBUG=1", "WORKFLOWS_API_TOKEN=" .. shell_quote(TOKEN),
      "SANDBOX_URL=" .. shell_quote(sb.url),
      "LUA_PATH=" .. shell_quote(package.path), "LUA_CPATH=" .. shell_quote(package.cpath),
      interpreter(), "-e", shell_quote(script), ">/dev/null", "2>" .. shell_quote(stderr),
    }, " ")
    local status = os.execute(command)
    local lines = read_all(stderr)
    os.remove(stderr)
    assert.is_true(status == true or status == 0, "the child failed: " .. lines)
    local count = 0
    for line in lines:gmatch("[^\n]+") do
      count = count + 1
      assert.matches("^workflows: GET http://127%.0%.0%.1:%d+/v1/workflows/%S+ %-> %S+ %d+ms "
        .. "attempt %d", line)
      assert.is_false(contains(line, TOKEN), line)
    end
    -- one page, one 404, two 503s, and wf_demo's three pages of 100
    assert.is_true(count >= 7, count .. " debug lines:\n" .. lines)
  end)

  it("are not in the sandbox's request log", function()
    for _, entry in ipairs(sb:log()) do
      assert.is_false(contains(cjson.encode(entry), TOKEN))
    end
  end)
end)

describe("TLS", function()
  local sb = fixtures.sandbox { tls = true }

  -- The `connection` number of a fresh request's log entry: how many TCP
  -- connections the sandbox has accepted so far, handshakes that failed included.
  local function connections_so_far()
    local c = sb:new_client { ca_file = sb.cert }
    local seq = sb:last_seq()
    assert(c:list_runs("wf_empty"))
    return sb:log(seq)[1].connection
  end

  it("refuses a server it cannot verify, once, as a network error", function()
    local before = connections_so_far()
    local c = sb:new_client { max_retries = 3 }
    local seq = sb:last_seq()
    local started = core.now()
    local page, err = c:list_runs("wf_demo")
    local elapsed = core.now() - started
    assert.is_nil(page)
    assert.same({ kind = "network", attempts = 1 }, { kind = err.kind, attempts = err.attempts })
    assert.matches("^TLS verification failed %(", err.message)
    assert.is_nil(err.status)
    assert.equal(0, #sb:log(seq))                      -- no request got through
    -- one connection for the refused call, one for connections_so_far itself
    assert.equal(before + 2, connections_so_far())
    assert.is_true(elapsed < 1, "took " .. elapsed .. " s")
  end)

  it("accepts the server with ca_file naming its certificate", function()
    local c = sb:new_client { ca_file = sb.cert }
    local seq = sb:last_seq()
    local page, err = c:list_runs("wf_demo", { limit = 5 })
    assert.is_nil(err)
    assert.equal(5, #page.items)
    local entries = sb:log(seq)
    assert.equal(1, #entries)
    assert.equal("valid", entries[1].auth)
  end)

  it("walks every page over one verified connection", function()
    local c = sb:new_client { ca_file = sb.cert, prefetch = 0 }
    local count = 0
    for _ in c:runs("wf_demo") do count = count + 1 end
    assert.equal(250, count)
  end)

  it("refuses the server with a CA directory that lacks its certificate", function()
    local c = sb:new_client { ca_path = "/nonexistent-ca-dir",
      ca_file = "/nonexistent-ca-file.pem", max_retries = 2 }
    local _, err = c:list_runs("wf_demo")
    assert.same({ kind = "network", attempts = 1 }, { kind = err.kind, attempts = err.attempts })
    assert.matches("^TLS verification failed %(", err.message)
  end)
end)

describe("transport", function()
  local sb = fixtures.sandbox { client = { max_retries = 2 } }

  -- The size of a page's body: as JSON, or gzipped as it travels to the client.
  -- (Python's urllib, as curl's command line hangs under the ASan runtime.)
  local FETCH = "import sys, urllib.request; print(len(urllib.request.urlopen(urllib.request.Request("
    .. "sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2], "
    .. "'Accept-Encoding': sys.argv[3]}), timeout=10).read()))"
  local function body_bytes(query, gzipped)
    local pipe = assert(io.popen(table.concat({ "python3 -c", shell_quote(FETCH),
      shell_quote(sb.url .. "/v1/workflows/wf_demo/runs" .. query), shell_quote(sb.token),
      gzipped and "gzip" or "identity" }, " ")))
    local size = tonumber(pipe:read("*a"))
    pipe:close()
    return size
  end

  it("never follows a redirect, so the token goes nowhere else", function()
    local seq = sb:last_seq()
    local _, err = sb:new_client():list_runs("wf_demo;fault=redirect")
    assert.same({ kind = "http", status = 302, attempts = 1 },
      { kind = err.kind, status = err.status, attempts = err.attempts })
    assert.equal(1, #sb:log(seq))
  end)

  it("takes a body of exactly max_body_bytes and refuses one byte more", function()
    local size = body_bytes("?limit=7&offset=3")
    assert.is_true(size > 1000)
    local page = assert(sb:new_client { max_body_bytes = size }:list_runs("wf_demo", { limit = 7, offset = 3 }))
    assert.equal(7, #page.items)
    local _, err = sb:new_client { max_body_bytes = size - 1 }:list_runs("wf_demo", { limit = 7, offset = 3 })
    assert.same({ kind = "decode", attempts = 1,
      message = format("response body is larger than max_body_bytes (%d bytes)", size - 1) },
      { kind = err.kind, attempts = err.attempts, message = err.message })
  end)

  it("counts the body after gzip is undone", function()
    local size, gzipped = body_bytes("?limit=100"), body_bytes("?limit=100", true)
    assert.is_true(gzipped < size / 2, gzipped .. " bytes gzipped, " .. size .. " bytes")
    local seq = sb:last_seq()
    local _, err = sb:new_client { max_body_bytes = size - 1 }:list_runs("wf_demo", { limit = 100 })
    assert.same({ kind = "decode", attempts = 1,
      message = format("response body is larger than max_body_bytes (%d bytes)", size - 1) },
      { kind = err.kind, attempts = err.attempts, message = err.message })
    local entries = sb:log(seq)
    assert.matches("gzip", entries[#entries].headers["Accept-Encoding"])
  end)

  it("stops a huge body at max_body_bytes without reading it all", function()
    local started = core.now()
    local _, err = sb:new_client { max_body_bytes = 1024 * 1024 }
      :list_runs("wf_demo;fault=huge;huge_bytes=268435456")
    local elapsed = core.now() - started
    assert.same({ kind = "decode", attempts = 1,
      message = "response body is larger than max_body_bytes (1048576 bytes)" },
      { kind = err.kind, attempts = err.attempts, message = err.message })
    assert.is_true(elapsed < 2, "took " .. elapsed .. " s")
  end)

  it("refuses the default 48 MiB huge body at the default 32 MiB cap", function()
    local _, err = sb:new_client():list_runs("wf_demo;fault=huge")
    assert.equal("decode", err.kind)
    assert.equal("response body is larger than max_body_bytes (33554432 bytes)", err.message)
  end)
end)
