local listings = require "spec.support.listings"

local ids_down, answer, unseen, ids_of = listings.ids_down, listings.answer, listings.unseen,
  listings.ids_of
local new_ledger, planned = listings.new_ledger, listings.planned

describe("workflows.ledger", function()
  describe("plan()", function()
    it("plans the first page at the walk's offset, the next ones on the last run of the one before",
      function()
        local book = new_ledger { limit = 10, offset = 5 }
        local first, second = {}, {}
        book:plan(first)
        book:plan(second)
        assert.same({ offset = 5, drift = 0, anchored = true }, first)
        assert.same({ offset = 14, drift = 0, anchored = true }, second)
        assert.equal(23, book.planned)
      end)

    it("plans pages of one run one run apart", function()
      local book = new_ledger { limit = 1 }
      local first, second = {}, {}
      book:plan(first)
      book:plan(second)
      assert.equal(0, first.offset)
      assert.equal(1, second.offset)
    end)
  end)

  describe("pages_in_flight()", function()
    it("allows one page until the first has come back, then what the window asks", function()
      local book = new_ledger { limit = 10 }
      assert.equal(1, book:pages_in_flight(5))
      local job = planned(book, function(offset, limit) return answer(ids_down(30, 1), offset, limit) end)
      assert.equal(0, book:place(job))
      assert.equal(5, book:pages_in_flight(5))
      assert.equal(0, book:pages_in_flight(0))
    end)
  end)

  describe("wants_more()", function()
    it("stops planning runs once the planned pages may hold `max` of them", function()
      local book = new_ledger { limit = 10, max = 15 }
      assert.is_true(book:wants_more(0))
      book:plan({})
      assert.is_true(book:wants_more(1))
      book:plan({})
      assert.is_false(book:wants_more(2))
    end)

    it("counts pages in flight against `max` pages", function()
      local book = new_ledger { mode = "pages", max = 2 }
      assert.is_true(book:wants_more(1))
      assert.is_false(book:wants_more(2))
    end)

    it("wants nothing once the listing ended", function()
      local book = new_ledger {}
      book.ended = true
      assert.is_false(book:wants_more(0))
    end)
  end)

  describe("check()", function()
    it("refuses a page that has more but holds no run", function()
      local book = new_ledger {}
      local job = { offset = 9, page = { items = {}, hasMore = true, offset = 9 } }
      assert.equal("data.hasMore is true but data.items is empty (offset 9)", book:check(job))
    end)

    it("lets one page at another offset pass, not two in a row", function()
      local book = new_ledger {}
      local function job_at(offset, said)
        return { offset = offset, page = { items = { { id = "a" } }, hasMore = true, offset = said } }
      end
      assert.is_nil(book:check(job_at(0, 1)))
      assert.is_nil(book:check(job_at(9, 9)))
      assert.is_nil(book:check(job_at(18, 19)))
      assert.equal("data.offset is 28 where 27 was requested, twice in a row",
        book:check(job_at(27, 28)))
    end)
  end)

  describe("place() and accept()", function()
    it("hand out the whole first page, and where it stands", function()
      local book = new_ledger { limit = 3, offset = 4 }
      local job = planned(book, function(offset, limit) return answer(ids_down(10, 1), offset, limit) end)
      local index = book:place(job)
      assert.equal(0, index)
      local page, stale = book:accept(job, index, nil)
      assert.same({ "run_6", "run_5", "run_4" }, ids_of(page))
      assert.equal(4, page.offset)
      assert.is_true(stale)
      assert.equal(3, book.handed)
      assert.equal(3, book.taken)
    end)

    it("start the next page after the anchor, and keep the page in flight that starts on it",
      function()
        local list = ids_down(20, 1)
        local function server(offset, limit) return answer(list, offset, limit) end
        local book = new_ledger { limit = 5 }
        local first = planned(book, server)
        book:place(first)
        local second = planned(book, server)
        local page, stale = book:accept(first, 0, second)
        assert.same({ "run_20", "run_19", "run_18", "run_17", "run_16" }, ids_of(page))
        assert.is_false(stale)
        assert.equal(4, second.offset)
        assert.equal(1, book:place(second))
        page = book:accept(second, 1, nil)
        assert.same({ "run_15", "run_14", "run_13", "run_12" }, ids_of(page))
        assert.equal(5, page.offset)
      end)

    it("hand out no run twice, and nothing of a page whose runs all came before", function()
      local book = new_ledger { limit = 4 }
      local first = { offset = 0, drift = 0, anchored = true,
        page = answer({ "a", "b", "c", "d", "e" }, 0, 4) }
      book:accept(first, book:place(first))
      local again = { offset = 0, drift = 0, anchored = true,
        page = { items = { { id = "b" }, { id = "c" }, { id = "d" } }, hasMore = true, offset = 0 } }
      local page, stale = book:accept(again, book:place(again), nil)
      assert.is_nil(page)
      assert.is_true(stale)
      assert.equal(4, book.handed)
      assert.equal(1, book.fruitless)
    end)

    it("hand out a run listed twice on one page once, and runs without an id as they come",
      function()
        local book = new_ledger { limit = 5 }
        local job = { offset = 0, drift = 0, anchored = true, page = { items = {
          { id = "a" }, { id = "b" }, { id = "b" }, { status = "running" }, { id = "c" } },
          hasMore = false, offset = 0 } }
        local page = book:accept(job, book:place(job), nil)
        assert.same({ { id = "a" }, { id = "b" }, { status = "running" }, { id = "c" } }, page.items)
        assert.equal(3, book.handed)
      end)

    it("take the page size a server caps the page to", function()
      local book = new_ledger { limit = 10 }
      local job = planned(book, function(offset) return answer(ids_down(30, 1), offset, 5) end)
      book:accept(job, book:place(job), nil)
      assert.equal(5, book.limit)
      assert.equal(4, book.planned)
    end)

    it("end the walk on the page without more, with the pages past it of no use", function()
      local book = new_ledger { limit = 10 }
      local list = ids_down(8, 1)
      local job = planned(book, function(offset, limit) return answer(list, offset, limit) end)
      local page, stale = book:accept(job, book:place(job), { offset = 9 })
      assert.equal(8, #page.items)
      assert.is_true(stale)
      assert.is_true(book.ended)
      assert.is_false(book:wants_more(0))
    end)

    it("give an empty listing its one empty page", function()
      local book = new_ledger {}
      local job = planned(book, function(offset, limit) return answer({}, offset, limit) end)
      local page, stale = book:accept(job, book:place(job), nil)
      assert.same({ items = {}, hasMore = false, offset = 0, limit = 10 }, page)
      assert.is_true(stale)
      assert.is_true(book.ended)
    end)

    it("ask again further back, further each time, when a page holds no run handed out", function()
      local book = new_ledger { limit = 10, remember = 16 }
      local first = planned(book, function(offset, limit) return answer(ids_down(100, 1), offset, limit) end)
      book:accept(first, book:place(first), nil)
      local asked, outcome = {}, {}
      for _ = 1, 4 do
        local job = planned(book, unseen)
        asked[#asked + 1] = job.offset
        local index, again, ahead, problem = book:place(job)
        outcome = { index = index, again = again, ahead = ahead, problem = problem }
        if problem then break end
        assert.is_nil(book:ask_again(job, again, ahead))
      end
      assert.same({ 9, 7, 3, 1 }, asked)
      assert.same({ problem = "the listing moved by more than 8 runs between two answers (offset 1)" },
        outcome)
    end)
  end)

  describe("ask_again()", function()
    local list = ids_down(100, 1)
    local function server(offset, limit) return answer(list, offset, limit) end

    -- A ledger that handed out the first page of `list`.
    local function after_first_page()
      local book = new_ledger { limit = 10 }
      local first = planned(book, server)
      book:accept(first, book:place(first), nil)
      return book, first
    end

    it("plans from where the anchor stands, one page at a time for a stretch, longer each time",
      function()
        local book, first = after_first_page()
        assert.is_nil(book:ask_again(first, 9, true))
        assert.equal(9, book.planned)
        assert.is_true(book.anchored)
        local in_flight = {}
        for i = 1, 5 do
          in_flight[i] = book:pages_in_flight(6)
          local job = planned(book, server)
          local _, stale = book:accept(job, book:place(job), nil)
          assert.is_true(stale)
        end
        assert.same({ 1, 1, 1, 1, 6 }, in_flight)
        assert.is_nil(book:ask_again(first, 9, true))
        assert.equal(8, book.careful)
      end)

    it("keeps the window for a first step back, and goes one page at a time from the second",
      function()
        local book = after_first_page()
        local careful = {}
        for i = 1, 2 do
          local job = planned(book, unseen)
          local index, again, ahead = book:place(job)
          assert.is_nil(index)
          assert.is_nil(book:ask_again(job, again, ahead))
          assert.is_falsy(book.anchored)
          careful[i] = book.careful
        end
        assert.same({ 0, 4 }, careful)
      end)
  end)
end)
