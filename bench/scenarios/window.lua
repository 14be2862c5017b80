-- The prefetch window against a server that pushes back: the static server at 20 ms
-- answers every 20th page request 429 with `Retry-After: 1`, which the client waits
-- out; the "auto" window halves each time. Then one walk traced page by page.
local walk = require "bench.scenarios.walk"

local format, concat = string.format, table.concat

local M = { about = 'the "auto" window against a server answering 429 to one request in 20, traced' }

-- The traced walk's lines: the window after each page ("+" for 10 or more) and "^"
-- under the pages after which it had halved.
local function trace_lines(lib, printed)
  local trace = {}
  for n, t, current, largest, halvings in printed:gmatch "page (%d+) ([%d.]+) %d+ (%d+) (%d+) (%d+)" do
    trace[#trace + 1] = { page = tonumber(n), ms = tonumber(t), current = tonumber(current),
      largest = tonumber(largest), halvings = tonumber(halvings) }
  end
  if #trace == 0 then return { "(no trace)" } end
  local out = { "```" }
  for first = 1, #trace, 50 do
    local window, marks = {}, {}
    for i = first, math.min(first + 49, #trace) do
      window[#window + 1] = trace[i].current < 10 and tostring(trace[i].current) or "+"
      marks[#marks + 1] = trace[i].halvings > (i > 1 and trace[i - 1].halvings or 0) and "^" or " "
    end
    out[#out + 1] = format("pages %3d-%3d  %s", first, math.min(first + 49, #trace), concat(window))
    local under = concat(marks):gsub("%s+$", "")
    if under ~= "" then out[#out + 1] = format("%14s%s", "", under) end
  end
  local last = trace[#trace]
  out[#out + 1] = "```"
  out[#out + 1] = ""
  out[#out + 1] = format("%d pages in %s ms; the window ended at %d, reached %d at most and halved %d times.",
    #trace, lib.thousands(last.ms), last.current, last.largest, last.halvings)
  return out
end

function M.run(lib)
  local pages = lib.pages "wf_big:20000"
  local server = lib.static(pages, 20, "--throttle-every 20")
  local rows = {}
  for _, prefetch in ipairs { "auto", "7" } do
    rows[#rows + 1] = lib.row { name = "p" .. prefetch, kind = prefetch == "auto" and "client" or "fixed",
      label = "this client, prefetch = " .. (prefetch == "auto" and '"auto"' or prefetch), server = server,
      group = "throttled", server_name = "static, 429 1 in 20", expect = 20000,
      command = format("%slua5.4 bench/hosts/walk.lua %s wf_big %s %s", lib.CLIENT_ENV, server.url,
        lib.TOKEN, prefetch) }
  end
  lib.rounds("throttled", rows, lib.runs)
  local trace = lib.output(format("%slua5.4 bench/hosts/walk.lua %s wf_big %s auto trace",
    lib.CLIENT_ENV:gsub("WORKFLOWS_DEBUG=1 ", ""), server.url, lib.TOKEN))
  lib.stop(server)

  local halvings, throttled = {}, {}
  for i, s in ipairs(rows[1].samples) do
    halvings[i], throttled[i] = tonumber(select(4, s.printed:match "(%d+) (%d+) (%d+) (%d+)")), s.throttled
  end
  local target = lib.target("429 + Retry-After on 1 request in 20: the window halves, every run arrives",
    #halvings > 0 and format("halvings per walk %s (429s per walk %s); 20,000 runs in each of %d walks",
      lib.spread(halvings), lib.spread(throttled), #halvings), #halvings > 0 and math.min(table.unpack(halvings)) > 0)
  local out = { '## Prefetch window ("auto") against a server that pushes back', "",
    "The static server at 20 ms with `--throttle-every 20`; columns as in *Walks*.", "" }
  return lib.append(out, lib.table(lib.TARGETS, { target }), "", walk.table(lib, rows), "",
    "One walk with `prefetch = \"auto\"` (`bench/hosts/walk.lua $BASE wf_big TOKEN auto trace`): the window "
      .. "after each page (`+` for 10 or more), `^` under the pages after which it had halved.", "",
    trace_lines(lib, trace), "")
end

return M
