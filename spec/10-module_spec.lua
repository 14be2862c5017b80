local workflows = require "workflows"
local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

-- The error object raised by `fn`: misuse raises kind "invalid_argument".
local function raised_by(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.equal("table", type(err))
  assert.equal("invalid_argument", err.kind)
  return err
end

describe("workflows", function()
  describe("VERSION", function()
    it("is 0.2.0, a MAJOR.MINOR.PATCH string", function()
      assert.equal("0.2.0", workflows.VERSION)
      assert.truthy(workflows.VERSION:match("^%d+%.%d+%.%d+$"))
    end)
  end)

  describe("STATUSES", function()
    it("lists the five statuses in the contract's order", function()
      assert.same({ "running", "success", "failure", "waiting", "cancelled" }, workflows.STATUSES)
    end)

    it("is the caller's copy: changing it changes no check", function()
      local saved = workflows.STATUSES[1]
      workflows.STATUSES[1] = "sleeping"
      local client = workflows.new { token = "t", base_url = "http://127.0.0.1:9" }
      local page, err = client:list_runs("wf", { status = "sleeping" })
      workflows.STATUSES[1] = saved
      assert.is_nil(page)
      assert.equal("invalid_argument", err.kind)
    end)
  end)

  describe("new()", function()
    it("accepts every option of the contract", function()
      local client = workflows.new {
        token = "t", base_url = "https://example.test", timeout = 30, connect_timeout = 10,
        max_retries = 2, deadline = 60, prefetch = 2, user_agent = "probe/1",
        ca_file = "/etc/ssl/certs/ca-certificates.crt", ca_path = "/etc/ssl/certs",
        max_body_bytes = 32 * 1024 * 1024,
      }
      assert.equal("workflows.client(https://example.test)", tostring(client))
    end)

    it("accepts no options at all", function()
      assert.truthy(tostring(workflows.new()):match("^workflows%.client%(https?://"))
    end)

    it("accepts fractions of seconds and zero retries and prefetch", function()
      assert.has_no.errors(function()
        workflows.new { timeout = 0.25, connect_timeout = 0.1, deadline = 0.5, max_retries = 0,
          prefetch = 0 }
      end)
    end)

    local bad_options = {
      { { timout = 1 }, 'unknown option "timout" (did you mean "timeout"?)' },
      { { prefech = 1 }, 'unknown option "prefech" (did you mean "prefetch"?)' },
      { { prefetch = "fast" }, 'option "prefetch" must be an integer in 0..64 or "auto" (got "fast")' },
      { { prefetch_cap = 0 }, 'option "prefetch_cap" must be an integer in 1..64 (got 0)' },
      { { prefetch_cap = 65 }, 'option "prefetch_cap" must be an integer in 1..64 (got 65)' },
      { { transfer_thread = "no" }, 'option "transfer_thread" must be a boolean (got "no")' },
      { { transfer_thred = false },
        'unknown option "transfer_thred" (did you mean "transfer_thread"?)' },
      { { loop = {} }, 'option "loop" must be a libuv binding such as vim.uv, vim.loop or '
        .. 'require "luv" (got table)' },
      { { max_retry = 1 }, 'unknown option "max_retry" (did you mean "max_retries"?)' },
      { { colour = "red" }, 'unknown option "colour"' },
      { { [1] = "x" }, "unknown option 1" },
      { { timeout = -1 }, 'option "timeout" must be a positive number (got -1)' },
      { { timeout = 0 }, 'option "timeout" must be a positive number (got 0)' },
      { { timeout = "30" }, 'option "timeout" must be a positive number (got "30")' },
      { { timeout = 0 / 0 }, 'option "timeout" must be a positive number (got nan)' },
      { { timeout = math.huge }, 'option "timeout" must be a positive number (got inf)' },
      { { connect_timeout = -0.5 },
        'option "connect_timeout" must be a positive number (got -0.5)' },
      { { deadline = -math.huge }, 'option "deadline" must be a positive number (got -inf)' },
      { { deadline = false }, 'option "deadline" must be a positive number (got false)' },
      { { max_retries = -1 }, 'option "max_retries" must be a non-negative integer (got -1)' },
      { { max_retries = 1.5 }, 'option "max_retries" must be a non-negative integer (got 1.5)' },
      { { max_retries = math.huge },
        'option "max_retries" must be a non-negative integer (got inf)' },
      { { prefetch = -1 }, 'option "prefetch" must be an integer in 0..64 or "auto" (got -1)' },
      { { prefetch = 2.5 }, 'option "prefetch" must be an integer in 0..64 or "auto" (got 2.5)' },
      { { prefetch = 65 }, 'option "prefetch" must be an integer in 0..64 or "auto" (got 65)' },
      { { max_body_bytes = 0 }, 'option "max_body_bytes" must be a positive integer (got 0)' },
      { { max_body_bytes = 10.5 },
        'option "max_body_bytes" must be a positive integer (got 10.5)' },
      { { max_body_bytes = 0 / 0 },
        'option "max_body_bytes" must be a positive integer (got nan)' },
      { { base_url = "ftp://example.test" }, 'option "base_url" must be an http:// or '
        .. 'https:// URL without query or fragment (got "ftp://example.test")' },
      { { base_url = "example.test" }, 'option "base_url" must be an http:// or https:// URL '
        .. 'without query or fragment (got "example.test")' },
      { { base_url = "https://example.test/?a=1" }, 'option "base_url" must be an http:// or '
        .. 'https:// URL without query or fragment (got "https://example.test/?a=1")' },
      { { base_url = 80 }, 'option "base_url" must be an http:// or https:// URL without '
        .. "query or fragment (got 80)" },
      { { user_agent = "" },
        'option "user_agent" must be a non-empty string without control characters (got "")' },
      { { user_agent = "a\r\nX-Evil: 1" }, 'option "user_agent" must be a non-empty string '
        .. 'without control characters (got "a\\r\\nX-Evil: 1")' },
      { { ca_file = "" }, 'option "ca_file" must be a non-empty string (got "")' },
      { { ca_path = {} }, 'option "ca_path" must be a non-empty string (got table)' },
      { { token = 12345 }, 'option "token" must be a string without control characters '
        .. "(got number)" },
    }

    for _, case in ipairs(bad_options) do
      it("raises for " .. case[2], function()
        local err = raised_by(function() workflows.new(case[1]) end)
        assert.equal(case[2], err.message)
        assert.equal("workflows: invalid argument: " .. case[2], tostring(err))
      end)
    end

    it("raises the error object, which string code can still read", function()
      local err = raised_by(function() workflows.new { timeout = -1 } end)
      assert.same({ kind = "invalid_argument", attempts = 0,
        message = 'option "timeout" must be a positive number (got -1)' }, fixtures.fields(err))
      assert.equal(1, (err:find("timeout", 1, true) and 1))
      assert.equal('timeout', err:match('"(%a+)"'))
      assert.equal('new: workflows: invalid argument: option "timeout" must be a positive number '
        .. "(got -1)", "new: " .. err)
    end)

    it("raises when the options are not a table", function()
      local err = raised_by(function() workflows.new "https://example.test" end)
      assert.equal('options must be a table (got "https://example.test")', err.message)
    end)

    it("never shows a bad token in its message", function()
      local err = raised_by(function() workflows.new { token = "s3cret\nX-Evil: 1" } end)
      assert.equal('option "token" must be a string without control characters', err.message)
      local message = tostring(err)
      assert.is_nil(message:find("s3cret", 1, true))
    end)

    it("copies the options and never changes the caller's table", function()
      local given = { token = "t", base_url = "http://one.test/", timeout = 5 }
      local client = workflows.new(given)
      assert.same({ token = "t", base_url = "http://one.test/", timeout = 5 }, given)
      given.base_url = "http://two.test"
      assert.equal("workflows.client(http://one.test)", tostring(client))
    end)

    it("strips trailing slashes from base_url", function()
      local client = workflows.new { base_url = "https://example.test/api//" }
      assert.equal("workflows.client(https://example.test/api)", tostring(client))
    end)

    it("keeps a path prefix in base_url", function()
      local client = workflows.new { base_url = "http://example.test/prefix" }
      assert.equal("workflows.client(http://example.test/prefix)", tostring(client))
    end)
  end)

  describe("client", function()
    it("shows its base_url but never its token", function()
      local client = workflows.new { token = "s3cret-token", base_url = "http://example.test" }
      local shown = tostring(client)
      assert.equal("workflows.client(http://example.test)", shown)
      assert.is_nil(shown:find("s3cret", 1, true))
    end)

    it("keeps the token out of its own fields", function()
      local client = workflows.new { token = "s3cret-token" }
      for key, value in pairs(client) do
        assert.is_nil(tostring(value):find("s3cret", 1, true), "field " .. tostring(key))
      end
    end)

    it("is distinct from every other client", function()
      local one, two = workflows.new(), workflows.new()
      assert.are_not.equal(one, two)
    end)
  end)

  describe("core", function()
    it("is the C module the client is built on", function()
      assert.equal("string", type(core.curl_version))
      assert.truthy(core.curl_version:match("^%d+%.%d+"))
    end)
  end)
end)
