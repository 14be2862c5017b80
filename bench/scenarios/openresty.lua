-- One nginx worker (`master_process off`) walking wf_demo for 16 keep-alive
-- connections at a time, through cosockets and through the blocking libcurl
-- transport, while /ping is answered on the same worker; then one walk at a time
-- with no latency, where only the CPU a walk costs counts. The load generator is
-- bench/hosts/nginx_load.py, the handler bench/hosts/nginx.lua; the API is the
-- static server, without gzip (the cosocket transport never asks for it).
local nginx = require "spec.support.nginx"

local format = string.format

local M = { about = "one nginx worker: 16 walks at a time, /ping p99 beside them" }

local SECONDS = tonumber(os.getenv "BENCH_OPENRESTY_SECONDS") or 8
local WALKERS = 16
local CASES = {
  { "idle worker (no walks)", 0, "SLOW", "ngx" },
  { "cosockets (`ngx`), `pool_size = 64`", WALKERS, "SLOW", "ngx", 64 },
  { "cosockets (`ngx`), default `pool_size = 30`", WALKERS, "SLOW", "ngx" },
  { "libcurl (`curl`), blocks the worker", WALKERS, "SLOW", "curl" },
  { "cosockets (`ngx`), one walk at a time, 0 ms", 1, "FAST", "ngx", 64 },
  { "libcurl (`curl`), one walk at a time, 0 ms", 1, "FAST", "curl" },
}
local FIGURES = { "walks_per_second", "runs", "seconds", "mean_walk_ms", "ping_p50_ms", "ping_p99_ms",
  "ping_max_ms", "late_p99_ms", "late_max_ms", "cpu", "connections", "requests", "walks" }

