-- Watching a listing: client:watch polls the head of a listing and tells what
-- happened there since the last poll, as events.
--
-- Each poll is an exact walk (workflows.pager with its ledger, one page at a time)
-- from the head. It reads the first `horizon` runs (the view), and reads on past
-- them only while none of the runs it read is known yet: more runs arrived since the
-- last poll than the view holds, and the walk goes down until it meets the runs of
-- the last poll. The walk's ledger keeps each poll exact while runs arrive during
-- it. A steady watch (horizon within one page) so costs one request per poll.
--
-- What a watch remembers is the last poll's view and, for a while, the runs that
-- left it (so that a run that wanders out of the view and back is no news): both
-- bounded by the horizon (plus what one catch-up read), never by the time it runs.
--
-- Every wait goes through the transport of the running code (transport:wait), so the
-- same watch blocks a script, yields in a libuv task, a cqueues coroutine or an nginx
-- request, with nothing here that knows which.

local pager = require "workflows.pager"
local transport = require "workflows.transport"
local core = require "workflows.core"

local setmetatable, ipairs, pairs = setmetatable, ipairs, pairs
local now = core.now

local M = {}

-- Runs a poll reads past the horizon at most, when a burst arrived: past this, the
-- runs further down were never seen and are not reported.
local MOST_CAUGHT_UP = 10000
-- The longest single wait between two polls: a close() from elsewhere, or an
-- interrupt of a blocked script, is then noticed within this.
local WAIT_SLICE = 1
-- Each wait between polls is shortened by up to this share of the interval, so
-- that watches started together do not poll together.
local JITTER = 0.1
-- The fields whose change makes a "changed" event.
local WATCHED = { "status", "finishedAt", "totalCu" }

local Watch = {}
Watch.__index = Watch

-- Lets go of what the watch remembers.
local function forget(watch)
  watch.events, watch.index, watch.view = {}, 0, nil
  watch.departed, watch.departed_older = {}, {}
end

-- Ends the watch; idempotent. Between polls nothing is in flight. A poll under way in
-- another coroutine reads no further page (its walk cannot be closed under its
-- waiter), and the watch ends after it.
function Watch:close()
  if self.closed then return end
  self.closed = true
  if not self.polling then forget(self) end
end

