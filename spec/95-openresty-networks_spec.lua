-- Proxies and client certificates inside nginx (the cosocket transport): an http
-- target in absolute form, an https target through a CONNECT tunnel with TLS to the
-- origin inside it, tunnels pooled per proxy and origin, the refusals worded as the
-- libcurl transports word them (spec/84-proxy_spec.lua), client certificates parsed
-- through ngx.ssl, and pooled connections never shared by two identities.
local sandbox = require "spec.support.sandbox"
local openresty = require "spec.support.openresty"
local through = require("spec.support.networks").through

if openresty.skipped("the nginx transport") then return end

local PASSWORD = "pr0xy-pa55word"

describe("the nginx transport on real networks", function()
  local sb, tls, open_proxy, auth_proxy, server, tls_url

  lazy_setup(function()
    sb = sandbox.start {}
    tls = sandbox.start { tls = true, client_ca = true }
    open_proxy = sandbox.start { proxy = true }
    auth_proxy = sandbox.start { proxy = true, proxy_auth = "alice:" .. PASSWORD }
    -- the sandbox's certificate names localhost, which nginx checks (not an address)
    tls_url = tls.url:gsub("127%.0%.0%.1", "localhost")
    server = openresty.start(sb, { http = "  lua_ssl_trusted_certificate " .. tls.cert
      .. ";\n  lua_ssl_verify_depth 2;\n" })
  end)

  lazy_teardown(function() openresty.stop(server, sb, tls, open_proxy, auth_proxy) end)

  -- Lists two runs in nginx with a client made of `options` (a Lua table constructor's
  -- text, with TLS, TOKEN and the client files in scope): the count, or the error.
  local function listed(options, calls)
    local code = string.format([[
      local TLS, TOKEN = %q, %q
      local CLIENT = { cert = %q, key = %q, key_encrypted = %q, key_password = %q,
        stranger_cert = %q, stranger_key = %q }
      local options = %s
      options.token, options.max_retries = options.token or TOKEN, options.max_retries or 0
      local client = workflows.new(options)
      local results = {}
      for i = 1, %d do
        local page, err = client:list_runs("wf_demo", { limit = 2 })
        results[i] = page and #page.items or shared.error_of(err)
      end
      return results]], tls_url, sb.token, tls.client.cert, tls.client.key,
      tls.client.key_encrypted, tls.client.key_password, tls.client.stranger_cert,
      tls.client.stranger_key, options, calls or 1)
    return openresty.run_in(server, sb.url, code)
  end


  local function credentials(url, password)
    return (url:gsub("^http://", "http://alice:" .. password .. "@"))
  end

  describe("proxies", function()
    it("sends an http target through the proxy in absolute form", function()
      local seq = open_proxy:last_seq()
      assert.same({ 2 }, listed(string.format("{ base_url = SB, proxy = %q }", open_proxy.url)))
      assert.same({ "GET " .. sb.url .. "/v1/workflows/wf_demo/runs?limit=2 200" },
        through(open_proxy, seq))
    end)

    it("tunnels an https target through CONNECT once, and keeps the tunnel for the next call", function()
      local seq = auth_proxy:last_seq()
      assert.same({ 2, 2, 2 }, listed(string.format("{ base_url = TLS, proxy = %q, "
        .. "client_cert = CLIENT.cert, client_key = CLIENT.key }",
        credentials(auth_proxy.url, PASSWORD)), 3))
      assert.same({ "CONNECT " .. tls_url:match("//(.*)$") .. " 200" }, through(auth_proxy, seq))
    end)

    it("goes straight to a host that no_proxy names, and with proxy = false", function()
      local seq = open_proxy:last_seq()
      assert.same({ 2 }, listed(string.format("{ base_url = SB, proxy = %q, "
        .. "no_proxy = { '127.0.0.1' } }", open_proxy.url)))
      assert.same({ 2 }, listed("{ base_url = SB, proxy = false }"))
      assert.same({}, through(open_proxy, seq))
    end)

    it("says that the proxy refused CONNECT without credentials, as libcurl's transports do", function()
      local result = listed(string.format("{ base_url = TLS, proxy = %q, max_retries = 2, "
        .. "client_cert = CLIENT.cert, client_key = CLIENT.key }", auth_proxy.url))[1]
      assert.same({ "network", 1, "proxy refused CONNECT to " .. tls_url:match("//(.*)$")
        .. ": 407 Proxy Authentication Required" }, { result.kind, result.attempts, result.message })
    end)

    it("says that the proxy refused an http request with wrong credentials", function()
      local result = listed(string.format("{ base_url = SB, proxy = %q }",
        credentials(auth_proxy.url, "wrong")))[1]
      assert.same({ "network", "proxy refused the request for " .. sb.url:match("//(.*)$")
        .. ": 407 Proxy Authentication Required" }, { result.kind, result.message })
    end)

    it("says which proxy it could not reach", function()
      local result = listed("{ base_url = SB, proxy = 'http://127.0.0.1:9' }")[1]
      assert.equal("network", result.kind)
      assert.matches("^could not reach proxy 127%.0%.0%.1:9: Failed to connect to 127%.0%.0%.1 "
        .. "port 9 ", result.message)
    end)
  end)

  describe("client certificates", function()
    it("presents a certificate, and decrypts an encrypted key with its password", function()
      assert.same({ 2, 2 }, listed("{ base_url = TLS, client_cert = CLIENT.cert, "
        .. "client_key = CLIENT.key }", 2))
      assert.same({ 2 }, listed("{ base_url = TLS, client_cert = CLIENT.cert, "
        .. "client_key = CLIENT.key_encrypted, client_key_password = CLIENT.key_password }"))
    end)

    it("fails with kind network without a certificate, or with another CA's", function()
      assert.equal("network", listed("{ base_url = TLS }")[1].kind)
      assert.equal("network", listed("{ base_url = TLS, client_cert = CLIENT.stranger_cert, "
        .. "client_key = CLIENT.stranger_key }")[1].kind)
    end)

    it("names both files when the key's password is wrong, as libcurl's transports do", function()
      local result = listed("{ base_url = TLS, client_cert = CLIENT.cert, "
        .. "client_key = CLIENT.key_encrypted, client_key_password = 'not-the-passphrase' }")[1]
      assert.same({ "network", string.format('the client certificate could not be used: '
        .. 'client_cert %q, client_key %q (a wrong client_key_password, or a key that is '
        .. 'not the certificate\'s)', tls.client.cert, tls.client.key_encrypted) },
        { result.kind, result.message })
    end)

    it("never lets a pooled connection serve another identity", function()
      -- one request: the first client pools a connection that presented its
      -- certificate; clients without one, or with another, must not ride it
      local code = string.format([[
        local function client(extra)
          local options = { base_url = %q, token = %q, max_retries = 0 }
          for k, v in pairs(extra) do options[k] = v end
          return workflows.new(options)
        end
        local function count(c)
          local page, err = c:list_runs("wf_demo", { limit = 2 })
          return page and #page.items or err.kind
        end
        local trusted = client { client_cert = %q, client_key = %q }
        local first = count(trusted)
        return { first, count(client {}), count(client { client_cert = %q, client_key = %q }),
          count(trusted) }]], tls_url, sb.token, tls.client.cert, tls.client.key,
        tls.client.stranger_cert, tls.client.stranger_key)
      assert.same({ 2, "network", "network", 2 }, openresty.run_in(server, sb.url, code))
    end)
  end)

  -- last: after every test above sent the password and the passphrase
  it("keeps the proxy password and the key's passphrase out of nginx's debug log", function()
    local log = server:error_log()
    assert.matches("lua tcp socket", log)   -- the log is at level debug
    assert.is_nil(log:find(PASSWORD, 1, true))
    assert.is_nil(log:find(tls.client.key_password, 1, true))
  end)
end)
