-- Runs the prefetch window's benchmark rows against a running static server and
-- appends every sample to a tab-separated file that bench/window_report.lua reads.
--
--   lua5.4 bench/window.lua OUT GROUP BASE_URL RUNS WORKFLOW:RUNS ROW...
--
-- GROUP names the block ("0 ms", ..., "throttled"). Every row is run RUNS times,
-- interleaved round by round, like bench/harness.lua. A sample is the wall time of
-- the whole process (start-up included) and its peak RSS from /usr/bin/time, what
-- the walk said of its window (bench/walk_window.lua), and what the server counted
-- during the walk (GET /_bench/stats, before and after). A walk that does not
-- print the expected number of runs fails the benchmark.
local http = require "socket.http"
local socket = require "socket"

local TOKEN = "sandbox-token"
-- WORKFLOWS_DEBUG=1: the client logs every attempt it collected to stderr, so the
-- requests it stopped before reading them are the server's count less those lines.
local CLIENT_ENV = [[env WORKFLOWS_DEBUG=1 LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" ]]

local out_path, group, base, runs, target = table.unpack(arg, 1, 5)
runs = assert(tonumber(runs), "RUNS must be a number")
local workflow, expected = assert(target):match "^([^:]+):(%d+)$"
expected = assert(tonumber(expected), "WORKFLOW:RUNS expected")
local work = os.getenv "BENCH_WORK" or "/tmp"
local WALK_TIMEOUT = tonumber(os.getenv "BENCH_WALK_TIMEOUT") or 60

local function client(prefetch)
  return function()
    return ("%slua5.4 bench/walk_window.lua %s %s %s %s"):format(CLIENT_ENV, base, workflow,
                                                                 TOKEN, prefetch)
  end
end

-- The baseline client (bench/window.sh builds it): walk_client.lua, as it has no
-- walk:window() to ask.
local BASELINE_DIR = os.getenv "BENCH_BASELINE_DIR"
local BASELINE_NAME = os.getenv "BENCH_BASELINE_NAME" or "?"
local function baseline(prefetch)
  return function()
    return ('env WORKFLOWS_DEBUG=1 LUA_PATH="%s/lua/?.lua;%s/lua/?/init.lua;;" LUA_CPATH="%s/?.so;;" '
      .. "lua5.4 bench/walk_client.lua %s %s %s %s"):format(BASELINE_DIR, BASELINE_DIR,
      BASELINE_DIR, base, workflow, TOKEN, prefetch)
  end
end

local function peer(command)
  return function() return ("%s %s %s %s"):format(command, base, workflow, TOKEN) end
end

local ROWS = {
  auto = { kind = "auto", label = 'this client, prefetch = "auto"', command = client "auto" },
  p0 = { kind = "fixed", label = "this client, prefetch = 0", command = client "0" },
  p2 = { kind = "fixed", label = "this client, prefetch = 2", command = client "2" },
  p3 = { kind = "fixed", label = "this client, prefetch = 3", command = client "3" },
  p7 = { kind = "fixed", label = "this client, prefetch = 7", command = client "7" },
  old_p0 = { kind = "baseline", label = "baseline client " .. BASELINE_NAME .. ", prefetch = 0",
             command = baseline "0" },
  old_p2 = { kind = "baseline", label = "baseline client " .. BASELINE_NAME .. ", prefetch = 2",
             command = baseline "2" },
  old_p3 = { kind = "baseline", label = "baseline client " .. BASELINE_NAME .. ", prefetch = 3",
             command = baseline "3" },
  luacurl = { kind = "peer",
              label = "lua-curl (luacurl 0.3, Lua 5.1), reused handle + lua-cjson",
              command = peer "lua5.1 bench/walk_luacurl.lua" },
  luasocket = { kind = "peer", label = "LuaSocket socket.http + lua-cjson (Lua 5.4)",
                command = peer "lua5.4 bench/walk_luasocket.lua" },
}

local plan = {}
for i = 6, #arg do plan[#plan + 1] = { name = arg[i], row = assert(ROWS[arg[i]], arg[i]) } end

local COUNTERS = { "connections", "requests", "ended", "unanswered", "ended_unanswered",
                   "throttled" }

local function stats()
  local body, status = http.request(base .. "/_bench/stats")
  assert(status == 200, "no /_bench/stats: is this the static server?")
  local values = {}
  for _, name in ipairs(COUNTERS) do
    values[name] = assert(tonumber(body:match('"' .. name .. '":(%d+)')), name)
  end
  return values
end

local function read_file(path)
  local file = io.open(path)
  if not file then return "" end
  local text = file:read "a"
  file:close()
  return text
end

local function measure(item)
  local rss_path, printed_path = work .. "/window-rss.txt", work .. "/window-out.txt"
  local err_path = work .. "/window-err.txt"
  local command = ("/usr/bin/time -f %%M -o %s timeout %d %s >%s 2>%s"):format(
    rss_path, WALK_TIMEOUT, item.row.command(), printed_path, err_path)
  local before = stats()
  local started = socket.gettime()
  local ok = os.execute(command)
  local wall = socket.gettime() - started
  -- the server notices a cancelled request when the client's connection closes,
  -- which is when the walking process exits: give it a moment to count
  socket.sleep(0.05)
  local after = stats()
  local printed = read_file(printed_path)
  local count, current, largest, halvings = printed:match "^(%d+)%s*(%d*)%s*(%d*)%s*(%d*)"
  if not ok or tonumber(count) ~= expected then
    io.stderr:write(("window: %s failed (printed %q)\n%s\n%s\n"):format(item.name, printed,
      command, read_file(err_path)))
    os.exit(1)
  end
  local sample = { wall = wall, rss = tonumber(read_file(rss_path):match "(%d+)%s*$"),
                   current = current ~= "" and current or "-",
                   largest = largest ~= "" and largest or "-",
                   halvings = halvings ~= "" and halvings or "-" }
  for _, name in ipairs(COUNTERS) do sample[name] = after[name] - before[name] end
  sample.stopped = "-"
  if item.row.kind ~= "peer" then
    local collected = 0
    for _ in read_file(err_path):gmatch "workflows: GET [^\n]*%-> " do collected = collected + 1 end
    sample.stopped = sample.requests - collected
  end
  return sample
end

local out = assert(io.open(out_path, "a"))
for round = 1, runs do
  for _, item in ipairs(plan) do
    local s = measure(item)
    io.stderr:write(("  %-9s %-9s round %2d: %7.3f s  window %s/%s/%s  reqs %d ended %d "
      .. "unanswered %d/%d stopped %s throttled %d\n"):format(group, item.name, round, s.wall,
      s.current, s.largest, s.halvings, s.requests, s.ended, s.ended_unanswered, s.unanswered,
      s.stopped, s.throttled))
    out:write(table.concat({ group, item.name, item.row.kind, item.row.label, workflow,
      expected, round, ("%.4f"):format(s.wall), s.rss, s.current, s.largest, s.halvings,
      s.connections, s.requests, s.ended, s.unanswered, s.ended_unanswered, s.throttled,
      (item.row.command():gsub("http://127%.0%.0%.1:%d+", "$BASE")), s.stopped }, "\t"), "\n")
    out:flush()
  end
end
out:close()
