-- The page walker behind client:pages and client:runs. While one page is being
-- consumed the next `prefetch` pages are already in flight; pages still come out
-- in order, and every walk ends: at the last page, at `max`, on an error, on a
-- listing that stops advancing, or when the caller breaks out of the loop.

local request = require "workflows.request"
local transport = require "workflows.transport"
local errors = require "workflows.errors"
local recent = require "workflows.recent"

local setmetatable, error, type, ipairs = setmetatable, error, type, ipairs
local floor = math.floor
local format = string.format
local remove = table.remove

local M = {}

-- Pages in a row that bring nothing but runs already seen before the walk is
-- taken to be going round in circles (a server that ignores `offset`).
local STALE_PAGES = 3

local Walk = {}
Walk.__index = Walk

-- What the caller holds of a walk: methods only. The walk itself holds the
-- client's context, and with it the token, so it stays out of reach.
local Handle = {}
Handle.__index = Handle
local walks = setmetatable({}, { __mode = "k" })

-- Releases everything in flight; idempotent. Also the closing value on Lua 5.4.
function Handle:close()
  local walk = walks[self]
  if walk then walk:close() end
end
Handle.__close = Handle.close

local function cancel_queue(walk)
  for _, job in ipairs(walk.queue) do request.stop(job) end
  walk.queue = {}
end

-- Releases everything in flight; idempotent. Also the walk's closing value.
function Walk:close()
  if self.closed then return end
  self.closed = true
  cancel_queue(self)
  self.items = nil
end
Walk.__close = Walk.close

local function fail(walk, err)
  walk:close()
  error(err, 0)
end


-- Whether another page past the planned ones can still be of use.
local function wants_more(walk)
  if walk.ended or walk.closed then return false end
  if not walk.max then return true end
  if walk.mode == "pages" then return walk.taken + #walk.queue < walk.max end
  return walk.planned < walk.position + (walk.max - walk.taken)
end

