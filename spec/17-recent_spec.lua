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
end)
