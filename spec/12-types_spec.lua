-- lua/workflows/types.lua is read by editors, never run: these specs hold it to the
-- code, so that an option, a transport or a method cannot be added on one side only.
local options = require "workflows.options"
local transport = require "workflows.transport"
local workflows = require "workflows"

local TYPES = "lua/workflows/types.lua"

local function read_types()
  local file = assert(io.open(TYPES, "r"))
  local text = file:read("*a")
  file:close()
  return text
end

local function sorted(list)
  local copy = {}
  for i, value in ipairs(list) do copy[i] = value end
  table.sort(copy)
  return copy
end

-- The names in `list` that `other` lacks, sorted.
local function missing_from(other, list)
  local has = {}
  for _, name in ipairs(other) do has[name] = true end
  local missing = {}
  for _, name in ipairs(list) do
    if not has[name] then missing[#missing + 1] = name end
  end
  return sorted(missing)
end

-- What the code has that types.lua lacks, and the other way round; both empty
-- when they agree.
local function disagreement(in_code, annotated)
  annotated = annotated or {}
  return { not_annotated = missing_from(annotated, in_code),
    annotated_only = missing_from(in_code, annotated) }
end

local AGREE = { not_annotated = {}, annotated_only = {} }

local function lines_of(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

-- The fields annotated under `---@class <class>`, in order.
local function fields_of(text, class)
  local fields, inside = {}, false
  for _, line in ipairs(lines_of(text)) do
    if inside then
      local field = line:match("^%-%-%-@field ([%w_]+)")
      if not field then break end
      fields[#fields + 1] = field
    elseif line == "---@class " .. class then
      inside = true
    end
  end
  return fields
end

-- The strings of `---@alias <alias> "a"|"b"|...`.
local function alias_strings(text, alias)
  local values
  for _, line in ipairs(lines_of(text)) do
    local rest = line:match("^%-%-%-@alias " .. alias:gsub("%.", "%%.") .. " (.*)$")
    if rest then
      values = {}
      for value in rest:gmatch('"([^"]*)"') do values[#values + 1] = value end
    end
  end
  return values
end

-- The names of the functions annotated as `function <owner>:name(` or `<owner>.name(`.
local function functions_of(text, owner)
  local names = {}
  for _, line in ipairs(lines_of(text)) do
    local name = line:match("^function " .. owner .. "[:.]([%w_]+)%(")
    if name then names[#names + 1] = name end
  end
  return names
end

-- The methods a metatable's __index offers callers: no metamethods.
local function methods_of(object)
  local names = {}
  for name, value in pairs(getmetatable(object).__index) do
    if type(value) == "function" and name:sub(1, 2) ~= "__" then names[#names + 1] = name end
  end
  return names
end

describe("lua/workflows/types.lua", function()
  local text = read_types()

  it("annotates every option of workflows.new, and no other", function()
    assert.same(AGREE, disagreement(options.names().client, fields_of(text, "workflows.Options")))
  end)

  it("annotates every option of list_runs, and no other", function()
    assert.same(AGREE, disagreement(options.names().list, fields_of(text, "workflows.ListOptions")))
  end)

  it("annotates every option of runs and pages, and no other", function()
    assert.same(AGREE, disagreement(options.names().walk, fields_of(text, "workflows.WalkOptions")))
  end)

  it("annotates every option of watch, and no other", function()
    assert.same(AGREE, disagreement(options.names().watch, fields_of(text, "workflows.WatchOptions")))
  end)

  it("names every value the transport option takes", function()
    assert.same(AGREE, disagreement(transport.names(), alias_strings(text, "workflows.Transport")))
  end)

  it("names every status", function()
    assert.same(AGREE, disagreement(workflows.STATUSES, alias_strings(text, "workflows.Status")))
  end)

  it("annotates the module's fields and functions", function()
    local names = {}
    for name in pairs(workflows) do names[#names + 1] = name end
    local annotated = fields_of(text, "workflows")
    for _, name in ipairs(functions_of(text, "workflows")) do annotated[#annotated + 1] = name end
    assert.same(AGREE, disagreement(names, annotated))
  end)

  it("annotates every method of a client, of a walk and of a watch", function()
    local client = workflows.new { token = "sandbox-token", base_url = "http://127.0.0.1:9" }
    local _, _, _, walk = client:runs("wf_types")
    local _, _, _, watch = client:watch("wf_types")
    local client_methods, walk_methods = methods_of(client), methods_of(walk)
    local watch_methods = methods_of(watch)
    walk:close()
    watch:close()
    client:close()
    assert.same(AGREE, disagreement(client_methods, functions_of(text, "Client")))
    assert.same(AGREE, disagreement(walk_methods, functions_of(text, "Walk")))
    assert.same(AGREE, disagreement(watch_methods, functions_of(text, "Watch")))
  end)

  describe("the check itself", function()
    it("tells what each side lacks", function()
      assert.same({ not_annotated = { "b", "d" }, annotated_only = { "x" } },
        disagreement({ "d", "a", "b" }, { "a", "x" }))
      assert.same({ not_annotated = { "a" }, annotated_only = {} }, disagreement({ "a" }, nil))
    end)

    it("finds the fields of a class up to the first line that is not a field", function()
      local sample = "---@class a.B\n---@field one? string\n---@field two integer x\n\n---@field three"
      assert.same({ "one", "two" }, fields_of(sample, "a.B"))
      assert.same({}, fields_of(sample, "a.C"))
    end)

    it("finds the strings of an alias", function()
      assert.same({ "x", "y z" }, alias_strings('---@alias a.T "x"|"y z"', "a.T"))
      assert.is_nil(alias_strings('---@alias a.T "x"', "aXT"))
    end)
  end)
end)
