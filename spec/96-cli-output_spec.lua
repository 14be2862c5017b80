-- The writers behind bin/workflows (lua/workflows/cli/output.lua), on values the
-- sandbox never sends: commas, quotes, line breaks, tabs, backslashes, big and
-- fractional numbers.
local output = require "workflows.cli.output"
local cli = require "spec.support.cli"
local cjson = require "cjson"

local RUN = {
  id = "run_1", workflowId = 'wf,"x"', workflowVersion = 7, status = "failure",
  startedAt = "2026-11-27T08:15:02Z", totalCu = 3.75, triggerSource = "api",
  triggeredBy = "user_a\nb", isSimulation = false, isDustTest = true,
}

describe("workflows.cli.output", function()
  describe("number_text()", function()
    it("writes integral numbers without a fraction or an exponent", function()
      assert.are.equal("100000", output.number_text(100000))
      assert.are.equal("123", output.number_text(123.0))
      assert.are.equal("9007199254740992", output.number_text(2 ^ 53))
      assert.are.equal("1000000000000000", output.number_text(1e15))
      assert.are.equal("-5", output.number_text(-5))
    end)

    it("writes fractions in the fewest digits that read back the same", function()
      assert.are.equal("3.75", output.number_text(3.75))
      assert.are.equal("0.1", output.number_text(0.1))
      assert.are.equal("100000000000000.5", output.number_text(1e14 + 0.5))
      assert.are.equal(1 / 3, tonumber(output.number_text(1 / 3)))
    end)

    it("has no text for NaN and the infinities", function()
      assert.is_nil(output.number_text(0 / 0))
      assert.is_nil(output.number_text(math.huge))
      assert.are.equal("null", output.json_value(-math.huge))
    end)
  end)

  describe("json_run()", function()
    it("writes the fields in API order, leaving absent ones out", function()
      assert.are.equal('{"id":"run_1","workflowId":"wf,\\"x\\"","workflowVersion":7,'
        .. '"status":"failure","startedAt":"2026-11-27T08:15:02Z","totalCu":3.75,'
        .. '"triggerSource":"api","triggeredBy":"user_a\\nb","isSimulation":false,"isDustTest":true}',
        output.json_run(RUN))
    end)

    it("writes only the given fields, in their order", function()
      assert.are.equal('{"totalCu":3.75,"id":"run_1"}',
        output.json_run(RUN, { "totalCu", "sourceRunId", "id" }))
    end)

    it("escapes control characters and keeps fields it does not know, sorted, at the end", function()
      local text = output.json_run { id = "a\1b\t\\", zeta = { 1, 2 }, alpha = { k = true } }
      assert.are.equal('{"id":"a\\u0001b\\t\\\\","alpha":{"k":true},"zeta":[1,2]}', text)
      assert.are.same({ id = "a\1b\t\\", zeta = { 1, 2 }, alpha = { k = true } }, cjson.decode(text))
    end)
  end)

  describe("csv_cell()", function()
    it("quotes values with commas, quotes or line breaks as RFC 4180 says", function()
      assert.are.equal("plain", output.csv_cell("plain"))
      assert.are.equal('"a,b"', output.csv_cell("a,b"))
      assert.are.equal('"say ""hi"""', output.csv_cell('say "hi"'))
      assert.are.equal('"two\nlines"', output.csv_cell("two\nlines"))
      assert.are.equal('"cr\r"', output.csv_cell("cr\r"))
      assert.are.equal("", output.csv_cell(nil))
      assert.are.equal("false", output.csv_cell(false))
      assert.are.equal("12", output.csv_cell(12.0))
    end)
  end)

  describe("tsv_cell()", function()
    it("escapes tabs, line breaks and backslashes", function()
      assert.are.equal("a\\tb\\nc\\rd\\\\e", output.tsv_cell("a\tb\nc\rd\\e"))
      assert.are.equal("", output.tsv_cell(nil))
    end)
  end)

  describe("parse_fields()", function()
    it("reads a comma-separated list of run fields", function()
      assert.are.same({ "id", "startedAt", "totalCu" }, output.parse_fields("id, startedAt,totalCu"))
    end)

    it("rejects unknown, repeated and empty names", function()
      assert.are.same({ nil, 'unknown field "startedat" (did you mean "startedAt"?)' },
        { output.parse_fields("id,startedat") })
      assert.are.same({ nil, 'field "id" given twice' }, { output.parse_fields("id,id") })
      assert.are.same({ nil, 'empty field name in --fields "id,"' }, { output.parse_fields("id,") })
      local _, problem = output.parse_fields("nope")
      assert.matches('^unknown field "nope" %(fields: id,workflowId,', problem)
    end)
  end)

  describe("writer()", function()
    local function all(name, options, pages)
      local writer = output.writer(name, options)
      local parts = { writer:start() }
      for _, runs in ipairs(pages) do parts[#parts + 1] = writer:page(runs) end
      parts[#parts + 1] = writer:finish()
      return table.concat(parts)
    end

    it("csv: a header, then one record per run that an RFC 4180 reader reads back", function()
      local text = all("csv", { fields = { "id", "workflowId", "triggeredBy", "sourceRunId" } },
        { { RUN }, {}, { RUN } })
      assert.are.same({
        { "id", "workflowId", "triggeredBy", "sourceRunId" },
        { "run_1", 'wf,"x"', "user_a\nb", "" },
        { "run_1", 'wf,"x"', "user_a\nb", "" },
      }, cli.parse_csv(text))
    end)

    it("tsv: no header with header = false", function()
      assert.are.equal("run_1\t3.75\n", all("tsv", { fields = { "id", "totalCu" }, header = false },
        { { RUN } }))
    end)

    it("json: one array across pages, and [] when there is nothing", function()
      local text = all("json", { fields = { "id" } }, { { RUN }, {}, { RUN, RUN } })
      assert.are.equal('[\n{"id":"run_1"},\n{"id":"run_1"},\n{"id":"run_1"}\n]\n', text)
      assert.are.equal("[]\n", all("json", {}, { {} }))
    end)

    it("ndjson: one object per line", function()
      assert.are.equal('{"id":"run_1"}\n{"id":"run_1"}\n', all("ndjson", { fields = { "id" } },
        { { RUN }, { RUN } }))
    end)

    it("table: aligned columns, numbers to the right, widened by later pages", function()
      local text = all("table", { fields = { "id", "totalCu", "status" } },
        { { { id = "a", totalCu = 1, status = "x" } }, { { id = "longer", totalCu = 12.5, status = "y" } } })
      assert.are.equal(table.concat({
        "id  totalCu  status",
        "a         1  x",
        "longer     12.5  y",
      }, "\n") .. "\n", text)
    end)

    it("table: shows the header of an empty listing, and escapes control characters", function()
      assert.are.equal("id\n", all("table", { fields = { "id" } }, { {} }))
      assert.are.equal("id\na\\nb\n", all("table", { fields = { "id" } }, { { { id = "a\nb" } } }))
    end)

    it("refuses an unknown format", function()
      assert.has_error(function() output.writer("xml") end, 'unknown format "xml"')
    end)
  end)
end)
