local core = require "workflows.core"
local fixtures = require "spec.support.fixtures"

local HAS_CLOSE = _VERSION == "Lua 5.4"
local unpack = table.unpack or unpack

local offsets_of = fixtures.offsets_of
local requests_for = fixtures.requests_for

describe("prefetch", function()
  local sb = fixtures.sandbox { client = { timeout = 5, max_retries = 1 } }
  local suffix = fixtures.suffix_maker("prefetch")

  -- `directives` may be left out: some tests want no more than a log of their own.
  local function unique(directives)
    local id = "wf_demo;" .. suffix()
    if directives then id = id .. ";" .. directives end
    return id
  end

  local function ids_of(walker, id, options)
    local ids = {}
    for run in walker:runs(id, options) do ids[#ids + 1] = run.id end
    return ids
  end

  -- How many TCP connections the log entries came on.
  local function connections_of(entries)
    local connections, count = {}, 0
    for _, entry in ipairs(entries) do
      if not connections[entry.connection] then count = count + 1 end
      connections[entry.connection] = true
    end
    return count
  end

  describe("pages()", function()
    it("has the next pages requested while one is consumed, never more than prefetch", function()
      local id = unique("latency=100")
      local seq, seen = sb:last_seq(), {}
      for _ in sb:new_client { prefetch = 2 }:pages(id, { limit = 50 }) do
        core.sleep(0.05)  -- time for the server to log what reached it
        seen[#seen + 1] = #requests_for(sb, id, seq)
      end
      assert.equal(6, #seen)  -- 50 runs, then 49 new ones a page
      -- The first page comes alone; the next one is on the wire while it is consumed.
      assert.is_true(seen[1] >= 2, "requests made during page 1: " .. seen[1])
      for page, requested in ipairs(seen) do
        assert.is_true(requested <= page + 2, requested .. " requests made during page " .. page)
      end
    end)

    it("requests one page at a time with prefetch = 0", function()
      local id = unique("latency=50")
      local seq, seen = sb:last_seq(), {}
      for _ in sb:new_client { prefetch = 0 }:pages(id, { limit = 50 }) do
        seen[#seen + 1] = #requests_for(sb, id, seq)
      end
      assert.same({ 1, 2, 3, 4, 5, 6 }, seen)
    end)

    it("hands pages out in order however they arrive", function()
      local offsets = {}
      for page in sb:new_client { prefetch = 4 }:pages("wf_demo", { limit = 20 }) do
        offsets[#offsets + 1] = page.offset
      end
      -- each page after the first starts on the last run of the one before
      assert.same({ 0, 20, 39, 58, 77, 96, 115, 134, 153, 172, 191, 210, 229, 248 }, offsets)
    end)

    it("keeps no more than prefetch transfers out, and no page it handed out", function()
      local walker = sb:new_client { prefetch = 3 }
      local held = setmetatable({}, { __mode = "k" })
      for page in walker:pages("wf_demo", { limit = 10 }) do
        assert.is_true(walker:in_flight() <= 3, walker:in_flight() .. " transfers in flight")
        held[page] = true
        collectgarbage()
        collectgarbage()
        local alive = 0
        for _ in pairs(held) do alive = alive + 1 end
        assert.is_true(alive <= 1, alive .. " yielded pages still held")
      end
    end)
  end)

  describe("runs()", function()
    it("yields the same runs in the same order with and without prefetch", function()
      local sequential = ids_of(sb:new_client { prefetch = 0 }, "wf_demo", { limit = 30 })
      assert.equal(250, #sequential)
      for _, prefetch in ipairs { 1, 2, 5 } do
        assert.same(sequential, ids_of(sb:new_client { prefetch = prefetch }, "wf_demo",
          { limit = 30 }))
      end
    end)

    -- How fast that is belongs to the benchmark (make bench); what makes it fast is
    -- seen in the log: pages asked for at once, each on a connection of its own.
    it("asks for the pages ahead at once, on up to prefetch + 1 connections", function()
      local seq, id = sb:last_seq(), unique("latency=80")
      local ids = ids_of(sb:new_client { prefetch = 3 }, id, { limit = 40 })
      assert.equal(250, #ids)
      local entries = requests_for(sb, id, seq)
      assert.equal("0", entries[1].query.offset)    -- the first page alone, then the rest
      assert.same({ 0, 39, 78, 117, 156, 195, 234 }, { unpack(offsets_of(entries), 1, 7) })
      local connections = connections_of(entries)
      assert.is_true(connections >= 2 and connections <= 3 + 1, connections .. " connections")
    end)

    it("asks for one page at a time on one connection with prefetch = 0", function()
      local seq, id = sb:last_seq(), unique("latency=20")
      local ids = ids_of(sb:new_client { prefetch = 0 }, id, { limit = 40 })
      assert.equal(250, #ids)
      local entries = requests_for(sb, id, seq)
      local offsets = {}
      for i, entry in ipairs(entries) do offsets[i] = tonumber(entry.query.offset) end
      assert.same({ 0, 39, 78, 117, 156, 195, 234 }, offsets)   -- in order, none past the end
      assert.equal(1, connections_of(entries))
    end)

    it("wastes at most prefetch requests past the end", function()
      local seq, id = sb:last_seq(), unique()
      local ids = ids_of(sb:new_client { prefetch = 3 }, id, { limit = 50 })
      assert.equal(250, #ids)
      local offsets = offsets_of(requests_for(sb, id, seq))
      assert.same({ 0, 49, 98, 147, 196, 245 }, { unpack(offsets, 1, 6) })
      assert.is_true(#offsets <= 6 + 3, #offsets .. " requests")
    end)

    it("cancels the requests past the end as soon as the last page arrives", function()
      -- Every answer takes 300 ms, so a page asked for past the end is still out
      -- while the last page is consumed, unless the walk cancelled it.
      local walker = sb:new_client { prefetch = 2 }
      local count, most, during_last = 0, 0, {}
      for _ in walker:runs(unique("latency=300"), { limit = 100 }) do
        count = count + 1
        most = math.max(most, walker:in_flight())
        if count > 200 then during_last[walker:in_flight()] = true end
      end
      assert.equal(250, count)
      assert.is_true(most >= 1, "nothing was ever fetched ahead")
      assert.same({ [0] = true }, during_last)
      assert.equal(0, walker:in_flight())
    end)

    it("shares the connections of the client between pages", function()
      local seq, id = sb:last_seq(), unique()
      local ids = ids_of(sb:new_client { prefetch = 2 }, id, { limit = 10 })
      assert.equal(250, #ids)
      local count = connections_of(requests_for(sb, id, seq))
      assert.is_true(count <= 3, count .. " connections for 25 pages")
    end)
  end)

  describe("release", function()
    it("cancels what is in flight when the loop breaks", function()
      local walker = sb:new_client { prefetch = 2 }
      local in_flight_inside
      -- In a function of its own, so that nothing else keeps the walk alive.
      local function first_run()
        local first
        for run in walker:runs(unique("latency=300"), { limit = 50 }) do
          in_flight_inside, first = walker:in_flight(), run
          if first then break end
        end
        return first
      end
      assert.is_table(first_run())
      assert.is_true(in_flight_inside >= 1, in_flight_inside .. " in flight")
      if HAS_CLOSE then
        -- The closing value of the generic for released them at once.
        assert.equal(0, walker:in_flight())
      else
        -- Without closing values, collecting the transfers releases them.
        collectgarbage()
        collectgarbage()
        assert.equal(0, walker:in_flight())
      end
    end)

    it("cancels what is in flight when the fourth value of runs() is closed", function()
      local walker = sb:new_client { prefetch = 3 }
      local iterator, _, _, walk = walker:runs(unique("latency=300"), { limit = 50 })
      assert.is_table(iterator())
      assert.is_true(walker:in_flight() >= 1)
      walk:close()
      assert.equal(0, walker:in_flight())
      assert.is_nil(iterator())
      walk:close()                                -- closing again does nothing
    end)

    it("has the fourth value close the walk as a closing value on Lua 5.4", function()
      if not HAS_CLOSE then return end            -- no <close> before 5.4 (nor in LuaJIT)
      local walker = sb:new_client { prefetch = 3 }
      local chunk = assert(load([[
        local walker, id = ...
        local iterator, _, _, walk = walker:runs(id, { limit = 50 })
        local inside
        do
          local scoped <close> = walk
          iterator()
          inside = walker:in_flight()
        end
        return inside, walker:in_flight(), iterator()
      ]]))
      local inside, after, more = chunk(walker, unique("latency=300"))
      assert.is_true(inside >= 1, inside .. " in flight")
      assert.equal(0, after)
      assert.is_nil(more)
    end)

    it("cancels what is in flight when the walk is closed by hand", function()
      local walker = sb:new_client { prefetch = 3 }
      local iterator, _, _, walk = walker:pages(unique("latency=300"), { limit = 50 })
      assert.is_table(iterator())
      assert.is_true(walker:in_flight() >= 1)
      walk:close()
      assert.equal(0, walker:in_flight())
      assert.is_nil(iterator())
    end)

    it("leaves nothing in flight after a page fails", function()
      local walker = sb:new_client { prefetch = 3 }
      local seq, id = sb:last_seq(), unique("latency=100;fault=stuck_offset")
      local ok, err = pcall(function()
        for _ in walker:pages(id, { limit = 50 }) do end
      end)
      assert.is_false(ok)
      assert.equal("decode", err.kind)
      assert.equal(0, walker:in_flight())
      -- The first page, the second (the first again), the failing one and the three
      -- behind it at most.
      local entries = requests_for(sb, id, seq)
      assert.is_true(#entries <= 1 + 2 + 3, #entries .. " requests")
    end)

    it("leaves nothing in flight when the loop body raises", function()
      local walker = sb:new_client { prefetch = 2 }
      local function failing_body()
        for _ in walker:runs(unique("latency=300"), { limit = 50 }) do error("body failed") end
      end
      local ok, message = pcall(failing_body)
      assert.is_false(ok)
      assert.truthy(message:find("body failed", 1, true))
      if not HAS_CLOSE then
        collectgarbage()
        collectgarbage()
      end
      assert.equal(0, walker:in_flight())
    end)
  end)
end)