-- What the caller holds: methods only, which reach the watch (and through it the
-- client's context and the token) only as upvalues. Also the loop's closing value.
local function handle_of(watch)
  local methods = {}
  function methods.close() watch:close() end
  -- polls made so far (each is one request when the watch is steady)
  function methods.polls() return watch.polls end
  return setmetatable({}, { __index = methods, __close = methods.close })
end

-- What a watch remembers of a run: the fields a change is looked for in, copied, so
-- that a caller who edits the run tables it was handed cannot make or hide a change.
local function watched_fields(run)
  local fields = {}
  for i = 1, #WATCHED do fields[WATCHED[i]] = run[WATCHED[i]] end
  return fields
end

-- The fields remembered of the run `id` (from the last poll, or of a run that left
-- the view lately), or nil.
local function known(watch, id)
  return watch.view[id] or watch.departed[id] or watch.departed_older[id]
end

-- A run left the view: remembered until `horizon` more have left after it.
local function depart(watch, id, fields)
  if watch.departed_size >= watch.horizon then
    watch.departed_older, watch.departed, watch.departed_size = watch.departed, {}, 0
  end
  watch.departed[id] = fields
  watch.departed_size = watch.departed_size + 1
end

-- The runs of one poll in listing order, and the same by id.
local function read_view(watch)
  local iterator, walk = pager.walk {
    client = watch.client, ctx = watch.ctx, url_of = watch.url_of, mode = "pages",
    limit = watch.limit, offset = 0, prefetch = 0, prefetch_cap = 0,
    -- not cut by the watch's deadline, which ends the watch quietly between polls
    page_deadline = watch.page_deadline,
  }
  local first = watch.view == nil
  local horizon, most = watch.horizon, watch.horizon + MOST_CAUGHT_UP
  local runs, by_id, count = {}, {}, 0
  local met_known, reading = false, true
  while reading and not watch.closed do
    local page = iterator()
    if page == nil then break end
    for _, run in ipairs(page.items) do
      local id = run.id
      if id ~= nil and by_id[id] == nil then
        local is_known = not first and known(watch, id) ~= nil
        -- past the horizon only to catch up with a burst, down to a known run
        if count >= horizon and (first or met_known or is_known or count >= most) then
          reading = false
          break
        end
        if is_known then met_known = true end
        count = count + 1
        runs[count], by_id[id] = run, watched_fields(run)
      end
    end
    if count >= horizon and (first or met_known) then reading = false end
  end
  walk:close()
  return runs, by_id
end

-- The fields of WATCHED that differ between `old` and `new`: their old values, and
-- their names (an old value may be nil); nil when none differs.
local function changes(old, new)
  local previous, fields
  for _, name in ipairs(WATCHED) do
    local before = old[name]
    if before ~= new[name] then
      previous, fields = previous or {}, fields or {}
      previous[name] = before
      fields[#fields + 1] = name
    end
  end
  return previous, fields
end

-- The events of a poll whose view is `runs` (by id: `by_id`), oldest run first, so
-- that a display that puts each event on top shows the listing's order. The view
-- then becomes the one later polls compare with.
local function take_view(watch, runs, by_id)
  local events = {}
  local first = watch.view == nil
  for i = #runs, 1, -1 do
    local run = runs[i]
    if first then
      if watch.initial then events[#events + 1] = { type = "existing", run = run } end
    else
      local old = known(watch, run.id)
      if old == nil then
        events[#events + 1] = { type = "added", run = run }
      else
        local previous, fields = changes(old, run)
        if previous then
          events[#events + 1] = { type = "changed", run = run, previous = previous, fields = fields }
        end
      end
    end
  end
  if not first then
    for id, fields in pairs(watch.view) do
      if by_id[id] == nil then depart(watch, id, fields) end
    end
  end
  watch.view = by_id
  return events
end

-- Waits through the transport of the running code until `due`; false when the
-- watch ended first (closed, or its deadline came).
local function wait_until(watch, due)
  local deadline_at = watch.deadline_at
  while not watch.closed do
    local t = now()
    if deadline_at and t >= deadline_at then return false end
    local left = due - t
    if left <= 0 then return true end
    if deadline_at and deadline_at - t < left then left = deadline_at - t end
    if left > WAIT_SLICE then left = WAIT_SLICE end
    transport.current(watch.ctx):wait(left)
  end
  return false
end

local function poll(watch)
  -- a poll that raised leaves this set: the watch ended with the error
  watch.polling = true
  local runs, by_id = read_view(watch)
  watch.polling = false
  if watch.closed then return end   -- closed from elsewhere during the poll
  watch.polls = watch.polls + 1
  watch.events, watch.index = take_view(watch, runs, by_id), 0
  -- counted from the poll's end: an answer delayed by a Retry-After pushes the next
  -- poll back by as much
  watch.due = now() + watch.interval * (1 - JITTER * watch.ctx.random())
end

local function iterator_of(watch)
  return function()
    while not watch.closed do
      if watch.polling then break end
      local index = watch.index + 1
      local event = watch.events[index]
      if event ~= nil then
        watch.events[index], watch.index = nil, index
        return event
      end
      if not wait_until(watch, watch.due) then break end
      poll(watch)
    end
    watch:close()
    forget(watch)
    return nil
  end
end

--[[ Starts nothing yet: the first call of the iterator polls. `spec` holds
  client, ctx    the client, and its context
  url_of         function(offset, limit) -> the URL of that page
  limit          the page size
  horizon, interval, initial   the checked watch options (defaults filled in)
  page_deadline  seconds for each page with its retries, or nil
  deadline_at    core.now() time after which no poll starts (the watch ends), or nil
Returns the iterator and the caller's handle on the watch, which is also the
loop's closing value. ]]
function M.watch(spec)
  local watch = setmetatable({
    client = spec.client,       -- kept alive while the watch is: it closes when collected
    ctx = spec.ctx, url_of = spec.url_of, limit = spec.limit,
    horizon = spec.horizon, interval = spec.interval, initial = spec.initial,
    page_deadline = spec.page_deadline, deadline_at = spec.deadline_at,
    view = nil,                 -- id -> run of the last poll; nil before the first
    departed = {}, departed_older = {}, departed_size = 0,  -- runs that left the view
    events = {}, index = 0,     -- the last poll's events, and how many were handed out
    due = now(),                -- when the next poll may start
    polls = 0,
    polling = false,
    closed = false,
  }, Watch)
  return iterator_of(watch), handle_of(watch)
end

return M
