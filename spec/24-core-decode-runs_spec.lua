-- core.decode_page on runs of every shape the API allows: the fields a run usually
-- has, and members it may add (other nulls, other numbers, nested values), in
-- compact and in spaced-out JSON, with colons, quotes and "null" inside strings.
-- Every JSON null comes out nil and every integral number an integer (on Luas that
-- have integers), whatever the page looks like.
local core = require "workflows.core"

local has_integers = math.type ~= nil
local format, concat = string.format, table.concat

-- The type an integral JSON number must have: "integer" where Lua has them.
local function assert_integer(value, what)
  assert.is_number(value, what)
  assert.equal(math.floor(value), value, what)
  if has_integers then assert.equal("integer", math.type(value), what) end
end

local function assert_float(value, what)
  assert.is_number(value, what)
  if has_integers then assert.equal("float", math.type(value), what) end
end

local function page_of(runs_json, envelope_extra)
  return format('{"code":200,"data":{"hasMore":false,"items":[%s],"limit":100,"offset":0%s},'
    .. '"message":"success","requestId":"req-1"}', concat(runs_json, ","), envelope_extra or "")
end

local function decode(body)
  local page, message = core.decode_page(body, "header-id")
  assert(page, message)
  return page
end

-- Walks a decoded value and fails on any JSON null sentinel or integral float in it.
local function assert_normal(value, path)
  if type(value) == "userdata" then error(path .. " is a null sentinel") end
  if type(value) == "number" and value == math.floor(value) then assert_integer(value, path) end
  if type(value) == "table" then
    for k, v in pairs(value) do assert_normal(v, path .. "." .. tostring(k)) end
  end
end

local RUN = '{"id":"run_%d","workflowId":"wf","workflowVersion":%d,"status":"waiting",'
  .. '"startedAt":"2026-11-27T08:57:58Z","finishedAt":null,"totalCu":%s,'
  .. '"triggerSource":"api","triggeredBy":"user","sourceRunId":null,'
  .. '"isSimulation":false,"isDustTest":false}'

