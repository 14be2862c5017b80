-- The OpenResty rows of `make bench` (bench/openresty.sh starts the servers): one
-- nginx worker walks wf_demo for 16 concurrent requests through the cosocket
-- transport and through the blocking libcurl transport, while /ping is measured on
-- the same worker; then one walk at a time with no latency, where only the CPU cost
-- of a walk counts. Writes the Markdown section and checks the targets.
--
--   lua5.4 bench/openresty.lua PAGES_DIR OUT.md
--
-- PAGES_DIR: wf_demo's pages as bench/prerender.sh fetched them from the sandbox. A
-- second nginx (bench/openresty_upstream.lua) serves them, 20 ms late under /slow and
-- at once under /fast, as identity JSON: the cosocket transport never asks for gzip.
local nginx = require "spec.support.nginx"

local pages_dir, out_path = arg[1], arg[2]
local SECONDS = tonumber(os.getenv "BENCH_OPENRESTY_SECONDS") or 8
local RUNS = tonumber(os.getenv "BENCH_OPENRESTY_RUNS") or 3
local WALKERS = 16
local format = string.format

local function command_output(command)
  local pipe = assert(io.popen(command))
  local text = pipe:read "a"
  pipe:close()
  return text
end

local function stats(url)
  local text = command_output("curl -s " .. url .. "/_bench/stats")
  return { connections = tonumber(text:match '"connections":(%d+)'),
    requests = tonumber(text:match '"requests":(%d+)') }
end

