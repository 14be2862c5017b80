-- A walk's ledger: the runs it handed out, and where each page that comes back
-- stands against them. workflows.pager fetches the pages and does what the
-- ledger decides; the ledger makes no request, knows no transport and reads no
-- clock, so that its decisions can be checked on pages made up in a spec.
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
--
-- A page is known by its job (workflows.request): the ledger reads `job.page`,
-- and the `offset`, `drift` and `anchored` it gave the job when it planned the
-- page; on the usual page, `place` takes the runs at once (the page's items are
-- then those runs) and leaves on the job, for `accept`, the number of the last
-- (`taken_through`). Where following the listing could loop or
-- leave a gap, a function returns the problem as a message, and the pager ends
-- the walk with it.

local new_id_set = require("workflows.core").id_set

local setmetatable, type = setmetatable, type
local floor, max, min = math.floor, math.max, math.min
local format = string.format

local M = {}

-- Pages in a row that bring nothing new before the walk gives up on a listing
-- that moves faster than it can follow (or a server that ignores `offset`).
local MOST_FRUITLESS_PAGES = 50
-- Pages fetched one at a time after the walk found the listing moving: the
-- first stretch, and the longest.
local CAREFUL_PAGES = 4
local MOST_CAREFUL_PAGES = 64
-- Runs the listing gained ahead of the anchor between two answers, as the
-- last few pages saw it: the smallest of them, since asking too far ahead
-- costs a step back. A listing that loses runs gets no drift.
local DRIFT_SAMPLES = 3

local Ledger = {}
Ledger.__index = Ledger

--[[ A ledger for one walk. `spec` holds
  mode           "runs" or "pages"
  limit, offset  the page size asked for, and where the walk starts
  max            runs (mode "runs") or pages to hand out at most, or nil
  remember       how many ids handed out to remember at least (core.id_set) ]]
function M.new(spec)
  local limit, offset = spec.limit, spec.offset
  return setmetatable({
    mode = spec.mode, max = spec.max,
    limit = limit,
    -- pages after the first start on the anchor: one run of overlap
    step = limit > 1 and limit - 1 or 1,
    origin = offset,            -- where the walk starts; it never backs up past it
    planned = offset,           -- offset of the next page to request
    frontier = offset,          -- offset of the anchor as the last page placed it
    handed = 0,                 -- runs handed out so far (their numbers in `seen`)
    accepted = 0,               -- pages that came back and were placed
    taken = 0,                  -- pages (mode "pages") or runs counted against max
    mismatches = 0,             -- pages in a row whose offset was not the one asked for
    fruitless = 0,              -- pages in a row that brought nothing new
    backups = 0,                -- times in a row the walk backed up
    forwards = 0,               -- times in a row the top of the listing was all new
    careful = 0,                -- pages still to fetch one at a time
    careful_stretch = CAREFUL_PAGES,  -- how many, the next time the listing moves
    drift = 0,                  -- runs the anchor is expected to move between answers
    anchored = true,            -- pages planned now are planned on the anchor
    drifts = {}, drift_slot = 1,  -- the last few moves seen
    seen = new_id_set(spec.remember),  -- ids handed out, with their numbers
    ended = false,              -- the page with hasMore = false was accepted
  }, Ledger)
end

-- How many pages to keep in flight when the window asks for `count`. Before the
-- first page has come back nothing is fetched ahead: a walk that fails there,
-- or fits in one page, then costs one request, and the first page tells the
-- page size. After a repair, pages go one at a time for a stretch.
function Ledger:pages_in_flight(count)
  if self.accepted == 0 or self.careful > 0 then return 1 end
  return count
end

-- Whether another page past the planned ones can still be of use, with
-- `in_flight` pages asked for and not placed yet.
function Ledger:wants_more(in_flight)
  if self.ended then return false end
  if not self.max then return true end
  if self.mode == "pages" then return self.taken + in_flight < self.max end
  -- each planned page brings at most `step` runs not handed out yet
  return self.planned - self.frontier < self.max - self.taken
end