describe("core.decode_page", function()
  it("makes integers of a run's integral numbers and nil of its nulls", function()
    local page = decode(page_of { format(RUN, 1, 40, "0"), format(RUN, 2, 41, "45.25"),
                                  format(RUN, 3, 42, "7.0") })
    assert.equal(3, #page.items)
    for i, run in ipairs(page.items) do
      assert.equal("run_" .. i, run.id)
      assert_integer(run.workflowVersion, "workflowVersion")
      assert.equal(39 + i, run.workflowVersion)
      assert.is_nil(run.finishedAt)
      assert.is_nil(run.sourceRunId)
      assert.equal("2026-11-27T08:57:58Z", run.startedAt)
      assert.is_false(run.isSimulation)
    end
    assert_integer(page.items[1].totalCu, "totalCu 0")
    assert_float(page.items[2].totalCu, "totalCu 45.25")
    assert.equal(45.25, page.items[2].totalCu)
    assert_integer(page.items[3].totalCu, "totalCu 7.0")
    assert_integer(page.limit, "limit")
    assert.equal("req-1", page.requestId)
  end)

  it("does the same for nulls and numbers in any other member of a run", function()
    local page = decode(page_of {
      format(RUN, 1, 40, "1"),
      '{"id":"run_2","status":null,"workflowVersion":null,"totalCu":null,"startedAt":null,'
        .. '"attempts":3,"score":-2.5,"big":1e3,"isDustTest":null}',
    })
    local run = page.items[2]
    for _, field in ipairs { "status", "workflowVersion", "totalCu", "startedAt", "isDustTest" } do
      assert.is_nil(run[field], field)
    end
    assert_integer(run.attempts, "attempts")
    assert.equal(3, run.attempts)
    assert_float(run.score, "score")
    assert_integer(run.big, "big")
    assert.equal(1000, run.big)
    assert_normal(page.items, "items")
  end)

  it("does the same inside nested objects and arrays of a run", function()
    local page = decode(page_of {
      format(RUN, 1, 40, "2"),
      '{"id":"run_2","meta":{"n":2,"gone":null,"deep":{"x":[1,null,2.5]}},"tags":[null,3]}',
    })
    local run = page.items[2]
    assert_integer(run.meta.n, "meta.n")
    assert.is_nil(run.meta.gone)
    assert_integer(run.meta.deep.x[1], "meta.deep.x[1]")
    assert.is_nil(run.meta.deep.x[2])
    assert_float(run.meta.deep.x[3], "meta.deep.x[3]")
    assert_integer(run.tags[2], "tags[2]")
    assert_normal(page.items, "items")
  end)

  it("reads JSON spaced out with blanks, tabs and newlines around every colon", function()
    local body = page_of({
      '{ "id" : "run_1" ,\n\t"workflowVersion" :\t40, "finishedAt"\n:\nnull,'
        .. ' "extra" : null , "count" : 12 }',
      '{"id":"run_2","workflowVersion":  41  ,"sourceRunId" :null}',
    })
    local page = decode(body)
    assert_integer(page.items[1].workflowVersion, "workflowVersion")
    assert.is_nil(page.items[1].finishedAt)
    assert.is_nil(page.items[1].extra)
    assert_integer(page.items[1].count, "count")
    assert.is_nil(page.items[2].sourceRunId)
    assert_normal(page.items, "items")
    -- blanks around the usual fields only, none around the others
    page = decode(page_of { '{"id":"run_3","finishedAt" : null,"extra":null,'
      .. '"workflowVersion"\n:\n7,"count":8}' })
    assert.is_nil(page.items[1].extra)
    assert_integer(page.items[1].count, "count")
    assert_normal(page.items, "items")
  end)

  it("leaves strings alone, colons, quotes and null inside them included", function()
    local tricky = { [[a\":5]], [[\":null,\"x\":1}]], [[08:57:58]], [[null]], [[:-1]],
                     [[\": {]], [[\\]] }
    local runs = {}
    for i, text in ipairs(tricky) do
      runs[i] = format('{"id":"run_%d","note":"%s","finishedAt":null,"n":%d}', i, text, i)
    end
    local page = decode(page_of(runs))
    for i, text in ipairs(tricky) do
      local run = page.items[i]
      assert.equal((text:gsub("\\(.)", "%1")), run.note)
      assert.is_nil(run.finishedAt)
      assert_integer(run.n, "n")
    end
    assert_normal(page.items, "items")
  end)

  it("normalizes the runs whatever else the envelope holds", function()
    local page = decode(page_of({ format(RUN, 1, 40, "3"), '{"id":"run_2","x":null,"y":4}' },
      ',"total":2,"cursor":null,"extra":{"k":1}'))
    assert.is_nil(page.items[2].x)
    assert_integer(page.items[2].y, "y")
    assert_normal(page.items, "items")
    -- a null requestId in the body gives way to the header's
    page = decode('{"code":null,"data":{"hasMore":false,"items":[{"id":"a","v":1,"w":null}],'
      .. '"limit":1,"offset":0},"message":null,"requestId":null}')
    assert.equal("header-id", page.requestId)
    assert.is_nil(page.items[1].w)
    assert_integer(page.items[1].v, "v")
  end)

  it("keeps the last of repeated members", function()
    local page = decode(page_of { '{"id":"run_1","v":"text","v":5,"w":2,"w":null,"u":null,"u":1}' })
    local run = page.items[1]
    assert_integer(run.v, "v")
    assert.is_nil(run.w)
    assert_integer(run.u, "u")
  end)

  it("refuses a run that is not an object, and names it", function()
    for _, case in ipairs {
      { "[1,2]", "an array" }, { "[null]", "an array" }, { '["workflowVersion"]', "an array" },
      { "[[]]", "an array" }, { "7", "a number" }, { '"run"', "a string" },
      { "null", "null" }, { "true", "a boolean" },
    } do
      local body = page_of { format(RUN, 1, 40, "0"), case[1] }
      local page, message = core.decode_page(body)
      assert.is_nil(page, case[1])
      assert.equal("data.items[2] is " .. case[2] .. ", expected an object", message)
    end
  end)

  it("takes an empty array, or an object with none of the usual fields, for a run", function()
    local page = decode(page_of { "[]", '{"id":"run_2","note":"x"}', "{}" })
    assert.equal(3, #page.items)
    assert.is_nil(next(page.items[1]))
    assert.same({ id = "run_2", note = "x" }, page.items[2])
    assert.is_nil(next(page.items[3]))
  end)

  -- The text is searched for colons 64 bytes at a time, the last bytes one at a time:
  -- a member's colon, its value and the blanks between them may fall on either side
  -- of a block's edge, or in the last bytes of the body.
  describe("wherever a member falls in the text", function()
    local MEMBERS = {
      ['"x":null'] = function(run) assert.is_nil(run.x) end,
      ['"x":12'] = function(run) assert_integer(run.x, "x") end,
      ['"x":[null,3]'] = function(run) assert.is_nil(run.x[1]); assert_integer(run.x[2], "x[2]") end,
      ['"x" : null'] = function(run) assert.is_nil(run.x) end,
      ['"x": null'] = function(run) assert.is_nil(run.x) end,
      ['"x"\t:\n12'] = function(run) assert_integer(run.x, "x") end,
      ['"x":\r\n12'] = function(run) assert_integer(run.x, "x") end,
      ['"x":"a\\":1","y":null'] = function(run)
        assert.equal('a":1', run.x)
        assert.is_nil(run.y)
      end,
    }

    -- A page of one run, its member after `pad` bytes of id and before `blanks` at the end.
    local function page_around(member, pad, blanks)
      return '{"code":200,"data":{"hasMore":false,"limit":1,"offset":0,"items":[{"id":"'
        .. ("r"):rep(pad) .. '",' .. member .. '}]}}' .. (" "):rep(blanks)
    end

    it("normalizes it at every offset of the first blocks", function()
      for member, check in pairs(MEMBERS) do
        for pad = 0, 140 do
          local page = decode(page_around(member, pad, 0))
          check(page.items[1])
          assert_normal(page.items, member .. " after " .. pad .. " bytes")
        end
      end
    end)

    it("normalizes it at every distance from the end of the body", function()
      for member, check in pairs(MEMBERS) do
        for blanks = 0, 70 do
          for _, pad in ipairs { 0, 1, 63 } do
            local page = decode(page_around(member, pad, blanks))
            check(page.items[1])
            assert_normal(page.items, member .. " before " .. blanks .. " blanks")
          end
        end
      end
    end)

    it("normalizes it in bodies about as long as a block", function()
      local x_is_2 = function(run) assert_integer(run.x, "x") end
      local x_is_nil = function(run) assert.is_nil(run.x) end
      for _, case in ipairs {   -- a body of 65 bytes or fewer is searched one byte at a time
        { 64, '{"data":{"hasMore":true,"items":[{"x":2}],"limit":0,"offset":0}}', x_is_2 },
        { 65, '{"data":{"hasMore":true,"items":[{"x": 2}],"limit":0,"offset":0}}', x_is_2 },
        { 65, '{"data":{"hasMore":true,"items":[{"x" :2}],"limit":0,"offset":0}}', x_is_2 },
        { 65, '{"data":{"hasMore":false,"items":[{"x":2}],"limit":0,"offset":0}}', x_is_2 },
        { 66, '{"data":{"hasMore":false,"items":[{"x": 2}],"limit":0,"offset":0}}', x_is_2 },
        { 67, '{"data":{"hasMore":true,"items":[{"x":null}],"limit":0,"offset":0}}', x_is_nil },
        { 68, '{"data":{"hasMore":true,"items":[{"x" :null}],"limit":0,"offset":0}}', x_is_nil },
      } do
        local length, body, check = case[1], case[2], case[3]
        assert.equal(length, #body)
        local page = decode(body)
        assert.equal(1, #page.items)
        check(page.items[1])
        assert_normal(page.items, body)
      end
    end)
  end)

  it("normalizes a full page of 100 runs, as the API sends them", function()
    local runs = {}
    for i = 1, 100 do
      runs[i] = format(RUN, i, i, i % 3 == 0 and "0" or format("%d.5", i))
    end
    local page = decode(page_of(runs))
    assert.equal(100, #page.items)
    assert_normal(page.items, "items")
    for i, run in ipairs(page.items) do
      assert.equal(i, run.workflowVersion)
      if i % 3 ~= 0 then assert_float(run.totalCu, "totalCu") end
    end
  end)
end)
