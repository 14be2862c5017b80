-- Listings made up in Lua, and a walk over them the way workflows.pager walks,
-- for the specs of workflows.ledger: no sandbox, no network, no clock.

local ledger = require "workflows.ledger"

local M = {}

-- Ids "run_<from>" down to "run_<to>": a listing is newest first.
function M.ids_down(from, to)
  local ids = {}
  for n = from, to, -1 do ids[#ids + 1] = "run_" .. n end
  return ids
end

-- The page a server holding `list` (ids, newest first) answers for offset and limit.
function M.answer(list, offset, limit)
  local items = {}
  for i = offset + 1, math.min(offset + limit, #list) do items[#items + 1] = { id = list[i] } end
  return { items = items, hasMore = offset + limit < #list, offset = offset, limit = limit }
end

-- A server whose pages hold only runs never listed before.
function M.unseen(offset, limit)
  local items = {}
  for i = 1, limit do items[i] = { id = "unseen_" .. offset .. "_" .. i } end
  return { items = items, hasMore = true, offset = offset, limit = limit }
end

function M.ids_of(page)
  local ids = {}
  for i, run in ipairs(page.items) do ids[i] = run.id end
  return ids
end

-- A ledger with pages of 10 from offset 0 and 2,048 ids remembered, unless told.
function M.new_ledger(options)
  return ledger.new {
    mode = options.mode or "runs", limit = options.limit or 10, offset = options.offset or 0,
    max = options.max, remember = options.remember or 2048,
  }
end

-- The job of the page `book` plans next, answered by `server(offset, limit)`.
function M.planned(book, server)
  local job = {}
  local offset, limit = book.planned, book.limit
  book:plan(job)
  job.page = server(offset, limit)
  return job
end

-- A listing that changes between answers: `list` is its ids now.
function M.live(list)
  return { list = list, server = function(offset, limit) return M.answer(list, offset, limit) end }
end

local arrivals = 0
-- Puts `count` runs never seen before at the head of the listing.
function M.arrive(listing, count)
  for _ = 1, count do
    arrivals = arrivals + 1
    table.insert(listing.list, 1, "new_" .. arrivals)
  end
end

-- Takes the runs with these ids out of the listing.
function M.leave(listing, ids)
  for _, id in ipairs(ids) do
    for i, listed in ipairs(listing.list) do
      if listed == id then table.remove(listing.list, i) break end
    end
  end
end

--[[ Walks the way workflows.pager does, without a network: up to `window` pages in
flight after the first, each answered by `server(offset, limit)` as late as it
can be, when the walk comes to it, and `between(pages)` called after each page
is placed (to change the listing under the pages in flight).
Returns { handed = ids handed out, asked = offsets asked for, drifts = the drift
after each page, problem = why the walk ended early, or nil }. ]]
function M.walk(book, server, window, between)
  local queue, result = {}, { handed = {}, asked = {}, drifts = {} }
  local pages = 0
  while not book.ended do
    local room = book:pages_in_flight(window + 1)
    while #queue < room and book:wants_more(#queue) do
      local job = { limit = book.limit }
      book:plan(job)
      result.asked[#result.asked + 1] = job.offset
      queue[#queue + 1] = job
    end
    local head = table.remove(queue, 1)
    if not head then break end
    head.page = server(head.offset, head.limit)
    pages = pages + 1
    local problem = book:check(head)
    if problem then result.problem = problem return result end
    local index, again, ahead
    index, again, ahead, problem = book:place(head)
    if problem then result.problem = problem return result end
    if index then
      local page, stale
      page, stale, problem = book:accept(head, index, queue[1])
      if problem then result.problem = problem return result end
      if stale then queue = {} end
      if page then
        for _, run in ipairs(page.items) do result.handed[#result.handed + 1] = run.id end
      end
    else
      problem = book:ask_again(head, again, ahead)
      if problem then result.problem = problem return result end
      queue = {}
    end
    result.drifts[pages] = book.drift
    if between then between(pages) end
  end
  return result
end

return M
