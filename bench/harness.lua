-- Runs benchmark rows against running servers and appends every sample to a
-- tab-separated file that bench/report.lua turns into the tables.
--
--   lua5.4 bench/harness.lua OUT GROUP SERVER BASE_URL RUNS WORKFLOW:RUNS ROW...
--
-- GROUP names the table block ("0 ms", "memory", ...), SERVER the server behind
-- BASE_URL. A ROW is a row name (below), or NAME@SERVER2=URL2 to run that row
-- against another server in the same rounds, so that two servers are compared
-- under the same conditions. Servers whose name starts with "static" answer
-- GET /_bench/stats, so connections and requests per walk are recorded too.
--
-- Every row is run RUNS times, interleaved round by round (row A, row B, ..., then
-- again), so that a slow spell of the machine hits every row alike instead of one.
-- A sample is the wall time of the whole process (start-up included, as a user
-- sees it) and its peak RSS from /usr/bin/time. A walk that does not print the
-- expected number of runs fails the benchmark; one that runs out of WALK_TIMEOUT
-- is recorded as timed out and not run again.
local http = require "socket.http"
local socket = require "socket"

local TOKEN = "sandbox-token"
-- The client is loaded from the work tree, not from an installed rock.
local CLIENT_ENV = [[env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" ]]

local out_path, group, main_server, main_base, runs, target = table.unpack(arg, 1, 6)
runs = assert(tonumber(runs), "RUNS must be a number")
local workflow, expected = assert(target):match "^([^:]+):(%d+)$"
expected = assert(tonumber(expected), "WORKFLOW:RUNS expected")

local work = os.getenv "BENCH_WORK" or "/tmp"
-- A walk slower than this is stopped and reported as timed out, so that a client
-- gone wrong cannot stretch the benchmark past its budget.
local WALK_TIMEOUT = tonumber(os.getenv "BENCH_WALK_TIMEOUT") or 30

-- The URL list for the curl command-line rows: one url/output pair per page.
local function curl_config(base)
  local path = ("%s/urls-%s-%s.cfg"):format(work, workflow, base:match "(%d+)$")
  local file = assert(io.open(path, "w"))
  for offset = 0, expected - 1, 100 do
    file:write(('url = "%s/v1/workflows/%s/runs?limit=100&offset=%d"\noutput = "/dev/null"\n')
      :format(base, workflow, offset))
  end
  file:close()
  return path
end

local function client(prefetch)
  return function(base)
    return ("%slua5.4 bench/walk_client.lua %s %s %s %s"):format(CLIENT_ENV, base, workflow,
                                                                 TOKEN, prefetch)
  end
end

local function peer(command)
  return function(base)
    return ("%s %s %s %s"):format(command, base, workflow, TOKEN)
  end
end

local function curl_cli(options)
  -- --compressed: the same gzip bodies the client asks for. -sS plus
  -- --no-progress-meter: curl 7.88 draws its parallel progress meter even with -s.
  return function(base)
    return ("curl -sS --no-progress-meter --fail --compressed -H 'Authorization: Bearer %s'"
            .. " %s-K %s"):format(TOKEN, options, curl_config(base))
  end
end

-- kind: "client" (this client), "peer" (a sequential peer: the best of them is the
-- yardstick), "floor" (transfer only, no decoding), "capacity" (measures the server).
local ROWS = {
  client = { kind = "client", label = "this client, default prefetch",
             command = client "default" },
  client_p0 = { kind = "client", label = "this client, prefetch = 0", command = client "0" },
  client_p1 = { kind = "client", label = "this client, prefetch = 1", command = client "1" },
  client_p2 = { kind = "client", label = "this client, prefetch = 2", command = client "2" },
  client_p3 = { kind = "client", label = "this client, prefetch = 3", command = client "3" },
  luasocket = {
    kind = "peer", label = "LuaSocket socket.http + lua-cjson (Lua 5.4)",
    command = peer "lua5.4 bench/walk_luasocket.lua" },
  luacurl = {
    kind = "peer", label = "lua-curl (luacurl 0.3, Lua 5.1), reused handle + lua-cjson",
    command = peer "lua5.1 bench/walk_luacurl.lua" },
  curl_process = {
    kind = "peer", label = "one curl process per page + lua-cjson (plenary.curl way)",
    command = peer "lua5.4 bench/walk_curl_process.lua" },
  python_urllib = {
    kind = "peer", label = "Python urllib + json (new connection per page)",
    command = peer "python3 bench/walk_python.py urllib" },
  python_http_client = {
    kind = "peer", label = "Python http.client (kept alive) + json",
    command = peer "python3 bench/walk_python.py http.client" },
  curl_parallel = {
    kind = "floor", label = "curl --parallel --parallel-max 4 (transfer only)",
    command = curl_cli "--parallel --parallel-max 4 " },
  curl_sequential = {
    kind = "capacity", label = "curl -K, one page after another on one connection (transfer only)",
    command = curl_cli "" },
}

-- What to run: { name, row, server, base } per ROW argument.
local plan = {}
for i = 7, #arg do
  local name, server, base = arg[i]:match "^([%w_]+)@([%w_]+)=(%S+)$"
  if not name then name, server, base = arg[i], main_server, main_base end
  plan[#plan + 1] = { name = name, row = assert(ROWS[name], "unknown row " .. name),
                      server = server, base = base }
end

local function stats(item)
  if not item.server:match "^static" then return nil end
  local body, status = http.request(item.base .. "/_bench/stats")
  if status ~= 200 then return nil end
  return { connections = tonumber(body:match '"connections":(%d+)'),
           requests = tonumber(body:match '"requests":(%d+)') }
end

local function read_file(path)
  local file = io.open(path)
  if not file then return "" end
  local text = file:read "a"
  file:close()
  return text
end

-- Returns the sample, or nil when the walk ran out of WALK_TIMEOUT seconds.
local function measure(item)
  local row = item.row
  local rss_path, printed_path = work .. "/rss.txt", work .. "/out.txt"
  local err_path = work .. "/err.txt"
  local command = ("/usr/bin/time -f %%M -o %s timeout %d %s >%s 2>%s"):format(
    rss_path, WALK_TIMEOUT, row.command(item.base), printed_path, err_path)
  local before = stats(item)
  local started = socket.gettime()
  local ok, _, code = os.execute(command)
  local wall = socket.gettime() - started
  local after = stats(item)
  local printed = read_file(printed_path)
  if code == 124 then return nil end
  if not ok or (row.kind ~= "floor" and row.kind ~= "capacity"
                and tonumber(printed) ~= expected) then
    io.stderr:write(("harness: %s failed (printed %q)\n%s\n%s\n"):format(
      item.name, printed, command, read_file(err_path)))
    os.exit(1)
  end
  local connections, requests = "-", "-"
  if before and after then
    connections = after.connections - before.connections
    requests = after.requests - before.requests
  end
  return { wall = wall, rss = tonumber(read_file(rss_path):match "(%d+)%s*$"),
           connections = connections, requests = requests }
end

local out = assert(io.open(out_path, "a"))
local timed_out = {}
for round = 1, runs do
  for _, item in ipairs(plan) do
    local key = item.name .. "@" .. item.server
    if not timed_out[key] then
      local sample = measure(item)
      local fields
      if sample then
        fields = { ("%.4f"):format(sample.wall), sample.rss, sample.connections,
                   sample.requests }
        io.stderr:write(("  %-8s %-15s %-19s round %2d: %7.3f s %7d KB\n"):format(
          group, item.server, item.name, round, sample.wall, sample.rss))
      else
        timed_out[key] = true
        fields = { "timeout", WALK_TIMEOUT, "-", "-" }
        io.stderr:write(("  %-8s %-15s %-19s round %2d: timed out after %d s\n"):format(
          group, item.server, item.name, round, WALK_TIMEOUT))
      end
      out:write(table.concat({ group, item.server, item.name, item.row.kind, item.row.label,
                               workflow, expected, round, fields[1], fields[2], fields[3],
                               fields[4], item.row.command(item.base) }, "\t"), "\n")
      out:flush()
    end
  end
end
out:close()
