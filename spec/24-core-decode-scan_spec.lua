-- The scan core.decode_page runs before decoding cuts null members out of the runs'
-- text (decode.c). Here its pages are held against a plain cjson.decode of the same
-- body, normalized in Lua the way API.md promises: thousands of pages built at random
-- (repeated names, nulls everywhere, strings full of quotes, colons, backslashes and
-- the word null, blanks, deep nesting), some of them broken on purpose, and the cases
-- where a careless cut would turn a bad body into a good one.
local core = require "workflows.core"
local cjson = require "cjson"

local has_integers = math.type ~= nil
local format, concat, char = string.format, table.concat, string.char

-- The reference: a decoder set up as the core sets up its own.
local reference = cjson.new()
reference.decode_max_depth(64)
reference.decode_invalid_numbers(false)

local function integral(x)
  return x >= -2 ^ 53 and x <= 2 ^ 53 and x == math.floor(x)
end

-- What the promise makes of a run: no null anywhere in it, integral numbers integers.
local function normalized(value)
  if type(value) ~= "table" then
    if has_integers and type(value) == "number" and integral(value) then
      return math.tointeger(value)
    end
    return value
  end
  local copy = {}
  for k, v in pairs(value) do
    if v ~= cjson.null then copy[k] = normalized(v) end
  end
  return copy
end

-- Deep equality that also tells an integer from a float.
local function same(a, b, path)
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" and has_integers and math.type(a) ~= math.type(b) then
    return false, path .. ": " .. math.type(a) .. " vs " .. math.type(b)
  end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. " is missing" end
  end
  return true
end

-- Decodes `body` both ways and fails where they disagree.
local function agree(body)
  local page, message = core.decode_page(body)
  local ok, expected = pcall(reference.decode, body)
  if not ok then
    assert.is_nil(page, "a page from a body cjson refuses: " .. body)
    assert.equal("invalid JSON: " .. expected, message, body)
    return "refused"
  end
  if not page then
    assert.is_nil(message:match "^invalid JSON", "the core refuses what cjson reads: " .. body)
    return "wrong shape"
  end
  local runs = {}
  for i, run in ipairs(expected.data.items) do runs[i] = normalized(run) end
  local equal, why = same(page.items, runs, "items")
  assert(equal, why and (why .. " in " .. body))
  return "read"
end

-- Each run alone on a page, decoded both ways: every page must come out as `outcome`.
local function each_run_page(runs, outcome)
  for _, run in ipairs(runs) do
    local body = format('{"code":200,"data":{"hasMore":false,"items":[%s],"limit":1,"offset":0}}', run)
    assert.equal(outcome, agree(body), run:sub(1, 80))
  end
end

