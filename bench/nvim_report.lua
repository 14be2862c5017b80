-- The "Inside Neovim" section of BENCHMARKS.md, from bench/nvim.sh's samples.
--
--   require "bench.nvim_report" .section(SAMPLES) -> lines, targets   (bench/report.lua)
--   lua5.4 bench/nvim_report.lua SAMPLES BENCHMARKS.md
--       replaces that section (and its target rows) in an existing BENCHMARKS.md,
--       for `make bench-nvim`, and prints it
--
-- SAMPLES lines: "latency<TAB>mode<TAB>prefetch<TAB>runs<TAB>wall_ms<TAB>ticks<TAB>
-- longest_gap_ms<TAB>p99_gap_ms<TAB>schedules<TAB>longest_act_ms<TAB>p99_act_ms<TAB>
-- longest_resume_ms<TAB>p99_resume_ms<TAB>longest_act_cpu_ms<TAB>longest_resume_cpu_ms<TAB>
-- p99_resume_cpu_ms" (bench/nvim_walk.lua), "-<TAB>schedule<TAB>hop_us
-- <TAB>median_ms<TAB>p99_ms<TAB>max_ms<TAB>n", and "meta<TAB>key<TAB>value".
local numbers = require "bench.numbers"

local format, concat = string.format, table.concat
local split, median, thousands = numbers.split, numbers.median, numbers.thousands

local M = {}

local HEADING = "## Inside Neovim"
-- Targets of the issue "Never block the host".
local WALL_WITHIN = 1.1
local LONGEST_GAP_MS, P99_GAP_MS = 10, 3

local function worst(values)
  local most
  for _, v in ipairs(values) do if not most or v > most then most = v end end
  return most
end

local COLUMNS = { "wall", "ticks", "gap", "p99", "schedules", "act", "act_p99", "resume",
  "resume_p99", "act_cpu", "resume_cpu", "resume_cpu_p99" }

