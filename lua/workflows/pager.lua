-- The page walker behind client:pages and client:runs.
--
-- Pages come out in order and every walk ends: at the last page, at `max`, on an
-- error, on a listing that stops advancing, or when the caller breaks out of the
-- loop. While one page is consumed the next ones are already in flight (the
-- window, workflows.window).
--
-- The listing is alive: runs arrive at its head and leave it while the walk
-- goes on. The walk's ledger (workflows.ledger) tells where each page stands
-- against the runs handed out, what to hand out of it and where to ask next;
-- this module asks, waits, and ends the walk where the ledger finds it cannot
-- go on without a gap.

local request = require "workflows.request"
local transport = require "workflows.transport"
local errors = require "workflows.errors"
local window = require "workflows.window"
local new_ledger = require("workflows.ledger").new
local core = require "workflows.core"

local setmetatable, getmetatable, error, ipairs, pcall = setmetatable, getmetatable, error,
  ipairs, pcall
local max, min, huge = math.max, math.min, math.huge
local remove = table.remove
local now = core.now

local M = {}

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

-- Nothing to hand out: where a runs iterator starts, and what it holds once closed.
local NO_RUNS = {}

-- Releases everything in flight; idempotent. Also the closing value on Lua 5.4.
function Walk:close()
  if self.closed then return end
  self.closed = true
  -- the runs iterator looks only at its page until the next closer look: an empty one
  if self.in_hand then self.in_hand.items = NO_RUNS end
  stop_queue(self)
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

