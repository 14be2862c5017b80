-- One page request with its retries, as a job that `await` moves forward. Jobs
-- share the client's session: waiting is done by driving that session, so while
-- one job sits out its backoff, the transfers of the others keep moving.

local core = require "workflows.core"
local errors = require "workflows.errors"
local retry = require "workflows.retry"

local ipairs, tostring = ipairs, tostring
local floor, min, huge = math.floor, math.min, math.huge
local format, find, gsub = string.format, string.find, string.gsub
local io = io
local now, sleep = core.now, core.sleep

local M = {}

-- Longest single wait in `await`. Driving returns as soon as anything happens;
-- this only bounds how long a wait can be mistaken for.
local LONGEST_DRIVE = 1

--[[ A job is a table:
  ctx          the client's request context: config, get_session(), random, debug
  url          the page's URL
  expiry       core.now() time after which no attempt may run, or nil
  attempts     requests made so far
  transfer     the attempt in flight, or nil
  clipped      that attempt's timeout was cut to what the deadline left
  retry_at     core.now() time the next attempt is due, while backing off
  finished     true once `page` or `err` is set, or the job was cancelled
  page, err    the outcome
]]

local function finish(job, page, err)
  job.page, job.err, job.finished = page, err, true
  job.transfer, job.retry_at = nil, nil
end

-- Servers may echo what they were sent; the token must not reach an error.
local function without_token(err, token)
  if token and token ~= "" then
    local pattern = gsub(token, "%p", "%%%0")
    if err.message and find(err.message, token, 1, true) then
      err.message = gsub(err.message, pattern, "***")
    end
    if err.requestId and find(err.requestId, token, 1, true) then
      err.requestId = gsub(err.requestId, pattern, "***")
    end
  end
  return err
end

local function start_attempt(job, t)
  local config = job.ctx.config
  local timeout = config.timeout
  local left = job.expiry and job.expiry - t
  if left and left <= 0 then
    return finish(job, nil, errors.timeout(
      format("deadline exceeded before attempt %d could start", job.attempts + 1), job.attempts))
  end
  job.clipped = left ~= nil and left < timeout
  if job.clipped then timeout = left end
  job.attempts = job.attempts + 1
  job.retry_at = nil
  job.transfer = job.ctx.get_session():start {
    url = job.url,
    token = config.token,
    user_agent = config.user_agent,
    timeout = timeout,
    connect_timeout = min(config.connect_timeout, timeout),
    max_body_bytes = config.max_body_bytes,
    ca_file = config.ca_file,
    ca_path = config.ca_path,
  }
end

local function log_attempt(job, outcome)
  local result = outcome.kind
  if outcome.ok or outcome.kind == "http" then result = tostring(outcome.status) end
  local request_id = outcome.request_id
  if outcome.ok then request_id = outcome.page.requestId end
  local line = format("workflows: GET %s -> %s %dms attempt %d", job.url, result,
    floor((outcome.elapsed or 0) * 1000 + 0.5), job.attempts)
  if request_id then line = line .. " request " .. request_id end
  io.stderr:write(line, "\n")
end

-- The error a failure ends with: Retry-After is passed on only when it asked
-- for more than the client would sleep through.
local function final_error(outcome, job)
  local err = errors.from_outcome(outcome, job.attempts)
  if outcome.retry_after and outcome.retry_after > retry.LONGEST_WAIT then
    err.retry_after = outcome.retry_after
  end
  return without_token(err, job.ctx.config.token)
end

local function collect(job, t)
  local transfer = job.transfer
  local outcome = transfer:result()
  transfer:release()  -- hands its handle back to the pool now rather than at collection
  job.transfer = nil
  if job.ctx.debug then log_attempt(job, outcome) end
  if outcome.ok then return finish(job, outcome.page) end
  if outcome.kind == "timeout" and job.clipped then
    return finish(job, nil, errors.timeout(format("deadline exceeded during attempt %d (%s)",
      job.attempts, tostring(outcome.message)), job.attempts))
  end
  local decision, wait = retry.decide(outcome, job.attempts, job.ctx.config.max_retries,
    job.ctx.random)
  if decision ~= "retry" then return finish(job, nil, final_error(outcome, job)) end
  if job.expiry and t + wait >= job.expiry then
    local last = errors.headline(final_error(outcome, job))
    return finish(job, nil, errors.timeout(format(
      "deadline exceeded: a %s wait before attempt %d would pass it (after %s)",
      errors.seconds(wait), job.attempts + 1, last), job.attempts))
  end
  job.retry_at = t + wait
end

-- Moves `job` on at time `t`: collects a finished attempt, starts a due one.
local function step(job, t)
  if job.finished then return end
  if job.transfer then
    if job.transfer:done() then collect(job, t) end
  elseif job.retry_at and job.retry_at <= t then
    start_attempt(job, t)
  end
end

-- A job whose first attempt is already in flight. `budget` (seconds, or nil)
-- bounds this request with its retries; `walk_expiry` (a core.now() time, or
-- nil) bounds the walk it belongs to.
function M.start(ctx, url, budget, walk_expiry)
  local t = now()
  local expiry = walk_expiry
  if budget then expiry = min(expiry or huge, t + budget) end
  local job = { ctx = ctx, url = url, attempts = 0, expiry = expiry, finished = false }
  start_attempt(job, t)
  return job
end

-- Returns `job` once it has finished, having driven the session (or slept,
-- when nothing is in flight) and moved every job of `jobs` along meanwhile.
function M.await(job, jobs)
  local session = job.ctx.get_session()
  while true do
    local t = now()
    local wake, moving = t + LONGEST_DRIVE, false
    for _, other in ipairs(jobs) do
      step(other, t)
      if other.transfer then
        moving = true
      elseif other.retry_at and other.retry_at < wake then
        wake = other.retry_at
      end
    end
    if job.finished then return job end
    local wait = wake - t
    if wait < 0 then wait = 0 end
    if moving or session:running() > 0 then session:drive(wait) else sleep(wait) end
  end
end

-- Stops `job` at once; what it had in flight is released.
function M.cancel(job)
  if job.transfer then job.transfer:release() end
  job.transfer, job.retry_at, job.finished, job.cancelled = nil, nil, true, true
end

return M
