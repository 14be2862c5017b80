-- The walk's guarantee on a live listing: every run that is in the listing
-- (under the walk's filter) for the whole walk comes out exactly once, and
-- nothing comes out that was never in it, at any prefetch. The sandbox's
-- history says which runs were there throughout (doc/sandbox.md).

local sandbox = require "spec.support.sandbox"
local fixtures = require "spec.support.fixtures"

-- How many random walks; WALKS_SEED replays one (the failure message prints it).
local WALKS = tonumber(os.getenv("EXACT_WALKS")) or 16
local STATUSES = { false, "running", "success", "failure", "waiting" }

-- A small deterministic generator, so that a seed alone replays a case.
local function generator(seed)
  local state = seed % 2147483646 + 1
  return function(low, high)
    state = state * 16807 % 2147483647
    return low + state % (high - low + 1)
  end
end

local function case_for(seed)
  local pick = generator(seed)
  local prefetch = pick(0, 9)
  return {
    seed = seed,
    prefetch = prefetch == 9 and "auto" or prefetch,
    limit = ({ 5, 10, 20, 50, 100 })[pick(1, 5)],
    status = STATUSES[pick(1, #STATUSES)] or nil,
    live = pick(0, 3),
    churn = pick(0, 3),
    jitter = ({ 0, 0, 5, 10 })[pick(1, 4)],
  }
end

local function describe_case(case)
  return ("seed %d: prefetch %s, limit %d, status %s, live %d, churn %d, jitter %d ms")
    :format(case.seed, tostring(case.prefetch), case.limit, tostring(case.status), case.live,
      case.churn, case.jitter)
end

local function set_of(ids)
  local set = {}
  for _, id in ipairs(ids) do set[id] = true end
  return set
end

describe("walks on a live listing", function()
  local sb
  local suffix = fixtures.suffix_maker("exact")

  lazy_setup(function() sb = sandbox.start { seed = 7 } end)
  lazy_teardown(function() sb:stop() end)

  local function walk_case(case, mode)
    local id = ("wf_demo;live=%d;churn=%d;jitter=%d;%s"):format(case.live, case.churn,
      case.jitter, suffix())
    local client = fixtures.sandbox_client(sb, { timeout = 10, prefetch = case.prefetch })
    local since = sb:version(id)
    local yielded = {}
    if mode == "pages" then
      for page in client:pages(id, { limit = case.limit, status = case.status }) do
        for _, run in ipairs(page.items) do yielded[#yielded + 1] = run.id end
      end
    else
      for run in client:runs(id, { limit = case.limit, status = case.status }) do
        yielded[#yielded + 1] = run.id
      end
    end
    local throughout = sb:present_throughout(id, case.status, since)
    local any = set_of((sb:present_any(id, case.status, since)))
    return yielded, throughout, any
  end

  local function check(case, mode)
    local yielded, throughout, any = walk_case(case, mode)
    local label = describe_case(case)
    local count = {}
    for _, id in ipairs(yielded) do
      count[id] = (count[id] or 0) + 1
      assert(count[id] == 1, label .. ": " .. id .. " came out twice")
      assert(any[id], label .. ": " .. id .. " was never in the listing")
    end
    for _, id in ipairs(throughout) do
      assert(count[id] == 1, label .. ": " .. id .. " was there throughout but never came out")
    end
  end

  local replay = tonumber(os.getenv("WALKS_SEED"))
  for n = 1, replay and 1 or WALKS do
    local case = case_for(replay or n * 7919)
    local mode = n % 3 == 0 and "pages" or "runs"
    it(mode .. "() misses nothing and repeats nothing: " .. describe_case(case), function()
      check(case, mode)
    end)
  end

  it("keeps the promise on a listing that grows by several runs a page", function()
    check({ seed = 0, prefetch = 4, limit = 10, live = 3, churn = 0, jitter = 0 }, "runs")
  end)

  it("keeps the promise while runs leave a filtered listing ahead of the walk", function()
    check({ seed = 0, prefetch = 0, limit = 10, status = "success", live = 0, churn = 3,
      jitter = 0 }, "runs")
  end)
end)
