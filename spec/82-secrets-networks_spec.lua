-- The proxy's password and the client key's passphrase are as secret as the token:
-- never in an error, a WORKFLOWS_DEBUG line, a tostring, a message of workflows.new,
-- or any value reachable from what the API hands out. (Inside nginx, its debug log:
-- spec/95-openresty-networks_spec.lua.)
local sandbox = require "spec.support.sandbox"
local networks = require "spec.support.networks"
local workflows = require "workflows"
local cli = require "spec.support.cli"

local PASSWORD = "Pr0xy-S3cret-5d41402a"
local PROBES = { "ctx", "config", "proxy", "route", "identity", "secrets", "password",
  "client_key_password", "settings", "transport", "session", "__index" }

-- Every string reachable from `root` (pairs, the probes above, metatables).
local function reachable_strings(root)
  local found, visited = {}, {}
  local function visit(value)
    local kind = type(value)
    if kind == "string" then found[#found + 1] = value return end
    if (kind ~= "table" and kind ~= "userdata") or visited[value] then return end
    visited[value] = true
    if kind == "table" then
      for key, child in pairs(value) do visit(key) visit(child) end
    end
    for _, key in ipairs(PROBES) do
      local ok, child = pcall(function() return value[key] end)
      if ok and child ~= nil then visit(child) end
    end
    visit(getmetatable(value))
  end
  visit(root)
  return found
end

describe("the proxy password and the key's passphrase", function()
  local api, tls, proxy_sb, secrets
  lazy_setup(function()
    api = sandbox.start {}
    tls = sandbox.start { tls = true, client_ca = true }
    proxy_sb = sandbox.start { proxy = true, proxy_auth = "alice:" .. PASSWORD }
    secrets = { PASSWORD, tls.client.key_password }
  end)
  lazy_teardown(function()
    for _, sb in ipairs { api, tls, proxy_sb } do sb:stop() end
  end)

  local function assert_secret_free(value, what)
    local strings = type(value) == "string" and { value } or reachable_strings(value)
    for _, text in ipairs(strings) do
      for _, secret in ipairs(secrets) do
        assert(not text:find(secret, 1, true), what .. " shows a secret: " .. text)
      end
    end
  end

  local function proxy_url(password)
    return proxy_sb.url:gsub("^http://", "http://alice:" .. password .. "@")
  end

  -- options of a client through the proxy with the encrypted key
  local function options(extra)
    local given = { base_url = tls.url, token = tls.token, ca_file = tls.cert,
      proxy = proxy_url(PASSWORD), client_cert = tls.client.cert,
      client_key = tls.client.key_encrypted, client_key_password = tls.client.key_password }
    for key, value in pairs(extra or {}) do given[key] = value end
    return given
  end

  it("are found by this search where a value held them", function()
    assert.has_error(function() assert_secret_free({ { x = PASSWORD } }, "a table") end)
  end)

  it("stay out of the client, its tostring, a page, a walk and the errors", function()
    for _, transport in ipairs(networks.TRANSPORTS) do
      local kept = {}
      networks.call(transport, options(), function(client)
        kept.client, kept.text = client, tostring(client)
        kept.page = client:list_runs("wf_demo", { limit = 2 })
        kept.walk = select(4, client:runs("wf_demo", { max = 3 }))
        return nil
      end)
      assert.is_table(kept.page, transport)
      assert_secret_free(kept, transport)
      -- a failure quoting the proxy URL: wrong credentials, the proxy down, the key refused
      for _, extra in ipairs { { proxy = proxy_url("x" .. PASSWORD) },
        { proxy = "http://alice:" .. PASSWORD .. "@127.0.0.1:9" },
        { client_key_password = "wrong-" .. tls.client.key_password } } do
        local n, err = networks.call(transport, options(extra), networks.list)
        assert.is_nil(n)
        assert_secret_free({ err = err, text = tostring(err) }, transport .. " error")
      end
    end
  end)

  it("stay out of the messages of workflows.new", function()
    for _, given in ipairs { { proxy = "socks5://alice:" .. PASSWORD .. "@p:1" },
      { proxy = "http://alice:" .. PASSWORD .. "@p:99999" },
      { client_key_password = PASSWORD } } do
      local ok, err = pcall(workflows.new, given)
      assert.is_false(ok)
      assert_secret_free({ err = err, text = tostring(err) }, "workflows.new")
    end
  end)

  it("stay out of WORKFLOWS_DEBUG lines and a bad variable's message", function()
    local out, stderr, status = cli.run_lua(string.format([[
      local workflows = require "workflows"
      for _, password in ipairs { %q, "wrong" } do
        local client = workflows.new { base_url = %q, token = %q, max_retries = 0,
          proxy = %q .. password .. "@" .. %q }
        local page, err = client:list_runs("wf_demo", { limit = 1 })
        print(page and "page" or tostring(err))
      end
      print(select(2, pcall(workflows.new, { base_url = %q })))]], PASSWORD, api.url, api.token,
      "http://alice:", proxy_sb.url:match("//(.*)$"), api.url),
      "env WORKFLOWS_DEBUG=1 http_proxy=" .. cli.shell_quote("ftp://alice:" .. PASSWORD .. "@p:1"))
    assert.equal(0, status, stderr)
    assert.matches("workflows: GET ", stderr)
    assert.matches("^page\nworkflows: network: proxy refused the request for", out)
    assert.matches("environment variable http_proxy must be", out)
    assert_secret_free(out, "stdout")
    assert_secret_free(stderr, "stderr")
  end)
end)
