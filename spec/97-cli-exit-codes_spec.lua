-- bin/workflows as a user runs it: a subprocess on the Lua that runs busted, against
-- the sandbox. Every exit code, with what the command writes to stdout and stderr.
local cjson = require "cjson"
local workflows = require "workflows"
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"
local cli_sandbox = require "spec.support.cli_sandbox"

local id_of, TOKEN = cli_sandbox.id_of, cli_sandbox.TOKEN

describe("bin/workflows", function()
  local sb, run, expected = cli_sandbox.block()

  local function usage_line(command) return "Usage: workflows " .. command .. " " end

  describe("exit codes", function()
    it("1 and one line for an unknown workflow (404)", function()
      local result = run { "runs", "wf_nope" }
      assert.are.same({ "", 1 }, { result.stdout, result.code })
      assert.matches("^workflows: HTTP 404 Not Found: workflow not found %(request req_%x+%)\n$", result.stderr)
    end)

    it("4 for a refused token (401), which is never shown", function()
      local secret = "s3cret-token-value"
      local result = run({ "runs", "wf_demo" }, { env = { WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = secret } })
      assert.are.equal(4, result.code)
      assert.matches("^workflows: HTTP 401 Unauthorized: invalid bearer token %(request req_%x+%)\n$", result.stderr)
      assert.is_nil(result.stderr:find(secret, 1, true))
      assert.are.equal("", result.stdout)
    end)

    it("4 for a 403", function()
      local result = run { "page", id_of("status=403") }
      assert.are.equal(4, result.code)
      assert.matches("^workflows: HTTP 403 Forbidden: forbidden", result.stderr)
    end)

    it("2 with the usage line for a status the library rejects, before any request", function()
      local seq = sb:last_seq()
      local id = id_of("latency=0")
      local result = run { "runs", id, "--status", "failed" }
      assert.are.equal(2, result.code)
      assert.are.equal(1, select(2, result.stderr:gsub("\n\nError: ", "")))
      assert.matches("^" .. usage_line("runs"):gsub("%p", "%%%0"), result.stderr)
      assert.matches('\n\nError: invalid status "failed" %(did you mean "failure"%?%)\n$', result.stderr)
      assert.are.same({}, fixtures.requests_for(sb, id, seq))
    end)

    it("2 with the library's message, naming the option, for a value out of range", function()
      local result = run { "runs", "wf_demo", "--limit", "0" }
      assert.are.equal(2, result.code)
      assert.matches("\n\nError: %-%-limit must be an integer in 1%.%.100 %(got 0%)\n$", result.stderr)
      result = run { "runs", "wf_demo", "--prefetch", "65" }
      assert.matches('\n\nError: %-%-prefetch must be an integer in 0%.%.64 or "auto" %(got 65%)\n$',
        result.stderr)
      assert.are.equal(2, result.code)
    end)

    it("2 for a usage error argparse catches", function()
      for _, args in ipairs {
        { "runs" }, { "runs", "wf_demo", "--format", "xml" }, { "runs", "wf_demo", "--max", "ten" },
        { "runs", "wf_demo", "--bogus" }, { "runs", "wf_demo", "--quiet", "--progress" }, {},
        { "runs", "wf_demo", "--fields", "id,nope" },
      } do
        local result = run(args)
        assert.are.equal(2, result.code, table.concat(args, " "))
        assert.matches("^Usage: workflows", result.stderr)
        assert.matches("\n\nError: [^\n]+\n$", result.stderr)
        assert.are.equal("", result.stdout)
      end
    end)

    it("2 naming the path for a missing --token-file, and 2 without any token", function()
      local result = run({ "runs", "wf_demo", "--token-file", "/nonexistent/token" },
        { env = { WORKFLOWS_BASE_URL = sb.url } })
      assert.are.equal(2, result.code)
      assert.matches("Error: %-%-token%-file: /nonexistent/token: No such file or directory\n$", result.stderr)
      result = run({ "runs", "wf_demo" }, { env = { WORKFLOWS_BASE_URL = sb.url } })
      assert.are.equal(2, result.code)
      assert.matches("Error: no token: set WORKFLOWS_API_TOKEN or give %-%-token%-file\n$", result.stderr)
    end)

    it("reads the token from --token-file, dropping one trailing newline", function()
      local path = os.tmpname()
      cli.write_file(path, TOKEN .. "\n")
      local result = run({ "runs", "wf_demo", "--max", "2", "--token-file", path },
        { env = { WORKFLOWS_BASE_URL = sb.url } })
      os.remove(path)
      assert.are.same({ "", 0, 2 }, { result.stderr, result.code, #cli.lines(result.stdout) })
    end)

    it("1 for a refused connection (a closed port)", function()
      local result = run({ "runs", "wf_demo", "--base-url", "http://127.0.0.1:1" })
      assert.are.same({ "", 1 }, { result.stdout, result.code })
      assert.matches("^workflows: network: [^\n]*\n$", result.stderr)
    end)

    it("1 for a 400 the library lets through (a bad sandbox directive)", function()
      local result = run { "runs", "wf_demo;fault=dirp" }
      assert.are.equal(1, result.code)
      assert.matches('^workflows: HTTP 400 Bad Request: invalid sandbox directive "fault=dirp"', result.stderr)
    end)

    it("1 after a walk fails halfway, the pages before it written and a JSON array left open", function()
      -- stuck_offset answers the first page to every offset: the second one fails
      local result = run { "runs", id_of("fault=stuck_offset"), "--format", "json", "--limit", "50",
        "--prefetch", "0" }
      assert.are.equal(1, result.code)
      assert.matches("^workflows: decode: [^\n]*\n$", result.stderr)
      -- the last run written waits for the next page's "," to end its line
      local lines = cli.lines(result.stdout .. "\n")
      assert.are.equal(51, #lines)
      assert.are.equal("[", lines[1])
      assert.are.equal(expected[49].id, cjson.decode(lines[50]:sub(1, -2)).id)
      assert.are.equal(expected[50].id, cjson.decode(lines[51]).id)
    end)

    it("1 for a server error that outlasts the retries", function()
      local result = run { "runs", id_of("status=503;times=100") }
      assert.are.same({ "", 1 }, { result.stdout, result.code })
      assert.matches("^workflows: HTTP 503 Service Unavailable: service unavailable %(request req_%x+; 3 attempts%)\n$",
        result.stderr)
    end)

    it("130 on SIGINT", function()
      local result = run({ "runs", id_of("latency=5000") }, { interrupt_after = 1 })
      assert.are.same({ "", 130 }, { result.stdout, result.code })
      assert.are.equal("", result.stderr)
      assert.is_true(result.ms < 4000, "took " .. result.ms .. " ms")
    end)

    it("1 at once when no base URL was given, saying so", function()
      local resolves = os.execute("getent hosts api.example.com >/dev/null 2>&1")
      if resolves == true or resolves == 0 then
        return pending("api.example.com resolves here")
      end
      local result = run({ "page", "wf_demo" }, { env = { WORKFLOWS_API_TOKEN = TOKEN } })
      assert.are.same({ "", 1 }, { result.stdout, result.code })
      assert.are.equal("workflows: network: Could not resolve host: api.example.com (the built-in "
        .. "default base URL, used because no --base-url was given and WORKFLOWS_BASE_URL is not "
        .. "set)\n", result.stderr)
      assert.is_true(result.ms < 2000, result.ms .. " ms")
    end)

    it("0 for --help and --version", function()
      local result = run { "runs", "--help" }
      assert.are.equal(0, result.code)
      assert.matches("^Usage: workflows runs ", result.stdout)
      result = run { "--help" }
      assert.are.equal(0, result.code)
      assert.matches('README.md, sections "The command" and\n"Install the command" (', result.stdout,
        1, true)
      result = run { "--version" }
      assert.are.same({ "workflows " .. workflows.VERSION, 0 }, { result.stdout:match("^(%S+ %S+)"), result.code })
    end)

    it("runs on the Lua that runs the specs", function()
      local result = run { "--version" }
      local lua = rawget(_G, "jit") and jit.version or _VERSION
      assert.are.equal("workflows " .. workflows.VERSION .. " (lua-workflows, " .. lua .. ")\n", result.stdout)
    end)
  end)
end)