-- Random pages from a seeded generator, so that a failure comes back the same.
local function generator(seed)
  local state = seed
  local function random(n)                    -- 1..n, a small LCG: the same on every Lua
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n + 1
  end
  local NAMES = { "id", "status", "finishedAt", "sourceRunId", "totalCu", "workflowVersion",
                  "note", "n", "a", "id2", "", "x\\\"y", "a\\\\", "n\\u0075ll" }
  local STRINGS = { "", "null", ":null,", "\\\":null,\\\"", "a,", "{", "}", ",\\\"k\\\":null",
                    "08:57:58", "\\\\", "\\\\\\\"", "\\u0022:null", "[1,2]", "x\\ny" }
  local value
  local function blank()
    local blanks = { "", "", "", " ", "\n", "\t ", "\r\n" }
    return blanks[random(#blanks)]
  end
  local function object(depth)
    local members = {}
    for i = 1, random(6) - 1 do
      members[i] = format('%s"%s"%s:%s%s%s', blank(), NAMES[random(#NAMES)], blank(), blank(),
        value(depth + 1), blank())
    end
    return "{" .. concat(members, ",") .. "}"
  end
  local function array(depth)
    local elements = {}
    for i = 1, random(4) - 1 do elements[i] = blank() .. value(depth + 1) .. blank() end
    return "[" .. concat(elements, ",") .. "]"
  end
  function value(depth)
    local pick = random(depth > 4 and 7 or 9)
    if pick <= 3 then return "null" end
    if pick == 4 then return ({ "0", "-1", "2.5", "1e3", "7.0", "12345678901" })[random(6)] end
    if pick == 5 then return ({ "true", "false" })[random(2)] end
    if pick <= 7 then return '"' .. STRINGS[random(#STRINGS)] .. '"' end
    if pick == 8 then return object(depth) end
    return array(depth)
  end
  local function page()
    local runs = {}
    for i = 1, random(5) - 1 do runs[i] = object(4) end
    return format('{"code":200,"data":{"hasMore":false,"items":[%s],"limit":5,"offset":0},'
      .. '"requestId":"r"}', concat(runs, ","))
  end
  -- One byte changed, dropped or doubled: most such bodies are no JSON at all.
  local function broken(body)
    local at = random(#body)
    local how = random(3)
    if how == 1 then return body:sub(1, at - 1) .. body:sub(at + 1) end
    if how == 2 then return body:sub(1, at) .. body:sub(at) end
    local bytes = { ",", ":", "{", "}", "[", "]", '"', "\\", "n", " " }
    return body:sub(1, at - 1) .. bytes[random(#bytes)] .. body:sub(at + 1)
  end
  return page, broken, random
end

describe("the scan before decoding", function()
  it("reads 3,000 random pages as a plain decode does, nulls and numbers normalized", function()
    local page = generator(20261203)
    local seen = {}
    for _ = 1, 3000 do
      local outcome = agree(page())
      seen[outcome] = (seen[outcome] or 0) + 1
    end
    assert.truthy(seen.read and seen.read > 2000, "most random pages are read")
  end)

  it("refuses what a plain decode refuses, with its message, in 3,000 broken pages", function()
    local page, broken = generator(7)
    local seen = {}
    for _ = 1, 3000 do
      local outcome = agree(broken(page()))
      seen[outcome] = (seen[outcome] or 0) + 1
    end
    assert.truthy(seen.refused and seen.refused > 1000, "most broken pages are refused")
    assert.truthy(seen.read and seen.read > 100, "some broken pages are still JSON")
  end)

  it("cuts no null that would make a bad body good", function()
    each_run_page({
      '{,"k":null}', '{"k":null,}', '{"a":1,,"k":null}', '{"a":1 "k":null}',
      '{"a":[1,"k":null,2]}', '{"a":["x","k":null]}', '{"a":{"b":1},,"k":null}',
      '{"k":null,,"a":1}', '{"k" null}', '{"k":nul}', '{"k":nulll}', '{"k":null "a":1}',
      '{"a":"x,","k":null}}', '{"k":null]', '["k":null]',
      -- names the decoder refuses: a NUL (its end of text), an escape it does not know
      '{"so\0urce":null,"a":1}', '{"a":1,"b\\qc":null}', '{"\\u00zz":null}',
    }, "refused")
  end)

  it("cuts no null inside a string that only looks like a member", function()
    each_run_page({
      [[{"a":["a,",":null,"]}]], [[{"a,":":null,"}]], [[{"x":"a,",":null,":1}]],
      [[{"x":"{\"k\":null,\"y\":1}"}]], [[{"x":"\\","k":null}]], [[{"x":"\\\"","k":null}]],
      [[{"x\"":null,"y":null}]],
    }, "read")
  end)

  it("keeps the last of repeated names, however far apart", function()
    local long = ("x"):rep(5000)
    each_run_page({
      '{"w":2,"w":null}', '{"w":"s","a":1,"w":null}', '{"w" :2,"w":null}',
      '{"w":{"w":1},"w":null}', '{"w":null,"w":3}', '{"w":true,"b":{"c":null},"w":null}',
      format('{"w":1,"pad":"%s","w":null}', long),
      format('{"pad":"%s","w":1,"w":null}', long),
    }, "read")
  end)

  it("keeps the envelope's own nulls, and what they mean", function()
    local page, message = core.decode_page('{"code":200,"data":null}')
    assert.is_nil(page)
    assert.equal("data is null, expected an object", message)
    page, message = core.decode_page('{"code":200,"data":{"hasMore":null,"items":[],"limit":1,'
      .. '"offset":0}}')
    assert.is_nil(page)
    assert.equal("data.hasMore is null, expected a boolean", message)
  end)

  it("tells every member apart at every offset from the start of a block", function()
    local _, _, random = generator(99)
    for pad = 0, 130 do
      local members = {}
      for i = 1, 6 do
        members[i] = ({ '"k%d":null', '"k%d":7', '"k%d" : null', '"k%d":"a\\":null"' })[random(4)]
          :format(i)
      end
      agree(format('{"data":{"hasMore":true,"items":[{"pad":"%s",%s}],"limit":1,"offset":0}}',
        ("p"):rep(pad), concat(members, ",")))
    end
  end)

  it("reads bodies deeper than decoding goes the way a plain decode does", function()
    local deep = ("["):rep(70) .. ("]"):rep(70)
    agree(format('{"data":{"hasMore":true,"items":[{"x":%s,"y":null}],"limit":1,"offset":0}}',
      deep))
    local closes = '{"data":{"hasMore":true,"items":[{"y":null}]}}]]]}'
    agree(closes)
  end)

  it("reads every byte there can be in a string", function()
    local bytes = {}
    for b = 32, 126 do
      if b ~= 34 and b ~= 92 then bytes[#bytes + 1] = char(b) end
    end
    local text = concat(bytes)
    agree(format('{"data":{"hasMore":true,"items":[{"s":"%s","n":null,"m":1}],"limit":1,'
      .. '"offset":0}}', text))
  end)
end)
