-- Careless but legal code inside nginx, for spec/98-careless-nginx_spec.lua and
-- `make soak` (tools/soak/nginx.lua): walks broken out of without walk:close(),
-- clients never closed, collectgarbage() from another request, the same from
-- timers, and a few handlers that do close everything.
--
-- On the host side (any Lua):
--   local careless = require "spec.support.careless_ngx"
--   local server = nginx.start(careless.server_options(sandbox_url, { workers = 1 }))
--   careless.path { kind = "walk", prefetch = 4, stop = 7, latency = 2, clients = 2 }
--     -> "/careless/walk?prefetch=4&stop=7&latency=2&clients=2"
--   careless.decode_stats(body) -> { walks = n, breaks = n, ... } from GET /careless/stats
--
-- Inside nginx, the locations call M.walk(), M.timer(), M.proper(), M.collect() and
-- M.stats(). Every answer is 200 "ok" unless the handler itself failed (500 and the
-- error): a non-200 answer is the library's fault, or a crashed worker's.
--
-- Counters (lua_shared_dict careless, which outlives a crashed worker):
--   walks         walks started          breaks        walks broken out of early
--   clients       clients made           closed        clients closed by the handler
--   collections   GET /careless/collect  loop_collections  collectgarbage() in a loop body
--   timers        timers started
--   timers_done   timers whose walks ran to their break (or failed: timer_errors)
--   exits         walking handlers that ended with ngx.exit(200)
--   errors        handlers that raised
-- luacheck: globals ngx

local M = {}

local DICT = "careless"
local TOKEN = "sandbox-token"

-- The query parameters of every walking location, with their bounds.
local PARAMETERS = {
  prefetch = { 0, 8 },   -- the client's fixed prefetch window
  stop = { 1, 30 },      -- runs taken before the break
  latency = { 0, 50 },   -- the sandbox's delay for each page, in ms
  clients = { 1, 4 },    -- clients made, each with one walk
  limit = { 10, 100 },   -- runs a page: bigger pages, more garbage, more collections
  collect = { 0, 30 },   -- collectgarbage() every that many runs inside the loop (0: never)
  exit = { 0, 1 },       -- 1: ngx.exit(200) once answered, which ends the light threads
                         -- of the pages still in flight
}
local ORDER = { "prefetch", "stop", "latency", "clients", "limit", "collect", "exit" }

-- The options for spec.support.nginx's start(): the locations, the counters, and
-- the sandbox's URL in $CARELESS_SB. `extra` adds fields (workers, log_level).
function M.server_options(sandbox_url, extra)
  local options = {
    setenv = { CARELESS_SB = sandbox_url },
    http = "  lua_shared_dict " .. DICT .. " 1m;\n",
    server = [[
    location = /ping { return 200 "pong\n"; }
    location = /careless/walk { content_by_lua_block { require("spec.support.careless_ngx").walk() } }
    location = /careless/timer { content_by_lua_block { require("spec.support.careless_ngx").timer() } }
    location = /careless/proper { content_by_lua_block { require("spec.support.careless_ngx").proper() } }
    location = /careless/collect { content_by_lua_block { require("spec.support.careless_ngx").collect() } }
    location = /careless/stats { content_by_lua_block { require("spec.support.careless_ngx").stats() } }
]],
  }
  for key, value in pairs(extra or {}) do options[key] = value end
  return options
end

-- The path of one request: `spec.kind` is walk, timer, proper, collect or stats.
function M.path(spec)
  local query = {}
  for _, name in ipairs(ORDER) do
    if spec[name] then query[#query + 1] = name .. "=" .. spec[name] end
  end
  local path = "/careless/" .. spec.kind
  if #query > 0 then path = path .. "?" .. table.concat(query, "&") end
  return path
end

-- The counters as GET /careless/stats answers them ("name=value" lines).
function M.decode_stats(body)
  local stats = {}
  for name, value in tostring(body):gmatch("(%w[%w_]*)=(%d+)") do stats[name] = tonumber(value) end
  return stats
end

-- ------------------------------------------------------------ inside nginx

local function count(name, n)
  ngx.shared[DICT]:incr(name, n or 1, 0)
end

local function parameters()
  local args = ngx.req.get_uri_args()
  local chosen = {}
  for name, bounds in pairs(PARAMETERS) do
    local value = tonumber(args[name]) or bounds[1]
    if value < bounds[1] then value = bounds[1] end
    if value > bounds[2] then value = bounds[2] end
    chosen[name] = math.floor(value)
  end
  return chosen
end

-- Each client walks wf_demo `limit` runs a page and breaks out after `stop` runs. Only
-- `proper` closes the walk and the client; otherwise both are left to the collector.
local function walks(chosen, proper)
  local workflows = require "workflows"
  local id = "wf_demo;latency=" .. chosen.latency
  for _ = 1, chosen.clients do
    local client = workflows.new { token = TOKEN, base_url = os.getenv("CARELESS_SB"),
      prefetch = chosen.prefetch, max_retries = 0, timeout = 10 }
    count("clients")
    local iterator, _, _, walk = client:runs(id, { limit = chosen.limit })
    count("walks")
    local taken = 0
    for _ in iterator do
      taken = taken + 1
      if chosen.collect > 0 and taken % chosen.collect == 0 then
        collectgarbage()
        count("loop_collections")
      end
      if taken >= chosen.stop then
        count("breaks")
        break
      end
    end
    if proper then
      walk:close()
      client:close()
      count("closed")
    end
  end
end

-- Runs `body` and answers 200 "ok", or 500 and the error it raised.
local function answer(body, ...)
  local ok, err = pcall(body, ...)
  if ok then
    ngx.say("ok")
    return
  end
  count("errors")
  ngx.status = 500
  ngx.say(tostring(err))
end

function M.walk()
  local chosen = parameters()
  answer(walks, chosen, false)
  if chosen.exit == 1 then
    count("exits")
    ngx.exit(ngx.HTTP_OK)
  end
end

function M.proper()
  answer(walks, parameters(), true)
end

-- Starts a timer that does what /careless/walk does, and answers at once.
function M.timer()
  answer(function()
    local chosen = parameters()
    local started, err = ngx.timer.at(0, function(premature)
      if premature then return count("timers_premature") end
      local ok, failure = pcall(walks, chosen, false)
      if ok then
        count("timers_done")
      else
        count("timer_errors")
        ngx.log(ngx.ERR, "careless timer: ", tostring(failure))
      end
    end)
    if not started then error("ngx.timer.at: " .. tostring(err)) end
    count("timers")
  end)
end

function M.collect()
  answer(function()
    collectgarbage()
    count("collections")
  end)
end

function M.stats()
  local dict = ngx.shared[DICT]
  local lines = {}
  for _, name in ipairs(dict:get_keys(0)) do
    lines[#lines + 1] = name .. "=" .. tostring(dict:get(name))
  end
  table.sort(lines)
  ngx.say(table.concat(lines, "\n"))
end

return M
