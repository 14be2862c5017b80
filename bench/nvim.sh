#!/bin/sh
# The Neovim rows of `make bench`: inside `nvim --headless`, walks every run of
# wf_big at 20 and 0 ms per request, blocking and as a task, while a 1 ms uv
# timer stamps its ticks (bench/nvim_walk.lua), and measures what vim.schedule
# costs. The server is bench/offset_server.py, serving the sandbox's own runs
# (fetched once by bench/prerender.sh): walks ask for pages at offsets of their
# own choosing (each page starts on the last run handed out), which the static
# server cannot serve, and the sandbox would take ~2 ms of CPU a page from the
# client being measured. Writes the samples to build/bench/nvim-samples.tsv, which
# bench/report.lua turns into the "Inside Neovim" section of BENCHMARKS.md.
#
#   sh bench/nvim.sh                 (make bench and make bench-nvim run it)
#   BENCH_NVIM_RUNS=9 sh bench/nvim.sh
#
# The servers it starts listen on 127.0.0.1 only and are stopped by their pid.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh

RUNS=${BENCH_NVIM_RUNS:-5}
RUNS0=$((RUNS * 3))
OUT=${BENCH_NVIM_SAMPLES:-build/bench/nvim-samples.tsv}
# "auto" (the default) and 8. A fixed prefetch of 6 or less makes the walk remember
# exactly 2,048 ids (pager.lua, SEEN_AT_LEAST), where recent.lua rehashes its table
# on every run: that costs both walks alike, and is left out until it is fixed.
PREFETCHES=${BENCH_NVIM_PREFETCHES:-"auto 8"}

work=$(mktemp -d /tmp/workflows-bench-nvim.XXXXXX)
. bench/servers.sh

# wf_big's pages, fetched once per version of the sandbox.
pages="build/bench/nvim-pages-$(cat sandbox/server.py bench/prerender.sh | sha256sum | cut -c1-12)"
if [ ! -d "$pages" ]; then
  echo "== fetching wf_big from the sandbox into $pages"
  rm -rf build/bench/nvim-pages-*
  start_server python3 sandbox/server.py --port 0 --latency-ms 0
  sh bench/prerender.sh "$base" "$pages" wf_big:20000 >/dev/null 2>&1
  stop_servers
fi

mkdir -p "$(dirname "$OUT")"
: >"$work/samples.tsv"

# walk LATENCY MODE PREFETCH: one nvim, one line of samples
walk() {
  : >"$work/line.tsv"
  if ! env -u LD_PRELOAD WF_ROOT="$PWD" WF_BASE="$base" WF_TOKEN=sandbox-token \
      WF_WORKFLOW=wf_big WF_MODE="$2" WF_PREFETCH="$3" WF_OUT="$work/line.tsv" \
      timeout 120 nvim --headless -u NONE -c 'luafile bench/nvim_walk.lua' \
      >/dev/null 2>"$work/nvim.err"; then
    echo "bench/nvim.sh: nvim failed ($2, prefetch $3):" >&2
    cat "$work/nvim.err" >&2
    exit 1
  fi
  printf '%s\t' "$1" >>"$work/samples.tsv"
  cat "$work/line.tsv" >>"$work/samples.tsv"
}

printf 'meta\tload_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$work/samples.tsv"
printf 'meta\tnvim\t%s\n' "$(nvim --version | head -n 1)" >>"$work/samples.tsv"
printf 'meta\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" >>"$work/samples.tsv"

for latency in 20 0; do
  echo "== inside Neovim, $latency ms"
  runs=$RUNS
  [ "$latency" = 0 ] && runs=$RUNS0
  start_server python3 bench/offset_server.py --pages "$pages/wf_big" --port 0 --latency-ms "$latency"
  i=0
  # rounds: every row once per round, so that the machine's moods spread evenly
  while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    walk "$latency" idle 0
    for prefetch in $PREFETCHES; do
      walk "$latency" blocking "$prefetch"
      walk "$latency" task "$prefetch"
    done
  done
  stop_servers
done

echo "== vim.schedule"
for _ in 1 2 3; do walk - schedule 0; done

printf 'meta\tload_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$work/samples.tsv"
cp "$work/samples.tsv" "$OUT"
echo "bench/nvim.sh: wrote $OUT"