-- Starts pages until `target` are queued (or no more are wanted). Nothing is
-- fetched ahead of the first page: a walk that fails there, or fits in one
-- page, then costs one request, and the first page tells the page size.
-- Returns how many were started.
local function fill(walk, target)
  if walk.accepted == 0 then target = 1 end
  local queue, started = walk.queue, 0
  local carrier = started < target and transport.current(walk.ctx)
  while #queue < target and wants_more(walk) do
    local job = request.start(walk.ctx, carrier, walk.url_of(walk.planned, walk.limit),
      walk.page_deadline, walk.deadline_at)
    job.offset = walk.planned
    queue[#queue + 1] = job
    walk.planned = walk.planned + walk.step
    started = started + 1
  end
  return started
end

-- A server may cap the page size below what was asked; plan with what it gives.
local function adopt_page_size(walk, page)
  local limit = page.limit
  if type(limit) == "number" and limit >= 1 and limit < walk.step and floor(limit) == limit then
    walk.step = limit
  end
end

local function is_integer(v) return type(v) == "number" and v == floor(v) end

-- Checks that the listing advances, and moves the walk past `job`'s page;
-- raises a decode error where following it could loop forever.
local function advance(walk, job)
  local page, requested = job.page, job.offset
  local count, offset = #page.items, page.offset
  local function broken(message)
    fail(walk, errors.decode(message, job.attempts, page.requestId))
  end
  if page.hasMore and count == 0 then
    broken(format("data.hasMore is true but data.items is empty (offset %d)", requested))
  end
  if not is_integer(offset) then offset = requested end
  if offset ~= requested then walk.mismatches = walk.mismatches + 1 else walk.mismatches = 0 end
  if walk.mismatches >= 2 then
    broken(format("data.offset is %d where %d was requested, twice in a row", offset, requested))
  end
  if not page.hasMore then
    walk.ended = true
    cancel_queue(walk)  -- pages past the end: at most `prefetch` of them
    return
  end
  local following = offset + count
  if following <= requested then
    broken(format("the listing does not advance: offset %d was requested, data.offset %d came "
      .. "back with %d items", requested, offset, count))
  end
  adopt_page_size(walk, page)
  walk.position = following
  local head = walk.queue[1]
  if not (head and head.offset == following) then
    -- A short page, a capped page size or an offset of the server's own choosing:
    -- what was planned ahead no longer lines up, so plan again from here.
    cancel_queue(walk)
    walk.planned = following
  end
end

-- Drops the runs of `page` that this walk has already handed out. The page
-- keeps its own items table unless there is something to drop.
local function keep_new_runs(walk, job)
  local page = job.page
  local items, fresh = page.items, page.items
  local seen = walk.seen
  for i = 1, #items do
    local run = items[i]
    local id = run.id
    if id == nil or seen:add(id) then
      if fresh ~= items then fresh[#fresh + 1] = run end
    elseif fresh == items then
      fresh = {}
      for j = 1, i - 1 do fresh[j] = items[j] end
    end
  end
  if #items > 0 and #fresh == 0 and page.hasMore then
    walk.stale = walk.stale + 1
    if walk.stale >= STALE_PAGES then
      fail(walk, errors.decode(format("%d pages in a row up to offset %d brought only runs "
        .. "already seen", STALE_PAGES, job.offset), job.attempts, page.requestId))
    end
  else
    walk.stale = 0
  end
  page.items = fresh
  return #items == 0 or #fresh > 0
end

-- The next page with its new runs, or nil at the end of the walk. The walk holds
-- at most prefetch + 1 pages: the one awaited and those queued behind it.
local function next_page(walk)
  while not (walk.closed or walk.ended) do
    fill(walk, walk.prefetch + 1)
    local head = walk.queue[1]
    if not head then break end
    transport.await(head, walk.queue)
    remove(walk.queue, 1)
    if head.err then fail(walk, head.err) end
    advance(walk, head)
    walk.accepted = walk.accepted + 1
    local worth_yielding = keep_new_runs(walk, head)
    if worth_yielding then
      if walk.mode == "pages" then walk.taken = walk.taken + 1
      else walk.taken = walk.taken + #head.page.items end
    end
    if fill(walk, walk.prefetch) > 0 then
      -- Send the new requests now, so that the server works on them while the
      -- caller works on this page.
      transport.flush(walk.queue[#walk.queue])
    end
    if worth_yielding then return head.page end
  end
  walk:close()
  return nil
end

-- Runs handed out between two nudges of the transfers in flight.
local NUDGE_EVERY = 25

local function runs_iterator(walk)
  return function()
    while not walk.closed do
      local items = walk.items
      if items then
        local index = walk.index + 1
        local run = items[index]
        if run ~= nil then
          walk.index, walk.yielded = index, walk.yielded + 1
          if walk.max and walk.yielded >= walk.max then
            walk:close()
          elseif index % NUDGE_EVERY == 0 and walk.queue[1] then
            -- Transfers move only when driven: a caller slow with its runs
            -- would otherwise leave the next pages waiting on the wire.
            transport.flush(walk.queue[1])
          end
          return run
        end
        walk.items = nil
      end
      local page = next_page(walk)
      if page == nil then return nil end
      walk.items, walk.index = page.items, 0
    end
    return nil
  end
end

local function pages_iterator(walk)
  return function()
    if walk.closed then return nil end
    local page = next_page(walk)
    if page == nil then return nil end
    walk.yielded = walk.yielded + 1
    if walk.max and walk.yielded >= walk.max then walk:close() end
    return page
  end
end

--[[ Starts nothing yet: the first call of the iterator does. `spec` holds
  ctx       the client's request context
  url_of    function(offset, limit) -> the URL of that page
  mode      "runs" or "pages"
  limit, offset, max   the checked call options (limit and offset set)
  prefetch  pages to keep in flight ahead
  page_deadline  seconds for each page with its retries, or nil
  deadline_at    core.now() time the whole walk must be done by, or nil
Returns the iterator and the walk, which is also its closing value. ]]
function M.walk(spec)
  local walk = setmetatable({
    ctx = spec.ctx, url_of = spec.url_of, mode = spec.mode,
    limit = spec.limit, step = spec.limit, max = spec.max, prefetch = spec.prefetch,
    page_deadline = spec.page_deadline, deadline_at = spec.deadline_at,
    position = spec.offset, planned = spec.offset,
    queue = {}, accepted = 0, taken = 0, yielded = 0, mismatches = 0, stale = 0,
    -- Runs shift down the listing as new ones arrive at its head; a shifted run
    -- shows up again within the pages in flight, so their ids are enough.
    seen = recent.new((spec.prefetch + 2) * spec.limit),
    ended = false, closed = false,
  }, Walk)
  local iterator = spec.mode == "pages" and pages_iterator(walk) or runs_iterator(walk)
  local handle = setmetatable({}, Handle)
  walks[handle] = walk
  return iterator, handle
end

return M
