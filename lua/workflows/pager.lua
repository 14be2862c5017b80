-- The page walker behind client:pages and client:runs.
--
-- Pages come out in order and every walk ends: at the last page, at `max`, on an
-- error, on a listing that stops advancing, or when the caller breaks out of the
-- loop. While one page is consumed the next ones are already in flight (the
-- window, workflows.window).
--
-- The listing is offset-paginated and alive: runs arrive at its head, and under
-- a filter runs leave it and join it. Each page after the first starts one run
-- early, on the last run handed out (the anchor), so that consecutive pages
-- must share a run. Where that run is not where the page says, the listing
-- moved between the two answers: runs that arrived show up as runs already
-- handed out, and runs that left as an anchor missing. The walk then asks again
-- from the corrected offset, in order, before it hands out anything past the
-- gap. So every run in the listing for the whole walk comes out exactly once.
-- This assumes the server keeps a stable total order (newest first); where the
-- listing moves faster than the walk can follow, the walk ends with a decode
-- error rather than leave a gap.

local request = require "workflows.request"
local transport = require "workflows.transport"
local errors = require "workflows.errors"
local recent = require "workflows.recent"
local window = require "workflows.window"
local core = require "workflows.core"

local setmetatable, getmetatable, error, type, ipairs, pcall = setmetatable, getmetatable, error,
  type, ipairs, pcall
local floor, max = math.floor, math.max
local format = string.format
local remove = table.remove
local now = core.now

local M = {}

-- Pages in a row that bring nothing new before the walk gives up on a listing
-- that moves faster than it can follow (or a server that ignores `offset`).
local MOST_FRUITLESS_PAGES = 50
-- Pages fetched one at a time after the walk found the listing moving: the
-- first stretch, and the longest.
local CAREFUL_PAGES = 4
local MOST_CAREFUL_PAGES = 64
-- Ids a walk remembers at least, so that a repair that fetches runs again
-- never hands one out twice.
local SEEN_AT_LEAST = 2048

local Walk = {}
Walk.__index = Walk

-- What the caller holds of a walk: methods only. The walk itself holds the
-- client's context, and with it the token, so it stays out of reach.
local Handle = {}
Handle.__index = Handle
local walks = setmetatable({}, { __mode = "k" })

local function stop_queue(walk)
  for _, job in ipairs(walk.queue) do request.stop(job) end
  walk.queue = {}
end

-- Releases everything in flight; idempotent. Also the closing value on Lua 5.4.
function Walk:close()
  if self.closed then return end
  self.closed = true
  stop_queue(self)
  self.items = nil
end

function Handle:close()
  local walk = walks[self]
  if walk then walk:close() end
end
Handle.__close = Handle.close

-- A walk dropped without close() (a `break` where there are no closing values) is
-- abandoned when collected. That runs in a finalizer, inside whatever code the
-- collection interrupted (another request, a loop callback), so it never calls the
-- host: each transport releases the pages in flight on its own next turn
-- (doc/lifecycle.md). Lua 5.2+ finalizes tables; 5.1 and LuaJIT need a userdata.
-- A finalizer must not raise: the error would surface in unrelated code.
function Walk:abandon()
  if self.closed then return end
  self.closed = true
  for _, job in ipairs(self.queue) do request.drop(job) end
  self.queue = {}
  self.items = nil
end

function Walk:__gc() pcall(Walk.abandon, self) end
local newproxy = newproxy  -- luacheck: ignore (Lua 5.1 and LuaJIT only)
local function collection_guard(walk)
  if not newproxy then return nil end
  local guard = newproxy(true)
  getmetatable(guard).__gc = function() pcall(Walk.abandon, walk) end
  return guard
end

-- The prefetch window: its size now, the largest it reached, and how often the
-- server made it halve (always 0 for a fixed prefetch).
function Handle:window()
  local walk = walks[self]
  return walk.window:report()
end

local function fail(walk, err)
  walk:close()
  error(err, 0)
end

local function broken(walk, job, message)
  fail(walk, errors.decode(message, job.attempts, job.page and job.page.requestId))
end

