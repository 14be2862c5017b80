#!/bin/sh
# The command's benchmark (part of `make bench`, alone as `make bench-cli`):
# `workflows runs wf_big --format ndjson > /dev/null` against what shell scripts do
# today, a loop of `curl` calls, one per page, through `jq -c '.data.items[]'`,
# at 0 and 20 ms per request, served by bench/static_server.c. Measures the wall
# time of the whole walk, the time to the first line of output, and the peak RSS
# of a 200,000-run walk (wf_huge) against a 20,000-run one (wf_big).
#
#   sh bench/cli.sh [OUT.md]      (BENCH_RUNS=N: runs per row, default 5)
#
# Prints a markdown section and writes it to OUT.md (default build/bench/cli.md),
# which bench/report.lua puts into BENCHMARKS.md. Raw samples: OUT.md's .tsv twin.
# Every server it starts is stopped by its pid, on success, failure or Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh

RUNS=${BENCH_RUNS:-5}
OUT=${1:-build/bench/cli.md}
STATIC=build/bench/static_server
TOKEN=sandbox-token
LUA=${BENCH_CLI_LUA:-lua5.4}
CMD="$LUA bin/workflows"

work=$(mktemp -d /tmp/workflows-bench-cli.XXXXXX)
samples="${OUT%.md}.tsv"
mkdir -p "$(dirname "$OUT")"
: >"$samples"
. bench/servers.sh

[ -x "$STATIC" ] || { echo "bench-cli: build $STATIC first (make $STATIC)" >&2; exit 1; }

# The same pre-rendered pages as bench/run.sh (same directory name), made if missing.
pages="build/bench/pages-$(cat sandbox/server.py bench/prerender.sh | sha256sum | cut -c1-12)"
if [ ! -f "$pages/wf_huge/199900.json" ]; then
  echo "== pre-rendering wf_big and wf_huge from the sandbox into $pages"
  start_server python3 sandbox/server.py --port 0 --latency-ms 0
  rm -rf "$pages"
  sh bench/prerender.sh "$base" "$pages" wf_big:20000 wf_huge:200000
  stop_servers
fi

# The shell way: one curl per page, jq for the runs and again for hasMore.
cat >"$work/curl_jq.sh" <<'EOF'
base=$1 token=$2 offset=0
while :; do
  body=$(curl -sf -H "Authorization: Bearer $token" "$base/v1/workflows/wf_big/runs?limit=100&offset=$offset")
  printf '%s\n' "$body" | jq -c '.data.items[]'
  [ "$(printf '%s\n' "$body" | jq -r '.data.hasMore')" = true ] || break
  offset=$((offset + 100))
done
EOF

now_us() { echo $(($(date +%s%N) / 1000)); }

# sample LATENCY ROW COMMAND: one wall time into /dev/null, one time to the first
# line, and the line count as a check; appends "latency row wall_ms first_ms lines".
sample() {
  latency=$1 row=$2 command=$3
  t0=$(now_us)
  sh -c "$command" >/dev/null
  t1=$(now_us)
  t2=$(now_us)
  sh -c "$command" | { IFS= read -r _; now_us >"$work/first"; wc -l >"$work/lines"; }
  first=$(($(cat "$work/first") - t2))
  lines=$(($(tr -d ' ' <"$work/lines") + 1))
  printf '%s\t%s\t%s\t%s\t%s\n' "$latency" "$row" "$(((t1 - t0) / 1000))" "$((first / 1000))" "$lines" \
    >>"$samples"
}

export WORKFLOWS_API_TOKEN=$TOKEN
for latency in 0 20; do
  echo "== $latency ms (static server)"
  start_server "$STATIC" --pages "$pages" --port 0 --latency-ms "$latency"
  export WORKFLOWS_BASE_URL="$base"
  i=0
  while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    sample "$latency" "workflows runs --format ndjson" "$CMD runs wf_big --format ndjson"
    sample "$latency" "workflows runs --format ndjson --prefetch 0" \
      "$CMD runs wf_big --format ndjson --prefetch 0"
    sample "$latency" "workflows runs --format csv" "$CMD runs wf_big --format csv"
    sample "$latency" "curl per page + jq" "sh $work/curl_jq.sh $base $TOKEN"
    echo "  round $i/$RUNS"
  done
  stop_servers
done

echo "== memory: wf_huge against wf_big (static server, 0 ms)"
start_server "$STATIC" --pages "$pages" --port 0 --latency-ms 0
export WORKFLOWS_BASE_URL="$base"
for workflow in wf_big wf_huge; do
  i=0
  while [ "$i" -lt 3 ]; do
    i=$((i + 1))
    /usr/bin/time -f %M -o "$work/rss" $CMD runs "$workflow" --format ndjson >/dev/null
    printf 'memory\t%s\t%s\n' "$workflow" "$(cat "$work/rss")" >>"$samples"
  done
done
stop_servers

lua5.4 bench/cli_report.lua "$samples" "$OUT" "$RUNS"
