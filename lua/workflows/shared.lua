-- What the workers of one nginx share through a lua_shared_dict (the shared_dict
-- option): the retry budget's tokens, the end of a Retry-After pause, and how often
-- the server pushed back on a prefetch window. Every change is one atomic incr, get
-- or set of the dict; nothing holds a lock across I/O, and a worker that races
-- another only lets through a retry or a page more than it would alone.

local core = require "workflows.core"

local setmetatable, rawget, type = setmetatable, rawget, type
local format, floor = string.format, math.floor
local time = core.time

local M = {}

-- Tokens are counted in thousandths: the dict's incr is exact on integers.
local SCALE = 1000

local Shared = {}
Shared.__index = Shared

-- The shared state in lua_shared_dict `name` for the API at `base_url`, or nil and
-- why it cannot be had.
function M.open(name, base_url)
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
    return nil, format('option "shared_dict" works only inside nginx (OpenResty), where '
      .. 'lua_shared_dict declares the dict (got "%s" outside nginx)', name)
  end
  local dict = ngx.shared[name]
  if not dict then
    return nil, format('option "shared_dict": nginx has no lua_shared_dict "%s" (declare it '
      .. "in the http block, e.g. lua_shared_dict %s 1m;)", name, name)
  end
  local prefix = "workflows|" .. base_url .. "|"
  return setmetatable({ dict = dict, prefix = prefix,
    pause_key = prefix .. "pause", pushback_key = prefix .. "pushbacks" }, Shared)
end

-- The key of the retry budget of clients with these budget settings: clients of one
-- API with the same settings share one bucket.
function Shared:budget_key(ratio, reserve)
  return format("%sbudget|%s|%s", self.prefix, ratio, reserve)
end

-- The budget's store (workflows.budget): takes `amount` tokens of the bucket at `key`,
-- which holds at most `cap`; false when there were not enough (nothing is then taken).
function Shared:take(key, amount, cap)
  local n = floor(amount * SCALE + 0.5)
  local after = self.dict:incr(key, -n, floor(cap * SCALE + 0.5))
  -- a full dict cannot hold the count: the budget then lets retries through
  if after == nil then return true end
  if after < 0 then
    self.dict:incr(key, n)
    return false
  end
  return true
end

function Shared:give(key, amount, cap)
  local capped = floor(cap * SCALE + 0.5)
  local after = self.dict:incr(key, floor(amount * SCALE + 0.5), capped)
  if after and after > capped then self.dict:incr(key, capped - after) end
end

function Shared:tokens(key, cap)
  local count = self.dict:get(key)
  if count == nil then return cap end
  return count / SCALE
end

-- The server asked for `seconds` of quiet: no worker starts an attempt before then.
function Shared:pause(seconds)
  local ends = time() + seconds
  local current = self.dict:get(self.pause_key)
  if current == nil or current < ends then
    self.dict:set(self.pause_key, ends, seconds + 1)
  end
end

-- Seconds left of the pause, 0 when there is none.
function Shared:paused_for()
  local ends = self.dict:get(self.pause_key)
  if ends == nil then return 0 end
  local left = ends - time()
  if left > 0 then return left end
  return 0
end

-- A walk's window halved on a pushback: the windows of every worker halve too.
function Shared:pushed_back()
  self.dict:incr(self.pushback_key, 1, 0)
end

function Shared:pushbacks()
  return self.dict:get(self.pushback_key) or 0
end

return M
