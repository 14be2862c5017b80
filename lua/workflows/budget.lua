-- The retry budget: a token bucket that bounds retries by successes.
--
-- A retry costs one token; each successful attempt puts `ratio` tokens back; the bucket
-- starts with `reserve` tokens and never holds more. Under a storm of failures
-- nothing refills it, so once the reserve is spent a call makes its one attempt and
-- no more: a long run of calls makes at most `reserve` requests more than it would
-- without retries, and in general at most one retry per 1/ratio successes (20% with
-- the default) plus the reserve. With few failures the bucket stays full and every
-- retry is made. This is gRPC's retryThrottling and the AWS SDKs' retry quota, with
-- Finagle's ratio of retries to requests.
--
-- A bucket is the client's own; inside nginx, where a client is often made per request,
-- each worker's clients of one API with the same settings share one; with shared_dict
-- it lives in a lua_shared_dict (workflows.shared) for every worker of one nginx.

local setmetatable, type, tostring, rawget = setmetatable, type, tostring, rawget
local min = math.min

local M = {}

M.RATIO = 0.2     -- tokens a success puts back: retries at most 20% of successes
M.RESERVE = 10    -- tokens at the start and at most: the burst of retries allowed

-- ratio and reserve of the retry_budget option (true, or a table), or nil for false.
function M.settings(option)
  if option == false then return nil end
  local given = type(option) == "table" and option or {}
  return { ratio = given.ratio or M.RATIO, reserve = given.reserve or M.RESERVE }
end

local Bucket = {}
Bucket.__index = Bucket

function M.local_bucket(settings)
  return setmetatable({ tokens = settings.reserve, ratio = settings.ratio,
    reserve = settings.reserve, shared = false }, Bucket)
end

-- Inside nginx: the worker's buckets, by base URL and settings. A worker is one process
-- running one request at a time between yields, so the plain table needs no lock.
local worker_buckets = {}

function M.worker_bucket(settings, base_url)
  local key = base_url .. "|" .. tostring(settings.ratio) .. "|" .. tostring(settings.reserve)
  local bucket = worker_buckets[key]
  if not bucket then
    bucket = M.local_bucket(settings)
    worker_buckets[key] = bucket
  end
  return bucket
end

-- Takes the token of one retry: true, or false when the budget refuses it.
function Bucket:withdraw()
  if self.tokens < 1 then return false end
  self.tokens = self.tokens - 1
  return true
end

-- A successful attempt.
function Bucket:deposit()
  self.tokens = min(self.reserve, self.tokens + self.ratio)
end

-- What a "budget" event reports.
function Bucket:state()
  return self.tokens, self.reserve, self.ratio, self.shared
end

-- A bucket with the same behaviour in `store`, workflows.shared: take(key, amount, cap)
-- -> whether there were enough, give(key, amount, cap), tokens(key, cap).
local SharedBucket = {}
SharedBucket.__index = SharedBucket

function M.shared_bucket(settings, store)
  return setmetatable({ store = store, ratio = settings.ratio, reserve = settings.reserve,
    key = store:budget_key(settings.ratio, settings.reserve), shared = true }, SharedBucket)
end

function SharedBucket:withdraw()
  return self.store:take(self.key, 1, self.reserve)
end

function SharedBucket:deposit()
  self.store:give(self.key, self.ratio, self.reserve)
end

function SharedBucket:state()
  return self.store:tokens(self.key, self.reserve), self.reserve, self.ratio, true
end

local function inside_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.worker) == "table"
end

-- The bucket of a new client (`option`: its retry_budget; `shared`: its
-- workflows.shared state, or nil), or nil when the budget is turned off.
function M.for_client(option, shared, base_url)
  local settings = M.settings(option)
  if not settings then return nil end
  if shared then return M.shared_bucket(settings, shared) end
  if inside_nginx() then return M.worker_bucket(settings, base_url) end
  return M.local_bucket(settings)
end

return M
