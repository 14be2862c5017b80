-- bin/workflows watch and completion, as a user runs them: a subprocess on the Lua
-- that runs busted, against the sandbox's listings that live by the clock.
local cjson = require "cjson"
local cli = require "spec.support.cli"
local cli_sandbox = require "spec.support.cli_sandbox"
local fixtures = require "spec.support.fixtures"
local watch_command = require "workflows.cli.watch"

local suffix = fixtures.suffix_maker("cli-watch")

-- wf_empty with 2 runs arriving every 100 ms, each finishing 150 ms later.
local function finishing()
  return "wf_empty;every_ms=100;burst=2;finish_ms=150;" .. suffix()
end

describe("bin/workflows watch", function()
  local _, run, _, env = cli_sandbox.block()

  it("writes one NDJSON line per event and exits 0 after --count", function()
    -- a run every 200 ms, finished 400 ms later: seen running at one poll and finished
    -- at a later one unless two polls are more than 400 ms apart (a run that arrives
    -- and finishes between two polls is added as finished: no change was seen)
    local id = "wf_empty;every_ms=200;burst=1;finish_ms=400;" .. suffix()
    local result = run { "watch", id, "--interval", "0.1", "--count", "6",
      "--fields", "id,status,finishedAt" }
    assert.are.same({ "", 0 }, { result.stderr, result.code })
    local lines = cli.lines(result.stdout)
    assert.equal(6, #lines)
    local added, changed = 0, 0
    for _, line in ipairs(lines) do
      local event = cjson.decode(line)
      assert.is_string(event.run.id)
      if event.type == "added" then
        added = added + 1
        assert.is_nil(event.previous)
        if event.run.status == "running" then
          assert.matches('^{"type":"added","run":{"id":"run_%x+","status":"running"}}$', line)
        end
      else
        changed = changed + 1
        assert.equal("changed", event.type)
        assert.equal("running", event.previous.status)
        assert.equal(cjson.null, event.previous.finishedAt)
        assert.is_string(event.run.finishedAt)
      end
    end
    assert.is_true(added >= 1 and changed >= 1, added .. " added, " .. changed .. " changed")
  end)

  it("puts the type first in tsv and exits 0 at the first run with --until-status", function()
    local result = run { "watch", finishing(), "--interval", "0.1", "--until-status", "success",
      "--format", "tsv", "--fields", "id,status" }
    assert.are.same({ "", 0 }, { result.stderr, result.code })
    local lines = cli.lines(result.stdout)
    assert.equal("type\tid\tstatus", lines[1])
    assert.matches("^changed\trun_%x+\tsuccess$", lines[#lines])
    for i = 2, #lines - 1 do
      assert.is_not.matches("\tsuccess$", lines[i])
      assert.matches("^%l+\trun_%x+\t%l+$", lines[i])
    end
  end)

  it("writes the runs in view first with --initial, in csv", function()
    local result = run { "watch", "wf_demo", "--initial", "--count", "3", "--format", "csv",
      "--fields", "id", "--no-header" }
    assert.are.same({ "", 0 }, { result.stderr, result.code })
    local lines = cli.lines(result.stdout)
    assert.equal(3, #lines)
    for _, line in ipairs(lines) do assert.matches("^existing,run_%x+$", line) end
  end)

  it("exits 130 on SIGINT while it waits between polls", function()
    local result = run({ "watch", "wf_demo", "--interval", "30" }, { interrupt_after = 1 })
    assert.are.same({ "", "", 130 }, { result.stdout, result.stderr, result.code })
  end)

  it("exits 1 on a failure and 2 on bad options, naming the flag", function()
    local missing = run { "watch", "wf_missing", "--interval", "0.1" }
    assert.are.same({ "", 1 }, { missing.stdout, missing.code })
    assert.matches("HTTP 404 Not Found: workflow not found", missing.stderr)
    for _, case in ipairs {
      { { "--interval", "0.01" }, "Error: --interval must be a number of seconds, at least 0.1 (got 0.01)" },
      { { "--horizon", "0" }, "Error: --horizon must be an integer in 1..10000 (got 0)" },
      { { "--count", "0" }, "Error: --count must be a positive integer (got 0)" },
      { { "--until-status", "done" }, "Error: --until-status must be one of running, success, "
        .. 'failure, waiting, cancelled (got "done")' },
      { { "--format", "json" }, "Error: argument for option '--format' must be one of 'ndjson', "
        .. "'tsv', 'csv', 'table'" },
    } do
      local args = { "watch", "wf_demo" }
      for _, word in ipairs(case[1]) do args[#args + 1] = word end
      local result = run(args)
      assert.are.same({ "", 2 }, { result.stdout, result.code })
      assert.is_truthy(result.stderr:find(case[2], 1, true), result.stderr)
    end
  end)

  it("exits 4 when the token is refused", function()
    local result = run({ "watch", "wf_demo" },
      { env = { WORKFLOWS_BASE_URL = env.WORKFLOWS_BASE_URL, WORKFLOWS_API_TOKEN = "wrong" } })
    assert.equal(4, result.code)
  end)
end)

describe("bin/workflows completion", function()
  for _, shell in ipairs { "bash", "zsh", "fish" } do
    it("prints a " .. shell .. " script that knows every command and watch's options", function()
      local result = cli.run { "completion", shell }
      assert.are.same({ "", 0 }, { result.stderr, result.code })
      -- fish names a long option without its dashes
      for _, word in ipairs { "runs", "page", "watch", "completion", "until-status",
          "interval", "horizon", "initial" } do
        assert.is_truthy(result.stdout:find(word, 1, true), shell .. " lacks " .. word)
      end
    end)
  end

  it("checks its script with bash itself", function()
    local path = os.tmpname()
    cli.write_file(path, cli.run({ "completion", "bash" }).stdout)
    local ok = os.execute("bash -n " .. cli.shell_quote(path))
    os.remove(path)
    assert.is_true(ok == true or ok == 0)
  end)
end)

describe("workflows.cli.watch writers", function()
  local run = { id = "run_1", status = "failure", totalCu = 2, finishedAt = "2026-11-27T09:00:00Z" }
  local changed = { type = "changed", run = run, previous = { status = "running", totalCu = 1.5 },
    fields = { "status", "finishedAt", "totalCu" } }

  it("writes previous with null for an old value that was absent", function()
    assert.equal('{"type":"changed","run":{"id":"run_1","status":"failure"},'
      .. '"previous":{"status":"running","finishedAt":null,"totalCu":1.5}}\n',
      watch_command.writer("ndjson", { fields = { "id", "status" } }):event(changed))
  end)

  it("writes the type in the first column of csv and table", function()
    local csv = watch_command.writer("csv", { fields = { "id", "totalCu" } })
    assert.equal("type,id,totalCu\n", csv:start())
    assert.equal("changed,run_1,2\n", csv:event(changed))
    local table_writer = watch_command.writer("table", { fields = { "id", "status" } })
    -- columns as wide as the API's values from the first line: lines written one at a
    -- time line up
    assert.equal("type      id                    status\n"
      .. "changed   run_1                 failure\n", table_writer:event(changed))
  end)
end)
