-- Inside `nvim --headless -u NONE` (LuaJIT): every run of wf_big at 20 and 0 ms per
-- request, once in one blocking go and once as a task (client:spawn, resumed through
-- vim.schedule), while a 1 ms uv timer stamps its ticks (bench/hosts/nvim.lua): a gap
-- between two ticks is a time the editor's loop could not run. Then what a
-- vim.schedule hop costs.
local lib = require "bench.lib"

local format = string.format

local M = { about = "inside headless Neovim: blocking walk and task, gaps between 1 ms ticks" }

-- "auto" (the default) and 8. BENCH_NVIM_PREFETCHES may name others.
local PREFETCHES = os.getenv "BENCH_NVIM_PREFETCHES" or "auto 8"
local WALL_WITHIN, LONGEST_GAP_MS, P99_GAP_MS = 1.1, 10, 3
local COLUMNS = { "runs", "wall", "ticks", "gap", "p99", "schedules", "act", "act_p99", "resume",
  "resume_p99", "act_cpu", "resume_cpu", "resume_cpu_p99" }
local MODES = { idle = "idle editor, no walk (the machine's own noise)",
  blocking = "blocking walk (every call before tasks)", task = "*task walk (client:spawn)*" }

-- One nvim: its line of figures, by name.
local function walk(base, mode, prefetch)
  local out = lib.work .. "/nvim.tsv"
  os.remove(out)
  lib.run(format("env -u LD_PRELOAD WF_ROOT=%s WF_BASE=%s WF_TOKEN=%s WF_WORKFLOW=wf_big WF_MODE=%s "
    .. "WF_PREFETCH=%s WF_OUT=%s timeout 120 nvim --headless -u NONE "
    .. [[-c 'lua local ok, e = pcall(dofile, "bench/hosts/nvim.lua") if not ok then io.stderr:write(e) ]]
    .. [[vim.cmd "cquit 1" end' >/dev/null 2>%s/nvim.err || { cat %s/nvim.err >&2; exit 1; }]],
    lib.output "pwd", base or "-", lib.TOKEN,
    mode, prefetch, out, lib.work, lib.work))
  local fields = {}
  for field in lib.read(out):gmatch "[^\t\n]+" do fields[#fields + 1] = tonumber(field) or field end
  return fields
end

local function worst(values) return math.max(table.unpack(values)) end

local function ms(value, digits)
  if value >= 100 then return lib.thousands(value) end
  return format("%." .. (digits or 1) .. "f", value)
end

function M.run()
  local pages = lib.pages "wf_big:20000"
  local rows, cells, targets = {}, {}, {}
  for _, latency in ipairs { 20, 0 } do
    local server = lib.static(pages, latency)
    local order = { { mode = "idle", prefetch = "0" } }
    for prefetch in PREFETCHES:gmatch "%S+" do
      order[#order + 1] = { mode = "blocking", prefetch = prefetch }
      order[#order + 1] = { mode = "task", prefetch = prefetch }
    end
    -- rounds: every row once per round, so that the machine's moods spread evenly
    for round = 1, latency == 0 and lib.runs * 3 or lib.runs do
      for _, row in ipairs(order) do
        local f = walk(server.url, row.mode, row.prefetch)
        for i, column in ipairs(COLUMNS) do
          row[column] = row[column] or {}
          table.insert(row[column], f[i + 2])
        end
        io.stderr:write(format("  %d ms %-8s %-4s round %2d: %7.1f ms, longest gap %5.1f ms\n", latency,
          row.mode, row.prefetch, round, f[4], f[6]))
      end
    end
    lib.stop(server)
    local m = {}
    for _, row in ipairs(order) do
      rows[row.mode .. row.prefetch] = row
      for _, column in ipairs(COLUMNS) do m[column] = lib.median(row[column]) end
      local task = row.mode == "task"
      cells[#cells + 1] = { latency .. " ms", MODES[row.mode], row.mode == "idle" and "–" or row.prefetch,
        row.mode == "idle" and "–" or ms(m.wall, 0) .. " ms", format("%s ms (%s)", ms(m.gap), ms(worst(row.gap))),
        format("%s ms (%s)", ms(m.p99, 2), ms(worst(row.p99), 2)), lib.thousands(m.ticks),
        task and lib.thousands(m.schedules) or "–",
        task and format("%s ms (%s)", ms(m.act, 2), ms(m.act_cpu, 2)) or "–",
        task and format("%s ms (%s)", ms(m.resume, 2), ms(m.resume_cpu, 2)) or "–" }
    end
    for prefetch in PREFETCHES:gmatch "%S+" do
      local task, blocking, idle = rows["task" .. prefetch], rows["blocking" .. prefetch], rows.idle0
      local tw, bw = lib.median(task.wall), lib.median(blocking.wall)
      targets[#targets + 1] = lib.target(format("Neovim, %d ms, prefetch %s: task walk within %.1fx of the "
        .. "blocking walk", latency, prefetch, WALL_WITHIN), format("%.2fx (%s ms against %s ms)", tw / bw,
        ms(tw, 0), ms(bw, 0)), tw / bw <= WALL_WITHIN)
      local gap, p99 = lib.median(task.gap), lib.median(task.p99)
      targets[#targets + 1] = lib.target(format("Neovim, %d ms, prefetch %s: longest gap between 1 ms ticks "
        .. "<= %d ms, 99th percentile <= %d ms", latency, prefetch, LONGEST_GAP_MS, P99_GAP_MS),
        format("%s ms and %s ms (worst run %s and %s; blocking walk: %s ms; idle editor: %s and %s)", ms(gap),
          ms(p99, 2), ms(worst(task.gap)), ms(worst(task.p99), 2), ms(lib.median(blocking.gap), 0),
          ms(lib.median(idle.gap)), ms(lib.median(idle.p99), 2)), gap <= LONGEST_GAP_MS and p99 <= P99_GAP_MS)
    end
  end
  local hops = {}
  for i = 1, 3 do hops[i] = walk(nil, "schedule", "0") end
  local function of(i)
    local values = {}
    for n, f in ipairs(hops) do values[n] = f[i] end
    return lib.median(values)
  end

  local out = { "## Inside Neovim", "",
    format("Inside `nvim --headless -u NONE` (%s, LuaJIT), every run of `wf_big` from the static server, once",
      lib.output "nvim --version | head -n 1"),
    "in one blocking go and once as a task (`client:spawn`, resumed through `vim.schedule`), each started",
    "from a `vim.schedule` callback of an idle editor, while a 1 ms `vim.loop` timer stamps its ticks. The",
    "*idle* row is 1.5 s of ticks with no walk: the machine's own noise. Medians over the runs (in brackets:",
    "the worst run; 0 ms rows get three times the runs). *act*: one call of the libuv transport into",
    "libcurl from a loop callback (reading, inflating and decoding a page); *resume*: one `vim.schedule`",
    "callback running the task up to its next wait; the longest of each, wall time (CPU time).", "" }
  lib.append(out, lib.table(lib.TARGETS, targets), "", lib.table({ "<latency", "<walk", "prefetch", "wall",
    "longest gap", "p99 gap", "ticks", "resumes", "longest act (CPU)", "longest resume (CPU)" }, cells), "")
  out[#out + 1] = format("**What `vim.schedule` costs.** From a 1 ms timer's callback (a fast context, where a "
    .. "task is woken) to the scheduled function: median %.0f µs, 99th percentile %.0f µs, longest %.2f ms "
    .. "(1,000 wake-ups, median of 3 runs). A callback that schedules the next, 10,000 in a chain: %.2f µs each.",
    of(3) * 1000, of(4) * 1000, of(5), of(2))
  out[#out + 1] = ""
  return out
end

return M
