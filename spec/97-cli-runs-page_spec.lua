-- bin/workflows as a user runs it: a subprocess on the Lua that runs busted, against
-- the sandbox. `runs` parsed back in every format, and `page`.
local cjson = require "cjson"
local fixtures = require "spec.support.fixtures"
local cli = require "spec.support.cli"
local cli_sandbox = require "spec.support.cli_sandbox"

local RUN_FIELDS = { "id", "workflowId", "workflowVersion", "status", "startedAt", "finishedAt",
  "totalCu", "triggerSource", "triggeredBy", "sourceRunId", "isSimulation", "isDustTest" }

local id_of = cli_sandbox.id_of

describe("bin/workflows", function()
  local sb, run, expected = cli_sandbox.block()

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
end)
