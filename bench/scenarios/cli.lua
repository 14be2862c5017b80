-- The command (bin/workflows, Lua 5.4) against what shell scripts do today: a loop
-- of one `curl` per page through `jq`, at 0 and 20 ms, on the static server. Wall
-- time of the whole walk, time to the first line of output, peak RSS of a
-- 200,000-run walk (wf_huge) beside a 20,000-run one.
local format = string.format

local M = { about = "the command (bin/workflows) against a shell loop of curl and jq" }

local CURL_JQ = [[
offset=0; while :; do
  body=$(curl -sf -H "Authorization: Bearer $token" "$BASE/v1/workflows/wf_big/runs?limit=100&offset=$offset")
  printf '%s\n' "$body" | jq -c '.data.items[]'
  [ "$(printf '%s\n' "$body" | jq -r '.data.hasMore')" = true ] || break
  offset=$((offset + 100))
done]]

-- Seconds from the start of COMMAND to its first line of output, and its lines.
local function first_line(lib, command)
  local t0 = lib.now()
  local pipe = assert(io.popen(command))
  local first, lines = pipe:read "l", 1
  local elapsed = lib.now() - t0
  for _ in pipe:lines() do lines = lines + 1 end
  pipe:close()
  return elapsed, first and lines or 0
end

function M.run(lib)
  local pages = lib.pages("wf_big:20000", "wf_huge:200000")
  local script = lib.work .. "/curl_jq.sh"
  lib.write(script, "BASE=$1 token=$2\n" .. CURL_JQ .. "\n")
  local cells = {}
  for _, latency in ipairs { 0, 20 } do
    local server = lib.static(pages, latency)
    local env = format("env WORKFLOWS_BASE_URL=%s WORKFLOWS_API_TOKEN=%s lua5.4 bin/workflows runs ",
      server.url, lib.TOKEN)
    local rows, list = {}, {
      { "workflows runs --format ndjson", "wf_big --format ndjson" },
      { "workflows runs --format ndjson --prefetch 0", "wf_big --format ndjson --prefetch 0" },
      { "workflows runs --format csv", "wf_big --format csv" },
      { "curl per page + jq", nil, format("sh %s %s %s", script, server.url, lib.TOKEN) },
    }
    if latency == 0 then
      list[5] = { "workflows runs --format ndjson, wf_huge (200,000 runs)", "wf_huge --format ndjson" }
    end
    for _, row in ipairs(list) do
      rows[#rows + 1] = lib.row { label = row[1], command = row[3] or env .. row[2], needs = row[3] and "jq -V" }
    end
    lib.rounds(latency .. " ms", rows, lib.runs)
    local peer = rows[4]
    for _, row in ipairs(rows) do
      local firsts, lines = {}, {}
      for i = 1, row.skipped and 0 or 3 do firsts[i], lines[i] = first_line(lib, row.command) end
      local ratio = peer.wall and not row.label:find "wf_huge" and format("%.1fx", peer.wall / row.wall)
      local name = row == peer and row.label or "`" .. row.label .. "`"
      cells[#cells + 1] = row.skipped and { latency .. " ms", name, "skipped: jq not installed", "", "", "", "", "" }
        or { latency .. " ms", name, lib.ms(row.wall) .. " ms", format("%s–%s", lib.ms(row.min), lib.ms(row.max)),
        ratio or "–", lib.ms(lib.median(firsts)) .. " ms", lib.spread(lines), format("%.1f MiB", row.rss / 1024) }
    end
    lib.stop(server)
  end
  local out = { "## The command", "",
    "`bin/workflows runs ... > /dev/null` against a shell loop of one `curl` per page through `jq`, "
      .. "static server (`BASE` its URL). *first line*: from the start of the process to the first line "
      .. "of output in a reader, median of 3.", "", "```sh", CURL_JQ .. " > /dev/null", "```", "" }
  return lib.append(out, lib.table({ "<latency", "<row", "wall (median)", "min–max", "vs curl + jq",
    "first line", "lines", "peak RSS" }, cells), "")
end

return M
