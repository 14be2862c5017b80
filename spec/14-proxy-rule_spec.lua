-- The rule that chooses a client's proxy (workflows.proxy), table-driven: the option,
-- the environment variables and their order, no_proxy's forms, and proxy URLs. The
-- environment comes in as a function, as os.getenv; spec/84-proxy-environment_spec.lua
-- runs the same rule in child processes with the variables really set.
local proxy = require "workflows.proxy"

local function env(vars) return function(name) return vars[name] end end

local function route(options, vars)
  local config = { base_url = options.base_url or "https://api.example.com",
    proxy = options.proxy, no_proxy = options.no_proxy }
  local chosen, problem = proxy.route(config, env(vars or {}))
  if chosen == nil then return "error: " .. problem end
  return chosen and chosen.url or false
end

describe("workflows.proxy", function()
  describe("route()", function()
    local HTTP = "http://api.example.com:8080"
    local cases = {
      { "no option, no variable: straight", {}, {}, false },
      { "the option", { proxy = "http://p:3128" }, {}, "http://p:3128" },
      { "the option without a port: 1080", { proxy = "http://p" }, {}, "http://p:1080" },
      { "proxy = false over every variable", { proxy = false },
        { https_proxy = "http://e:1", ALL_PROXY = "http://e:2" }, false },
      { "https_proxy for an https target", {}, { https_proxy = "http://s:1", http_proxy = "http://h:1" },
        "http://s:1" },
      { "HTTPS_PROXY when https_proxy is not set", {}, { HTTPS_PROXY = "http://S:1" }, "http://s:1" },
      { "https_proxy before HTTPS_PROXY", {}, { https_proxy = "http://a:1", HTTPS_PROXY = "http://b:1" },
        "http://a:1" },
      { "http_proxy for an http target", { base_url = HTTP }, { http_proxy = "http://h:1" }, "http://h:1" },
      { "never HTTP_PROXY (a CGI request header can set it)", { base_url = HTTP },
        { HTTP_PROXY = "http://evil:1" }, false },
      { "http_proxy not for an https target", {}, { http_proxy = "http://h:1" }, false },
      { "all_proxy when the scheme's is not set", {}, { all_proxy = "http://a:1" }, "http://a:1" },
      { "ALL_PROXY last", { base_url = HTTP }, { ALL_PROXY = "http://A:1" }, "http://a:1" },
      { "an empty variable counts as unset", {}, { https_proxy = "", all_proxy = "http://a:1" },
        "http://a:1" },
      { "a variable without a scheme is http", {}, { https_proxy = "p.corp:8080" }, "http://p.corp:8080" },
      { "no_proxy from the environment", {}, { https_proxy = "http://p:1", no_proxy = "example.com" }, false },
      { "NO_PROXY when no_proxy is not set", {}, { https_proxy = "http://p:1", NO_PROXY = ".example.com" },
        false },
      { "the no_proxy option over the environment's", { no_proxy = { "other.org" } },
        { https_proxy = "http://p:1", no_proxy = "example.com" }, "http://p:1" },
      { "the environment's no_proxy also for the proxy option", { proxy = "http://p:1" },
        { no_proxy = "*" }, false },
      { "a bad proxy in the environment, unquoted", {}, { https_proxy = "socks5://u:secret@p:1" },
        'error: environment variable https_proxy must be an http:// proxy URL such as '
        .. '"http://[user:pass@]host:port", or false' },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        assert.equal(case[4], route(case[2], case[3]))
      end)
    end

    it("keeps the credentials apart from the URL, percent-decoded", function()
      local chosen = proxy.route({ base_url = "https://api.example.com:8443",
        proxy = "http://al%40ice:p%3Ass@Proxy.corp:3128" }, env {})
      assert.same({ "http://proxy.corp:3128", "al@ice", "p:ss", "api.example.com:8443", true },
        { chosen.url, chosen.user, chosen.password, chosen.target, chosen.tunnel })
      assert.equal("workflows.proxy(http://proxy.corp:3128)", tostring(chosen))
    end)
  end)

  describe("bypassed()", function()
    local cases = {
      { "api.example.com", "api.example.com", true },
      { "api.example.com", "example.com", true },
      { "api.example.com", ".example.com", true },
      { "api.example.com", "*.example.com", true },
      { "example.com", ".example.com", true },
      { "badexample.com", "example.com", false },
      { "api.example.com", "*", true },
      { "API.Example.COM", " example.com ", true },
      { "10.1.2.3", "10.0.0.0/8", true },
      { "11.1.2.3", "10.0.0.0/8", false },
      { "10.1.2.3", "1.2.3", false },
      { "[::1]", "::1", true },
      { "[::1]", "[::1]", true },
      { "api.example.com", "", false },
    }
    for _, case in ipairs(cases) do
      it(string.format("%s against %q: %s", case[1], case[2], tostring(case[3])), function()
        assert.equal(case[3], proxy.bypassed(case[1], { case[2] }))
      end)
    end

    it("reads a comma-separated string", function()
      assert.is_true(proxy.bypassed("b.org", "a.com, b.org"))
      assert.is_false(proxy.bypassed("c.org", "a.com,b.org"))
    end)
  end)

  describe("parse()", function()
    for _, bad in ipairs { "https://p:1", "socks5://p:1", "http://p:0", "http://p:70000",
      "http://p:1/path", "http://", "http://p :1", 42 } do
      it("refuses " .. tostring(bad), function()
        assert.is_nil(proxy.parse(bad))
      end)
    end
  end)

  describe("the options of workflows.new", function()
    local workflows = require "workflows"
    local function problem(given)
      local ok, err = pcall(workflows.new, given)
      assert.is_false(ok)
      assert.equal("invalid_argument", err.kind)
      return err.message
    end

    it("names a bad proxy without quoting it (it may hold a password)", function()
      assert.equal('option "proxy" must be an http:// proxy URL such as '
        .. '"http://[user:pass@]host:port", or false', problem { proxy = "https://u:pw@p:1" })
      assert.equal('option "proxy" must be an http:// proxy URL such as '
        .. '"http://[user:pass@]host:port", or false (got boolean)', problem { proxy = true })
    end)

    it("names a bad no_proxy", function()
      assert.equal('option "no_proxy" must be a list of host names, domain suffixes and '
        .. 'addresses, or one comma-separated string (got table)', problem { no_proxy = { "a b" } })
    end)

    it("hides client_key_password's value", function()
      assert.equal('option "client_key_password" must be a non-empty string',
        problem { client_key_password = "" })
    end)
  end)
end)
