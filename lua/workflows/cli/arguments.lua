-- The command line of bin/workflows: its commands, options and their checks (argparse),
-- apart from what the commands do.
local workflows = require "workflows"
local output = require "workflows.cli.output"
local watch_command = require "workflows.cli.watch"
local argparse = require "argparse"

local format, concat = string.format, table.concat
local stderr = io.stderr

local M = {}

local function integer(name)
  return function(text)
    local value = tonumber(text)
    if value == nil or value ~= math.floor(value) or value ~= value then
      return nil, format("%s: expected an integer (got '%s')", name, text)
    end
    return math.tointeger and math.tointeger(value) or value
  end
end

local function seconds(name)
  return function(text)
    local value = tonumber(text)
    if value == nil or value ~= value then
      return nil, format("%s: expected a number of seconds (got '%s')", name, text)
    end
    return value
  end
end

local function fields_list(text)
  local fields, problem = output.parse_fields(text)
  if not fields then return nil, "--fields: " .. problem end
  return fields
end

-- The command's parser, and its subcommands by name. `--version` and usage errors
-- exit with `exit_codes`' ok and usage; --help names `homepage`.
function M.parser(exit_codes, homepage)
  local parser = argparse("workflows", "The runs of a workflow, from the Workflows API.")
    :epilog("The token is read from $WORKFLOWS_API_TOKEN or --token-file, never from the\n"
      .. "command line. Exit codes: 0 ok, 1 failure, 2 usage, 4 token refused, 130 interrupted.\n"
      .. "Documentation: lua-workflows' README.md, sections \"The command\" and\n"
      .. "\"Install the command\" (" .. homepage .. ").")
    :command_target("command")
  parser:flag("--version", "Print the version and exit.")
    :action(function()
      print(format("workflows %s (lua-workflows, %s)", workflows.VERSION,
        rawget(_G, "jit") and jit.version or _VERSION))
      os.exit(exit_codes.ok)
    end)

  local function common(command, paged)
    command:option("--base-url", "Server (default: $WORKFLOWS_BASE_URL or https://api.example.com).")
      :argname("<url>")
    command:option("--token-file", "Read the token from this file (one trailing newline is dropped).")
      :argname("<path>")
    command:option("--timeout", "Seconds for one request attempt (default 30).")
      :argname("<s>"):convert(seconds("--timeout"))
    command:option("--status", "Only runs with this status: " .. concat(workflows.STATUSES, ", ") .. ".")
      :argname("<status>")
    command:option("--limit", "Runs per page (1..100).")
      :argname("<n>"):convert(integer("--limit"))
    if paged == false then return end
    command:option("--offset", "Start at this position in the listing.")
      :argname("<n>"):convert(integer("--offset"))
  end

  local runs = parser:command("runs", "Every run of a workflow, page after page, as it arrives.")
  runs:argument("id", "The workflow id.")
  common(runs)
  runs:option("--max", "Stop after this many runs.")
    :argname("<n>"):convert(integer("--max"))
  runs:option("--prefetch", 'Pages requested ahead: "auto" (the default) or 0..64.')
    :argname("<n>"):convert(function(text)
      if text == "auto" then return text end
      return integer("--prefetch")(text)
    end)
  runs:option("--deadline", "Seconds for the whole walk.")
    :argname("<s>"):convert(seconds("--deadline"))
  runs:option("--format", "ndjson, json, tsv, csv or table (default: table on a terminal, else ndjson).")
    :argname("<format>"):choices(output.FORMATS)
  runs:option("--fields", "Columns or keys to write, in order, comma-separated (default: every field).")
    :argname("<a,b,...>"):convert(fields_list)
  runs:flag("--no-header", "No header line in tsv, csv and table.")
  runs:mutex(
    runs:flag("-q --quiet", "No progress on stderr."),
    runs:flag("--progress", "Progress on stderr even when it is not a terminal.")
  )

  local page = parser:command("page", "One page of runs, as a JSON object.")
  page:argument("id", "The workflow id.")
  common(page)
  page:option("--deadline", "Seconds for the call with its retries.")
    :argname("<s>"):convert(seconds("--deadline"))

  local watch = watch_command.define(parser, { common = common, seconds = seconds,
    integer = integer, fields = fields_list })
  parser:add_complete_command()

  -- argparse's own error handler exits with 1; usage errors here exit with 2.
  parser.error = function(current, message)
    stderr:write(format("%s\n\nError: %s\n", current:get_usage(), message))
    os.exit(exit_codes.usage)
  end
  return parser, { runs = runs, page = page, watch = watch }
end

return M
