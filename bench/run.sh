#!/bin/sh
# The benchmark behind `make bench`: walks every run of wf_big with this client and
# with what Lua (and Python) users write today, at 0, 5 and 20 ms of latency per
# request, measures the decode cost and the memory of a long walk, prints the
# tables and writes them to BENCHMARKS.md.
#
#   sh bench/run.sh            (make bench builds first, then runs this)
#   BENCH_RUNS=9 sh bench/run.sh
#
# Every server it starts listens on 127.0.0.1 only and is stopped by its pid, on
# success, failure or Ctrl-C alike. Takes about 6 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh

RUNS=${BENCH_RUNS:-5}
# At 0 ms a walk takes ~0.1 s and this 2-core machine's noise is a good part of
# that, so the 0 ms rows get three times the runs (they cost seconds, not minutes).
RUNS0=$((RUNS * 3))
WALK=wf_big:20000
HUGE=wf_huge:200000
PEERS="luasocket luacurl curl_process python_urllib python_http_client"
CLIENTS="client client_p0 client_p1 client_p2 client_p3"
STATIC=build/bench/static_server

# When the measuring started, for BENCHMARKS.md.
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export BENCH_DATE
work=$(mktemp -d /tmp/workflows-bench.XXXXXX)
export BENCH_WORK="$work"
export PYTHONDONTWRITEBYTECODE=1
samples="$work/samples.tsv"
. bench/servers.sh

# measure GROUP SERVER RUNS WORKFLOW:RUNS ROW...  (rows against $base; see harness.lua)
measure() {
  group=$1 server=$2 runs=$3 target=$4
  shift 4
  lua5.4 bench/harness.lua "$samples" "$group" "$server" "$base" "$runs" "$target" "$@"
}

echo "== sandbox capacity (sandbox/server.py at 0 ms)"
start_server python3 sandbox/server.py --port 0 --latency-ms 0
measure "0 ms" sandbox "$RUNS" "$WALK" curl_sequential curl_parallel client
# The pages static_server serves, fetched once per version of the sandbox.
pages="build/bench/pages-$(cat sandbox/server.py bench/prerender.sh | sha256sum | cut -c1-12)"
if [ ! -d "$pages" ]; then
  echo "== pre-rendering wf_big and wf_huge from the sandbox into $pages"
  rm -rf build/bench/pages-*
  sh bench/prerender.sh "$base" "$pages" "$WALK" "$HUGE"
fi
stop_servers

for latency in 0 5 20; do
  echo "== $latency ms (static server)"
  extra="" runs=$RUNS
  if [ "$latency" = 0 ]; then
    # A second static server that never gzips, in the same rounds: what inflating
    # costs the client on loopback, where the peers (which do not ask for gzip)
    # skip it.
    start_server "$STATIC" --pages "$pages" --port 0 --latency-ms 0 --identity
    extra="client@static_identity=$base client_p0@static_identity=$base curl_sequential"
    runs=$RUNS0
  fi
  start_server "$STATIC" --pages "$pages" --port 0 --latency-ms "$latency"
  # shellcheck disable=SC2086
  measure "$latency ms" static "$runs" "$WALK" $CLIENTS $PEERS curl_parallel $extra
  stop_servers
done

echo "== cross-check: the sandbox at 20 ms"
start_server python3 sandbox/server.py --port 0 --latency-ms 20
measure "20 ms" sandbox 3 "$WALK" client client_p0 client_p3 curl_parallel
stop_servers

echo "== memory: wf_huge against wf_big (static server, 0 ms)"
start_server "$STATIC" --pages "$pages" --port 0 --latency-ms 0
measure memory static "$RUNS" "$WALK" client
measure memory static "$RUNS" "$HUGE" client
stop_servers

echo "== decode cost (callgrind)"
iterations=200
for mode in baseline cjson core; do
  LUA_CPATH="./?.so;;" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    lua5.4 bench/decode_cost.lua "$mode" "$iterations" "$pages/wf_big/0.json" \
    2>"$work/callgrind.err" >/dev/null || { cat "$work/callgrind.err" >&2; exit 1; }
  instructions=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/callgrind.err")
  printf '%s\t%s\t%s\n' "$mode" "$instructions" "$iterations" >>"$work/decode.tsv"
  echo "  $mode: $instructions instructions"
done
# The same decodes timed without valgrind: instructions are not the whole cost.
LUA_CPATH="./?.so;;" lua5.4 bench/decode_cost.lua time 4000 "$pages/wf_big/0.json" \
  >>"$work/decode.tsv"

echo
lua5.4 bench/report.lua "$samples" "$work/decode.tsv" BENCHMARKS.md
mkdir -p bench/results
cp "$samples" "$work/decode.tsv" bench/results/
echo
echo "bench: wrote BENCHMARKS.md (raw samples in bench/results/)"