-- CPU seconds the process has used so far (user + system).
local function cpu_seconds(lib, pid)
  local fields = {}
  for field in lib.read("/proc/" .. pid .. "/stat"):match "%)%s+(.*)$":gmatch "%S+" do fields[#fields + 1] = field end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100  -- USER_HZ
end

-- One run of a case: the load generator's figures, the worker's, the API server's.
local function sample(lib, server, api, path, walkers)
  local before = lib.stats(api)
  server:get "/lateness"  -- starts the count afresh
  local cpu = cpu_seconds(lib, server.pid)
  local s = {}
  for key, value in lib.output(format("python3 bench/hosts/nginx_load.py %s '%s' %d %s", server.url, path,
      walkers, SECONDS)):gmatch '"([%w_]+)":%s*([^,}]+)' do
    s[key] = tonumber(value) or value
  end
  s.cpu = (cpu_seconds(lib, server.pid) - cpu) / s.seconds
  s.late_p99_ms, s.late_max_ms = select(2, server:get "/lateness"):match "^%S+ (%S+) (%S+)"
  s.late_p99_ms, s.late_max_ms = tonumber(s.late_p99_ms), tonumber(s.late_max_ms)
  if (s.failures or 0) > 0 then
    error(path .. ": " .. s.failures .. " walks failed: " .. tostring(s.last_failure), 0)
  end
  local after = lib.stats(api)
  s.connections, s.requests = after.connections - before.connections, after.requests - before.requests
  return s
end

function M.run(lib)
  local available, why = nginx.available()
  if not available then return { "## OpenResty: a walk inside nginx", "", "skipped: " .. why, "" } end
  local pages = lib.pages "wf_demo:250"
  local slow, fast = lib.static(pages, 20, "--identity"), lib.static(pages, 0, "--identity")
  local server = nginx.start {
    setenv = { WORKFLOWS_API_TOKEN = lib.TOKEN, BENCH_SLOW = slow.url, BENCH_FAST = fast.url },
    http = [[
      lua_check_client_abort on;
      keepalive_requests 1000000;
      init_worker_by_lua_block { require("bench.hosts.nginx").start_probe() }
    ]],
    server = [[
      location = /walk { content_by_lua_block { require("bench.hosts.nginx").walk() } }
      location = /lateness { content_by_lua_block { require("bench.hosts.nginx").lateness() } }
      location = /ping { return 200 "pong\n"; }
    ]],
    log_level = "warn",
  }
  local rows = {}
  local ok, problem = pcall(function()
    for _, case in ipairs(CASES) do
      local path = format("/walk?transport=%s&base=BENCH_%s%s", case[4], case[3], case[5] and "&pool=" .. case[5] or "")
      local api = case[3] == "SLOW" and slow or fast
      lib.output(format("python3 bench/hosts/nginx_load.py %s '%s' %d 1", server.url, path, case[2]))  -- warm-up
      local samples = {}
      for run = 1, math.min(3, lib.runs) do samples[run] = sample(lib, server, api, path, case[2]) end
      -- the median of each figure over the runs: a busy neighbour shows up as one bad run
      local row = { name = case[1], p99s = lib.collect(samples, "ping_p99_ms") }
      for _, key in ipairs(FIGURES) do row[key] = lib.median(lib.collect(samples, key)) end
      rows[#rows + 1] = row
      io.stderr:write(format("  %-45s %6.1f walks/s  /ping p99 %7.1f ms  worker CPU %3.0f%%\n", row.name,
        row.walks_per_second, row.ping_p99_ms, row.cpu * 100))
    end
  end)
  server:stop()
  if not ok then error(problem, 0) end

  local cells = {}
  for _, r in ipairs(rows) do
    local walked = r.walks > 0
    cells[#cells + 1] = { r.name, walked and format("%.1f", r.walks_per_second) or "–",
      walked and format("%.0f", r.runs / r.seconds) or "–", walked and format("%.1f ms", r.mean_walk_ms) or "–",
      format("%.1f ms", r.ping_p50_ms), format("%.1f ms (runs: %s)", r.ping_p99_ms, table.concat(r.p99s, ", ")
        :gsub("(%d+%.%d)%d*", "%1")), format("%.1f ms", r.ping_max_ms), format("%.1f / %.1f ms", r.late_p99_ms,
        r.late_max_ms), format("%.0f%%", r.cpu * 100), lib.thousands(r.connections), lib.thousands(r.requests) }
  end
  local ngx, curl, ngx1, curl1 = rows[2], rows[4], rows[5], rows[6]
  local targets = {
    lib.target("`/ping` p99 at most 5 ms during the walks", format("%.1f ms with cosockets (%.1f ms with "
      .. "libcurl, which blocks the worker for every walk)", ngx.ping_p99_ms, curl.ping_p99_ms), ngx.ping_p99_ms <= 5),
    lib.target("walk throughput within 1.2x of the curl transport's", format("%.1f walks/s against %.1f at 20 ms; "
      .. "one walk at a time at 0 ms, %.1f against %.1f (%.2fx)", ngx.walks_per_second, curl.walks_per_second,
      ngx1.walks_per_second, curl1.walks_per_second, ngx1.walks_per_second / curl1.walks_per_second),
      ngx.walks_per_second * 1.2 >= curl.walks_per_second and ngx1.walks_per_second * 1.2 >= curl1.walks_per_second),
    lib.target("connections: not one per page", format("%d opened for %d requests (%.2f per walk)",
      ngx.connections, ngx.requests, ngx.connections / ngx.walks), ngx.connections * 2 <= ngx.requests),
  }
  local out = { "## OpenResty: a walk inside nginx", "",
    format("One nginx worker, %d keep-alive connections each asking for one walk of `wf_demo` (250 runs, pages of",
      WALKERS),
    format("100, the default `prefetch`) after another for %d s, against the static server answering 20 ms after",
      SECONDS),
    "each request, without gzip; meanwhile `/ping` (`return 200`) on the same worker every 5 ms from another",
    "process, its latency counted from when it was due. *Timer lateness*: how late a timer due every 2 ms in",
    format("the worker fired (how long its loop was held). Medians of %d runs.", math.min(3, lib.runs)), "" }
  return lib.append(out, lib.table(lib.TARGETS, targets), "", lib.table({ "<transport", "walks/s", "runs/s",
    "mean walk", "`/ping` p50", "`/ping` p99", "`/ping` max", "timer lateness p99 / max", "worker CPU",
    "connections opened", "requests" }, cells), "")
end

return M
