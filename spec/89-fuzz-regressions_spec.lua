-- Every input that ever crashed the response fuzzer (fuzz/regressions/) replayed
-- through the decoder, and through the client against the sandbox where the same
-- bytes can come from a real server.
local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

local DIR = "fuzz/regressions"

local function read_file(path)
  local file = assert(io.open(path, "rb"))
  local content = file:read("*a")
  file:close()
  return content
end

local function regression_files()
  local names = {}
  local pipe = assert(io.popen("ls " .. DIR))
  for name in pipe:lines() do names[#names + 1] = name end
  pipe:close()
  table.sort(names)
  return names
end

-- The harness's input (see fuzz/response_fuzzer.c): "STATUS [CURLCODE [MAX_BODY]]",
-- header lines, an empty line, the body; anything else is the body of a 200.
local function parse_input(input)
  if not input:find("^%d") then return { status = 200, headers = {}, body = input } end
  local status = tonumber(input:match("^(%d+)"))
  local headers = {}
  local at = (input:find("\n", 1, true) or #input) + 1
  while at <= #input do
    local eol = input:find("\n", at, true) or #input + 1
    local line = input:sub(at, eol - 1)
    at = eol + 1
    if line == "" or line == "\r" then return { status = status, headers = headers, body = input:sub(at) } end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  return { status = status, headers = headers, body = "" }
end

-- What each known regression was, and what the decoder must make of it now.
local KNOWN = {
  ["empty-items-array"] = {
    -- data.items = [] sent is_array() to lua_next with an index its own push had
    -- moved: a segfault on every empty page (src/decode.c).
    check = function(page, message)
      assert.is_nil(message)
      assert.same({ hasMore = false, items = {}, limit = 1, offset = 0 }, page)
    end,
  },
}

describe("fuzz regressions", function()
  local files = regression_files()

  it("are kept in " .. DIR, function()
    assert.is_true(#files >= 1)
    for name in pairs(KNOWN) do
      local found = false
      for _, file in ipairs(files) do found = found or file == name end
      assert.is_true(found, name .. " is missing")
    end
  end)

  for _, name in ipairs(files) do
    it(name .. " decodes to a page or a message, and never crashes", function()
      local input = parse_input(read_file(DIR .. "/" .. name))
      local ok, page, message = pcall(core.decode_page, input.body, input.headers["x-request-id"])
      assert.is_true(ok, page)
      if page == nil then
        assert.equal("string", type(message))
      else
        assert.equal("table", type(page.items))
        assert.equal("boolean", type(page.hasMore))
      end
      assert.is_true(pcall(core.decode_envelope, input.body))
      if KNOWN[name] then KNOWN[name].check(page, message) end
    end)
  end

  describe("through a client and the sandbox", function()
    local sb = fixtures.sandbox()

    -- empty-items-array: the sandbox sends data.items = [] for an empty listing and
    -- for a page past the end of one.
    it("an empty listing is an empty page", function()
      local client = sb:new_client()
      local page, err = client:list_runs("wf_empty")
      assert.is_nil(err)
      assert.same({}, page.items)
      assert.is_false(page.hasMore)
      page, err = client:list_runs("wf_demo", { offset = 1000 })
      assert.is_nil(err)
      assert.same({}, page.items)
      local count = 0
      for _ in client:runs("wf_empty") do count = count + 1 end
      for _ in client:pages("wf_demo", { offset = 250 }) do count = count + 1 end
      assert.equal(1, count)                   -- wf_demo's one empty page past its end
    end)
  end)
end)
