local recent = require "workflows.recent"

describe("workflows.recent", function()
  describe("add()", function()
    it("says whether an id is new, and keeps the number it came with", function()
      local seen = recent.new(3)
      assert.is_true(seen:add("a", 1))
      assert.is_false(seen:add("a", 2))
      assert.equal(1, seen:number("a"))
    end)

    it("remembers at least the last `capacity` ids", function()
      local seen = recent.new(3)
      for i = 1, 100 do
        seen:add("run_" .. i, i)
        for back = 0, math.min(2, i - 1) do
          assert.equal(i - back, seen:number("run_" .. (i - back)))
        end
      end
    end)

    it("forgets what is older than twice the capacity", function()
      local seen = recent.new(50)
      for i = 1, 10000 do seen:add("run_" .. i, i) end
      local held = 0
      for i = 1, 10000 do
        if seen:number("run_" .. i) then held = held + 1 end
      end
      assert.is_true(held >= 50 and held <= 100, held .. " ids held")
      assert.is_nil(seen:number("run_9800"))
      assert.is_true(seen:add("run_1", 10001))
    end)
  end)

  describe("add_runs() and last_known(), over a page of runs", function()
    local function runs_of(...)
      local runs = {}
      for i, id in ipairs { ... } do runs[i] = { id = id ~= "" and id or nil, n = i } end
      return runs
    end

    it("adds what add() would, in order, keeping runs without an id", function()
      local seen, one_by_one = recent.new(3), recent.new(3)
      local runs = runs_of("a", "b", "", "b", "c", "d", "a", "e", "f", "", "g")
      local added, last = seen:add_runs(runs, 2, 10)
      local expected, number = {}, 10
      for i = 2, #runs do
        local id = runs[i].id
        if id == nil then
          expected[#expected + 1] = runs[i]
        elseif one_by_one:add(id, number + 1) then
          number = number + 1
          expected[#expected + 1] = runs[i]
        end
      end
      assert.same(expected, added)
      assert.equal(number, last)
      for _, id in ipairs { "a", "b", "c", "d", "e", "f", "g" } do
        assert.equal(one_by_one:number(id), seen:number(id), id)
      end
    end)

    it("finds the last run whose id is remembered, and its number", function()
      local seen = recent.new(10)
      seen:add_runs(runs_of("a", "b", "c"), 1, 0)
      assert.same({ 3, 2 }, { seen:last_known(runs_of("x", "c", "b", "y", "z")) })
      assert.same({ 4, 1 }, { seen:last_known(runs_of("c", "x", "", "a", "z", "")) })
      assert.is_nil(seen:last_known(runs_of("x", "", "y")))
      assert.is_nil(seen:last_known({}))
    end)
  end)
end)