-- Whether another page past the planned ones can still be of use.
local function wants_more(walk)
  if walk.ended or walk.closed then return false end
  if not walk.max then return true end
  if walk.mode == "pages" then return walk.taken + #walk.queue < walk.max end
  -- each planned page brings at most `step` runs not handed out yet
  return walk.planned - walk.frontier < walk.max - walk.taken
end

-- Starts pages until `count` are in flight (or no more are wanted). Before the
-- first page has come back nothing is fetched ahead: a walk that fails there,
-- or fits in one page, then costs one request, and the first page tells the
-- page size. After a repair, pages go one at a time for a stretch.
local function fill(walk, count)
  if walk.accepted == 0 or walk.careful > 0 then count = 1 end
  local queue, started = walk.queue, 0
  local carrier
  while #queue < count and wants_more(walk) do
    carrier = carrier or transport.current(walk.ctx)
    local job = request.start(walk.ctx, carrier, walk.url_of(walk.planned, walk.limit),
      walk.page_deadline, walk.deadline_at)
    -- a page planned on the anchor tells how far the anchor moved; one planned
    -- by a search does not
    job.offset, job.drift, job.anchored = walk.planned, walk.drift, walk.anchored
    job.window = walk.window:size()
    queue[#queue + 1] = job
    walk.planned = walk.planned + walk.step + walk.drift
    started = started + 1
  end
  return started
end

-- Forgets what was planned and plans again from `offset`, where the anchor
-- stands now, plus how far it is expected to move before the next answer.
local function plan_from(walk, offset, anchored)
  stop_queue(walk)
  walk.planned = offset + walk.drift
  walk.anchored = anchored
end

-- Runs the listing gained ahead of the anchor between two answers, as the
-- last few pages saw it: the smallest of them, since asking too far ahead
-- costs a step back. A listing that loses runs gets no drift.
local DRIFT_SAMPLES = 3

local function observe_drift(walk, job, moved)
  if not job.anchored then return end
  local samples = walk.drifts
  samples[walk.drift_slot] = moved
  walk.drift_slot = walk.drift_slot % DRIFT_SAMPLES + 1
  local least = moved
  for i = 1, DRIFT_SAMPLES do
    local sample = samples[i]
    if sample ~= nil and sample < least then least = sample end
  end
  walk.drift = least > 0 and least or 0
end

local function forget_drift(walk)
  walk.drifts, walk.drift_slot, walk.drift = {}, 1, 0
end

-- A server may cap the page size below what was asked; plan with what it gives.
local function adopt_page_size(walk, page)
  local limit = page.limit
  if type(limit) == "number" and limit >= 1 and limit < walk.limit and floor(limit) == limit then
    walk.limit = limit
    walk.step = limit > 1 and limit - 1 or 1
  end
end

-- Checks what a page says about itself; raises where following it could loop.
local function check_page(walk, job)
  local page, requested = job.page, job.offset
  if page.hasMore and #page.items == 0 then
    broken(walk, job, format("data.hasMore is true but data.items is empty (offset %d)", requested))
  end
  if page.offset ~= requested then walk.mismatches = walk.mismatches + 1 else walk.mismatches = 0 end
  if walk.mismatches >= 2 then
    broken(walk, job, format("data.offset is %d where %d was requested, twice in a row",
      page.offset, requested))
  end
end

--[[ Where the runs of `job`'s page not handed out yet begin, told by the last run
on the page that was handed out before (the anchor, or a run before it):
  index          hand out the runs after this index of page.items
  nil, offset    hand out nothing: ask again from `offset` first ]]
local function place(walk, job)
  local items, offset = job.page.items, job.offset
  if walk.handed == 0 then return 0 end
  local seen = walk.seen
  for i = #items, 1, -1 do
    local number = seen:number(items[i].id)
    if number then
      walk.forwards = 0
      if number == walk.handed then
        -- the anchor: it moved by i - 1 since it was planned on
        observe_drift(walk, job, i - 1 + job.drift)
        return i
      end
      if i < #items or not job.page.hasMore then
        -- a run before the anchor, followed by runs never handed out or by the
        -- listing's end: those handed out after it have left the listing
        forget_drift(walk)
        return i
      end
      -- the page ends before the anchor: runs arrived ahead of it
      local anchor_at = offset + i - 1 + (walk.handed - number)
      observe_drift(walk, job, anchor_at - offset + job.drift)
      return nil, anchor_at, true
    end
  end
  -- Nothing handed out on the page: runs before the anchor left, and the page
  -- starts past it. Back up, further each time, but only as far as the runs
  -- handed out are still remembered: past that a run could come out twice.
  forget_drift(walk)
  local past_the_end = #items == 0
  if not past_the_end and (offset <= walk.origin or walk.forwards > 0
      or (walk.backups == 0 and offset + #items - 1 < walk.frontier)) then
    -- Nothing on a page above the anchor was handed out: more runs arrived
    -- than a page holds. They may come out or not; the anchor is further
    -- down, so look there, further each time.
    -- Never further than the runs handed out reach: a longer jump could pass
    -- them all and land past the anchor.
    walk.backups, walk.forwards = 0, walk.forwards + 1
    local jump = walk.step * 2 ^ (walk.forwards - 1)
    local reach = walk.step + math.min(walk.handed, walk.seen.capacity)
    if jump > reach then jump = reach end
    return nil, max(walk.frontier, offset) + jump, true
  end
  walk.forwards = 0
  if walk.backups == 0 then walk.backed_from = offset end
  local reach = walk.backed_from - walk.seen.capacity / 2
  if offset <= reach then
    broken(walk, job, format("the listing moved by more than %d runs between two answers "
      .. "(offset %d)", walk.seen.capacity / 2, offset))
  end
  walk.backups = walk.backups + 1
  return nil, max(walk.origin, reach, offset - 2 ^ walk.backups)
end

-- Hands out the runs of `job`'s page after `index` that no page brought before.
-- Returns the page, its items replaced by those runs.
local function take(walk, job, index)
  local page = job.page
  local items, fresh = page.items, {}
  local seen = walk.seen
  page.offset = job.offset + index  -- where its first run stands in the listing
  for i = index + 1, #items do
    local run = items[i]
    local id = run.id
    if id == nil then
      fresh[#fresh + 1] = run
    elseif seen:add(id, walk.handed + 1) then
      walk.handed = walk.handed + 1
      fresh[#fresh + 1] = run
    end
  end
  page.items = fresh
  return page
end

-- The window learns from each page: how long it took to come, and how long the
-- caller and the walk spent on the page before.
local function measure(walk, job, waited)
  local t = now()
  if job.pushed_back then walk.window:on_pushback() end
  local round_trip = job.elapsed
  local page_time
  if walk.last_page_at then page_time = t - walk.last_page_at - waited end
  walk.window:on_page(round_trip, page_time)
  walk.last_page_at = t
end

-- Counts a page that brought nothing new; raises when too many did in a row.
local function count_fruitless(walk, job, fruitful)
  if fruitful then
    walk.fruitless = 0
    return
  end
  walk.fruitless = walk.fruitless + 1
  if walk.fruitless >= MOST_FRUITLESS_PAGES then
    broken(walk, job, format("%d pages in a row up to offset %d brought no run not handed "
      .. "out yet: the listing moves faster than the walk can follow, or the server ignores "
      .. "offset", MOST_FRUITLESS_PAGES, job.offset))
  end
end

-- Hands out what `job`'s page brings after `index` and plans what follows it.
-- Returns the page when it has runs for the caller.
local function accept(walk, job, index)
  local page = job.page
  local count = #page.items
  walk.backups = 0
  if count > index then adopt_page_size(walk, page) end
  local handed_before = walk.handed
  take(walk, job, index)
  count_fruitless(walk, job, walk.handed > handed_before or not page.hasMore)
  if not page.hasMore then
    walk.ended = true
    stop_queue(walk)  -- pages past the end: at most the window
  else
    -- the next page starts on this page's last run, the new anchor
    local following = job.offset + count - 1
    walk.frontier = following
    local queued = walk.queue[1]
    if not (queued and queued.offset <= following + walk.drift and queued.offset > job.offset) then
      plan_from(walk, following, true)
    end
    if walk.careful > 0 then walk.careful = walk.careful - 1 end
  end
  if walk.mode == "pages" then
    if #page.items > 0 then walk.taken = walk.taken + 1 end
  else
    walk.taken = walk.taken + #page.items
  end
  -- an empty listing still has its one (empty) page
  if #page.items > 0 or count == 0 then return page end
  return nil
end

-- The next page that brings runs not handed out yet, or nil at the end.
local function next_page(walk)
  while not (walk.closed or walk.ended) do
    fill(walk, walk.window:size() + 1)
    local head = walk.queue[1]
    if not head then break end
    local waited = transport.await(head, walk.queue)
    remove(walk.queue, 1)
    if head.err then fail(walk, head.err) end
    check_page(walk, head)
    measure(walk, head, waited)
    walk.accepted = walk.accepted + 1
    local index, again, moved_ahead = place(walk, head)
    if index then
      local page = accept(walk, head, index)
      if page then
        if fill(walk, walk.window:size()) > 0 then
          -- send the new requests now, so that the server works on them while
          -- the caller works on this page
          transport.flush(walk.queue[#walk.queue])
        end
        return page
      end
    else
      count_fruitless(walk, head, false)
      plan_from(walk, again, moved_ahead and index == nil and walk.forwards == 0)
      -- a listing that moved by more than a page, or that keeps moving: fetch
      -- in order for a stretch, so that each answer moves it by less
      if moved_ahead or walk.backups > 1 then
        -- each time, a longer stretch: this listing moves fast
        walk.careful = walk.careful_stretch
        if walk.careful_stretch < MOST_CAREFUL_PAGES then
          walk.careful_stretch = walk.careful_stretch * 2
        end
      end
    end
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
            -- transfers move only when driven: a caller slow with its runs
            -- would otherwise leave the next pages waiting on the wire
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
  client, ctx    the client, and its context
  url_of         function(offset, limit) -> the URL of that page
  mode           "runs" or "pages"
  limit, offset, max   the checked call options (limit and offset set)
  prefetch       pages to keep in flight ahead, or "auto"
  prefetch_cap   the most pages in flight ahead under "auto"
  page_deadline  seconds for each page with its retries, or nil
  deadline_at    core.now() time the whole walk must be done by, or nil
Returns the iterator and the caller's handle on the walk, which is also the
loop's closing value. ]]
function M.walk(spec)
  local limit = spec.limit
  local sizing = spec.prefetch == "auto" and window.auto(spec.prefetch_cap)
    or window.fixed(spec.prefetch)
  local walk = setmetatable({
    client = spec.client,       -- kept alive while the walk is: it closes when collected
    ctx = spec.ctx, url_of = spec.url_of, mode = spec.mode, max = spec.max,
    page_deadline = spec.page_deadline, deadline_at = spec.deadline_at,
    window = sizing,
    limit = limit,
    -- pages after the first start on the anchor: one run of overlap
    step = limit > 1 and limit - 1 or 1,
    origin = spec.offset,       -- where the walk starts; it never backs up past it
    planned = spec.offset,      -- offset of the next page to request
    frontier = spec.offset,     -- offset of the anchor as the last page placed it
    queue = {},                 -- pages requested, in offset order
    handed = 0,                 -- runs handed out so far (their numbers in `seen`)
    accepted = 0,               -- pages that came back and were placed
    taken = 0,                  -- pages (mode "pages") or runs counted against max
    yielded = 0,                -- what the iterator returned
    mismatches = 0,             -- pages in a row whose offset was not the one asked for
    fruitless = 0,              -- pages in a row that brought nothing new
    backups = 0,                -- times in a row the walk backed up
    forwards = 0,               -- times in a row the top of the listing was all new
    careful = 0,                -- pages still to fetch one at a time
    careful_stretch = CAREFUL_PAGES,  -- how many, the next time the listing moves
    drift = 0,                  -- runs the anchor is expected to move between answers
    anchored = true,            -- pages planned now are planned on the anchor
    drifts = {}, drift_slot = 1,  -- the last few moves seen
    -- handed-out runs reappear within the pages in flight and what a repair
    -- fetches again, so the last few windows' ids are enough
    seen = recent.new(max(SEEN_AT_LEAST, (spec.prefetch_cap + 4) * limit * 2)),
    ended = false, closed = false,
  }, Walk)
  walk.guard = collection_guard(walk)
  local iterator = spec.mode == "pages" and pages_iterator(walk) or runs_iterator(walk)
  local handle = setmetatable({}, Handle)
  walks[handle] = walk
  return iterator, handle
end

return M
