-- bin/workflows as a user runs it: a subprocess on the Lua that runs busted, against
-- the sandbox. Output parsed back in every format, every exit code, a pipe closed
-- early, progress on a terminal only, and the command that `luarocks make` installs.
local cjson = require "cjson"
local workflows = require "workflows"
local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"

local TOKEN = "sandbox-token"
local RUN_FIELDS = { "id", "workflowId", "workflowVersion", "status", "startedAt", "finishedAt",
  "totalCu", "triggerSource", "triggeredBy", "sourceRunId", "isSimulation", "isDustTest" }

local id_of = fixtures.demo_id_maker("cli")

describe("bin/workflows", function()
  local sb, env, expected

  lazy_setup(function()
    sb = sandbox.start {}
    env = { WORKFLOWS_BASE_URL = sb.url, WORKFLOWS_API_TOKEN = TOKEN }
    -- what the library itself walks, to compare every format with
    local client = workflows.new { base_url = sb.url, token = TOKEN }
    expected = {}
    for run in client:runs("wf_demo") do expected[#expected + 1] = run end
    client:close()
  end)

  lazy_teardown(function()
    if sb then sb:stop() end
  end)

  local function run(args, options)
    options = options or {}
    options.env = options.env or env
    return cli.run(args, options)
  end

  local function ids(runs)
    local list = {}
    for i, r in ipairs(runs) do list[i] = r.id end
    return list
  end

  local function text_of(value)
    if value == nil then return "" end
    if type(value) == "number" and value == math.floor(value) then return string.format("%d", value) end
    return tostring(value)
  end

  local function usage_line(command) return "Usage: workflows " .. command .. " " end

  describe("runs", function()
    it("writes NDJSON into a pipe by default: every run, in order, each field as the library has it", function()
      local result = run { "runs", "wf_demo" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      local runs = {}
      for _, line in ipairs(cli.lines(result.stdout)) do runs[#runs + 1] = cjson.decode(line) end
      assert.are.equal(250, #runs)
      assert.are.same(ids(expected), ids(runs))
      for i, r in ipairs(runs) do
        for _, field in ipairs(RUN_FIELDS) do
          assert.are.equal(expected[i][field], r[field])
        end
      end
    end)

    it("writes keys in API order and integers without a fraction or an exponent", function()
      local result = run { "runs", "wf_demo", "--max", "1" }
      local line = cli.lines(result.stdout)[1]
      local keys, last = {}, 0
      for key in line:gmatch('"(%w+)":') do keys[#keys + 1] = key end
      for _, key in ipairs(keys) do
        local position
        for i, name in ipairs(RUN_FIELDS) do if name == key then position = i end end
        assert.is_true(position > last, "key " .. key .. " out of order in " .. line)
        last = position
      end
      assert.matches('"workflowVersion":%d+,', line)
      assert.is_nil(line:find("%d%.0[,}]"))
      assert.is_nil(line:find("%de[+-]"))
    end)

    it("writes one JSON array with --format json, and only --fields' keys", function()
      local result = run { "runs", "wf_demo", "--format", "json" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      local runs = cjson.decode(result.stdout)
      assert.are.same(ids(expected), ids(runs))

      result = run { "runs", "wf_demo", "--format", "json", "--fields", "totalCu,id", "--max", "120" }
      runs = cjson.decode(result.stdout)
      assert.are.equal(120, #runs)
      for i, r in ipairs(runs) do
        assert.are.same({ id = expected[i].id, totalCu = expected[i].totalCu }, r)
      end
      assert.matches('^%[\n{"totalCu":[%d.]+,"id":"run_', result.stdout)
    end)

    it("writes [] for an empty listing, and exits 0", function()
      local result = run { "runs", "wf_empty", "--format", "json" }
      assert.are.same({ "[]\n", "", 0 }, { result.stdout, result.stderr, result.code })
      result = run { "runs", "wf_empty", "--format", "csv", "--fields", "id,status" }
      assert.are.same({ "id,status\n", "", 0 }, { result.stdout, result.stderr, result.code })
    end)

    it("writes TSV with a header, absent fields empty, --no-header without it", function()
      local result = run { "runs", "wf_demo", "--format", "tsv", "--fields", "id,startedAt,totalCu,finishedAt" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      local lines = cli.lines(result.stdout)
      assert.are.equal("id\tstartedAt\ttotalCu\tfinishedAt", lines[1])
      assert.are.equal(251, #lines)
      for i, r in ipairs(expected) do
        assert.are.equal(table.concat({ r.id, r.startedAt, text_of(r.totalCu), text_of(r.finishedAt) }, "\t"),
          lines[i + 1])
      end
      result = run { "runs", "wf_demo", "--format", "tsv", "--fields", "id", "--no-header", "--max", "3" }
      assert.are.same({ expected[1].id, expected[2].id, expected[3].id }, cli.lines(result.stdout))
    end)

    it("writes CSV that an RFC 4180 reader reads back, every field in API order by default", function()
      local result = run { "runs", "wf_demo", "--format", "csv" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      local records = cli.parse_csv(result.stdout)
      assert.are.same(RUN_FIELDS, records[1])
      assert.are.equal(251, #records)
      for i, r in ipairs(expected) do
        local row = {}
        for j, field in ipairs(RUN_FIELDS) do row[j] = text_of(r[field]) end
        assert.are.same(row, records[i + 1])
      end
    end)

    it("writes an aligned table with --format table", function()
      local result = run { "runs", "wf_demo", "--format", "table", "--fields", "id,status,totalCu", "--max", "50" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      local lines = cli.lines(result.stdout)
      assert.are.equal(51, #lines)
      assert.matches("^id%s+status%s+totalCu$", lines[1])
      local status_at = lines[1]:find("status", 1, true)
      for i = 2, #lines do
        assert.are.equal(expected[i - 1].status, lines[i]:sub(status_at):match("^(%a+)"))
        assert.are.equal(#lines[1], #lines[i])
      end
    end)

    it("stops after --max runs, across pages", function()
      local result = run { "runs", "wf_demo", "--max", "150", "--limit", "40", "--fields", "id", "--format", "tsv",
        "--no-header" }
      local lines = cli.lines(result.stdout)
      assert.are.equal(150, #lines)
      assert.are.equal(expected[150].id, lines[150])
    end)

    it("passes --status, --offset and --limit on", function()
      local seq = sb:last_seq()
      local id = id_of("latency=0")
      local result = run { "runs", id, "--status", "failure", "--offset", "5", "--limit", "7", "--max", "7",
        "--format", "ndjson" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      for _, line in ipairs(cli.lines(result.stdout)) do assert.are.equal("failure", cjson.decode(line).status) end
      local entries = fixtures.requests_for(sb, id, seq)
      assert.are.same({ limit = "7", offset = "5", status = "failure" }, entries[1].query)
    end)
  end)

  describe("page", function()
    it("writes one page as a JSON object", function()
      local result = run { "page", "wf_demo", "--limit", "10", "--offset", "20" }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      local page = cjson.decode(result.stdout)
      assert.are.same({ true, 10, 20 }, { page.hasMore, page.limit, page.offset })
      assert.matches("^req_", page.requestId)
      local want = {}
      for i = 21, 30 do want[#want + 1] = expected[i].id end
      assert.are.same(want, ids(page.items))
    end)
  end)

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

  describe("a closed pipe", function()
    local function huge_requests(seq)
      local n = 0
      for _, entry in ipairs(sb:log(seq)) do
        if entry.workflow_id == "wf_huge" then n = n + 1 end
      end
      return n
    end

    it("ends the walk after the first page, quietly (SIGPIPE)", function()
      local seq = sb:last_seq()
      local result = run({ "runs", "wf_huge" }, { pipe = "head -1" })
      assert.are.equal("", result.stderr)
      assert.are.equal(1, #cli.lines(result.stdout))
      assert.are.equal("wf_huge", cjson.decode(result.stdout).workflowId)
      assert.is_true(huge_requests(seq) <= 8, huge_requests(seq) .. " requests")
      assert.is_true(result.ms < 5000, "took " .. result.ms .. " ms")
    end)

    it("ends the walk with exit 0 and nothing on stderr when SIGPIPE is ignored (EPIPE)", function()
      local seq = sb:last_seq()
      local result = run({ "runs", "wf_huge" }, { pipe = "head -1", sigpipe_ignored = true })
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      assert.are.equal(1, #cli.lines(result.stdout))
      assert.is_true(huge_requests(seq) <= 8, huge_requests(seq) .. " requests")
    end)
  end)

  describe("on a terminal", function()
    it("writes no progress when stderr is not a terminal, --progress forcing it", function()
      local result = run { "runs", "wf_demo" }
      assert.are.equal("", result.stderr)
      result = run { "runs", "wf_demo", "--progress" }
      assert.are.equal("3 pages, 250 runs\n", result.stderr:gsub(", [%d,]+ runs/s", ""))
    end)

    it("gives the rate over the real time the walk took, under a second too", function()
      -- three pages one after the other, each 200 ms late: 0.6 s at least
      local result = run { "runs", id_of("latency=200"), "--progress", "--prefetch", "0" }
      assert.are.equal(0, result.code)
      local rate = result.stderr:match("^3 pages, 250 runs, ([%d,]+) runs/s\n$")
      assert.is_not_nil(rate, result.stderr)
      rate = tonumber((rate:gsub(",", "")))
      -- no faster than 250 runs in 0.6 s, no slower than 250 runs in the process's lifetime
      assert.is_true(rate <= 250 / 0.6 + 1, rate .. " runs/s")
      assert.is_true(rate >= 250 / (result.ms / 1000), rate .. " runs/s in " .. result.ms .. " ms")
    end)

    it("shows progress on stderr, and --quiet silences it", function()
      local result = run({ "runs", "wf_demo" }, { pty = true })
      assert.are.equal(0, result.code)
      assert.matches("3 pages, 250 runs", result.stderr)
      assert.are.equal(250, #cli.lines(result.stdout))
      result = run({ "runs", "wf_demo", "--quiet" }, { pty = true })
      assert.are.same({ "", 0 }, { result.stderr, result.code })
    end)

    it("writes a table to a terminal, bold header unless NO_COLOR is set", function()
      local result = run({ "runs", "wf_demo", "--max", "2", "--fields", "id,status", "--quiet" },
        { pty = true, pty_stdout = true })
      assert.matches("^\27%[1mid%s+status\27%[0m\r\n" .. expected[1].id .. "  running\r\n", result.stdout)
      local plain = {}
      for k, v in pairs(env) do plain[k] = v end
      plain.NO_COLOR = "1"
      result = run({ "runs", "wf_demo", "--max", "2", "--fields", "id,status", "--quiet" },
        { pty = true, pty_stdout = true, env = plain })
      assert.matches("^id%s+status\r\n", result.stdout)
      assert.is_nil(result.stdout:find("\27", 1, true))
    end)
  end)

  -- The rock is built for Lua 5.4 (as tools/rock-smoke.sh builds it); on the other
  -- Luas there is nothing to compare with. (busted's "pending" would count as a
  -- failure in tools/run-tests.sh, so the test is only defined on 5.4.)
  describe("installed by luarocks make", function()
    if cli.lua_name() ~= "lua5.4" then return end
    local tree, log, built, core_before, objects_made
    local core = cli.root .. "workflows/core.so"

    lazy_setup(function()
      tree = os.tmpname()
      os.remove(tree)
      log = tree .. ".log"
      core_before = cli.read_file(core)
      local marker = tree .. ".marker"
      cli.write_file(marker, "")
      local build = "luarocks --lua-version=5.4 make --tree=" .. cli.shell_quote(tree) .. " --deps-mode=none "
        .. 'CURL_INCDIR="$(pkg-config --variable=includedir libcurl)" '
        .. cli.shell_quote(cli.root .. "lua-workflows-scm-1.rockspec") .. " >" .. cli.shell_quote(log)
        .. " 2>&1"
      local status = os.execute(build)
      built = status == true or status == 0
      local pipe = assert(io.popen("find " .. cli.shell_quote(cli.root .. "src") .. " -name '*.o' -newer "
        .. cli.shell_quote(marker)))
      objects_made = pipe:read("*a")
      pipe:close()
      os.remove(marker)
    end)

    lazy_teardown(function()
      if tree then os.execute("rm -rf " .. cli.shell_quote(tree) .. " " .. cli.shell_quote(log)) end
    end)

    it("leaves the checkout as it was: the core make built, and no object files", function()
      assert.is_true(built, cli.read_file(log))
      assert.are.equal("", objects_made)
      assert.is_true(cli.read_file(core) == core_before, "luarocks make replaced " .. core)
    end)

    it("runs as installed, with no LUA_PATH or LUA_CPATH, from any directory", function()
      assert.is_true(built, cli.read_file(log))
      local installed = { LUA_PATH = false, LUA_CPATH = false, LUA_PATH_5_4 = false,
        LUA_CPATH_5_4 = false }
      for k, v in pairs(env) do installed[k] = v end
      for _, cwd in ipairs { tree, "/" } do
        local version = cli.run({ "--version" }, { command = tree .. "/bin/workflows", env = installed,
          cwd = cwd })
        assert.are.same({ "", 0 }, { version.stderr, version.code })
        assert.are.equal("workflows " .. workflows.VERSION .. " (lua-workflows, Lua 5.4)\n",
          version.stdout)
      end
      for _, args in ipairs {
        { "runs", "wf_demo", "--format", "csv" },
        { "runs", "wf_demo", "--format", "json", "--fields", "id,totalCu" },
        { "page", "wf_demo", "--limit", "5" },
      } do
        local mine = run(args)
        local theirs = run(args, { command = tree .. "/bin/workflows", env = installed, cwd = tree })
        assert.are.same({ "", 0 }, { theirs.stderr, theirs.code })
        if args[1] == "page" then
          mine.stdout = mine.stdout:gsub('"requestId":"req_%x+"', "")
          theirs.stdout = theirs.stdout:gsub('"requestId":"req_%x+"', "")
        end
        assert.are.equal(mine.stdout, theirs.stdout)
      end
    end)
  end)
end)
