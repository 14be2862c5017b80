local recent = require "workflows.recent"

describe("workflows.recent", function()
  describe("add()", function()
    it("says whether an id is new, and keeps the number it came with", function()
      local seen = recent.new(3)
      assert.is_true(seen:add("a", 1))
      assert.is_false(seen:add("a", 2))
      assert.equal(1, seen:number("a"))
    end)

    it("forgets the oldest id once full", function()
      local seen = recent.new(3)
      for i, id in ipairs { "a", "b", "c", "d" } do seen:add(id, i) end
      assert.is_nil(seen:number("a"))
      assert.equal(2, seen:number("b"))
      assert.equal(4, seen:number("d"))
      assert.is_true(seen:add("a", 5))
      assert.is_nil(seen:number("b"))
    end)

    it("never holds more than its capacity", function()
      local seen = recent.new(50)
      for i = 1, 10000 do seen:add("run_" .. i, i) end
      local held = 0
      for i = 1, 10000 do
        if seen:number("run_" .. i) then held = held + 1 end
      end
      assert.equal(50, held)
      assert.equal(9951, seen:number("run_9951"))
    end)
  end)
end)
