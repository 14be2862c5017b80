local recent = require "workflows.recent"

describe("workflows.recent", function()
  describe("add()", function()
    it("says whether an id is new", function()
      local seen = recent.new(3)
      assert.is_true(seen:add("a"))
      assert.is_false(seen:add("a"))
      assert.is_true(seen:contains("a"))
    end)

    it("forgets the oldest id once full", function()
      local seen = recent.new(3)
      for _, id in ipairs { "a", "b", "c", "d" } do seen:add(id) end
      assert.is_false(seen:contains("a"))
      assert.is_true(seen:contains("b"))
      assert.is_true(seen:contains("d"))
      assert.is_true(seen:add("a"))
      assert.is_false(seen:contains("b"))
    end)
  end)

  describe("count()", function()
    it("never grows past the capacity", function()
      local seen = recent.new(50)
      for i = 1, 10000 do seen:add("run_" .. i) end
      assert.equal(50, seen:count())
      local members = 0
      for _ in pairs(seen.members) do members = members + 1 end
      assert.equal(50, members)
    end)
  end)
end)
