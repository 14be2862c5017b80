-- The walk's guarantee on a live listing: every run that is in the listing
-- (under the walk's filter) for the whole walk comes out exactly once, and
-- nothing comes out that was never in it, at any prefetch. The sandbox's
-- history says which runs were there throughout (doc/sandbox.md).

local fixtures = require "spec.support.fixtures"
local luv_loop = require "spec.support.luv_loop"
local cqueues_loop = require "spec.support.cqueues_loop"
local nginx = require "spec.support.nginx"

-- How many random walks; WALKS_SEED replays one (the failure message prints it).
local WALKS = tonumber(os.getenv("EXACT_WALKS")) or 10
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
  local sb = fixtures.sandbox { seed = 7, client = { timeout = 10 } }
  local suffix = fixtures.suffix_maker("exact")

  -- The ids a walk yields, on the blocking transport.
  local function blocking_walk(id, case, mode)
    local client = sb:new_client { prefetch = case.prefetch }
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
    return yielded
  end

  local function walk_case(case, mode, walker)
    local id = ("wf_demo;live=%d;churn=%d;jitter=%d;%s"):format(case.live, case.churn,
      case.jitter, suffix())
    local since = sb:version(id)
    local yielded = (walker or blocking_walk)(id, case, mode)
    local throughout = sb:present_throughout(id, case.status, since)
    local any = set_of((sb:present_any(id, case.status, since)))
    return yielded, throughout, any
  end

  local function check(case, mode, walker)
    local yielded, throughout, any = walk_case(case, mode, walker)
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

  -- A few of the same walks on the other transports.
  local OTHER_TRANSPORT_WALKS = 4

  describe("in a task on a libuv loop", function()
    if not luv_loop.uv then
      pending("skipped: lua-luv is not installed for this Lua")
      return
    end

    lazy_teardown(function() luv_loop.close_all() end)

    local function task_walk(id, case)
      local client = sb:new_client { prefetch = case.prefetch, loop = luv_loop.uv }
      local yielded, done, failure = {}, false, nil
      client:spawn(function()
        -- the explicit loop, which every Lua can yield from
        local next_run = client:runs(id, { limit = case.limit, status = case.status })
        while true do
          local run = next_run()
          if run == nil then break end
          yielded[#yielded + 1] = run.id
        end
      end, function(ok, err)
        done, failure = true, not ok and err or nil
      end)
      luv_loop.run_until(function() return done end, 60)
      client:close()
      luv_loop.drain()
      assert(failure == nil, tostring(failure))
      return yielded
    end

    for n = 1, OTHER_TRANSPORT_WALKS do
      local case = case_for(n * 104729)
      it("misses nothing and repeats nothing: " .. describe_case(case), function()
        check(case, "runs", task_walk)
      end)
    end
  end)

  describe("in a coroutine of a cqueues controller", function()
    if not cqueues_loop.cqueues then
      pending("skipped: lua-cqueues is not installed for this Lua")
      return
    end

    local function controller_walk(id, case)
      local client = sb:new_client { prefetch = case.prefetch }
      local ended = cqueues_loop.run({ function()
        -- the explicit loop, which every Lua can yield from
        local next_run = client:runs(id, { limit = case.limit, status = case.status })
        local yielded = {}
        while true do
          local run = next_run()
          if run == nil then break end
          yielded[#yielded + 1] = run.id
        end
        return yielded
      end }, 60)
      client:close()
      assert(ended[1].ok, tostring(ended[1].err))
      return ended[1][1]
    end

    for n = 1, OTHER_TRANSPORT_WALKS do
      local case = case_for(n * 1299709)
      it("misses nothing and repeats nothing: " .. describe_case(case), function()
        check(case, "runs", controller_walk)
      end)
    end
  end)

  describe("inside nginx, on cosockets", function()
    local available, why = nginx.available()
    if not available then
      pending("skipped: " .. why)
      return
    end
    local server

    lazy_setup(function()
      server = nginx.start { server = [[
        location = /walk {
          content_by_lua_block {
            local workflows = require "workflows"
            local args = ngx.req.get_uri_args()
            local client = workflows.new { base_url = args.base, token = args.token,
              prefetch = tonumber(args.prefetch) or args.prefetch, timeout = 10 }
            local ok, err = pcall(function()
              for run in client:runs(args.id, { limit = tonumber(args.limit),
                  status = args.status }) do
                ngx.say(run.id)
              end
            end)
            if not ok then ngx.say("error: ", tostring(err)) end
          }
        }
      ]] }
    end)

    lazy_teardown(function()
      if server then server:stop() end
    end)

    local function escape(text)
      return (tostring(text):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
    end

    local function nginx_walk(id, case)
      local path = ("/walk?base=%s&token=%s&id=%s&prefetch=%s&limit=%d"):format(escape(sb.url),
        escape(sb.token), escape(id), escape(case.prefetch), case.limit)
      if case.status then path = path .. "&status=" .. case.status end
      local status, body = server:get(path, 60)
      assert.equal(200, status)
      local yielded = {}
      for line in body:gmatch("[^\n]+") do
        if line:find("^error: ") then
          -- what nginx logged about it, for a failure that does not come back at will
          local logged = {}
          for entry in server:error_log():gmatch("[^\n]+") do
            if entry:find("%[error%]") or entry:find("%[alert%]") or entry:find("%[crit%]") then
              logged[#logged + 1] = entry
            end
          end
          error(line .. "\nnginx's error log:\n" .. table.concat(logged, "\n", math.max(1, #logged - 20)), 0)
        end
        yielded[#yielded + 1] = line
      end
      return yielded
    end

    for n = 1, OTHER_TRANSPORT_WALKS do
      local case = case_for(n * 15485863)
      it("misses nothing and repeats nothing: " .. describe_case(case), function()
        check(case, "runs", nginx_walk)
      end)
    end
  end)

  it("keeps the promise while runs leave a filtered listing ahead of the walk", function()
    check({ seed = 0, prefetch = 0, limit = 10, status = "success", live = 0, churn = 3,
      jitter = 0 }, "runs")
  end)
end)
