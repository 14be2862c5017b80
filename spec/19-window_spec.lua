local window = require "workflows.window"

-- The sizes an auto window takes over pages that each come after `round_trip`
-- seconds, the caller spending `page_time` seconds on each.
local function sizes_over(sizing, pages, round_trip, page_time)
  local sizes = {}
  for i = 1, pages do
    sizing:on_page(round_trip, page_time)
    sizes[i] = sizing:size()
  end
  return sizes
end

describe("workflows.window", function()
  describe("fixed()", function()
    it("keeps the prefetch number, whatever the pages and the server do", function()
      local sizing = window.fixed(3)
      assert.equal(3, sizing:size())
      sizing:on_page(0.5, 0.001)
      sizing:on_pushback()
      sizing:on_page(0.001, 2)
      assert.equal(3, sizing:size())
      assert.same({ 3, 3, 0 }, { sizing:report() })
    end)

    it("keeps no page ahead at 0", function()
      local sizing = window.fixed(0)
      sizing:on_page(1, 0.001)
      assert.same({ 0, 0, 0 }, { sizing:report() })
    end)
  end)

  describe("auto()", function()
    it("starts with the first page alone", function()
      assert.same({ 0, 0, 0 }, { window.auto(8):report() })
    end)

    it("waits for both a round trip and a page time before it grows", function()
      local sizing = window.auto(8)
      sizing:on_page(0.1, nil)
      assert.equal(0, sizing:size())
      sizing:on_page(nil, 0.01)
      assert.equal(1, sizing:size())
    end)

    it("grows by one page per page received, up to its cap", function()
      local sizing = window.auto(8)
      -- two round trips of 0.1 s cover 20 pages of 0.01 s: more than the cap
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 8, 8 }, sizes_over(sizing, 10, 0.1, 0.01))
      assert.same({ 8, 8, 0 }, { sizing:report() })
    end)

    it("keeps as many pages as cover twice the round trip at the caller's pace", function()
      local sizing = window.auto(64)
      -- 2 * 0.05 / 0.02 = 5 pages
      assert.same({ 1, 2, 3, 4, 5, 5, 5 }, sizes_over(sizing, 7, 0.05, 0.02))
    end)

    it("counts a page time below half a millisecond as half a millisecond", function()
      local sizing = window.auto(64)
      -- 2 * 0.001 / 0.0005 = 4 pages, not the cap
      assert.same({ 1, 2, 3, 4, 4, 4 }, sizes_over(sizing, 6, 0.001, 0))
    end)

    it("shrinks as the caller gets slow, its average moving a quarter of the way each page",
      function()
        local sizing = window.auto(8)
        sizes_over(sizing, 10, 0.1, 0.01)
        -- page times of 0.1 s: the average goes 0.0325, 0.0494, 0.0620, ...
        assert.same({ 7, 5, 4, 3, 3, 3 }, sizes_over(sizing, 6, 0.1, 0.1))
        assert.same({ 3, 8, 0 }, { sizing:report() })
      end)

    it("keeps one page ahead for a caller far slower than the round trip", function()
      local sizing = window.auto(8)
      sizes_over(sizing, 10, 0.1, 0.01)
      assert.same({ 1 }, sizes_over(sizing, 1, 0.1, 1))
    end)

    it("halves when the server pushes back, then grows one page per window of pages", function()
      local sizing = window.auto(8)
      sizes_over(sizing, 8, 0.1, 0.01)
      sizing:on_pushback()
      assert.same({ 4, 8, 1 }, { sizing:report() })
      -- 4 pages at 4, then 5 pages at 5, then 6
      assert.same({ 4, 4, 4, 5, 5, 5, 5, 5, 6 }, sizes_over(sizing, 9, 0.1, 0.01))
    end)

    it("halves down to no page ahead, and grows again from there", function()
      local sizing = window.auto(8)
      sizes_over(sizing, 1, 0.1, 0.01)
      sizing:on_pushback()
      assert.same({ 0, 1, 1 }, { sizing:report() })
      sizing:on_pushback()
      assert.same({ 0, 1, 2 }, { sizing:report() })
      -- past the ceiling of 1, one page per window of pages: 1 to 2 after one page,
      -- 2 to 3 after two
      assert.same({ 1, 2, 2, 3 }, sizes_over(sizing, 4, 0.1, 0.01))
    end)

    it("never passes a small cap", function()
      local sizing = window.auto(2)
      assert.same({ 1, 2, 2, 2 }, sizes_over(sizing, 4, 1, 0.001))
      assert.same({ 2, 2, 0 }, { sizing:report() })
    end)
  end)
end)
