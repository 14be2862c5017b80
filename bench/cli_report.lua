-- Turns bench/cli.sh's samples into the markdown section "The command" of
-- BENCHMARKS.md: prints it and writes it to OUT.md.
--
--   lua5.4 bench/cli_report.lua SAMPLES.tsv OUT.md RUNS
local samples_path, out_path, runs = arg[1], arg[2], arg[3]
local format, concat = string.format, table.concat

local function median(values)
  local copy = { table.unpack(values) }
  table.sort(copy)
  local n = #copy
  if n == 0 then return nil end
  if n % 2 == 1 then return copy[(n + 1) // 2] end
  return (copy[n // 2] + copy[n // 2 + 1]) / 2
end

local rows, by_key, memory = {}, {}, {}
for line in io.lines(samples_path) do
  local f = {}
  for field in (line .. "\t"):gmatch "([^\t]*)\t" do f[#f + 1] = field end
  if f[1] == "memory" then
    memory[f[2]] = memory[f[2]] or {}
    table.insert(memory[f[2]], tonumber(f[3]))
  elseif #f >= 5 then
    local key = f[1] .. "|" .. f[2]
    local row = by_key[key]
    if not row then
      row = { latency = f[1], name = f[2], walls = {}, firsts = {}, lines = {} }
      by_key[key] = row
      rows[#rows + 1] = row
    end
    table.insert(row.walls, tonumber(f[3]))
    table.insert(row.firsts, tonumber(f[4]))
    row.lines[f[5]] = true
  end
end

local PEER = "curl per page + jq"
local peer_wall = {}
for _, row in ipairs(rows) do
  row.wall, row.first = median(row.walls), median(row.firsts)
  if row.name == PEER then peer_wall[row.latency] = row.wall end
end

local doc = {
  "## The command", "",
  "`bin/workflows runs wf_big ... > /dev/null` (20,000 runs, 200 pages, Lua 5.4) against a",
  "shell loop of one `curl` per page piped through `jq -c '.data.items[]'` (and `jq -r",
  "'.data.hasMore'` to know when to stop), static server. *first line*: from the start of",
  "the process to the first line of output in a reader. Medians of " .. runs .. " runs",
  "(`bench/cli.sh`; `make bench-cli` runs this section alone). The rows run (BASE is the",
  "static server's URL, the token in `WORKFLOWS_API_TOKEN`):", "",
  "```sh",
  "WORKFLOWS_BASE_URL=$BASE lua5.4 bin/workflows runs wf_big --format ndjson > /dev/null",
  "offset=0; while :; do",
  "  body=$(curl -sf -H \"Authorization: Bearer $token\" \"$BASE/v1/workflows/wf_big/runs?limit=100&offset=$offset\")",
  "  printf '%s\\n' \"$body\" | jq -c '.data.items[]'",
  "  [ \"$(printf '%s\\n' \"$body\" | jq -r '.data.hasMore')\" = true ] || break",
  "  offset=$((offset + 100))",
  "done > /dev/null",
  "```", "",
  "| latency | row | wall (median) | min–max | vs curl + jq | first line | lines |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
}
for _, row in ipairs(rows) do
  local lines = {}
  for count in pairs(row.lines) do lines[#lines + 1] = count end
  table.sort(lines)
  local peer = peer_wall[row.latency]
  doc[#doc + 1] = format("| %s ms | %s | %d ms | %d–%d | %s | %d ms | %s |", row.latency,
    row.name == PEER and PEER or ("`" .. row.name .. "`"), row.wall, math.min(table.unpack(row.walls)),
    math.max(table.unpack(row.walls)), peer and format("%.1fx", peer / row.wall) or "",
    row.first, concat(lines, "/"))
end
doc[#doc + 1] = ""
if memory.wf_big and memory.wf_huge then
  doc[#doc + 1] = format("Peak RSS of `workflows runs WF --format ndjson > /dev/null` (0 ms, median of "
    .. "%d): wf_big (20,000 runs) %.1f MiB, wf_huge (200,000 runs) %.1f MiB.",
    #memory.wf_big, median(memory.wf_big) / 1024, median(memory.wf_huge) / 1024)
  doc[#doc + 1] = ""
end

local text = concat(doc, "\n")
io.write(text, "\n")
local out = assert(io.open(out_path, "w"))
out:write(text, "\n")
out:close()
