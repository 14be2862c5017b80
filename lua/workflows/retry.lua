-- The retry policy: which failures are worth another attempt, and how long to
-- wait before it. Pure functions; the request layer does the waiting.

local floor = math.floor
local match = string.match
local type = type

local M = {}

M.BASE = 0.5            -- seconds: the backoff ceiling after the first failure
M.CAP = 8               -- seconds: the backoff ceiling never grows past this
M.LONGEST_WAIT = 60     -- seconds: a longer wait is handed back to the caller

-- Statuses that say "try again later" rather than "this request is wrong".
local RETRYABLE_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true,
  [503] = true, [504] = true }

-- The host name a network failure could not resolve, or nil. libcurl words the
-- failure "Could not resolve host: NAME", and the cosocket transport words it as
-- libcurl does, so one test serves every transport.
function M.unresolved_host(outcome)
  if outcome.kind ~= "network" or type(outcome.message) ~= "string" then return nil end
  return match(outcome.message, "^Could not resolve host: ([^%s()]+)")
end

-- A certificate failure will fail the same way again; a body that did not
-- decode or was too large would come back the same. A name that did not resolve
-- has had the resolver's own retries already, and a typo in the base URL would
-- otherwise cost every backoff before the caller hears of it.
function M.is_retryable(outcome)
  local kind = outcome.kind
  -- a proxy that asked for credentials will ask again
  if outcome.proxy_status == 407 then return false end
  if kind == "network" then return not outcome.tls and M.unresolved_host(outcome) == nil end
  if kind == "timeout" then return true end
  if kind == "http" then return RETRYABLE_STATUS[outcome.status] == true end
  return false
end

-- Full jitter: a random wait in [0, min(CAP, BASE * 2^(attempt-1))], so that
-- clients that failed together do not come back together.
function M.backoff(attempt, random)
  local ceiling = M.BASE * 2 ^ (attempt - 1)
  if ceiling > M.CAP then ceiling = M.CAP end
  return random() * ceiling
end

-- Seconds to wait after failed attempt number `attempt`: the backoff, or what
-- the server asked for with Retry-After when that is longer.
function M.wait(outcome, attempt, random)
  local wait = M.backoff(attempt, random)
  local asked = outcome.retry_after
  if asked and asked > wait then wait = asked end
  return wait
end

-- Seconds to wait before trying again after failed attempt number `attempt`, or
-- nil to give up: not retryable, no retries left, or the server asked for a
-- wait longer than LONGEST_WAIT (the error then tells the caller how long).
function M.delay(outcome, attempt, max_retries, random)
  if not M.is_retryable(outcome) or attempt > max_retries then return nil end
  local wait = M.wait(outcome, attempt, random)
  if wait > M.LONGEST_WAIT then return nil end
  return wait
end

-- A uniform source in [0, 1) of its own (Park and Miller's minimal standard),
-- seeded by the caller: math.random is not seeded on Lua 5.1 to 5.3, so every
-- process would jitter alike, and reseeding it would disturb the host program.
-- The products stay below 2^53, exact in doubles and in 64-bit integers alike.
function M.random_source(seed)
  local state = floor(seed) % 2147483646 + 1
  return function()
    state = state * 16807 % 2147483647
    return (state - 1) / 2147483646
  end
end

return M
