-- The environment's proxy variables, really set, in child processes on every libcurl
-- transport: https_proxy for https targets, http_proxy (never HTTP_PROXY) for http
-- ones, NO_PROXY, and proxy = false over all of them. libcurl's own reading of the
-- environment must not add to the rule (the core sets CURLOPT_PROXY and
-- CURLOPT_NOPROXY itself).
local sandbox = require "spec.support.sandbox"
local networks = require "spec.support.networks"
local cli = require "spec.support.cli"

describe("the proxy environment variables (" .. _VERSION .. ")", function()
  local api, tls, proxy_sb
  lazy_setup(function()
    api = sandbox.start {}
    tls = sandbox.start { tls = true }
    proxy_sb = sandbox.start { proxy = true }
  end)
  lazy_teardown(function()
    for _, sb in ipairs { api, tls, proxy_sb } do sb:stop() end
  end)

  -- Lists two runs from `sb` on each transport in a child process whose environment
  -- is `vars` (`extra` goes into workflows.new); returns the lines it printed and the
  -- proxy's log entries meanwhile.
  local function child(sb, vars, extra)
    local seq = proxy_sb:last_seq()
    local unset, set = { "env" }, {}
    for _, name in ipairs { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
      "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY" } do
      if vars[name] then set[#set + 1] = name .. "=" .. cli.shell_quote(vars[name])
      else unset[#unset + 1] = "-u " .. name end
    end
    local prefix = { table.concat(unset, " "), table.concat(set, " ") }
    local out, stderr, status = cli.run_lua(string.format([[
      local networks = require "spec.support.networks"
      for _, transport in ipairs(networks.TRANSPORTS) do
        local options = { base_url = %q, token = %q, ca_file = %q %s }
        local n, err = networks.call(transport, options, networks.list)
        print(transport .. " " .. tostring(n or err))
      end]], sb.url, sb.token, tls.cert, extra or ""), table.concat(prefix, " "))
    assert.equal(0, status, stderr)
    local through = {}
    for _, entry in ipairs(proxy_sb:log(seq)) do through[#through + 1] = entry.method end
    return out, through
  end

  local function all(text)
    local lines = {}
    for _, transport in ipairs(networks.TRANSPORTS) do lines[#lines + 1] = transport .. " " .. text end
    return table.concat(lines, "\n") .. "\n"
  end

  local function times(word)
    local list = {}
    for i = 1, #networks.TRANSPORTS do list[i] = word end
    return list
  end

  it("takes https_proxy for an https target", function()
    local out, through = child(tls, { https_proxy = proxy_sb.url, http_proxy = "http://127.0.0.1:9" })
    assert.equal(all("2"), out)
    assert.same(times("CONNECT"), through)
  end)

  it("takes HTTPS_PROXY, and ALL_PROXY when no other is set", function()
    assert.same(times("CONNECT"), select(2, child(tls, { HTTPS_PROXY = proxy_sb.url })))
    assert.same(times("GET"), select(2, child(api, { ALL_PROXY = proxy_sb.url })))
  end)

  it("takes http_proxy for an http target", function()
    local out, through = child(api, { http_proxy = proxy_sb.url, https_proxy = "http://127.0.0.1:9" })
    assert.equal(all("2"), out)
    assert.same(times("GET"), through)
  end)

  it("never takes HTTP_PROXY, which a CGI request's Proxy header can set", function()
    local out, through = child(api, { HTTP_PROXY = proxy_sb.url })
    assert.equal(all("2"), out)
    assert.same({}, through)
  end)

  it("goes straight to what NO_PROXY names", function()
    local out, through = child(api, { http_proxy = proxy_sb.url, NO_PROXY = "localhost,127.0.0.1" })
    assert.equal(all("2"), out)
    assert.same({}, through)
  end)

  it("goes straight with proxy = false whatever the environment says", function()
    local out, through = child(api, { http_proxy = proxy_sb.url, all_proxy = proxy_sb.url },
      ", proxy = false")
    assert.equal(all("2"), out)
    assert.same({}, through)
  end)
end)
