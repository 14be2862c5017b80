-- Proxies on every libcurl transport (blocking, luv tasks, cqueues): http targets in
-- absolute form and https targets through CONNECT, as the sandbox's forward proxy logs
-- them; no_proxy, proxy = false, credentials accepted and refused, a proxy that is
-- down. The rule itself is spec/14-proxy-rule_spec.lua; inside nginx,
-- spec/95-openresty-networks_spec.lua.
local sandbox = require "spec.support.sandbox"
local networks = require "spec.support.networks"

local call, list, through = networks.call, networks.list, networks.through

local PASSWORD = "pr0xy-pa55word"

describe("proxies (" .. _VERSION .. ")", function()
  local api, tls, open_proxy, auth_proxy
  lazy_setup(function()
    api = sandbox.start {}
    tls = sandbox.start { tls = true }
    open_proxy = sandbox.start { proxy = true }
    auth_proxy = sandbox.start { proxy = true, proxy_auth = "alice:" .. PASSWORD }
  end)
  lazy_teardown(function()
    for _, sb in ipairs { api, tls, open_proxy, auth_proxy } do sb:stop() end
  end)

  local function with_credentials(url, user, password)
    return (url:gsub("^http://", "http://" .. user .. ":" .. password .. "@"))
  end


  local function authority(url) return url:match("^%a+://([^/]+)") end

  for _, transport in ipairs(networks.TRANSPORTS) do
    describe("on the " .. transport .. " transport", function()
      it("sends an http target through the proxy in absolute form", function()
        local seq = open_proxy:last_seq()
        assert.same({ 2 }, { call(transport, { base_url = api.url, token = api.token,
          proxy = open_proxy.url }, list) })
        assert.same({ "GET " .. api.url .. "/v1/workflows/wf_demo/runs?limit=2 200" },
          through(open_proxy, seq))
      end)

      it("opens a CONNECT tunnel for an https target and verifies the origin inside it", function()
        local seq = auth_proxy:last_seq()
        assert.same({ 2 }, { call(transport, { base_url = tls.url, token = tls.token,
          ca_file = tls.cert, proxy = with_credentials(auth_proxy.url, "alice", PASSWORD) },
          list) })
        assert.same({ "CONNECT " .. authority(tls.url) .. " 200" }, through(auth_proxy, seq))
      end)

      it("goes straight to a host that no_proxy names", function()
        local seq = open_proxy:last_seq()
        assert.same({ 2 }, { call(transport, { base_url = api.url, token = api.token,
          proxy = open_proxy.url, no_proxy = { "example.org", "127.0.0.1" } }, list) })
        assert.same({}, through(open_proxy, seq))
      end)

      it("goes straight with proxy = false", function()
        assert.same({ 2 }, { call(transport, { base_url = api.url, token = api.token,
          proxy = false }, list) })
      end)

      it("says that the proxy refused CONNECT without its credentials (407)", function()
        local n, err = call(transport, { base_url = tls.url, token = tls.token,
          ca_file = tls.cert, proxy = auth_proxy.url, max_retries = 2 }, list)
        assert.is_nil(n)
        assert.same({ "network", 1, "proxy refused CONNECT to " .. authority(tls.url)
          .. ": 407 Proxy Authentication Required" }, { err.kind, err.attempts, err.message })
      end)

      it("says that the proxy refused an http request with wrong credentials (407)", function()
        local n, err = call(transport, { base_url = api.url, token = api.token,
          proxy = with_credentials(auth_proxy.url, "alice", "wrong") }, list)
        assert.is_nil(n)
        assert.same({ "network", "proxy refused the request for " .. authority(api.url)
          .. ": 407 Proxy Authentication Required" }, { err.kind, err.message })
      end)

      it("says which proxy it could not reach", function()
        local n, err = call(transport, { base_url = api.url, token = api.token,
          proxy = "http://127.0.0.1:9" }, list)
        assert.is_nil(n)
        assert.equal("network", err.kind)
        assert.matches("^could not reach proxy 127%.0%.0%.1:9: Failed to connect to 127%.0%.0%.1 "
          .. "port 9 ", err.message)
      end)
    end)
  end
end)
