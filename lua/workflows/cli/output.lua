-- The writers of the `workflows` command (bin/workflows): runs turned into NDJSON,
-- one JSON array, TSV, CSV or an aligned table, a page at a time. Pure Lua and
-- free of I/O: every function returns the text to write, so that the command
-- decides when to write and flush, and the specs can check the text itself.

local type, pairs, ipairs, tostring, tonumber, setmetatable = type, pairs, ipairs, tostring, tonumber,
  setmetatable
local format, find, gsub, byte, rep = string.format, string.find, string.gsub, string.byte,
  string.rep
local concat, sort = table.concat, table.sort
local unpack = table.unpack or unpack  -- a global before Lua 5.2
local floor, huge = math.floor, math.huge
local math_type = math.type  -- nil before Lua 5.3

local M = {}

-- The fields of a run, in the order of the API's documentation.
local RUN_FIELDS = { "id", "workflowId", "workflowVersion", "status", "startedAt", "finishedAt",
  "totalCu", "triggerSource", "triggeredBy", "sourceRunId", "isSimulation", "isDustTest" }
local IS_RUN_FIELD = {}
for i, name in ipairs(RUN_FIELDS) do IS_RUN_FIELD[name] = i end

M.FORMATS = { "ndjson", "json", "tsv", "csv", "table" }

-- The fields of a run in the API's order: a fresh copy.
function M.run_fields()
  return { unpack(RUN_FIELDS) }
end

-- ------------------------------------------------------------------ values

-- Integral numbers print without a fraction or an exponent ("100000", never
-- "1e+05" or "100000.0"); other numbers in the fewest digits that read back as
-- the same double. nil for NaN and the infinities, which JSON cannot hold.
local function number_text(value)
  if value ~= value or value == huge or value == -huge then return nil end
  if math_type and math_type(value) == "integer" then return format("%d", value) end
  if value == floor(value) and value > -1e21 and value < 1e21 then
    return format("%.0f", value)
  end
  for digits = 14, 17 do
    local text = format("%." .. digits .. "g", value)
    if tonumber(text) == value then return text end
  end
  return format("%.17g", value)
end
M.number_text = number_text

local JSON_ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_escape(char)
  return JSON_ESCAPES[char] or format("\\u%04x", byte(char))
end

local function json_string(text)
  if find(text, '[%c"\\]') then text = gsub(text, '[%z\1-\31"\\]', json_escape) end
  return '"' .. text .. '"'
end

local json_value

local function is_array(value)
  local n = #value
  for key in pairs(value) do
    if type(key) ~= "number" or key < 1 or key > n or key ~= floor(key) then return false end
  end
  return n > 0 or next(value) == nil
end

