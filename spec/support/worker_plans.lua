-- Runs inside nginx with several workers: each worker polls the lua_shared_dict
-- `plans` for a plan addressed to it (by ngx.worker.id()) and carries it out in a
-- timer, so that a spec or a benchmark decides which worker makes which calls.
--
--   http:   lua_shared_dict plans 1m; lua_shared_dict workflows 1m;
--           init_worker_by_lua_block { require("spec.support.worker_plans").start() }
--   server: M.LOCATIONS (POST /plan?worker=N with a JSON plan; GET /result?name=X)
--
-- A plan: { name, id, calls (default 1), seconds (calls until then instead), shared
-- (use the shared_dict "workflows"), retry_budget, max_retries, limit, wait_for (a key
-- of `plans` to wait for first), signal (a key set when a retry is scheduled),
-- done (a key set at the end), walk ({ limit, max, pause_at, walking, resume }: walks
-- `id` instead of calls; after `pause_at` runs it sets `walking` and waits for
-- `resume`), deadline (of each call), rate (calls a second, each in a timer of its
-- own, for `seconds`, instead of one after the other) }. Its result under "result:<name>": { worker, calls,
-- attempts, failures, refused (budget events), starts (ngx.now() of each attempt
-- start), heard (the wait_for value), errors (tostring of each failure, first 5) }.
-- luacheck: globals ngx
local cjson = require "cjson"
local workflows = require "workflows"

local M = {}

M.LOCATIONS = [[
  location = /plan {
    content_by_lua_block {
      ngx.req.read_body()
      ngx.shared.plans:set("plan:" .. ngx.var.arg_worker, ngx.req.get_body_data())
      ngx.say("ok")
    }
  }
  location = /result {
    content_by_lua_block {
      ngx.say(ngx.shared.plans:get("result:" .. ngx.var.arg_name) or "null")
    }
  }
]]

local function now()
  ngx.update_time()
  return ngx.now()
end

local function carry_out(plan)
  local plans = ngx.shared.plans
  local result = { worker = ngx.worker.id(), calls = 0, attempts = 0, failures = 0,
    refused = 0, starts = {}, errors = {} }
  local client = workflows.new {
    shared_dict = plan.shared and "workflows" or nil,
    retry_budget = plan.retry_budget,
    max_retries = plan.max_retries,
    deadline = plan.deadline,
    on_event = function(ev)
      if ev.type == "attempt_start" then
        result.starts[#result.starts + 1] = now()
      elseif ev.type == "attempt" then
        result.attempts = result.attempts + 1
      elseif ev.type == "retry" and plan.signal then
        plans:set(plan.signal, now())
      elseif ev.type == "window" then
        result.windows = result.windows or {}
        result.windows[#result.windows + 1] = { ev.from, ev.to, ev.why }
      elseif ev.type == "budget" then
        result.refused = result.refused + 1
        result.budget = { tokens = ev.tokens, shared = ev.shared }
      end
    end,
  }
  if plan.wait_for then
    while not plans:get(plan.wait_for) do ngx.sleep(0.01) end
    result.heard = plans:get(plan.wait_for)
  end
  if plan.walk then
    local walk, count = plan.walk, 0
    for _ in client:runs(plan.id, { limit = walk.limit, max = walk.max }) do
      count = count + 1
      if count == walk.pause_at then
        plans:set(walk.walking, now())
        while not plans:get(walk.resume) do ngx.sleep(0.01) end
      end
    end
    result.runs = count
  end
  local function call()
    result.calls = result.calls + 1
    local page, err = client:list_runs(plan.id, { limit = plan.limit or 1 })
    if not page then
      result.failures = result.failures + 1
      if #result.errors < 5 then result.errors[#result.errors + 1] = tostring(err) end
    end
  end
  local ends = plan.seconds and now() + plan.seconds
  local calls = plan.calls or (plan.walk and 0 or 1)
  if plan.rate then
    local running = 0
    while now() < ends do
      running = running + 1
      ngx.timer.at(0, function(premature)
        if not premature then pcall(call) end
        running = running - 1
      end)
      ngx.sleep(1 / plan.rate)
    end
    while running > 0 do ngx.sleep(0.01) end
  else
    while (ends and now() < ends) or (not ends and result.calls < calls) do call() end
  end
  client:close()
  plans:set("result:" .. plan.name, cjson.encode(result))
  if plan.done then plans:set(plan.done, now()) end
end

local function poll(premature)
  if premature then return end
  local key = "plan:" .. ngx.worker.id()
  local text = ngx.shared.plans:get(key)
  if text then
    ngx.shared.plans:delete(key)
    local ok, problem = pcall(carry_out, cjson.decode(text))
    if not ok then ngx.log(ngx.ERR, "plan failed: ", tostring(problem)) end
  end
  ngx.timer.at(0.02, poll)
end

function M.start()
  ngx.timer.at(0, poll)
end

-- The test side (plain Lua): hands `plan` to worker `worker` of `server`.
function M.send(server, worker, plan)
  local path = os.tmpname()
  local file = assert(io.open(path, "wb"))
  file:write(cjson.encode(plan))
  file:close()
  local pipe = assert(io.popen("env -u LD_PRELOAD curl -s --data-binary @" .. path .. " '"
    .. server.url .. "/plan?worker=" .. worker .. "'"))
  local answer = pipe:read("*a")
  pipe:close()
  os.remove(path)
  assert(answer:match("^ok"), "nginx did not take the plan: " .. answer)
end

-- The test side: the result of the plan named `name`, waiting up to `seconds` for it.
function M.result(server, name, seconds)
  for _ = 1, math.ceil((seconds or 30) / 0.05) do
    local status, body = server:get("/result?name=" .. name)
    if status == 200 and body and not body:match("^null") then return cjson.decode(body) end
    os.execute("sleep 0.05")
  end
  error("no result for plan " .. name .. " in time:\n" .. server:error_log():sub(-2000), 2)
end

M.HTTP = [[
  lua_shared_dict plans 1m;
  lua_shared_dict workflows 1m;
  init_worker_by_lua_block { require("spec.support.worker_plans").start() }
]]

return M
