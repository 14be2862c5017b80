-- Turns bench/window.lua's samples and a traced walk into the prefetch window's
-- section of BENCHMARKS.md, checks the issue's targets and prints the section.
--
--   lua5.4 bench/window_report.lua SAMPLES TRACE BENCHMARKS.md
--
-- The section sits between the two marker lines below; it replaces an earlier one,
-- or is added before "## Commands" (at the end if there is none), so that
-- bench/run.sh's report and this one can be refreshed apart.
local numbers = require "bench.numbers"

local split, median, thousands, ms = numbers.split, numbers.median, numbers.thousands, numbers.ms
local samples_path, trace_path, out_path = arg[1], arg[2], arg[3]
local format, concat, sort = string.format, table.concat, table.sort

local BEGIN = "<!-- window: begin (make bench-window writes this section) -->"
local END = "<!-- window: end -->"


local function spread(values)
  local seen, list = {}, {}
  local copy = { table.unpack(values) }
  sort(copy, function(a, b)
    if type(a) == "number" and type(b) == "number" then return a < b end
    return tostring(a) < tostring(b)
  end)
  for _, v in ipairs(copy) do
    if not seen[v] then
      seen[v] = true
      list[#list + 1] = tostring(v)
    end
  end
  return concat(list, "/")
end

-- ----------------------------------------------------------------- samples

local rows, by_key = {}, {}
for line in io.lines(samples_path) do
  if line ~= "" then
    local f = split(line)
    local key = f[1] .. "|" .. f[2]
    local row = by_key[key]
    if not row then
      row = { group = f[1], name = f[2], kind = f[3], label = f[4], walls = {}, samples = {},
              command = f[19] }
      by_key[key] = row
      rows[#rows + 1] = row
    end
    row.walls[#row.walls + 1] = tonumber(f[8])
    local num = function(i) return tonumber(f[i]) end
    row.samples[#row.samples + 1] = {
      wall = num(8), rss = num(9), current = num(10), largest = num(11), halvings = num(12),
      connections = num(13), requests = num(14), ended = num(15), unanswered = num(16),
      ended_unanswered = num(17), throttled = num(18), stopped = num(20) }
  end
end
for _, row in ipairs(rows) do
  row.wall = median(row.walls)
  row.min, row.max = math.min(table.unpack(row.walls)), math.max(table.unpack(row.walls))
  local function collect(name)
    local list = {}
    for _, s in ipairs(row.samples) do
      if s[name] then list[#list + 1] = s[name] end
    end
    return list
  end
  row.collect = collect
  -- requests past the walk's last page; how many requests the client stopped
  -- before reading their answer, and how many of those the server never answered
  row.past, row.cancelled, row.unanswered, row.needed = {}, {}, {}, {}
  for _, s in ipairs(row.samples) do
    local past = s.ended - 1
    row.past[#row.past + 1] = past
    row.cancelled[#row.cancelled + 1] = s.stopped or "–"
    row.unanswered[#row.unanswered + 1] = s.ended_unanswered
    row.needed[#row.needed + 1] = s.requests - past - s.throttled
  end
end

local function find(group, name)
  for _, row in ipairs(rows) do
    if row.group == group and row.name == name then return row end
  end
end

local function best(group, kind)
  local found
  for _, row in ipairs(rows) do
    if row.group == group and row.kind == kind and (not found or row.wall < found.wall) then
      found = row
    end
  end
  return found
end

-- ----------------------------------------------------------------- targets

local targets = {}
local function target(text, shown, met)
  targets[#targets + 1] = format("| %s | %s | %s |", text, shown or "not measured",
    shown == nil and "–" or (met and "met" or "**missed**"))
end

local LATENCIES = { "0 ms", "5 ms", "20 ms", "100 ms" }
for _, group in ipairs(LATENCIES) do
  local auto, fixed = find(group, "auto"), best(group, "fixed")
  if auto and fixed then
    local ratio = auto.wall / fixed.wall
    target(format('%s: "auto" within 1.15x of the best fixed window', group),
      format("%.2fx (%s ms against %s: %s ms)", ratio, ms(auto.wall), fixed.label, ms(fixed.wall)),
      ratio <= 1.15)
  else
    target(format('%s: "auto" within 1.15x of the best fixed window', group))
  end
end

do
  local auto, p0 = find("0 ms", "auto"), find("0 ms", "p0")
  if auto and p0 then
    local ratio = auto.wall / p0.wall
    target('0 ms: "auto" no slower than prefetch = 0 (at most 1.05x)',
      format("%.2fx (%s ms against %s ms)", ratio, ms(auto.wall), ms(p0.wall)), ratio <= 1.05)
  else
    target('0 ms: "auto" no slower than prefetch = 0 (at most 1.05x)')
  end
  local auto20, peer = find("20 ms", "auto"), best("20 ms", "peer")
  if auto20 and peer then
    local ratio = peer.wall / auto20.wall
    target('20 ms: "auto" at least 4x faster than the best sequential peer',
      format("%.2fx (%s ms against %s: %s ms)", ratio, ms(auto20.wall), peer.label,
        ms(peer.wall)), ratio >= 4)
  else
    target('20 ms: "auto" at least 4x faster than the best sequential peer')
  end
end

do
  local row = find("throttled", "auto")
  if row then
    local halvings, throttled = row.collect "halvings", row.collect "throttled"
    local least = math.min(table.unpack(halvings))
    target('429 + Retry-After on 1 request in 20: the window halves, every run arrives',
      format("halvings per walk %s (429s per walk %s); 20,000 runs in each of %d walks",
        spread(halvings), spread(throttled), #row.samples), least > 0)
  else
    target('429 + Retry-After on 1 request in 20: the window halves, every run arrives')
  end
end

do
  local worst_over, all_cancelled, walks, shown = 0, true, 0, {}
  for _, row in ipairs(rows) do
    if row.kind == "auto" or row.kind == "fixed" then
      for i, s in ipairs(row.samples) do
        walks = walks + 1
        local over = row.past[i] - s.largest
        if over > worst_over then worst_over = over end
        if not s.stopped or s.stopped < row.past[i] then all_cancelled = false end
      end
      if row.kind == "auto" then
        shown[#shown + 1] = format("%s %s (stopped %s)", row.group, spread(row.past),
          spread(row.cancelled))
      end
    end
  end
  if walks > 0 then
    target('requests past the last page: at most the window, all cancelled',
      format('"auto": %s; every walk of this client (%d): %s past its window, %s',
        concat(shown, ", "), walks, worst_over == 0 and "none" or worst_over .. " at most",
        all_cancelled and "all stopped unread" or "**some read**"),
      worst_over == 0 and all_cancelled)
  else
    target('requests past the last page: at most the window, all cancelled')
  end
end

do
  local most, walks = 0, 0
  for _, row in ipairs(rows) do
    if (row.kind == "auto" or row.kind == "fixed") and row.group ~= "throttled" then
      for _, needed in ipairs(row.needed) do
        walks = walks + 1
        if needed > most then most = needed end
      end
    end
  end
  if walks > 0 then
    target("overlap: at most 2% more requests than the 200 pages of a stable listing",
      format("%.1f%% (%d pages needed per walk at most, %d walks; past-the-end requests "
        .. "counted apart)", (most / 200 - 1) * 100, most, walks), most <= 204)
  else
    target("overlap: at most 2% more requests than the 200 pages of a stable listing")
  end
end

do
  local shown, worst = {}, 0
  for _, pair in ipairs { { "p0", "old_p0" }, { "p2", "old_p2" }, { "p3", "old_p3" } } do
    local now, old = find("20 ms", pair[1]), find("20 ms", pair[2])
    if now and old then
      local ratio = now.wall / old.wall
      if ratio > worst then worst = ratio end
      shown[#shown + 1] = format("%s %.2fx (%s against %s ms)", now.label:match "prefetch = %d+",
        ratio, ms(now.wall), ms(old.wall))
    end
  end
  if #shown > 0 then
    target("overlap: nothing measurable at 20 ms (within 1.03x of the client before it, same rounds)",
      concat(shown, "; "), worst <= 1.03)
  else
    target("overlap: nothing measurable at 20 ms (within 1.03x of the client before it, same rounds)")
  end
end

-- ----------------------------------------------------------------- tables

local function walks_table(filter)
  local out = {
    "| latency | row | wall (median) | min–max (runs) | vs best fixed | vs best sequential peer "
      .. "| window at end / largest / halvings | requests per walk | past the last page "
      .. "(stopped unread / never answered) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, row in ipairs(rows) do
    if filter(row) then
      local fixed, peer = best(row.group, "fixed"), best(row.group, "peer")
      local name = row.label
      if row == fixed or row == peer then name = "**" .. name .. "**" end
      if row.kind == "auto" then name = "*" .. name .. "*" end
      local window = "–"
      if row.kind == "auto" or row.kind == "fixed" then
        window = format("%s / %s / %s", spread(row.collect "current"),
          spread(row.collect "largest"), spread(row.collect "halvings"))
      end
      out[#out + 1] = format("| %s | %s | %s ms | %s–%s (%d) | %s | %s | %s | %s | %s |",
        row.group, name, ms(row.wall), ms(row.min), ms(row.max), #row.walls,
        fixed and format("%.2fx", row.wall / fixed.wall) or "–",
        peer and format("%.2fx", peer.wall / row.wall) or "–", window,
        spread(row.collect "requests"),
        row.kind == "peer" and spread(row.past)
          or format("%s (%s / %s)", spread(row.past), spread(row.cancelled),
            spread(row.unanswered)))
    end
  end
  return out
end

-- The traced walk: the window after each page, and where it halved.
local trace = {}
local trace_file = io.open(trace_path)
if trace_file then
  for line in trace_file:lines() do
    local number, t, _, current, largest, halvings =
      line:match "^page (%d+) ([%d.]+) (%d+) (%d+) (%d+) (%d+)$"
    if number then
      trace[#trace + 1] = { page = tonumber(number), ms = tonumber(t), current = tonumber(current),
                            largest = tonumber(largest), halvings = tonumber(halvings) }
    end
  end
  trace_file:close()
end

local function trace_lines()
  if #trace == 0 then return { "(no trace)" } end
  local out = { "```" }
  local PER_LINE = 50
  for first = 1, #trace, PER_LINE do
    local window, marks = {}, {}
    for i = first, math.min(first + PER_LINE - 1, #trace) do
      local p = trace[i]
      window[#window + 1] = p.current < 10 and tostring(p.current) or "+"
      local before = i > 1 and trace[i - 1].halvings or 0
      marks[#marks + 1] = p.halvings > before and "^" or " "
    end
    out[#out + 1] = format("pages %3d-%3d  %s", first, math.min(first + PER_LINE - 1, #trace),
      concat(window))
    out[#out + 1] = format("%14s%s", "", (concat(marks):gsub("%s+$", "")))
  end
  out[#out + 1] = "```"
  local last = trace[#trace]
  out[#out + 1] = ""
  out[#out + 1] = format("%d pages in %s ms; the window ended at %d, reached %d at most and "
    .. "halved %d times.", #trace, thousands(last.ms), last.current, last.largest, last.halvings)
  return out
end

-- ----------------------------------------------------------------- section

local doc = {}
local function add(...)
  for _, text in ipairs { ... } do doc[#doc + 1] = text end
end

add(BEGIN, '## Prefetch window ("auto")', "",
  "Generated by `make bench-window` (`bench/window.sh`, " .. (os.getenv "BENCH_DATE" or "?")
    .. "). Each walk fetches every run of `wf_big`",
  "(20,000 runs) from the static server; since each page after the first starts on the last",
  "run of the one before, a walk needs 203 pages of `limit=100` where it needed 200. Wall",
  "times are of the whole process, runs interleaved round by round, min and median shown.",
  "*vs best fixed*: this row's wall time over the fastest fixed window's (bold) of the same",
  "latency, so below 1.00x is faster. *vs best sequential peer*: the fastest peer's wall",
  "time over this row's. *window*: `walk:window()` after the walk (its size then, the",
  "largest it reached, its halvings), the distinct values over the runs. *requests per",
  "walk*: what the server counted; *past the last page*: requests for pages after the one",
  "that ended the listing; in brackets, the requests the client stopped without reading",
  "their answer (the server's count less the attempts the client logged with",
  "`WORKFLOWS_DEBUG=1`), and how many of the past-the-end ones the server never got to",
  "answer because the client had closed the connection first. The baseline rows are the",
  "client's Lua layer as it was before the overlap and the window (`BENCH_BASELINE`), on",
  "today's core.", "")
add("### Targets", "", "| target | measured | |", "| --- | --- | --- |")
add(table.unpack(targets))
add("", "### Walks", "")
add(table.unpack(walks_table(function(row) return row.group ~= "throttled" end)))
add("", "### A server that pushes back", "",
  "The static server at 20 ms with `--throttle-every 20`: every 20th page request is",
  "answered 429 with `Retry-After: 1`, which the client waits out before asking again; the",
  "window halves each time.", "")
add(table.unpack(walks_table(function(row) return row.group == "throttled" end)))
add("", 'One walk with `prefetch = "auto"`, page by page (`bench/walk_window.lua ... trace`): the',
  "window after each page (`+` for 10 or more), `^` under the pages after which it had",
  "halved.", "")
add(table.unpack(trace_lines()))
add("", "### Commands", "", "```sh")
local shown = {}
for _, row in ipairs(rows) do
  if not shown[row.name] then
    shown[row.name] = true
    add("# " .. row.label, row.command)
  end
end
add("# the trace", 'env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" lua5.4 '
  .. "bench/walk_window.lua $BASE wf_big sandbox-token auto trace", "```",
  "Servers: `build/bench/static_server --pages DIR --latency-ms N [--throttle-every 20]`.",
  END)

local section = concat(doc, "\n")
io.write(section, "\n")

local text = ""
local file = io.open(out_path)
if file then
  text = file:read "a"
  file:close()
end
local first = text:find(BEGIN, 1, true)
local last = first and select(2, text:find(END, first, true))
if first and last then
  text = text:sub(1, first - 1) .. section .. text:sub(last + 1)
else
  local commands = text:find("\n## Commands\n", 1, true)
  if commands then
    text = text:sub(1, commands) .. section .. "\n\n" .. text:sub(commands + 1)
  else
    text = text .. (text ~= "" and "\n" or "") .. section .. "\n"
  end
end
local out = assert(io.open(out_path, "w"))
out:write(text)
out:close()
