-- Prometheus metrics of the library's requests, in its text format at GET /metrics.
-- The clients pass M.on_event as their on_event hook; it counts into the
-- lua_shared_dict "metrics", so that /metrics shows every worker's requests:
--
--   workflows_requests_total{status,kind}          requests made, by answer
--   workflows_retries_total{why}                   retries scheduled, by what failed
--   workflows_retry_budget_refusals_total          retries the budget refused
--   workflows_request_duration_seconds             a histogram of request latency
--
-- The hook runs inside the library's calls: it only increments counters (no I/O, no
-- yield), and a failure in it is counted by the library, never breaks a call.
-- luacheck: globals ngx
local format, concat, sort = string.format, table.concat, table.sort

local M = {}

-- seconds: the histogram's upper bounds
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local function dict()
  return ngx.shared.metrics
end

function M.on_event(ev)
  local counters = dict()
  if ev.type == "attempt" then
    counters:incr(format("requests|%s|%s", ev.status or "none", ev.kind), 1, 0)
    local elapsed = ev.elapsed or 0
    for _, bound in ipairs(BUCKETS) do
      if elapsed <= bound then counters:incr("latency|" .. bound, 1, 0) end
    end
    counters:incr("latency_sum", elapsed, 0)
    counters:incr("latency_count", 1, 0)
  elseif ev.type == "retry" then
    counters:incr("retries|" .. ev.why, 1, 0)
  elseif ev.type == "budget" then
    counters:incr("budget_refusals", 1, 0)
  end
end

-- The counters whose keys start with `prefix`, as { label values..., count }, sorted.
local function series(counters, prefix)
  local rows = {}
  for _, key in ipairs(counters:get_keys(0)) do
    if key:sub(1, #prefix) == prefix then
      local labels = {}
      for part in key:sub(#prefix + 1):gmatch("[^|]+") do labels[#labels + 1] = part end
      labels[#labels + 1] = counters:get(key)
      rows[#rows + 1] = labels
    end
  end
  sort(rows, function(a, b) return concat(a, "|", 1, #a - 1) < concat(b, "|", 1, #b - 1) end)
  return rows
end

local function number(value)
  if math.floor(value) == value then return format("%d", value) end
  return format("%.6f", value)
end

function M.text()
  local counters = dict()
  local out = {
    "# HELP workflows_requests_total Requests made to the Workflows API, by status and kind.",
    "# TYPE workflows_requests_total counter",
  }
  for _, row in ipairs(series(counters, "requests|")) do
    out[#out + 1] = format('workflows_requests_total{status="%s",kind="%s"} %d', row[1], row[2],
      row[3])
  end
  out[#out + 1] = "# HELP workflows_retries_total Retries scheduled, by the status or kind retried."
  out[#out + 1] = "# TYPE workflows_retries_total counter"
  for _, row in ipairs(series(counters, "retries|")) do
    out[#out + 1] = format('workflows_retries_total{why="%s"} %d', row[1], row[2])
  end
  out[#out + 1] = "# HELP workflows_retry_budget_refusals_total Retries the retry budget refused."
  out[#out + 1] = "# TYPE workflows_retry_budget_refusals_total counter"
  out[#out + 1] = format("workflows_retry_budget_refusals_total %d",
    counters:get("budget_refusals") or 0)
  out[#out + 1] = "# HELP workflows_request_duration_seconds Time from request to answer."
  out[#out + 1] = "# TYPE workflows_request_duration_seconds histogram"
  for _, bound in ipairs(BUCKETS) do
    out[#out + 1] = format('workflows_request_duration_seconds_bucket{le="%s"} %d', bound,
      counters:get("latency|" .. bound) or 0)
  end
  local count = counters:get("latency_count") or 0
  out[#out + 1] = format('workflows_request_duration_seconds_bucket{le="+Inf"} %d', count)
  out[#out + 1] = "workflows_request_duration_seconds_sum "
    .. number(counters:get("latency_sum") or 0)
  out[#out + 1] = format("workflows_request_duration_seconds_count %d", count)
  return concat(out, "\n") .. "\n"
end

-- The content handler of GET /metrics.
function M.serve()
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(M.text())
end

return M