-- Gives `job` the page planned next (at `self.planned`, `self.limit` runs) and
-- plans the one after it.
function Ledger:plan(job)
  -- a page planned on the anchor tells how far the anchor moved; one planned
  -- by a search does not
  job.offset, job.drift, job.anchored = self.planned, self.drift, self.anchored
  self.planned = self.planned + self.step + self.drift
end

-- Forgets what was planned and plans again from `offset`, where the anchor
-- stands now, plus how far it is expected to move before the next answer.
-- The pages in flight are then of no use: the caller stops them.
local function plan_from(ledger, offset, anchored)
  ledger.planned = offset + ledger.drift
  ledger.anchored = anchored
end

local function observe_drift(ledger, job, moved)
  if not job.anchored then return end
  local samples = ledger.drifts
  samples[ledger.drift_slot] = moved
  ledger.drift_slot = ledger.drift_slot % DRIFT_SAMPLES + 1
  local least = moved
  for i = 1, DRIFT_SAMPLES do
    local sample = samples[i]
    if sample ~= nil and sample < least then least = sample end
  end
  ledger.drift = least > 0 and least or 0
end

local function forget_drift(ledger)
  ledger.drifts, ledger.drift_slot, ledger.drift = {}, 1, 0
end

-- A server may cap the page size below what was asked; plan with what it gives.
local function adopt_page_size(ledger, page)
  local limit = page.limit
  if type(limit) == "number" and limit >= 1 and limit < ledger.limit and floor(limit) == limit then
    ledger.limit = limit
    ledger.step = limit > 1 and limit - 1 or 1
  end
end

-- What a page says about itself that following it could loop on, or nil.
function Ledger:check(job)
  local page, requested = job.page, job.offset
  if page.hasMore and #page.items == 0 then
    return format("data.hasMore is true but data.items is empty (offset %d)", requested)
  end
  if page.offset ~= requested then self.mismatches = self.mismatches + 1 else self.mismatches = 0 end
  if self.mismatches >= 2 then
    return format("data.offset is %d where %d was requested, twice in a row",
      page.offset, requested)
  end
  return nil
end

--[[ Counts `job`'s page as come back, and tells where its runs not handed out
yet begin, by the last run on the page that was handed out before (the anchor,
or a run before it):
  index                hand out the runs after this index of page.items
  nil, offset, ahead   hand out nothing: ask again from `offset` first (`ahead`
                       is true where runs arrived ahead of the anchor)
  nil, nil, nil, problem   the listing moved further than the walk remembers ]]
