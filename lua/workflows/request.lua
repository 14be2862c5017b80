-- One page request with its retries, as a job that moves forward when told to.
-- Nothing here waits: a transport (workflows.transport) starts the attempts and
-- does the waiting, and `advance` says when a job wants attention again.

local errors = require "workflows.errors"
local retry = require "workflows.retry"
local core = require "workflows.core"
local proxy = require "workflows.proxy"

local tostring = tostring
local min, huge = math.min, math.huge
local format, concat = string.format, table.concat

local M = {}

--[[ A job is a table:
  ctx           the client's context: config, debug, random
  transport     what carries its attempts (workflows.transport)
  url           the page's URL
  deadline_at   core.now() time after which no attempt may run, or nil
  attempts      requests made so far
  attempt       the attempt in flight, or nil
  clipped       that attempt's timeout was cut to what the deadline left
  elapsed       seconds the last attempt took, from request to answer
  pushed_back   an attempt failed with 429, 503 or a Retry-After
  window        the prefetch window of the walk it belongs to, for events
  retry_at      core.now() time the next attempt is due, while backing off
  finished      true once `page` or `err` is set, or the job was stopped
  page, err     the outcome
]]

-- The URL of one listing request; the query holds only what is given, always
-- in the same order, so that equal requests are equal strings.
function M.runs_url(base_url, id, query)
  local parts = {}
  if query.limit then parts[#parts + 1] = format("limit=%d", query.limit) end
  if query.offset then parts[#parts + 1] = format("offset=%d", query.offset) end
  if query.status then parts[#parts + 1] = "status=" .. query.status end
  local url = base_url .. "/v1/workflows/" .. core.escape_segment(id) .. "/runs"
  if #parts == 0 then return url end
  return url .. "?" .. concat(parts, "&")
end

local function finish(job, page, err)
  job.page, job.err, job.finished = page, err, true
  job.attempt, job.retry_at = nil, nil
end

-- Seconds an attempt must still wait for a Retry-After pause that an nginx worker
-- heard (workflows.shared), or nil.
local function shared_pause(job)
  local shared = job.ctx.shared
  if not shared then return nil end
  local left = shared:paused_for()
  if left <= 0 then return nil end
  return left
end

local function start_attempt(job, t)
  local ctx = job.ctx
  local config = ctx.config
  local timeout = config.timeout
  local left = job.deadline_at and job.deadline_at - t
  if left and left <= 0 then
    return finish(job, nil, errors.timeout(
      format("deadline exceeded before attempt %d could start", job.attempts + 1), job.attempts))
  end
  local paused = shared_pause(job)
  if paused and job.deadline_at and t + paused >= job.deadline_at then
    -- as for a Retry-After this job heard itself: fail now rather than wait in vain
    return finish(job, nil, errors.timeout(format("deadline exceeded: the server asked for "
      .. "a %s pause (Retry-After, shared by the nginx workers) before attempt %d would start",
      errors.seconds(paused), job.attempts + 1), job.attempts))
  end
  if paused then
    job.retry_at = t + paused
    return
  end
  job.clipped = left ~= nil and left < timeout
  if job.clipped then timeout = left end
  job.attempts = job.attempts + 1
  job.retry_at = nil
  local route, client_identity = ctx.route, ctx.identity
  if ctx.on_event then
    ctx.on_event { type = "attempt_start", method = "GET", url = ctx.events.url(ctx, job.url),
      attempt = job.attempts, transport = job.transport.name, window = job.window }
  end
  job.attempt = job.transport:start {
    url = job.url,
    token = config.token,
    headers = ctx.header_lines,
    user_agent = config.user_agent,
    timeout = timeout,
    connect_timeout = min(config.connect_timeout, timeout),
    max_body_bytes = config.max_body_bytes,
    ca_file = config.ca_file,
    ca_path = config.ca_path,
    proxy = route and route.url or nil,
    proxy_user = route and route.user or nil,
    proxy_password = route and route.password or nil,
    client_cert = client_identity and client_identity.cert or nil,
    client_key = client_identity and client_identity.key or nil,
    client_key_password = client_identity and client_identity.password or nil,
  }
end

local function attempt_event(job, outcome)
  local ctx = job.ctx
  local request_id = outcome.request_id
  if outcome.ok then request_id = outcome.page.requestId end
  ctx.on_event { type = "attempt", method = "GET", url = ctx.events.url(ctx, job.url),
    status = outcome.status, kind = outcome.ok and "ok" or outcome.kind,
    elapsed = outcome.elapsed, bytes = outcome.bytes or 0, attempt = job.attempts,
    request_id = request_id, transport = job.transport.name, window = job.window,
    reused = outcome.reused }
end

-- The outcome with the proxy's and the certificate's part in a failure said alike
-- in every transport.
local CURLE_SSL_CERTPROBLEM = 58

local function explained(outcome, ctx)
  outcome = proxy.explained(outcome, ctx.route)
  if ctx.identity and not outcome.ok and (outcome.client_cert_problem
      or outcome.curl_code == CURLE_SSL_CERTPROBLEM) then
    outcome.message, outcome.tls = ctx.identity:unusable(), true
  end
  return outcome
end

-- Why an attempt is retried, in a word: the status, or the kind of failure.
local function retry_reason(outcome)
  if outcome.kind == "http" then return tostring(outcome.status) end
  return outcome.kind
end

-- The budget lets the retry after `outcome` through, or says so and refuses it.
local function budget_allows(job, outcome)
  local budget = job.ctx.budget
  if not budget or budget:withdraw() then return true end
  local ctx = job.ctx
  if ctx.on_event then
    local tokens, reserve, ratio, shared = budget:state()
    ctx.on_event { type = "budget", url = ctx.events.url(ctx, job.url), attempt = job.attempts,
      why = retry_reason(outcome), tokens = tokens, reserve = reserve, ratio = ratio,
      shared = shared }
  end
  return false
end

local function collect(job, t)
  local attempt = job.attempt
  local outcome = explained(attempt:result(), job.ctx)
  attempt:release()  -- hands its handle back to the pool now rather than at collection
  job.attempt = nil
  job.elapsed = outcome.elapsed
  local ctx = job.ctx
  if ctx.on_event then attempt_event(job, outcome) end
  if outcome.ok then
    if ctx.budget then ctx.budget:deposit() end
    return finish(job, outcome.page)
  end
  -- the transport refused to make the request at all (nginx, in the wrong phase)
  if outcome.kind == "invalid_argument" then
    return finish(job, nil, errors.invalid_argument(outcome.message))
  end
  if outcome.kind == "timeout" and job.clipped then
    return finish(job, nil, errors.timeout(format("deadline exceeded during attempt %d (%s)",
      job.attempts, tostring(outcome.message)), job.attempts))
  end
  local config = ctx.config
  local wait = retry.delay(outcome, job.attempts, config.max_retries, ctx.random)
  local err = errors.from_outcome(outcome, job.attempts, config.token, config.base_url_is_default)
  err.message = errors.without_secrets(err.message, ctx.secrets)
  local asked = outcome.retry_after
  if ctx.shared and asked and asked <= retry.LONGEST_WAIT then ctx.shared:pause(asked) end
  if not wait then return finish(job, nil, err) end
  if job.deadline_at and t + wait >= job.deadline_at then
    local last = errors.headline(err)
    return finish(job, nil, errors.timeout(format(
      "deadline exceeded: a %s wait before attempt %d would pass it (after %s)",
      errors.seconds(wait), job.attempts + 1, last), job.attempts))
  end
  if not budget_allows(job, outcome) then return finish(job, nil, err) end
  job.retry_at = t + wait
  if ctx.on_event then
    ctx.on_event { type = "retry", url = ctx.events.url(ctx, job.url), attempt = job.attempts,
      delay = wait, why = retry_reason(outcome), retry_after = asked }
  end
  if outcome.status == 429 or outcome.status == 503 or outcome.retry_after then
    job.pushed_back = true  -- the server asked to slow down: the walk's window halves
  end
end

-- Moves `job` on at time `t`: collects a finished attempt, starts a due one.
local function step(job, t)
  if job.finished then return end
  if job.attempt then
    if job.attempt:done() then collect(job, t) end
  elseif job.retry_at and job.retry_at <= t then
    start_attempt(job, t)
  end
end

-- Moves every job of `jobs` on at time `t`. Returns the earliest time a job
-- backing off is due, or nil when none is.
function M.advance(jobs, t)
  local due
  for i = 1, #jobs do
    local job = jobs[i]
    step(job, t)
    local retry_at = job.retry_at
    if retry_at and (due == nil or retry_at < due) then due = retry_at end
  end
  return due
end

-- The deadline of one form everywhere inside the layer: a core.now() time, or nil. The
-- seconds of a `deadline` option become one here, where the caller passes them in;
-- `within` (a deadline, or nil) bounds the result too, as a walk bounds its pages.
function M.deadline_in(seconds, within)
  if seconds == nil then return within end
  return min(within or huge, core.now() + seconds)
end

-- A job whose first attempt is already started on `transport`; `deadline_at` (see
-- deadline_in) bounds this request with its retries; `window`: the prefetch window of
-- the walk it belongs to, or nil.
function M.start(ctx, transport, url, deadline_at, window)
  local t = core.now()
  local job = { ctx = ctx, transport = transport, url = url, attempts = 0,
    deadline_at = deadline_at, window = window, finished = false }
  start_attempt(job, t)
  return job
end

-- Stops `job` at once; what it had in flight is released.
function M.stop(job)
  if job.attempt then job.attempt:release() end
  job.attempt, job.retry_at, job.finished = nil, nil, true
end

-- Stops `job` from a finalizer: its transport releases the attempt in flight on its
-- own next turn (transport:drop never calls the host).
function M.drop(job)
  if job.attempt then job.transport:drop(job.attempt) end
  job.attempt, job.retry_at, job.finished = nil, nil, true
end

return M
