local fixtures = require "spec.support.fixtures"

local fields = fixtures.fields
local offsets_of = fixtures.offsets_of
local requests_for = fixtures.requests_for

describe("pages()", function()
  local sb = fixtures.sandbox { client = { timeout = 2, max_retries = 1 } }
  local client
  local unique = fixtures.demo_id_maker("pages")

  -- Every page of a walk, and the log entries the walk made.
  local function collect(walker, id, options)
    local seq, pages = sb:last_seq(), {}
    for page in walker:pages(id, options) do pages[#pages + 1] = page end
    return pages, requests_for(sb, id, seq)
  end

  -- The error a walk raised, and the log entries it made.
  local function failure(walker, id, options)
    local seq = sb:last_seq()
    local ok, err = pcall(function()
      for _ in walker:pages(id, options) do end
    end)
    assert.is_false(ok, "the walk should have failed")
    return err, requests_for(sb, id, seq)
  end

  lazy_setup(function()
    client = sb:new_client()
  end)

  describe("walks", function()
    it("every page in order, 100 runs a page unless told, each page after the first "
      .. "starting on the last run of the one before", function()
      local pages, entries = collect(sb:new_client { prefetch = 0 }, "wf_demo")
      assert.equal(3, #pages)
      assert.same({ 100, 99, 51 }, { #pages[1].items, #pages[2].items, #pages[3].items })
      assert.same({ 0, 100, 199 }, { pages[1].offset, pages[2].offset, pages[3].offset })
      assert.same({ 0, 99, 198 }, offsets_of(entries))
      assert.same({ true, true, false }, { pages[1].hasMore, pages[2].hasMore, pages[3].hasMore })
      for _, entry in ipairs(entries) do assert.equal("100", entry.query.limit) end
    end)

    it("the same runs as list_runs, in the same order", function()
      local walked, listed = {}, {}
      for _, page in ipairs(collect(client, "wf_demo", { limit = 60, status = "success" })) do
        for _, run in ipairs(page.items) do walked[#walked + 1] = run end
      end
      local offset = 0
      repeat
        local page = assert(client:list_runs("wf_demo", { limit = 60, offset = offset,
          status = "success" }))
        for _, run in ipairs(page.items) do listed[#listed + 1] = run end
        offset = offset + #page.items
      until not page.hasMore
      assert.is_true(#listed > 60)
      assert.same(listed, walked)
    end)

    it("with limit, offset and status on the wire in that order", function()
      local pages, entries = collect(sb:new_client { prefetch = 0 }, "wf_demo",
        { status = "failure", limit = 10, offset = 5 })
      assert.is_true(#pages >= 1)
      assert.equal("/v1/workflows/wf_demo/runs?limit=10&offset=5&status=failure",
        entries[1].raw_path)
      for _, page in ipairs(pages) do
        for _, run in ipairs(page.items) do assert.equal("failure", run.status) end
      end
    end)

    it("from the offset given", function()
      local pages = collect(client, "wf_demo", { offset = 200 })
      assert.equal(1, #pages)
      assert.equal(50, #pages[1].items)
      assert.equal(200, pages[1].offset)
    end)

    it("one empty page of a workflow without runs", function()
      local pages = collect(client, "wf_empty")
      assert.equal(1, #pages)
      assert.same({}, pages[1].items)
      assert.is_false(pages[1].hasMore)
    end)

    it("at most `max` pages, requesting no more", function()
      local pages, entries = collect(sb:new_client { prefetch = 2 }, "wf_demo", { limit = 20, max = 2 })
      assert.equal(2, #pages)
      assert.same({ 0, 19 }, offsets_of(entries))
    end)

    it("on one connection from start to end", function()
      local pages, entries = collect(sb:new_client { prefetch = 0 }, "wf_demo", { limit = 25 })
      assert.equal(11, #pages)  -- 25 runs, then 24 new ones a page
      assert.equal(11, #entries)
      for _, entry in ipairs(entries) do assert.equal(entries[1].connection, entry.connection) end
    end)

    it("with the same retries as list_runs", function()
      local pages, entries = collect(sb:new_client { max_retries = 1, prefetch = 2 },
        unique("status=503;times=1"))
      assert.equal(3, #pages)
      local offsets, past_the_end = offsets_of(entries), {}
      while offsets[#offsets] > 198 do past_the_end[#past_the_end + 1] = table.remove(offsets) end
      assert.same({ 0, 0, 99, 99, 198, 198 }, offsets)
      for _, offset in ipairs(past_the_end) do
        assert.is_true(offset == 297 or offset == 396, "offset " .. offset)
      end
    end)
  end)

  describe("raises the error object", function()
    it("of an HTTP failure, for pcall to return", function()
      local err, entries = failure(client, "wf_nowhere")
      assert.equal(1, #entries)
      assert.same({ kind = "http", status = 404, code = 404, message = "workflow not found",
        requestId = entries[1].request_id, attempts = 1 }, fields(err))
      assert.equal("workflows: HTTP 404 Not Found: workflow not found (request "
        .. entries[1].request_id .. ")", tostring(err))
    end)

    it("counting the attempts made for the failing page", function()
      local err = failure(sb:new_client { max_retries = 1 }, unique("status=503"))
      assert.equal(503, err.status)
      assert.equal(2, err.attempts)
    end)

    it("of a page that says hasMore but brings no items, instead of looping", function()
      local err, entries = failure(sb:new_client { prefetch = 0 }, unique("fault=empty_has_more"))
      assert.equal(1, #entries)
      assert.same({ kind = "decode", message = "data.hasMore is true but data.items is empty "
        .. "(offset 0)", requestId = entries[1].request_id, attempts = 1 }, fields(err))
    end)

    it("of an offset that does not advance, instead of looping", function()
      local err, entries = failure(sb:new_client { prefetch = 0 }, unique("fault=stuck_offset"))
      -- the second page comes back as the first: all runs handed out, the anchor
      -- last, so the walk moves on once more before the offset check ends it
      assert.is_true(#entries <= 4, #entries .. " requests")
      assert.same({ kind = "decode", message = ("data.offset is 0 where %d was requested, twice "
        .. "in a row"):format(entries[#entries].query.offset), requestId = entries[#entries].request_id,
        attempts = 1 }, fields(err))
    end)

    it("of an offset that does not advance, with pages in flight", function()
      local err, entries = failure(sb:new_client { prefetch = 3 }, unique("fault=stuck_offset"))
      assert.equal("decode", err.kind)
      assert.is_true(#entries <= 8, #entries .. " requests")  -- two windows at most
    end)

    it("of a page of the wrong shape", function()
      local err = failure(client, unique("fault=wrong_shape"))
      assert.equal("decode", err.kind)
      assert.equal("data.items is an object, expected an array", err.message)
    end)

    it("and then ends: the iterator gives nothing more", function()
      local iterator = client:pages("wf_nowhere")
      assert.is_false(pcall(iterator))
      assert.is_nil(iterator())
    end)
  end)
end)