-- Values that are not in the API today (a table in a field of a future version)
-- still come out as JSON, keys sorted so that the output is stable.
local function json_table(value)
  local parts = {}
  if is_array(value) then
    for i = 1, #value do parts[i] = json_value(value[i]) end
    return "[" .. concat(parts, ",") .. "]"
  end
  local keys = {}
  for key in pairs(value) do keys[#keys + 1] = tostring(key) end
  sort(keys)
  for i, key in ipairs(keys) do
    local item = value[key]
    if item == nil then item = value[tonumber(key)] end
    parts[i] = json_string(key) .. ":" .. json_value(item)
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- `value` as text: strings through `string_text`, numbers as in JSON, booleans as
-- true/false, tables as JSON, anything else (nil, a NaN) as `missing`.
local function text_of(value, string_text, missing)
  local kind = type(value)
  if kind == "string" then return string_text(value) end
  if kind == "number" then return number_text(value) or missing end
  if kind == "boolean" then return value and "true" or "false" end
  if kind == "table" then return json_table(value) end
  return missing
end

function json_value(value)
  return text_of(value, json_string, "null")
end
M.json_value = json_value

-- '"name":' for each field of a run, made once.
local KEY_PREFIX = setmetatable({}, { __index = function(cache, name)
  local prefix = json_string(name) .. ":"
  cache[name] = prefix
  return prefix
end })

-- Fields a run has that the API does not document (a newer server), sorted; nil
-- when there are none, which is always, today.
local function extra_keys(run)
  local extra
  for key in pairs(run) do
    if not IS_RUN_FIELD[key] then
      extra = extra or {}
      extra[#extra + 1] = tostring(key)
    end
  end
  if extra then sort(extra) end
  return extra
end

-- One run as a JSON object: `fields` in their order, or else the API's fields in
-- API order followed by any others, sorted. Absent fields are left out, as the
-- API leaves them out or sends null. (Hot: one call per run of a walk.)
local function json_run(run, fields)
  local parts, n = {}, 0
  local names = fields or RUN_FIELDS
  for i = 1, #names do
    local name = names[i]
    local value = run[name]
    if value ~= nil then
      n = n + 1
      if type(value) == "string" and not find(value, '[%c"\\]') then
        parts[n] = KEY_PREFIX[name] .. '"' .. value .. '"'
      else
        parts[n] = KEY_PREFIX[name] .. json_value(value)
      end
    end
  end
  if not fields then
    local extra = extra_keys(run)
    if extra then
      for _, key in ipairs(extra) do
        n = n + 1
        parts[n] = KEY_PREFIX[key] .. json_value(run[key])
      end
    end
  end
  return "{" .. concat(parts, ",") .. "}"
end
M.json_run = json_run

-- A value as the text of one cell: numbers as in JSON, booleans as true/false,
-- absent as "", tables as JSON.
local function as_is(text) return text end

local function cell_text(value)
  return text_of(value, as_is, "")
end
M.cell_text = cell_text

-- TSV cannot quote, so a tab, a line break or a backslash in a value is written
-- as \t, \n, \r or \\ (the escapes of PostgreSQL's text COPY format).
local TSV_ESCAPES = { ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r", ["\\"] = "\\\\" }

local function tsv_cell(value)
  local text = cell_text(value)
  if find(text, "[\t\n\r\\]") then text = gsub(text, "[\t\n\r\\]", TSV_ESCAPES) end
  return text
end
M.tsv_cell = tsv_cell

-- RFC 4180: a value holding a comma, a double quote or a line break is quoted,
-- its double quotes doubled.
local function csv_cell(value)
  local text = cell_text(value)
  if find(text, '[,"\r\n]') then text = '"' .. gsub(text, '"', '""') .. '"' end
  return text
end
M.csv_cell = csv_cell

-- A table cell shows every character on one line: control characters as escapes.
local function table_cell(value)
  local text = cell_text(value)
  if find(text, "[%c\\]") then
    text = gsub(text, "[%z\1-\31\127\\]", function(char)
      return TSV_ESCAPES[char] or format("\\x%02x", byte(char))
    end)
  end
  return text
end

-- ------------------------------------------------------------------ --fields

-- "id,startedAt,totalCu" as a list of names; nil and a message when a name is
-- empty, repeated or not a field of a run (with a suggestion for a near miss).
function M.parse_fields(text)
  local fields, seen = {}, {}
  for name in (text .. ","):gmatch("([^,]*),") do
    name = name:match("^%s*(.-)%s*$")
    if name == "" then return nil, "empty field name in --fields " .. format("%q", text) end
    if not IS_RUN_FIELD[name] then
      local lowered = name:lower()
      for _, known in ipairs(RUN_FIELDS) do
        if known:lower() == lowered then
          return nil, format('unknown field "%s" (did you mean "%s"?)', name, known)
        end
      end
      return nil, format('unknown field "%s" (fields: %s)', name, concat(RUN_FIELDS, ","))
    end
    if seen[name] then return nil, format('field "%s" given twice', name) end
    seen[name] = true
    fields[#fields + 1] = name
  end
  return fields
end

-- ------------------------------------------------------------------ writers

-- A writer has three methods, each returning the text to write (maybe ""):
--   writer:start()      before the first page (a header, "[")
--   writer:page(runs)   one page of runs
--   writer:finish()     after the last page ("]")
-- options: fields (list or nil), header (boolean, default true), bold (function
-- wrapping the table's header line, for a terminal), widths (table only: name -> the
-- least width of that column).

local function lines_writer(encode_run)
  return {
    start = function() return "" end,
    page = function(_, runs)
      if #runs == 0 then return "" end
      local lines = {}
      for i, run in ipairs(runs) do lines[i] = encode_run(run) end
      return concat(lines, "\n") .. "\n"
    end,
    finish = function() return "" end,
  }
end

local function ndjson_writer(options)
  local fields = options.fields
  return lines_writer(function(run) return json_run(run, fields) end)
end

-- One array, written as the pages come: "[" first, one run per line, "]" last.
local function json_writer(options)
  local fields, written = options.fields, 0
  return {
    start = function() return "[" end,
    page = function(_, runs)
      if #runs == 0 then return "" end
      local parts = {}
      for i, run in ipairs(runs) do parts[i] = json_run(run, fields) end
      local lead = written == 0 and "\n" or ",\n"
      written = written + #runs
      return lead .. concat(parts, ",\n")
    end,
    finish = function() return written == 0 and "]\n" or "\n]\n" end,
  }
end

local function delimited_writer(options, separator, cell)
  local fields = options.fields or RUN_FIELDS
  local header = options.header ~= false
  return {
    start = function()
      if not header then return "" end
      local names = {}
      for i, name in ipairs(fields) do names[i] = cell(name) end
      return concat(names, separator) .. "\n"
    end,
    page = function(_, runs)
      if #runs == 0 then return "" end
      local lines, cells = {}, {}
      for i, run in ipairs(runs) do
        for j, name in ipairs(fields) do cells[j] = cell(run[name]) end
        lines[i] = concat(cells, separator)
      end
      return concat(lines, "\n") .. "\n"
    end,
    finish = function() return "" end,
  }
end

-- UTF-8 text's width in characters (continuation bytes do not count).
local function width(text)
  local _, continuation = gsub(text, "[\128-\191]", "")
  return #text - continuation
end

local function pad(text, size, right)
  local gap = size - width(text)
  if gap <= 0 then return text end
  if right then return rep(" ", gap) .. text end
  return text .. rep(" ", gap)
end

-- Columns two spaces apart, numbers to the right. The widths come from the header
-- and the first page, and grow when a later page brings a longer value, so that
-- nothing but one page is ever held.
local function table_writer(options)
  local fields = options.fields or RUN_FIELDS
  local header = options.header ~= false
  local bold = options.bold or function(text) return text end
  local widths, header_written = {}, false
  -- options.widths: the least width of some columns, by field name, so that lines
  -- written one at a time (a watch's) line up from the first
  local least = options.widths or {}
  for i, name in ipairs(fields) do
    widths[i] = header and width(name) or 0
    if (least[name] or 0) > widths[i] then widths[i] = least[name] end
  end

  local function line(cells, numeric)
    local out = {}
    for i, text in ipairs(cells) do
      local last = i == #cells
      out[i] = (last and not numeric[i]) and text or pad(text, widths[i], numeric[i])
    end
    return concat(out, "  ")
  end

  return {
    start = function() return "" end,
    page = function(_, runs)
      local rows, numeric, out = {}, {}, {}
      for r, run in ipairs(runs) do
        local cells = {}
        for i, name in ipairs(fields) do
          local value = run[name]
          cells[i] = table_cell(value)
          if type(value) == "number" then numeric[i] = true end
          local w = width(cells[i])
          if w > widths[i] then widths[i] = w end
        end
        rows[r] = cells
      end
      if header and not header_written then
        header_written = true
        out[1] = bold(line(fields, numeric))
      end
      for _, cells in ipairs(rows) do out[#out + 1] = line(cells, numeric) end
      if #out == 0 then return "" end
      return concat(out, "\n") .. "\n"
    end,
    finish = function(self)
      -- an empty listing still shows its header
      if header and not header_written then return self:page({}) end
      return ""
    end,
  }
end

local WRITERS = {
  ndjson = ndjson_writer,
  json = json_writer,
  tsv = function(options) return delimited_writer(options, "\t", tsv_cell) end,
  csv = function(options) return delimited_writer(options, ",", csv_cell) end,
  table = table_writer,
}

function M.writer(name, options)
  local make = WRITERS[name]
  if not make then error(format("unknown format %q", tostring(name)), 2) end
  return make(options or {})
end

return M