local function read(path)
  local rows, order, meta, schedule = {}, {}, {}, {}
  for line in io.lines(path) do
    local f = split(line)
    if f[1] == "meta" then
      meta[f[2]] = f[3]
    elseif f[2] == "schedule" then
      schedule[#schedule + 1] = { hop = tonumber(f[3]), median = tonumber(f[4]),
        p99 = tonumber(f[5]), max = tonumber(f[6]) }
    elseif #f >= 16 then
      local key = concat({ f[1], f[2], f[3] }, "|")
      local row = rows[key]
      if not row then
        row = { latency = f[1], mode = f[2], prefetch = f[3], runs = tonumber(f[4]) }
        for _, column in ipairs(COLUMNS) do row[column] = {} end
        rows[key] = row
        order[#order + 1] = row
      end
      for i, column in ipairs(COLUMNS) do
        local list = row[column]
        list[#list + 1] = tonumber(f[4 + i])
      end
    end
  end
  return rows, order, meta, schedule
end

local function ms(value, digits)
  if value == nil then return "–" end
  if value >= 100 then return thousands(value) end
  return format("%." .. (digits or 1) .. "f", value)
end

local MODE_NAMES = {
  idle = "idle editor, no walk (the machine's own noise)",
  blocking = "blocking walk (every call before tasks)",
  task = "*task walk (client:spawn)*",
}

-- Returns the section's lines and its rows for the Targets table.
function M.section(path)
  local rows, order, meta, schedule = read(path)
  local function row_of(latency, mode, prefetch)
    return rows[concat({ latency, mode, prefetch }, "|")]
  end

  local targets = {}
  local function target(text, shown, met)
    targets[#targets + 1] = format("| %s | %s | %s |", text, shown,
      met == nil and "–" or (met and "met" or "**missed**"))
  end
  for _, latency in ipairs { "20", "0" } do
    local prefetches = {}
    for _, row in ipairs(order) do
      if row.latency == latency and row.mode == "task" then prefetches[#prefetches + 1] = row.prefetch end
    end
    for _, prefetch in ipairs(prefetches) do
      local task, blocking = row_of(latency, "task", prefetch), row_of(latency, "blocking", prefetch)
      if task and blocking then
        local ratio = median(task.wall) / median(blocking.wall)
        target(format("Neovim, %s ms, prefetch %s: task walk within %.1fx of the blocking walk",
            latency, prefetch, WALL_WITHIN),
          format("%.2fx (%s ms against %s ms)", ratio, ms(median(task.wall), 0),
            ms(median(blocking.wall), 0)), ratio <= WALL_WITHIN)
        local gap, p99 = median(task.gap), median(task.p99)
        local idle = row_of(latency, "idle", "0")
        target(format("Neovim, %s ms, prefetch %s: longest gap between 1 ms ticks <= %d ms, "
            .. "99th percentile <= %d ms", latency, prefetch, LONGEST_GAP_MS, P99_GAP_MS),
          format("%s ms and %s ms (worst run %s and %s; blocking walk: %s ms; idle editor: "
            .. "%s and %s)", ms(gap, 1), ms(p99, 2), ms(worst(task.gap), 1), ms(worst(task.p99), 2),
            ms(median(blocking.gap), 0), idle and ms(median(idle.gap), 1) or "–",
            idle and ms(median(idle.p99), 2) or "–"),
          gap <= LONGEST_GAP_MS and p99 <= P99_GAP_MS)
      end
    end
  end

  local out = { HEADING, "",
    "`bench/nvim.sh` (run by `make bench`, or alone by `make bench-nvim`): inside",
    "`nvim --headless -u NONE` (" .. (meta.nvim or "Neovim") .. ", LuaJIT), every run of",
    "`wf_big` (20,000 runs, pages of 100) from `bench/offset_server.py` (the sandbox's runs",
    "at any offset, answered after `--latency-ms`), once in one blocking go and",
    "once as a task (`client:spawn`, resumed through `vim.schedule`), each started from a",
    "`vim.schedule` callback of an idle editor. Meanwhile a repeating 1 ms `vim.loop` timer",
    "stamps its ticks: a gap between two ticks is a time the editor's loop could not run.",
    "The *idle* row is the same 1.5 s of ticks with no walk: what this machine's scheduler",
    "alone does to a 1 ms timer. Figures are medians over the runs (in brackets: the worst",
    "run). *act*: one call of the libuv transport into libcurl from a loop callback (reading,",
    "inflating and decoding a page happen there); *resume*: one `vim.schedule` callback that",
    "runs the task's body up to its next wait: the longest of each, as wall time and as",
    "CPU time (`os.clock`, which leaves out the time the process waited for a CPU).", "",
    "| latency | walk | prefetch | wall | longest gap | p99 gap | ticks | resumes | longest act "
      .. "(CPU) | longest resume (CPU) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, row in ipairs(order) do
    local walking = row.mode ~= "idle"
    out[#out + 1] = format("| %s ms | %s | %s | %s | %s ms (%s) | %s ms (%s) | %s | %s | %s | %s |",
      row.latency, MODE_NAMES[row.mode] or row.mode, walking and row.prefetch or "–",
      walking and (ms(median(row.wall), 0) .. " ms") or "–",
      ms(median(row.gap), 1), ms(worst(row.gap), 1), ms(median(row.p99), 2), ms(worst(row.p99), 2),
      thousands(median(row.ticks)), row.mode == "task" and thousands(median(row.schedules)) or "–",
      row.mode == "task" and format("%s ms (%s)", ms(median(row.act), 2), ms(median(row.act_cpu), 2)) or "–",
      row.mode == "task" and format("%s ms (%s)", ms(median(row.resume), 2),
        ms(median(row.resume_cpu), 2)) or "–")
  end
  out[#out + 1] = ""
  out[#out + 1] = "Where the gaps come from: each page is inflated and decoded in the loop callback "
    .. "where it finishes (about 0.3 ms of CPU for 100 runs, `bench/decode_cost.lua`; the longest "
    .. "act above, with the collector's work that its allocations bring, is a few ms), so a gap "
    .. "that holds one is the 1 ms tick plus that; a task that finds answers already in runs on "
    .. "for about 1 ms before it lets the loop turn. The rest is the machine: compare the idle "
    .. "row, and the CPU figures against the wall ones."
  out[#out + 1] = ""
  if #schedule > 0 then
    local function of(field)
      local list = {}
      for i, s in ipairs(schedule) do list[i] = s[field] end
      return median(list)
    end
    out[#out + 1] = format("**What `vim.schedule` costs.** A task is woken in a luv callback (a fast "
      .. "context, where `vim.api` raises E5560) and resumed through `vim.schedule`. From a 1 ms "
      .. "timer's callback to the scheduled function: median %.0f µs, 99th percentile %.0f µs, "
      .. "longest %.2f ms (1,000 wake-ups, median of %d runs). A callback that schedules the "
      .. "next, 10,000 in a chain: %.2f µs each. A walk of `wf_big` resumes its task about once "
      .. "a page (the *resumes* column), so the hops cost well under a millisecond in all.",
      of("median") * 1000, of("p99") * 1000, of("max"), #schedule, of("hop"))
    out[#out + 1] = ""
  end
  if meta.load_before then
    out[#out + 1] = format("Load average when the measuring began: %s; when it ended: %s "
      .. "(other work shared the CPUs).", meta.load_before, meta.load_after or "?")
    out[#out + 1] = ""
  end
  return out, targets
end

-- As a script: replace the section and its target rows in an existing document.
if arg and arg[0] and arg[0]:match "nvim_report%.lua$" then
  local samples_path, doc_path = arg[1], arg[2]
  local lines, targets = M.section(samples_path)
  local doc = {}
  local file = io.open(doc_path)
  if file then
    for line in file:lines() do doc[#doc + 1] = line end
    file:close()
  end
  local result, skipping, placed = {}, false, false
  for _, line in ipairs(doc) do
    if line == HEADING then
      skipping = true
    elseif skipping and line:match "^## " then
      skipping = false
      for _, l in ipairs(lines) do result[#result + 1] = l end
      placed = true
      result[#result + 1] = line
    elseif not skipping and not line:match "^| Neovim, " then
      -- (old target rows are dropped: the new ones go after the last target row)
      result[#result + 1] = line
    end
  end
  if skipping or not placed then
    for _, l in ipairs(lines) do result[#result + 1] = l end
  end
  -- the target rows go after the last row of the Targets table
  local last_target
  local in_targets = false
  for i, line in ipairs(result) do
    if line == "## Targets" then in_targets = true
    elseif in_targets and line:match "^## " then break
    elseif in_targets and line:match "^| " then last_target = i end
  end
  if last_target then
    for j = #targets, 1, -1 do table.insert(result, last_target + 1, targets[j]) end
  end
  local text = concat(result, "\n") .. "\n"
  local out = assert(io.open(doc_path, "w"))
  out:write(text)
  out:close()
  io.write(concat(lines, "\n"), "\n", concat(targets, "\n"), "\n")
end

return M