-- CPU seconds the nginx process has used so far (user + system).
local function cpu_seconds(pid)
  local file = assert(io.open("/proc/" .. pid .. "/stat"))
  local stat = file:read "a"
  file:close()
  local fields = {}
  for field in stat:match "%)%s+(.*)$":gmatch "%S+" do fields[#fields + 1] = field end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100  -- USER_HZ
end

local function decode(line)
  -- the load generator's flat JSON object: numbers, null, and a string or two
  local result = {}
  for key, value in line:gmatch '"([%w_]+)":%s*([^,}]+)' do
    result[key] = tonumber(value) or (value ~= "null" and value or nil)
  end
  return result
end

local upstream = nginx.start {
  http = [[
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    init_by_lua_block { require("bench.openresty_upstream").load("]] .. pages_dir .. [[") }
  ]],
  server = [[
    location ~ ^/(slow|fast)/v1/workflows/wf_demo/runs$ {
      content_by_lua_block { require("bench.openresty_upstream").runs(ngx.var[1]) }
    }
    location = /_bench/stats { content_by_lua_block { require("bench.openresty_upstream").stats() } }
  ]],
  log_level = "warn",
}
local slow_url, fast_url = upstream.url .. "/slow", upstream.url .. "/fast"

local server = nginx.start {
  setenv = { WORKFLOWS_API_TOKEN = "sandbox-token", BENCH_SLOW = slow_url, BENCH_FAST = fast_url },
  http = [[
    lua_check_client_abort on;
    keepalive_requests 1000000;
    init_worker_by_lua_block { require("bench.openresty_handler").start_probe() }
  ]],
  server = [[
    location = /walk { content_by_lua_block { require("bench.openresty_handler").walk() } }
    location = /lateness { content_by_lua_block { require("bench.openresty_handler").lateness() } }
    location = /ping { return 200 "pong\n"; }
  ]],
  log_level = "warn",
}

local rows = {}
local load_at_start = command_output("cut -d' ' -f1-3 /proc/loadavg"):gsub("%s+$", "")
local ok, problem = pcall(function()
  for _, case in ipairs {
    { name = "idle worker (no walks)", walkers = 0, base = "BENCH_SLOW", transport = "ngx" },
    { name = "cosockets (`ngx`), `pool_size = 64`", walkers = WALKERS, base = "BENCH_SLOW",
      transport = "ngx", pool = 64 },
    { name = "cosockets (`ngx`), default `pool_size = 30`", walkers = WALKERS,
      base = "BENCH_SLOW", transport = "ngx" },
    { name = "libcurl (`curl`), blocks the worker", walkers = WALKERS, base = "BENCH_SLOW",
      transport = "curl" },
    { name = "cosockets (`ngx`), one walk at a time, 0 ms", walkers = 1, base = "BENCH_FAST",
      transport = "ngx", pool = 64 },
    { name = "libcurl (`curl`), one walk at a time, 0 ms", walkers = 1, base = "BENCH_FAST",
      transport = "curl" },
  } do
    local url = upstream.url
    local path = format("/walk?transport=%s&base=%s%s", case.transport, case.base,
      case.pool and "&pool=" .. case.pool or "")
    -- a second's warm-up: the client and its first connections
    command_output(format("python3 bench/openresty_load.py %s '%s' %d 1", server.url, path,
      case.walkers))
    local samples = {}
    for run = 1, RUNS do
      local before = stats(url)
      server:get("/lateness")  -- starts the count afresh
      local cpu_before = cpu_seconds(server.pid)
      local line = command_output(format("python3 bench/openresty_load.py %s '%s' %d %s",
        server.url, path, case.walkers, SECONDS))
      local cpu = cpu_seconds(server.pid) - cpu_before
      local _, late = server:get("/lateness")
      local after = stats(url)
      local sample = decode(line)
      sample.late_p50_ms, sample.late_p99_ms, sample.late_max_ms =
        late:match "^(%S+) (%S+) (%S+)"
      sample.late_p50_ms, sample.late_p99_ms, sample.late_max_ms = tonumber(sample.late_p50_ms),
        tonumber(sample.late_p99_ms), tonumber(sample.late_max_ms)
      if (sample.failures or 0) > 0 then
        error(case.name .. ": " .. sample.failures .. " walks failed: "
          .. tostring(sample.last_failure))
      end
      sample.cpu = cpu / sample.seconds
      sample.connections = after.connections - before.connections
      sample.requests = after.requests - before.requests
      samples[run] = sample
    end
    -- each figure is the median of its runs: this machine is shared, and a busy
    -- neighbour shows up as one bad run
    local row = { name = case.name, case = case }
    for _, key in ipairs { "seconds", "walks", "runs", "walks_per_second", "mean_walk_ms",
      "ping_p50_ms", "ping_p99_ms", "ping_max_ms", "cpu", "connections", "requests",
      "late_p99_ms", "late_max_ms" } do
      local values = {}
      for i, sample in ipairs(samples) do values[i] = sample[key] or 0 end
      table.sort(values)
      row[key] = values[(#values + 1) // 2]
      row[key .. "_all"] = values
    end
    rows[#rows + 1] = row
    io.write(format("  %-45s %7.1f walks/s  walk %6.1f ms  /ping p99 %7.1f ms  timer late p99 "
      .. "%5.1f ms  worker CPU %3.0f%%  %d connections for %d requests\n", case.name,
      row.walks_per_second or 0, row.mean_walk_ms or 0, row.ping_p99_ms, row.late_p99_ms,
      row.cpu * 100, row.connections, row.requests))
  end
end)
server:stop()
upstream:stop()
if not ok then error(problem, 0) end

local function find(prefix)
  for _, row in ipairs(rows) do
    if row.name:sub(1, #prefix) == prefix then return row end
  end
end

local lines = {
  "## OpenResty: a walk inside nginx",
  "",
  format("One nginx worker (`master_process off`), %d keep-alive connections each asking for "
    .. "one walk of `wf_demo` (250 runs, pages of 100, the default `prefetch`) after another, "
    .. "for %d s, against a second nginx (`bench/openresty_upstream.lua`) answering with the "
    .. "sandbox's runs, without gzip, 20 ms after each request; meanwhile `/ping` "
    .. "(`return 200`) on the same worker every 5 ms from another process, its latency "
    .. "counted from when it was due whenever the previous ping was still unanswered then. "
    .. "`bench/openresty_load.py` is the load generator, "
    .. "`bench/openresty_handler.lua` the handler (one client per worker). Timer lateness: "
    .. "how late a timer due every 2 ms in the same worker fired, i.e. how long its event loop "
    .. "was held (or the worker was off the CPU), without the load generator's own noise. "
    .. "Each figure is the "
    .. "median of %d runs; the machine's load average when the rows started: %s.", WALKERS,
    SECONDS, RUNS, load_at_start),
  "",
  "| transport | walks/s | runs/s | mean walk | `/ping` p50 | `/ping` p99 | `/ping` max "
    .. "| timer lateness p99 / max | worker CPU | connections opened | requests |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
}
for _, row in ipairs(rows) do
  lines[#lines + 1] = format("| %s | %s | %s | %s | %.1f ms | %.1f ms | %.1f ms | %.1f / %.1f ms "
    .. "| %.0f%% | %d | %d |",
    row.name, row.walks and row.walks > 0 and format("%.1f", row.walks_per_second) or "-",
    row.walks and row.walks > 0 and format("%.0f", row.runs / row.seconds) or "-",
    row.mean_walk_ms and format("%.1f ms", row.mean_walk_ms) or "-",
    row.ping_p50_ms, row.ping_p99_ms, row.ping_max_ms, row.late_p99_ms, row.late_max_ms,
    row.cpu * 100, row.connections, row.requests)
end

lines[#lines + 1] = ""
lines[#lines + 1] = "`/ping` p99 of each run:"
lines[#lines + 1] = ""
for _, row in ipairs(rows) do
  local values = {}
  for i, value in ipairs(row.ping_p99_ms_all) do values[i] = format("%.1f", value) end
  lines[#lines + 1] = format("- %s: %s ms", row.name, table.concat(values, ", "))
end

local ngx_row, curl_row = find("cosockets (`ngx`), `pool"), find("libcurl (`curl`), blocks")
local ngx_cpu, curl_cpu = find("cosockets (`ngx`), one"), find("libcurl (`curl`), one")
local function target(text, met)
  return format("- %s %s", met and "**met**" or "**missed**", text)
end
lines[#lines + 1] = ""
lines[#lines + 1] = "Targets:"
lines[#lines + 1] = target(format("`/ping` p99 at most 5 ms during the walks: %.1f ms with "
  .. "cosockets (%.1f ms with the libcurl transport, which blocks the worker for every walk)",
  ngx_row.ping_p99_ms, curl_row.ping_p99_ms), ngx_row.ping_p99_ms <= 5)
lines[#lines + 1] = target(format("walk throughput within 1.2x of the curl transport's: "
  .. "%.1f walks/s against %.1f with 20 ms per request (%.1fx); one walk at a time with no "
  .. "latency, where only CPU counts, %.1f against %.1f walks/s (%.2fx)",
  ngx_row.walks_per_second, curl_row.walks_per_second,
  ngx_row.walks_per_second / curl_row.walks_per_second,
  ngx_cpu.walks_per_second, curl_cpu.walks_per_second,
  ngx_cpu.walks_per_second / curl_cpu.walks_per_second),
  ngx_row.walks_per_second * 1.2 >= curl_row.walks_per_second
    and ngx_cpu.walks_per_second * 1.2 >= curl_cpu.walks_per_second)
lines[#lines + 1] = target(format("connections: not one per page: %d opened for %d requests "
  .. "(%.2f per walk); kept-alive connections are reused across walks and requests, and what "
  .. "is opened is mostly for pages cancelled in flight (prefetched past the end of the "
  .. "listing), whose connections cannot be reused", ngx_row.connections, ngx_row.requests,
  ngx_row.connections / ngx_row.walks), ngx_row.connections * 2 <= ngx_row.requests)
lines[#lines + 1] = ""

local text = table.concat(lines, "\n") .. "\n"
local out = assert(io.open(out_path, "w"))
out:write(text)
out:close()
io.write("\n", text)