-- Starts pages until `count` are in flight, or as many as the ledger allows
-- (or no more are wanted).
local function fill(walk, count)
  local ledger = walk.ledger
  count = ledger:pages_in_flight(count)
  local queue, started = walk.queue, 0
  local carrier
  while #queue < count and not walk.closed and ledger:wants_more(#queue) do
    carrier = carrier or transport.current(walk.ctx)
    local job = request.start(walk.ctx, carrier, walk.url_of(ledger.planned, ledger.limit),
      request.deadline_in(walk.page_deadline, walk.deadline_at), walk.window:size())
    ledger:plan(job)
    queue[#queue + 1] = job
    started = started + 1
  end
  return started
end

-- With shared_dict, a pushback halves the auto windows of every nginx worker: each
-- walk counts the pushbacks it has seen (workflows.shared).
local function pushed_back(walk, job)
  local shared = walk.ctx.shared
  if not (shared and walk.window.auto) then return job.pushed_back and "pushback" or nil end
  if job.pushed_back then
    shared:pushed_back()
    walk.pushbacks_seen = shared:pushbacks()
    return "pushback"
  end
  local count = shared:pushbacks()
  if count <= walk.pushbacks_seen then return nil end
  walk.pushbacks_seen = count
  return "shared_pushback"
end

local function window_event(walk, from, why)
  local to = walk.window:size()
  if to ~= from then walk.ctx.on_event { type = "window", from = from, to = to, why = why } end
end

-- The window learns from each page: how long it took to come, and how long the
-- caller and the walk spent on the page before.
local function measure(walk, job, waited)
  local t = now()
  local sizing = walk.window
  local before = sizing:size()
  local pushback = pushed_back(walk, job)
  if pushback then
    sizing:on_pushback()
    if walk.ctx.on_event then window_event(walk, before, pushback) end
  end
  local round_trip = job.elapsed
  local page_time
  if walk.last_page_at then page_time = t - walk.last_page_at - waited end
  before = sizing:size()
  sizing:on_page(round_trip, page_time)
  if walk.ctx.on_event then
    window_event(walk, before, sizing:size() > before and "grow" or "pace")
  end
  walk.last_page_at = t
end

-- The next page that brings runs not handed out yet, or nil at the end.
local function next_page(walk)
  local ledger = walk.ledger
  while not (walk.closed or ledger.ended) do
    fill(walk, walk.window:size() + 1)
    local head = walk.queue[1]
    if not head then break end
    local waited = transport.await(head, walk.queue)
    remove(walk.queue, 1)
    if head.err then fail(walk, head.err) end
    local problem = ledger:check(head)
    if problem then broken(walk, head, problem) end
    measure(walk, head, waited)
    local index, again, ahead
    index, again, ahead, problem = ledger:place(head)
    if problem then broken(walk, head, problem) end
    if index then
      local page, stale
      page, stale, problem = ledger:accept(head, index, walk.queue[1])
      if problem then broken(walk, head, problem) end
      -- The job lets go of its page once placed. A job made a page or more ago
      -- is old for Lua 5.4's generational collector, and an old table that was
      -- written to keeps what it holds alive through the next collection, dead
      -- or not: the page would grow old too, and only a major collection frees it.
      head.page = nil
      if stale then stop_queue(walk) end
      if page then
        if walk.ctx.on_event then walk.ctx.events.page(walk.ctx, head, page) end
        if fill(walk, walk.window:size()) > 0 then
          -- send the new requests now, so that the server works on them while
          -- the caller works on this page
          transport.flush(walk.queue[#walk.queue])
        end
        return page
      end
    else
      head.page = nil
      problem = ledger:ask_again(head, again, ahead)
      if problem then broken(walk, head, problem) end
      stop_queue(walk)
    end
  end
  walk:close()
  return nil
end

-- The page being handed out lives in a table; where in it, and up to where the
-- next runs need no more than a look, in the iterator's upvalues: per run it costs
-- a few instructions. Not the page in an upvalue: Lua 5.4's generational collector
-- makes whatever an old closure's upvalue is set to old at once, and every page,
-- its runs with it, would then wait for a major collection to be freed.
local function runs_iterator(walk)
  -- `left`: the index on the current page of the run that reaches `max` (huge
  -- without one); `stop`: the first index that needs a closer look: that run, the
  -- next flush, or past the page's end. Below `stop` a closed walk is seen by its
  -- page, which close() empties.
  local current, index, stop, left = { items = NO_RUNS }, 0, 0, walk.max or huge
  walk.in_hand = current
  return function()
    local i = index + 1   -- a local: the upvalue is read once per run, not twice
    index = i
    if i < stop then return current.items[i] end
    while not walk.closed do
      -- No local holds the page: one would keep the finished page alive while the
      -- next one is decoded, long enough for the collector to make it old.
      local run = current.items[index]
      if run ~= nil then
        if index == left then
          walk:close()
        elseif index % 25 == 0 and walk.queue[1] then
          -- every 25 runs: on cqueues and in a session without a transfer thread,
          -- transfers move only when driven, and a caller slow with its runs would
          -- otherwise leave the next pages waiting on the wire
          transport.flush(walk.queue[1])
        end
        stop = min(#current.items + 1, index - index % 25 + 25, left)
        return run
      end
      left = left - #current.items  -- every run of the page before went out
      current.items = NO_RUNS
      local page = next_page(walk)
      if page == nil then break end
      current.items, index = page.items, 1
      stop = min(#page.items + 1, 25, left)
      if 1 < stop then return page.items[1] end
    end
    current.items = NO_RUNS     -- a closed walk holds no page
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
    ctx = spec.ctx, url_of = spec.url_of, max = spec.max,
    page_deadline = spec.page_deadline, deadline_at = spec.deadline_at,
    window = sizing,
    ledger = new_ledger {
      mode = spec.mode, limit = limit, offset = spec.offset, max = spec.max,
      -- handed-out runs reappear within the pages in flight and what a repair
      -- fetches again, so the last few windows' ids are enough
      remember = max(SEEN_AT_LEAST, (spec.prefetch_cap + 4) * limit * 2),
    },
    queue = {},                 -- pages requested, in offset order
    yielded = 0,                -- pages the pages iterator returned
    closed = false,
    -- the pushbacks of every nginx worker so far (with shared_dict): later ones halve it
    pushbacks_seen = spec.ctx.shared and spec.ctx.shared:pushbacks() or 0,
  }, Walk)
  walk.guard = collection_guard(walk)
  local iterator = spec.mode == "pages" and pages_iterator(walk) or runs_iterator(walk)
  local handle = setmetatable({}, Handle)
  walks[handle] = walk
  return iterator, handle
end

return M
