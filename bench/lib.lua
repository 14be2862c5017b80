-- What the scenarios of bench/bench.lua share: servers started and stopped by their
-- pid, rows run round by round and checked, medians, and Markdown tables and targets.
local core = require "workflows.core"

local format, concat = string.format, table.concat

local M = {}

M.TOKEN = "sandbox-token"
M.runs = tonumber(os.getenv "BENCH_RUNS") or 5
-- A walk slower than this is stopped and shown as timed out, so that a client gone
-- wrong cannot stretch the benchmark past its budget.
M.WALK_TIMEOUT = tonumber(os.getenv "BENCH_WALK_TIMEOUT") or 60
M.STATIC = "build/bench/static_server"
M.now = core.now
-- This checkout's client, not an installed rock. WORKFLOWS_DEBUG=1 logs every
-- attempt the client collected, so the requests it stopped unread can be counted.
M.CLIENT_ENV = [[env WORKFLOWS_DEBUG=1 LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" ]]

function M.output(command)
  local pipe = assert(io.popen(command .. " 2>/dev/null"))
  local text = pipe:read "a" or ""
  pipe:close()
  return (text:gsub("%s+$", ""))
end

function M.read(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read "a"
  file:close()
  return text
end

function M.write(path, text)
  local file = assert(io.open(path, "wb"))
  file:write(text)
  file:close()
end

function M.sleep(seconds) os.execute("sleep " .. seconds) end

-- Fails the benchmark when a command does; a Ctrl-C in a child stops it too.
function M.run(command)
  local ok, how, code = os.execute(command)
  if how == "signal" or code == 130 then error("interrupted", 0) end
  if not ok then error("failed: " .. command, 0) end
end

-- ----------------------------------------------------------------- servers

local running, started = {}, 0

-- Starts COMMAND (which prints "listening URL" once ready; its parent is this
-- process, so the C server exits if the benchmark dies) and returns
-- { url, pid }. With `wait` instead, a server that prints nothing gets that many
-- seconds and the URL given.
function M.start(command, url, wait)
  started = started + 1
  local err = format("%s/server%d.err", M.work, started)
  local pipe = assert(io.popen(format("echo $$; exec %s 2>%s", command, err)))
  local server = { pid = assert(tonumber(pipe:read "l")), pipe = pipe, url = url }
  running[#running + 1] = server
  if wait then
    M.sleep(wait)
  else
    repeat
      local line = pipe:read "l"
      server.url = line and line:match "^listening (%S+)"
    until server.url or not line
  end
  if not server.url then
    M.stop(server)
    error(format("server did not start: %s\n%s", command, M.read(err) or ""), 0)
  end
  return server
end

function M.stop(server)
  for i, s in ipairs(running) do
    if s == server then table.remove(running, i) end
  end
  os.execute("kill " .. server.pid .. " 2>/dev/null")
  server.pipe:close()
end

function M.stop_all()
  while running[1] do M.stop(running[1]) end
end

-- The static server (bench/static_server.c) on PAGES at LATENCY ms; OPTIONS more flags.
function M.static(pages, latency, options)
  return M.start(format("%s --pages %s --port 0 --latency-ms %d %s", M.STATIC, pages, latency,
    options or ""))
end

-- The counters of the static server (GET /_bench/stats), by name.
function M.stats(server)
  local values = {}
  for name, n in M.output(format("curl -s %s/_bench/stats", server.url)):gmatch '"([%w_]+)":(%d+)' do
    values[name] = tonumber(n)
  end
  return values
end

-- The sandbox's own pages of WORKFLOW:RUNS..., fetched once per version of the
-- sandbox as identity JSON and as gzip, for the static server:
-- DIR/<workflow>/<offset>.json(.gz). Returns DIR.
function M.pages(...)
  local root = "build/bench/pages-" .. M.output("sha256sum sandbox/server.py | cut -c1-12")
  local sandbox
  for _, spec in ipairs { ... } do
    local workflow, count = spec:match "^([%w_]+):(%d+)$"
    local dir = root .. "/" .. workflow
    if not M.read(dir .. "/0.json") then
      io.stderr:write("== fetching ", workflow, " from the sandbox into ", dir, "\n")
      sandbox = sandbox or M.start "python3 sandbox/server.py --port 0 --latency-ms 0"
      local tmp = dir .. ".tmp"
      M.run(format("rm -rf %s && mkdir -p %s", tmp, tmp))
      local plain, gzip = {}, {}
      for offset = 0, tonumber(count) - 1, 100 do
        local url = format('url = "%s/v1/workflows/%s/runs?limit=100&offset=%d"\n', sandbox.url,
          workflow, offset)
        plain[#plain + 1] = format('%soutput = "%s/%d.json"\n', url, tmp, offset)
        gzip[#gzip + 1] = format('%soutput = "%s/%d.json.gz"\n', url, tmp, offset)
      end
      M.write(tmp .. "/plain.cfg", concat(plain))
      M.write(tmp .. "/gzip.cfg", concat(gzip))
      local curl = "curl -sS --no-progress-meter --fail --parallel --parallel-max 8 -H 'Authorization: Bearer "
        .. M.TOKEN .. "'"
      -- without --compressed curl keeps the gzip body as it came over the wire
      M.run(format("%s -K %s/plain.cfg && %s -H 'Accept-Encoding: gzip' -K %s/gzip.cfg", curl,
        tmp, curl, tmp))
      local last = format("%s/%d.json", tmp, (tonumber(count) - 1) // 100 * 100)
      assert((M.read(last) or ""):find('"hasMore":false', 1, true), last .. " does not end the listing")
      M.run(format("rm %s/*.cfg && mv %s %s", tmp, tmp, dir))
    end
  end
  if sandbox then M.stop(sandbox) end
  return root
end

-- ----------------------------------------------------------------- rows

-- A row: { name, label, kind, command, server (counted when static), expect (the
-- runs it must print), needs (a command that fails when the row cannot run) }.
-- Rows whose `needs` fails are kept with `skipped` set, and not run.
function M.row(row)
  if row.needs and not os.execute(row.needs .. " >/dev/null 2>&1") then
    row.skipped = row.why or "not installed"
  end
  row.samples = {}
  return row
end

-- One walk: wall time of the whole process (start-up included, as a user sees it),
-- peak RSS, what it printed and logged, and what the server counted meanwhile.
local function sample(row)
  local out, err, rss = M.work .. "/out", M.work .. "/err", M.work .. "/rss"
  local before = row.server and M.stats(row.server)
  local t0 = core.now()
  local ok, how, code = os.execute(format("/usr/bin/time -f %%M -o %s timeout %d %s >%s 2>%s", rss,
    M.WALK_TIMEOUT, row.command, out, err))
  local s = { wall = core.now() - t0, printed = M.read(out) or "", log = M.read(err) or "" }
  if how == "signal" or code == 130 then error("interrupted", 0) end
  if code == 124 then return nil end
  local count = tonumber(s.printed:match "^%s*(%d+)")
  if not ok or (row.expect and count ~= row.expect) then
    error(format("%s failed (printed %q)\n%s\n%s", row.label, s.printed, row.command, s.log), 0)
  end
  s.rss = tonumber((M.read(rss) or ""):match "(%d+)%s*$")
  if row.server then
    -- the server counts a cancelled request when the walk's connection closes
    M.sleep(0.05)
    local after = M.stats(row.server)
    for name, n in pairs(after) do s[name] = n - before[name] end
  end
  return s
end

-- Runs ROWS RUNS times, interleaved round by round so that a slow spell of the
-- machine hits every row alike; sets each row's median wall time, min, max, peak RSS.
function M.rounds(group, rows, runs)
  for round = 1, runs do
    for _, row in ipairs(rows) do
      if not row.skipped and not row.timed_out then
        local s = sample(row)
        if s then
          row.samples[#row.samples + 1] = s
          io.stderr:write(format("  %-8s %-48s round %2d: %7.3f s %7d KB\n", group,
            row.label:sub(1, 48), round, s.wall, s.rss or 0))
        else
          row.timed_out = true
          io.stderr:write(format("  %-8s %-48s timed out\n", group, row.label:sub(1, 48)))
        end
      end
    end
  end
  for _, row in ipairs(rows) do
    local walls = M.collect(row.samples, "wall")
    if #walls > 0 and not row.timed_out then
      row.wall, row.rss = M.median(walls), M.median(M.collect(row.samples, "rss"))
      row.min, row.max = math.min(table.unpack(walls)), math.max(table.unpack(walls))
    end
  end
  return rows
end

-- ----------------------------------------------------------------- figures

function M.collect(list, field)
  local values = {}
  for _, item in ipairs(list) do values[#values + 1] = item[field] end
  return values
end

-- The median of numbers (nil for none); the list is left as it was.
function M.median(values)
  local copy = { table.unpack(values) }
  table.sort(copy)
  local n = #copy
  if n == 0 then return nil end
  if n % 2 == 1 then return copy[(n + 1) // 2] end
  return (copy[n // 2] + copy[n // 2 + 1]) / 2
end

-- The value at FRACTION (0..1) of sorted VALUES.
function M.at(values, fraction)
  return values[math.max(1, math.ceil(#values * fraction))]
end

-- A whole number with thousands separated by commas: 20000 -> "20,000".
function M.thousands(n)
  local text = format("%d", math.floor(n + 0.5))
  repeat
    local changed
    text, changed = text:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until changed == 0
  return text
end

-- Seconds as whole milliseconds.
function M.ms(seconds) return M.thousands(seconds * 1000) end

-- The distinct values, sorted, joined by "/": 3/5/6.
function M.spread(values)
  local seen, list = {}, {}
  for _, v in ipairs(values) do
    if not seen[v] then
      seen[v] = true
      list[#list + 1] = v
    end
  end
  table.sort(list, function(a, b) return tostring(a) < tostring(b) end)
  if type(list[1]) == "number" then table.sort(list) end
  return concat(list, "/")
end

-- Markdown table lines: HEADER's cells (a leading "<" keeps a column left-aligned,
-- others are numbers, right-aligned) and one list of cells per row.
function M.table(header, rows)
  local names, rule = {}, {}
  for i, cell in ipairs(header) do
    names[i] = cell:gsub("^<", "")
    rule[i] = cell:sub(1, 1) == "<" and "---" or "---:"
  end
  local lines = { "| " .. concat(names, " | ") .. " |", "| " .. concat(rule, " | ") .. " |" }
  for _, cells in ipairs(rows) do lines[#lines + 1] = "| " .. concat(cells, " | ") .. " |" end
  return lines
end

-- OUT with each further argument appended: a line, or a list of lines.
function M.append(out, ...)
  for _, item in ipairs { ... } do
    for _, line in ipairs(type(item) == "table" and item or { item }) do out[#out + 1] = line end
  end
  return out
end

-- A target's row: { text, what was measured (nil: not measured), met }.
function M.target(text, shown, met)
  return { text, shown or "not measured", shown == nil and "–" or met and "met" or "**missed**" }
end

-- "x is WANTx faster than y" (how "faster": y/x at least WANT) or "x within WANTx of
-- y" (how "within": x/y at most WANT), as a target row.
function M.speed_target(text, x, y, how, want)
  if not (x and x.wall and y and y.wall) then return M.target(text) end
  local ratio = how == "faster" and y.wall / x.wall or x.wall / y.wall
  return M.target(text, format("%.2fx (%s ms against %s: %s ms)", ratio, M.ms(x.wall), y.label,
    M.ms(y.wall)), how == "faster" and ratio >= want or how == "within" and ratio <= want)
end

M.TARGETS = { "<target", "<measured", "<" }

return M