function Ledger:place(job)
  self.accepted = self.accepted + 1
  local items, offset = job.page.items, job.offset
  if self.handed == 0 then return 0 end
  -- the usual page, on the anchor with only new runs after it: placed and taken at once
  local handed = self.seen:take_after_anchor(items, self.handed)
  if handed then
    self.forwards = 0
    job.taken_through = handed
    observe_drift(self, job, job.drift)
    return 1
  end
  local i, number = self.seen:last_known(items)
  if i then
    self.forwards = 0
    if number == self.handed then
      -- the anchor: it moved by i - 1 since it was planned on
      observe_drift(self, job, i - 1 + job.drift)
      return i
    end
    if i < #items or not job.page.hasMore then
      -- a run before the anchor, followed by runs never handed out or by the
      -- listing's end: those handed out after it have left the listing
      forget_drift(self)
      return i
    end
    -- the page ends before the anchor: runs arrived ahead of it
    local anchor_at = offset + i - 1 + (self.handed - number)
    observe_drift(self, job, anchor_at - offset + job.drift)
    return nil, anchor_at, true
  end
  -- Nothing handed out on the page: runs before the anchor left, and the page
  -- starts past it. Back up, further each time, but only as far as the runs
  -- handed out are still remembered: past that a run could come out twice.
  forget_drift(self)
  local past_the_end = #items == 0
  if not past_the_end and (offset <= self.origin or self.forwards > 0
      or (self.backups == 0 and offset + #items - 1 < self.frontier)) then
    -- Nothing on a page above the anchor was handed out: more runs arrived
    -- than a page holds. They may come out or not; the anchor is further
    -- down, so look there, further each time.
    -- Never further than the runs handed out reach: a longer jump could pass
    -- them all and land past the anchor.
    self.backups, self.forwards = 0, self.forwards + 1
    local jump = self.step * 2 ^ (self.forwards - 1)
    local reach = self.step + min(self.handed, self.seen:capacity())
    if jump > reach then jump = reach end
    return nil, max(self.frontier, offset) + jump, true
  end
  self.forwards = 0
  if self.backups == 0 then self.backed_from = offset end
  local remembered = self.seen:capacity()
  local reach = self.backed_from - remembered / 2
  if offset <= reach then
    return nil, nil, nil, format("the listing moved by more than %d runs between two answers "
      .. "(offset %d)", remembered / 2, offset)
  end
  self.backups = self.backups + 1
  return nil, max(self.origin, reach, offset - 2 ^ self.backups)
end

-- Hands out the runs of `job`'s page after `index` that no page brought before.
-- Returns the page, its items replaced by those runs.
local function take(ledger, job, index)
  local page = job.page
  page.offset = job.offset + index  -- where its first run stands in the listing
  if job.taken_through then
    ledger.handed, job.taken_through = job.taken_through, nil
  else
    page.items, ledger.handed = ledger.seen:add_runs(page.items, index + 1, ledger.handed)
  end
  return page
end

-- Counts a page that brought nothing new; the problem when too many did in a row.
local function count_fruitless(ledger, job, fruitful)
  if fruitful then
    ledger.fruitless = 0
    return nil
  end
  ledger.fruitless = ledger.fruitless + 1
  if ledger.fruitless >= MOST_FRUITLESS_PAGES then
    return format("%d pages in a row up to offset %d brought no run not handed "
      .. "out yet: the listing moves faster than the walk can follow, or the server ignores "
      .. "offset", MOST_FRUITLESS_PAGES, job.offset)
  end
  return nil
end

-- Hands out what `job`'s page brings after `index` (what `place` returned) and
-- plans what follows it, given `next_in_flight`, the first page asked for after
-- it (or nil). Returns the page when it has runs for the caller, and true when
-- the pages in flight are of no use (past the listing's end, or planned from
-- elsewhere); or nil, nil and the problem when too many pages in a row brought
-- nothing new.
function Ledger:accept(job, index, next_in_flight)
  local page = job.page
  -- the runs the page listed: `place` may have taken out its anchor already
  local count = job.taken_through and #page.items + 1 or #page.items
  self.backups = 0
  if count > index then adopt_page_size(self, page) end
  local handed_before = self.handed
  take(self, job, index)
  local problem = count_fruitless(self, job, self.handed > handed_before or not page.hasMore)
  if problem then return nil, nil, problem end
  local stale = false
  if not page.hasMore then
    self.ended = true
    stale = true  -- pages past the end: at most the window
  else
    -- the next page starts on this page's last run, the new anchor
    local following = job.offset + count - 1
    self.frontier = following
    if not (next_in_flight and next_in_flight.offset <= following + self.drift
        and next_in_flight.offset > job.offset) then
      plan_from(self, following, true)
      stale = true
    end
    if self.careful > 0 then self.careful = self.careful - 1 end
  end
  if self.mode == "pages" then
    if #page.items > 0 then self.taken = self.taken + 1 end
  else
    self.taken = self.taken + #page.items
  end
  -- an empty listing still has its one (empty) page
  if #page.items > 0 or count == 0 then return page, stale end
  return nil, stale
end

-- Plans again from `offset` (what `place` returned instead of an index); the
-- pages in flight are then of no use. Returns the problem when too many pages
-- in a row brought nothing new.
function Ledger:ask_again(job, offset, ahead)
  local problem = count_fruitless(self, job, false)
  if problem then return problem end
  plan_from(self, offset, ahead and self.forwards == 0)
  -- a listing that moved by more than a page, or that keeps moving: fetch
  -- in order for a stretch, so that each answer moves it by less
  if ahead or self.backups > 1 then
    -- each time, a longer stretch: this listing moves fast
    self.careful = self.careful_stretch
    if self.careful_stretch < MOST_CAREFUL_PAGES then
      self.careful_stretch = self.careful_stretch * 2
    end
  end
  return nil
end

return M
