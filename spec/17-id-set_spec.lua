local id_set = require("workflows.core").id_set

-- A page of runs with these ids ("" for a run without one), each numbered by its place.
local function runs_of(...)
  local runs = {}
  for i, id in ipairs { ... } do runs[i] = { id = id ~= "" and id or nil, n = i } end
  return runs
end

describe("core.id_set", function()
  describe("add()", function()
    it("says whether an id is new, and keeps the number it came with", function()
      local seen = id_set(3)
      assert.is_true(seen:add("a", 1))
      assert.is_false(seen:add("a", 2))
      assert.equal(1, seen:number("a"))
    end)

    it("remembers at least the last `capacity` ids", function()
      local seen = id_set(3)
      for i = 1, 100 do
        seen:add("run_" .. i, i)
        for back = 0, math.min(2, i - 1) do
          assert.equal(i - back, seen:number("run_" .. (i - back)))
        end
      end
    end)

    it("forgets what is older than twice the capacity", function()
      local seen = id_set(50)
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

  describe("take_after_anchor(), over a walk's usual page", function()
    -- What the set answers for each id, to tell that a refused page changed nothing.
    local function numbers_of(seen, ids)
      local numbers = {}
      for i, id in ipairs(ids) do numbers[i] = seen:number(id) or false end
      return numbers
    end

    local function copy(runs)
      local copied = {}
      for i, run in ipairs(runs) do copied[i] = run end
      return copied
    end

    it("takes the anchor out and adds the runs after it, as add_runs would", function()
      local seen, by_add_runs = id_set(100), id_set(100)
      for _, set in ipairs { seen, by_add_runs } do set:add_runs(runs_of("x", "a"), 1, 6) end
      local runs = runs_of("a", "b", "", "c")
      local listed = copy(runs)
      local expected, expected_last = by_add_runs:add_runs(runs, 2, 8)
      assert.equal(expected_last, seen:take_after_anchor(runs, 8))
      assert.same(expected, runs)
      assert.same({ listed[2], listed[3], listed[4] }, runs)
      assert.equal(3, #runs)
      assert.same({ 7, 8, 9, 10 }, numbers_of(seen, { "x", "a", "b", "c" }))
    end)

    it("leaves the set and the runs as they were for any other page", function()
      local seen = id_set(100)
      seen:add_runs(runs_of("x", "a"), 1, 0)
      local ids = { "x", "a", "b", "c", "d" }
      local pages = {
        runs_of("x", "b", "c"),        -- the first run was handed out, but is not the anchor
        runs_of("b", "a", "c"),        -- the anchor, not first
        runs_of("a", "b", "x", "c"),   -- a run after the anchor was handed out already
        runs_of("a", "b", "c", "d", "b"),  -- a run listed twice, found with runs moved
        runs_of("a", "x"),             -- found before any run moved
        runs_of("", "b"),              -- no anchor at all
        {},
      }
      for i, runs in ipairs(pages) do
        local listed = copy(runs)
        assert.is_nil(seen:take_after_anchor(runs, 2), "page " .. i)
        assert.same(listed, runs, "page " .. i)
        for at, run in ipairs(listed) do assert.equal(run, runs[at], "page " .. i) end
        assert.same({ 1, 2, false, false, false }, numbers_of(seen, ids), "page " .. i)
      end
      local runs = runs_of("a", "b")
      local b = runs[2]
      assert.equal(3, seen:take_after_anchor(runs, 2))
      assert.equal(b, runs[1])
      assert.equal(1, #runs)
    end)

    it("leaves the set whole when it gives a page back, among many colliding ids", function()
      -- a small capacity keeps the table small: the ids given back share probe runs
      -- with those that stay
      local seen = id_set(600)
      local kept = {}
      for i = 1, 300 do kept[i] = "run_" .. i end
      seen:add_runs(runs_of("run_0", (table.unpack or unpack)(kept)), 1, 0)
      local page = { { id = "run_300" } }
      for i = 1, 250 do page[i + 1] = { id = "given_back_" .. i } end
      page[252] = { id = "run_299" }  -- handed out: the page goes back whole
      assert.is_nil(seen:take_after_anchor(page, 301))
      assert.equal(252, #page)
      page = { { id = "run_300" } }
      for i = 1, 250 do page[i + 1] = { id = "new_" .. i } end
      assert.equal(551, seen:take_after_anchor(page, 301))
      assert.equal(250, #page)
      for i = 1, 300 do assert.equal(i + 1, seen:number(kept[i]), kept[i]) end
      for i = 1, 250 do
        assert.equal(301 + i, seen:number("new_" .. i))
        assert.is_nil(seen:number("given_back_" .. i))
      end
    end)

    it("gives back a page whose ids would not fit in the current generation", function()
      local seen = id_set(4)
      seen:add_runs(runs_of("a", "b"), 1, 0)
      assert.is_nil(seen:take_after_anchor(runs_of("b", "c", "d", "e"), 2))
      assert.is_nil(seen:number("c"))
      assert.equal(4, seen:take_after_anchor(runs_of("b", "c", "d"), 2))
    end)
  end)

  describe("add_runs() and last_known(), over a page of runs", function()
    it("adds what add() would, in order, keeping runs without an id", function()
      local seen, one_by_one = id_set(3), id_set(3)
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
      local seen = id_set(10)
      seen:add_runs(runs_of("a", "b", "c"), 1, 0)
      assert.same({ 3, 2 }, { seen:last_known(runs_of("x", "c", "b", "y", "z")) })
      assert.same({ 4, 1 }, { seen:last_known(runs_of("c", "x", "", "a", "z", "")) })
      assert.is_nil(seen:last_known(runs_of("x", "", "y")))
      assert.is_nil(seen:last_known({}))
    end)
  end)
  describe("the ids it takes", function()
    it("copies them: a set keeps no run or id alive", function()
      local seen = id_set(10)
      local runs = { { id = ("run_%d"):format(12345) } }
      local watch = setmetatable({ runs[1] }, { __mode = "v" })
      seen:add_runs(runs, 1, 0)
      runs = nil  -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.is_nil(watch[1])
      assert.equal(1, seen:number("run_12345"))
    end)

    it("tells ids apart by every byte, empty and long ones included", function()
      local seen = id_set(100)
      local ids = { "", "a", "a\0", "a\0b", ("x"):rep(1000), ("x"):rep(1001), "run_1", "run_10" }
      for i, id in ipairs(ids) do assert.is_true(seen:add(id, i), id) end
      for i, id in ipairs(ids) do assert.equal(i, seen:number(id), id) end
      assert.is_nil(seen:number(("x"):rep(999)))
    end)

    it("keeps number and boolean ids apart from strings, and skips tables", function()
      local seen = id_set(10)
      assert.is_true(seen:add(1, 1))
      assert.is_true(seen:add("1", 2))
      assert.is_false(seen:add(1.0, 3))
      assert.is_true(seen:add(true, 4))
      assert.is_true(seen:add("true", 5))
      assert.equal(1, seen:number(1))
      assert.equal(2, seen:number("1"))
      assert.equal(4, seen:number(true))
      local table_id = {}
      local added, last = seen:add_runs({ { id = table_id }, { id = table_id } }, 1, 5)
      assert.equal(2, #added)
      assert.equal(5, last)
    end)

    it("holds 100,000 ids over many generations, the last `capacity` always", function()
      local seen = id_set(1000)
      for page = 0, 999 do
        local runs = {}
        for i = 1, 100 do runs[i] = { id = "run_" .. (page * 100 + i) } end
        local added, last = seen:add_runs(runs, 1, page * 100)
        assert.equal(100, #added)
        assert.equal(page * 100 + 100, last)
      end
      for n = 99001, 100000 do assert.equal(n, seen:number("run_" .. n)) end
      assert.is_nil(seen:number("run_1"))
    end)

    it("names a bad argument, and refuses use once released", function()
      assert.has_error(function() id_set(0) end, "bad argument #1 to 'id_set' (out of range)")
      local seen = id_set(3)
      assert.has_error(function() seen:add({}, 1) end)
      assert.matches("workflows.id_set %(0 ids%)", tostring(seen))
      seen:release()
      seen:release()
      assert.matches("released", tostring(seen))
      assert.has_error(function() seen:number("a") end, "attempt to use a released id set")
    end)
  end)
end)
