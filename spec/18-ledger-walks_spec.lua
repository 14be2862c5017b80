local listings = require "spec.support.listings"

local unpack = table.unpack or unpack
local ids_down, answer, new_ledger = listings.ids_down, listings.answer, listings.new_ledger
local live = listings.live
local arrive, leave, walk = listings.arrive, listings.leave, listings.walk

describe("workflows.ledger walking a listing", function()
  describe("that stands still", function()
    it("hands out every run once, in order, on pages that overlap by one run", function()
      local list = ids_down(25, 1)
      local result = walk(new_ledger { limit = 10 }, live(list).server, 0)
      assert.same(list, result.handed)
      assert.same({ 0, 9, 18 }, result.asked)
      assert.is_nil(result.problem)
    end)

    it("asks for at most the window past the end", function()
      local list = ids_down(25, 1)
      local result = walk(new_ledger { limit = 10 }, live(list).server, 3)
      assert.same(list, result.handed)
      -- the page at 18 is the last one
      assert.same({ 0, 9, 18, 27, 36, 45 }, result.asked)
    end)

    it("plans no page past what `max` runs need", function()
      local list = ids_down(100, 1)
      local result = walk(new_ledger { limit = 10, max = 15 }, live(list).server, 4)
      assert.same({ 0, 9 }, result.asked)
      -- whole pages: the walk's iterator stops at the 15th run
      assert.equal(19, #result.handed)
    end)
  end)

  describe("that moves", function()
    it("hands out only what follows the anchor when runs arrive, and learns how far they push it",
      function()
        local listing = live(ids_down(30, 1))
        local result = walk(new_ledger { limit = 10 }, listing.server, 0, function()
          arrive(listing, 3)
        end)
        assert.same(ids_down(30, 1), result.handed)
        assert.same({ 0, 9, 21, 33 }, result.asked)
        assert.same({ 0, 3, 3, 3 }, result.drifts)
      end)

    it("expects the least move of the last three pages", function()
      local listing = live(ids_down(60, 1))
      local moves = { 3, 5, 4, 6 }
      local result = walk(new_ledger { limit = 10 }, listing.server, 0, function(pages)
        arrive(listing, moves[pages] or 0)
      end)
      assert.same({ 0, 3, 3, 3, 4 }, { unpack(result.drifts, 1, 5) })
      assert.same(ids_down(60, 1), result.handed)
    end)

    it("backs up and asks again when runs handed out leave, before it hands out past the gap",
      function()
        local listing = live(ids_down(40, 1))
        local result = walk(new_ledger { limit = 10 }, listing.server, 0, function(pages)
          if pages == 1 then leave(listing, ids_down(35, 31)) end
        end)
        assert.same({ 0, 9, 7, 3 }, { unpack(result.asked, 1, 4) })
        -- the runs that left had come out on the first page
        assert.same(ids_down(40, 1), result.handed)
        assert.is_nil(result.problem)
      end)

    it("hands out every run of the start once when runs push the anchor past the pages in flight",
      function()
        local listing = live(ids_down(30, 1))
        local result = walk(new_ledger { limit = 10 }, listing.server, 2, function(pages)
          if pages == 2 then arrive(listing, 15) end
        end)
        -- the page at 18 ends before the anchor: the pages at 27 and 36 are dropped,
        -- and the walk asks again where the anchor stands now
        assert.same({ 0, 9, 18, 27, 36, 33, 42 }, result.asked)
        assert.same(ids_down(30, 1), result.handed)
        assert.is_nil(result.problem)
      end)

    it("looks further down when more runs arrived than a page holds", function()
      local listing = live(ids_down(30, 1))
      local result = walk(new_ledger { limit = 10 }, listing.server, 0, function(pages)
        if pages == 1 then arrive(listing, 25) end
      end)
      -- backs up to the walk's start, finds only new runs there, then jumps down
      -- a page past the anchor, and finds it
      assert.same({ 0, 9, 7, 3, 0, 18, 34 }, { unpack(result.asked, 1, 7) })
      assert.same(ids_down(30, 1), result.handed)
      assert.is_nil(result.problem)
    end)

    it("gives up after 50 pages in a row that bring nothing new, planned ever further ahead", function()
      local first_page = answer(ids_down(10, 1), 0, 10)
      local function ignores_offset(offset)
        return { items = first_page.items, hasMore = true, offset = offset, limit = 10 }
      end
      local result = walk(new_ledger { limit = 10 }, ignores_offset, 0)
      -- each page finds the anchor 9 runs ahead of where it was planned: the drift
      -- grows (as the least of the last three moves) and the offsets with it
      assert.same({ 0, 9, 27, 45, 63, 90, 117, 144, 180 }, { unpack(result.asked, 1, 9) })
      assert.equal("50 pages in a row up to offset 4275 brought no run not handed out yet: the "
        .. "listing moves faster than the walk can follow, or the server ignores offset",
        result.problem)
      assert.equal(51, #result.asked)
      assert.same(ids_down(10, 1), result.handed)
    end)
  end)
end)
