-- bin/workflows as a user runs it: a subprocess on the Lua that runs busted, against
-- the sandbox. A pipe closed early, progress on a terminal only, and the command that
-- `luarocks make` installs.
local cjson = require "cjson"
local workflows = require "workflows"
local cli = require "spec.support.cli"
local cli_sandbox = require "spec.support.cli_sandbox"

local id_of = cli_sandbox.id_of

describe("bin/workflows", function()
  local sb, run, expected, env = cli_sandbox.block()

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
