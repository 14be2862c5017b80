-- `workflows watch` (bin/workflows): the events of client:watch, one line each,
-- written and flushed as they come. The writers are pure (they return text); `run`
-- does the watching and hands each line to the command's own write and flush.

local output = require "workflows.cli.output"
local errors = require "workflows.errors"
local options = require "workflows.options"

local setmetatable, ipairs, format, concat = setmetatable, ipairs, string.format, table.concat

local M = {}

M.FORMATS = { "ndjson", "tsv", "csv", "table" }

-- The widths the API's values have (ids run_ and 16 hex digits, ISO 8601 times, the
-- longest status and trigger), so that a table written an event at a time lines up.
local WIDTHS = { type = 8, id = 20, workflowId = 8, status = 9, startedAt = 20,
  finishedAt = 20, totalCu = 7, triggerSource = 8, triggeredBy = 21, sourceRunId = 20 }

-- {"type":"changed","run":{...},"previous":{...}}: `previous` only on a change, with
-- null for an old value that was absent.
local function ndjson_line(event, fields)
  local parts = { '{"type":', output.json_value(event.type), ',"run":',
    output.json_run(event.run, fields) }
  local changed = event.fields
  if event.previous and changed then
    local old = {}
    for i, name in ipairs(changed) do
      old[i] = output.json_value(name) .. ":" .. output.json_value(event.previous[name])
    end
    parts[#parts + 1] = ',"previous":{' .. concat(old, ",") .. "}"
  end
  parts[#parts + 1] = "}\n"
  return concat(parts)
end

-- A writer of events: writer:start() before the first, writer:event(event) for each,
-- each returning the text to write. tsv, csv and table put the type in the first
-- column, then the run's fields. `settings` are those of output.writer.
function M.writer(name, settings)
  settings = settings or {}
  if name == "ndjson" then
    return {
      start = function() return "" end,
      event = function(_, event) return ndjson_line(event, settings.fields) end,
    }
  end
  local columns = { "type" }
  for _, field in ipairs(settings.fields or output.run_fields()) do columns[#columns + 1] = field end
  local rows = output.writer(name, { fields = columns, header = settings.header,
    bold = settings.bold, widths = WIDTHS })
  return {
    start = function() return rows:start() end,
    event = function(_, event)
      return rows:page { setmetatable({ type = event.type }, { __index = event.run }) }
    end,
  }
end

-- Adds the watch command to `parser` (argparse); `helpers` are the command's own:
-- common(command, paged) adds the options every command has, seconds(flag),
-- integer(flag) and fields convert values. Returns the command.
function M.define(parser, helpers)
  local watch = parser:command("watch", "New and changed runs as they happen, one line per event.")
  watch:argument("id", "The workflow id.")
  helpers.common(watch, false)
  watch:option("--interval", "Seconds between two polls (default 10, at least 0.1).")
    :argname("<s>"):convert(helpers.seconds("--interval"))
  watch:option("--horizon", "Runs from the head kept in view (default 100).")
    :argname("<n>"):convert(helpers.integer("--horizon"))
  watch:flag("--initial", 'First the runs in view, as "existing" events.')
  watch:option("--until-status", "Exit 0 after the first event whose run has this status.")
    :argname("<status>")
  watch:option("--count", "Exit 0 after this many events.")
    :argname("<n>"):convert(helpers.integer("--count"))
  watch:option("--format", "ndjson, tsv, csv or table (default: table on a terminal, else ndjson).")
    :argname("<format>"):choices(M.FORMATS)
  watch:option("--fields", "The run's fields to write, in order, comma-separated (default: all).")
    :argname("<a,b,...>"):convert(helpers.fields)
  watch:flag("--no-header", "No header line in tsv, csv and table.")
  return watch
end

local function usage(message)
  error(errors.invalid_argument(message), 0)
end

-- Watches `args.id` with `client` until --count events or the first event whose run
-- has --until-status; `out` has write(text), flush() and `format` (the format's name)
-- and `settings` (for the writer).
function M.run(client, args, out)
  if args.count ~= nil and args.count < 1 then
    usage(format('option "count" must be a positive integer (got %s)', options.describe(args.count)))
  end
  local until_status = args.until_status
  if until_status ~= nil then
    local valid = false
    for _, status in ipairs(options.statuses()) do valid = valid or status == until_status end
    if not valid then
      usage(format('option "until_status" must be one of %s (got %s)',
        concat(options.statuses(), ", "), options.describe(until_status)))
    end
  end
  local writer = M.writer(out.format, out.settings)
  local iterator, state, control, watch = client:watch(args.id, {
    status = args.status, limit = args.limit, interval = args.interval,
    horizon = args.horizon, initial = args.initial or nil,
  })
  out.write(writer:start())
  out.flush()
  local seen = 0
  for event in iterator, state, control do
    out.write(writer:event(event))
    out.flush()
    seen = seen + 1
    if (args.count and seen >= args.count) or
        (until_status and event.run.status == until_status) then
      break
    end
  end
  watch:close()
end

return M
