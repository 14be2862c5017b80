#!/bin/sh
# The prefetch window's benchmark behind `make bench-window`: walks every run of
# wf_big with prefetch = "auto" and with fixed windows (0, 2, 3, 7) against the
# static server at 0, 5, 20 and 100 ms per request, with the sequential peers at
# 0, 5 and 20 ms, and the client before the walk's pages overlapped (the
# baseline) at 20 ms; then against a server that answers one page request in 20
# with 429 and Retry-After: 1, with a trace of the window page by page. Writes its
# section of BENCHMARKS.md (between the "window" markers; bench/window_report.lua).
#
#   sh bench/window.sh                    (make bench-window builds first)
#   BENCH_RUNS=9 sh bench/window.sh       (runs per row; 0 ms rows get 3x)
#   BENCH_BASELINE=<commit> sh bench/window.sh
#   BENCH_LATENCIES="0 20" sh bench/window.sh   (a subset of 0 5 20 100)
#
# BENCH_BASELINE (default 64d819e, the commit before the pager's overlap and the
# auto window): its lua/ (from git archive) with this tree's core (src/, built
# beside it under build/bench/), so that the rows differ only by the Lua layer;
# left out without git, or with BENCH_BASELINE empty. Servers listen on 127.0.0.1 and are stopped by their pid.
# Takes about 10 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh

RUNS=${BENCH_RUNS:-5}
RUNS0=$((RUNS * 3))
WALK=wf_big:20000
HUGE=wf_huge:200000
STATIC=build/bench/static_server
BASELINE=${BENCH_BASELINE-64d819e}
FIXED="p0 p2 p3 p7"
PEERS="luacurl luasocket"

BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export BENCH_DATE
work=$(mktemp -d /tmp/workflows-window.XXXXXX)
export BENCH_WORK="$work"
samples="$work/window.tsv"
trace="$work/trace.txt"
. bench/servers.sh

# The pages static_server serves (the same set bench/run.sh pre-renders).
pages="build/bench/pages-$(cat sandbox/server.py bench/prerender.sh | sha256sum | cut -c1-12)"
if [ ! -d "$pages" ]; then
  echo "== pre-rendering wf_big and wf_huge from the sandbox into $pages"
  start_server python3 sandbox/server.py --port 0 --latency-ms 0
  rm -rf build/bench/pages-*
  sh bench/prerender.sh "$base" "$pages" "$WALK" "$HUGE"
  stop_servers
fi

# The baseline client: lua/ at $BASELINE, with this tree's core.
baseline_rows=""
if [ -n "$BASELINE" ] && sha=$(git rev-parse --short=12 "$BASELINE^{commit}" 2>/dev/null); then
  dir="build/bench/baseline-$sha-$(cat src/*.c src/*.h | sha256sum | cut -c1-12)"
  if [ ! -f "$dir/workflows/core.so" ]; then
    echo "== building the baseline client ($BASELINE = $sha) in $dir"
    rm -rf build/bench/baseline-*
    mkdir -p "$dir/workflows"
    git archive "$sha" lua | tar -x -C "$dir"
    # shellcheck disable=SC2046
    ${CC:-cc} -O2 -g -fPIC -shared $(pkg-config --cflags lua5.4) \
      $(pkg-config --cflags libcurl) -o "$dir/workflows/core.so" src/*.c \
      $(pkg-config --libs libcurl) -lm
  fi
  export BENCH_BASELINE_DIR="$dir" BENCH_BASELINE_NAME="$BASELINE ($sha)"
  baseline_rows="old_p0 old_p2 old_p3"
fi

measure() {
  group=$1 runs=$2
  shift 2
  lua5.4 bench/window.lua "$samples" "$group" "$base" "$runs" "$WALK" "$@"
}

for latency in ${BENCH_LATENCIES:-0 5 20 100}; do
  echo "== $latency ms (static server)"
  start_server "$STATIC" --pages "$pages" --port 0 --latency-ms "$latency"
  # word splitting of the row lists is meant; the peers would take 20 s a walk
  # at 100 ms and no target needs them there
  # shellcheck disable=SC2086
  case $latency in
    0) measure "0 ms" "$RUNS0" auto $FIXED $PEERS ;;
    5) measure "5 ms" "$RUNS" auto $FIXED $PEERS ;;
    20) measure "20 ms" "$RUNS" auto $FIXED $PEERS $baseline_rows ;;
    100) measure "100 ms" "$RUNS" auto $FIXED ;;
    *) measure "$latency ms" "$RUNS" auto $FIXED ;;
  esac
  stop_servers
done

echo "== 20 ms, one page request in 20 answered 429 with Retry-After: 1"
start_server "$STATIC" --pages "$pages" --port 0 --latency-ms 20 --throttle-every 20
measure "throttled" "$RUNS" auto p7
env LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" \
  lua5.4 bench/walk_window.lua "$base" wf_big sandbox-token auto trace >"$trace"
stop_servers

echo
lua5.4 bench/window_report.lua "$samples" "$trace" BENCHMARKS.md
mkdir -p bench/results
cp "$samples" "$trace" bench/results/
echo
echo "window: wrote its section of BENCHMARKS.md (raw samples in bench/results/)"
