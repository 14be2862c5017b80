-- Every run of wf_big (20,000 runs, 200 pages of 100, every page decoded) from the
-- static server at 0, 5, 20 and 100 ms per request: this client with its default
-- and fixed prefetch windows, what Lua and Python scripts use today (the peers), and
-- curl transferring without decoding; then the instructions a page's decoding costs
-- (callgrind) and the memory of a 200,000-run walk.
local format = string.format

local M = { about = "every run of wf_big at 0/5/20/100 ms: this client, the peers, decode cost, memory" }

local WALK, EXPECT = "wf_big", 20000
local PEERS = {
  { "luasocket", "LuaSocket socket.http + lua-cjson (Lua 5.4)", "lua5.4", "socket.http", "lua-socket" },
  { "luacurl", "lua-curl (luacurl 0.3, Lua 5.1), reused handle + lua-cjson", "lua5.1", "curl", "lua-curl" },
  { "curl_process", "one curl process per page + lua-cjson (plenary.curl way)", "lua5.4", "cjson", "lua-cjson" },
}

-- The rows against SERVER; LIST names which.
local function rows_for(lib, server, list)
  local function client(prefetch, label, extra)
    return lib.row { name = "p" .. prefetch, kind = prefetch == "default" and "client" or "fixed",
      label = label or ("this client, prefetch = " .. prefetch) .. (extra or ""), server = server,
      expect = EXPECT, command = format("%slua5.4 bench/hosts/walk.lua %s %s %s %s", lib.CLIENT_ENV,
        server.url, WALK, lib.TOKEN, prefetch) }
  end
  local function curl(name, label, options)
    local urls = {}
    for offset = 0, EXPECT - 1, 100 do
      urls[#urls + 1] = format('url = "%s/v1/workflows/%s/runs?limit=100&offset=%d"\noutput = "/dev/null"\n',
        server.url, WALK, offset)
    end
    local cfg = format("%s/urls-%d.cfg", lib.work, server.pid)
    lib.write(cfg, table.concat(urls))
    -- --compressed: the gzip bodies the client asks for; --no-progress-meter: curl
    -- 7.88 draws its parallel progress meter even with -s
    return lib.row { name = name, kind = name == "curl_parallel" and "floor" or "capacity",
      label = label, server = server, command = format("curl -sS --no-progress-meter --fail "
        .. "--compressed -H 'Authorization: Bearer %s' %s-K %s", lib.TOKEN, options, cfg) }
  end
  local default = require("workflows.options").DEFAULTS.prefetch
  local all = {
    default = function() return client("default", format("this client, default prefetch (= %q)", default)) end,
    curl_parallel = function()
      return curl("curl_parallel", "curl --parallel --parallel-max 4 (transfer only)", "--parallel --parallel-max 4 ")
    end,
    curl_sequential = function()
      return curl("curl_sequential", "curl -K, one page after another on one connection (transfer only)", "")
    end,
  }
  for _, p in ipairs(PEERS) do
    all[p[1]] = function()
      return lib.row { name = p[1], kind = "peer", label = p[2], server = server, expect = EXPECT,
        command = format("%s bench/hosts/peers.lua %s %s %s %s", p[3], p[1], server.url, WALK, lib.TOKEN),
        needs = format("%s -e 'require %q; require \"cjson\"'", p[3], p[4]), why = p[5] .. " not installed" }
    end
  end
  for _, how in ipairs { "urllib", "http.client" } do
    all["python_" .. how] = function()
      return lib.row { name = "python_" .. how, kind = "peer", server = server, expect = EXPECT,
        label = how == "urllib" and "Python urllib + json (new connection per page)"
          or "Python http.client (kept alive) + json", needs = "python3 -V", why = "python3 not installed",
        command = format("python3 bench/hosts/peers.py %s %s %s %s", how, server.url, WALK, lib.TOKEN) }
    end
  end
  local rows = {}
  for _, name in ipairs(list) do
    rows[#rows + 1] = all[name] and all[name]() or client(name:match "^p(%d+)$")
  end
  return rows
end

-- (the rows against the server that never gzips are only compared with each other)
local function best(rows, group, kind)
  local found
  for _, row in ipairs(rows) do
    if row.group == group and row.kind == kind and row.wall and not row.identity
        and (not found or row.wall < found.wall) then
      found = row
    end
  end
  return found
end

local function find(rows, group, name)
  for _, row in ipairs(rows) do
    if row.group == group and row.name == name and not row.identity then return row end
  end
end

-- Per walk: requests past the last page, and those the client stopped unread (the
-- server's count less the attempts the client logged).
local function past_the_end(s)
  local collected = 0
  for _ in s.log:gmatch "workflows: GET [^\n]*%-> " do collected = collected + 1 end
  return (s.ended or 1) - 1, (s.requests or 0) - collected
end

local HEADER = { "<latency", "<row", "<server", "wall (median)", "min–max (runs)", "runs/s",
  "vs best sequential peer", "peak RSS", "window at end / largest / halvings", "conns / requests",
  "past the last page (stopped unread)" }

-- What a walk of this client said of its window, and the requests past its last page.
local function window_cells(lib, row)
  if row.kind ~= "client" and row.kind ~= "fixed" then return "–", "–" end
  local current, largest, halvings, ends, stopped = {}, {}, {}, {}, {}
  for i, s in ipairs(row.samples) do
    current[i], largest[i], halvings[i] = s.printed:match "^%d+ (%d+) (%d+) (%d+)"
    ends[i], stopped[i] = past_the_end(s)
  end
  return format("%s / %s / %s", lib.spread(current), lib.spread(largest), lib.spread(halvings)),
    format("%s (%s)", lib.spread(ends), lib.spread(stopped))
end

function M.table(lib, rows)
  local cells = {}
  for _, row in ipairs(rows) do
    local name, peer = row.label, best(rows, row.group, "peer")
    if row == peer then name = "**" .. name .. "**" end
    if row.kind == "client" then name = "*" .. name .. "*" end
    local c = { row.group, name, row.server_name }
    if row.skipped or row.timed_out then
      c[4] = row.skipped and "skipped: " .. row.skipped or format("timed out (> %d s)", lib.WALK_TIMEOUT)
    else
      local window, past = window_cells(lib, row)
      local counted = row.samples[1].connections and format("%s / %s",
        lib.spread(lib.collect(row.samples, "connections")), lib.spread(lib.collect(row.samples, "requests")))
      c = { c[1], c[2], c[3], lib.ms(row.wall) .. " ms", format("%s–%s (%d)", lib.ms(row.min), lib.ms(row.max),
        #row.samples), lib.thousands((row.expect or EXPECT) / row.wall),
        peer and row.kind ~= "capacity" and format("%.2fx", peer.wall / row.wall) or "–",
        format("%.1f MiB", row.rss / 1024), window, counted or "–", past }
    end
    for i = #c + 1, #HEADER do c[i] = "" end
    cells[#cells + 1] = c
  end
  return lib.table(HEADER, cells)
end

-- Instructions per decode of one 100-run page, and CPU time per decode.
local function decode_cost(lib, pages)
  local body, n, per = pages .. "/wf_big/0.json", 200, {}
  for _, mode in ipairs { "baseline", "cjson", "core" } do
    local err = lib.work .. "/callgrind.err"
    lib.run(format([[LUA_CPATH="./?.so;;" valgrind --tool=callgrind --callgrind-out-file=/dev/null ]]
      .. "lua5.4 bench/hosts/decode.lua %s %d %s >/dev/null 2>%s", mode, n, body, err))
    per[mode] = tonumber(lib.read(err):match "Collected : (%d+)")
  end
  local times = {}
  for mode, us in lib.output(format([[LUA_CPATH="./?.so;;" lua5.4 bench/hosts/decode.lua time 4000 %s]],
      body)):gmatch "time_(%w+)\t([%d.]+)" do
    times[mode] = tonumber(us)
  end
  local cjson, page = (per.cjson - per.baseline) / n, (per.core - per.baseline) / n
  return cjson, page, times
end

-- Instructions of a whole walk under callgrind (the process from start to end, start-up
-- included) from the static server without gzip at 0 ms: CPU per page as the shared
-- machine's timings cannot show it. This client against the peers that run on Lua 5.4:
-- LuaSocket, and Lua-cURLv3 when BENCH_LCURL_CPATH names where its lcurl.so is (it is
-- no Debian package for 5.4), bare and keeping this client's promises in Lua. The median
-- of three: where the collector's steps fall moves a count by about 1%.
local function walk_instructions(lib, pages)
  local server = lib.static(pages, 0, "--identity")
  local walks = {
    { "this client, default prefetch", [[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;"]],
      "lua5.4 bench/hosts/walk.lua %s %s %s default" },
    { "LuaSocket + lua-cjson", "", "lua5.4 bench/hosts/peers.lua luasocket %s %s %s" },
  }
  local lcurl = os.getenv "BENCH_LCURL_CPATH"
  if lcurl then
    walks[#walks + 1] = { "Lua-cURLv3 easy + lua-cjson", format([[LUA_CPATH="%s/?.so;;"]], lcurl),
      "lua5.4 bench/hosts/peers.lua lcurl %s %s %s" }
    -- the same walk keeping this client's promises about null and integers in Lua: what
    -- those promises cost a script that wants them
    walks[#walks + 1] = { "Lua-cURLv3 easy + lua-cjson, nulls and integers as this client's",
      format([[LUA_CPATH="%s/?.so;;"]], lcurl), "lua5.4 bench/hosts/peers.lua lcurl_promises %s %s %s" }
  end
  local rows = {}
  for _, walk in ipairs(walks) do
    local counts = {}
    for run = 1, 3 do
      local err = format("%s/callgrind-walk-%d.err", lib.work, run)
      lib.run(format("env %s valgrind --tool=callgrind --callgrind-out-file=/dev/null %s >/dev/null 2>%s",
        walk[2], format(walk[3], server.url, WALK, lib.TOKEN), err))
      counts[run] = tonumber((lib.read(err) or ""):match "Collected : (%d+)")
    end
    if #counts == 3 then rows[#rows + 1] = { label = walk[1], count = lib.median(counts) } end
  end
  lib.stop(server)
  return rows
end

function M.run(lib)
  local pages = lib.pages("wf_big:20000", "wf_huge:200000")
  local rows = {}
  local function measure(group, server, server_name, runs, list)
    local batch = rows_for(lib, server, list)
    for _, row in ipairs(batch) do
      row.group, row.server_name = group, server_name
      rows[#rows + 1] = row
    end
    return lib.rounds(group, batch, runs)
  end
  local clients = { "default", "p0", "p1", "p2", "p3", "p7" }
  local peers = { "luasocket", "luacurl", "curl_process", "python_urllib", "python_http.client", "curl_parallel" }
  for latency in (os.getenv "BENCH_LATENCIES" or "0 5 20 100"):gmatch "%d+" do
    local server = lib.static(pages, tonumber(latency))
    local group = latency .. " ms"
    -- the peers would take 20 s a walk at 100 ms, and no target needs them there
    local list = latency == "100" and { "default", "p0", "p2", "p3", "p7" } or {}
    if latency ~= "100" then
      for _, name in ipairs(clients) do list[#list + 1] = name end
      for _, name in ipairs(peers) do list[#list + 1] = name end
    end
    if latency == "0" then
      -- At 0 ms a walk takes ~0.1 s and the machine's noise is a good part of it:
      -- three times the runs. A second server that never gzips, in the same rounds,
      -- shows what inflating costs the client on loopback, where the peers skip it.
      list[#list + 1] = "curl_sequential"
      local identity = lib.static(pages, 0, "--identity")
      local batch = rows_for(lib, identity, { "default", "p0" })
      for _, row in ipairs(batch) do
        row.group, row.server_name, row.identity, rows[#rows + 1] = group, "static, no gzip", true, row
      end
      local main = rows_for(lib, server, list)
      for _, row in ipairs(main) do
        row.group, row.server_name, rows[#rows + 1] = group, "static", row
        batch[#batch + 1] = row
      end
      lib.rounds(group, batch, lib.runs * 3)
      lib.stop(identity)
    else
      measure(group, server, "static", lib.runs, list)
    end
    lib.stop(server)
  end
  local server = lib.static(pages, 0)
  measure("memory", server, "static", lib.runs, { "default" })
  local huge = rows_for(lib, server, { "default" })[1]
  huge.command, huge.expect = huge.command:gsub(" wf_big ", " wf_huge "), 200000
  huge.group, huge.server_name, huge.label = "memory", "static", huge.label .. ", wf_huge (200,000 runs)"
  rows[#rows + 1] = huge
  lib.rounds("memory", { huge }, lib.runs)
  lib.stop(server)
  local cjson, page, times = decode_cost(lib, pages)
  local whole = walk_instructions(lib, pages)

  local big = find(rows, "memory", "pdefault")
  local targets = {
    lib.speed_target("20 ms: default walk at least 4x faster than the best sequential peer",
      find(rows, "20 ms", "pdefault"), best(rows, "20 ms", "peer"), "faster", 4),
    lib.speed_target("20 ms: prefetch = 3 within 1.3x of curl --parallel-max 4",
      find(rows, "20 ms", "p3"), find(rows, "20 ms", "curl_parallel"), "within", 1.3),
    lib.speed_target("0 ms: default walk no slower than the best sequential peer (>= 0.95)",
      find(rows, "0 ms", "pdefault"), best(rows, "0 ms", "peer"), "faster", 0.95),
    lib.speed_target('0 ms: "auto" no slower than prefetch = 0 (at most 1.05x)',
      find(rows, "0 ms", "pdefault"), find(rows, "0 ms", "p0"), "within", 1.05),
  }
  for latency in ("0 5 20 100"):gmatch "%d+" do
    targets[#targets + 1] = lib.speed_target(latency .. ' ms: "auto" within 1.15x of the best fixed window',
      find(rows, latency .. " ms", "pdefault"), best(rows, latency .. " ms", "fixed"), "within", 1.15)
  end
  targets[#targets + 1] = lib.target("decode path <= 1.3x the instructions of a bare cjson.decode",
    format("%.2fx (%s vs %s instructions per page)", page / cjson, lib.thousands(page), lib.thousands(cjson)),
    page / cjson <= 1.3)
  local ours, lcurl_walk = whole[1], whole[3]
  if ours and lcurl_walk then
    targets[#targets + 1] = lib.target("whole walk at most 1.10x the instructions of the Lua-cURLv3 easy walk",
      format("%.2fx (%s vs %s instructions)", ours.count / lcurl_walk.count, lib.thousands(ours.count),
        lib.thousands(lcurl_walk.count)), ours.count / lcurl_walk.count <= 1.10)
  end
  if big.rss and huge.rss then
    targets[#targets + 1] = lib.target("peak RSS of a 200,000-run walk within 1.2x of a 20,000-run walk",
      format("%.2fx (%.1f MiB vs %.1f MiB)", huge.rss / big.rss, huge.rss / 1024, big.rss / 1024),
      huge.rss / big.rss <= 1.2)
  end
  local most = 0
  for _, row in ipairs(rows) do
    for _, s in ipairs(row.kind ~= "peer" and row.expect == EXPECT and row.samples or {}) do
      most = math.max(most, s.requests - past_the_end(s))
    end
  end
  targets[#targets + 1] = lib.target("overlap: at most 2% more requests than the 200 pages of a stable listing",
    format("%.1f%% (%d pages needed per walk at most)", (most / 200 - 1) * 100, most), most <= 204)

  local out = { "## Walks", "",
    "Each walk fetches every run of `wf_big` (20,000 runs, 200 pages of `limit=100`) from",
    "`bench/static_server.c` and decodes every page; wall time of the whole process, median of",
    "its runs, rows interleaved round by round (0 ms: three times the runs). *vs best sequential",
    "peer*: the fastest peer's (bold) wall time over this row's. *window*: `walk:window()` after",
    "the walk, the distinct values over the runs. *past the last page*: requests for pages after",
    "the one that ended the listing (in brackets: those the client stopped unread).", "" }
  lib.append(out, lib.table(lib.TARGETS, targets), "", M.table(lib, rows), "")
  out[#out + 1] = format("Decode cost (`bench/hosts/decode.lua` under `valgrind --tool=callgrind`, page 0 of "
    .. "`wf_big` as identity JSON): bare `cjson.decode` %s instructions per page, "
    .. "`workflows.core.decode_page` (shape checks, nulls dropped, integers) %s, %.2fx; timed without "
    .. "valgrind: %.0f µs and %.0f µs per page.", lib.thousands(cjson), lib.thousands(page), page / cjson,
    times.cjson or 0, times.core or 0)
  out[#out + 1] = ""
  if whole[1] then
    local cells = {}
    for _, row in ipairs(whole) do
      cells[#cells + 1] = { row.label, lib.thousands(row.count), lib.thousands(row.count / 200),
        format("%.2fx", row.count / whole[1].count) }
    end
    out[#out + 1] = "Whole walk under `valgrind --tool=callgrind` (start-up included, `wf_big` from the "
      .. "static server without gzip, median of 3; Lua-cURLv3 only with `BENCH_LCURL_CPATH`):"
    out[#out + 1] = ""
    lib.append(out, lib.table({ "walk", "instructions", "per page", "vs this client" }, cells), "")
  end
  out[#out + 1] = "Commands (`$BASE` the static server's URL, `build/bench/static_server --pages DIR "
    .. "--latency-ms N`):"
  out[#out + 1] = ""
  out[#out + 1] = "```sh"
  local shown = {}
  for _, row in ipairs(rows) do
    if not shown[row.label] and row.command then
      shown[row.label] = true
      out[#out + 1] = "# " .. row.label
      out[#out + 1] = (row.command:gsub("http://127%.0%.0%.1:%d+", "$BASE"):gsub("%S+/urls%-%d+%.cfg", "urls.cfg"))
    end
  end
  out[#out + 1] = "```"
  out[#out + 1] = ""
  return out
end

return M
