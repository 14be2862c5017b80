#!/bin/sh
# The OpenResty rows of `make bench` (also `make bench-openresty` alone): renders
# wf_demo's pages from the sandbox once, and runs bench/openresty.lua, which serves
# them from a second nginx and measures the first.
# Writes bench/results/openresty.md, which bench/report.lua puts in BENCHMARKS.md.
# Every server it starts is stopped by its pid, on success, failure or Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh

work=$(mktemp -d /tmp/workflows-bench-openresty.XXXXXX)
. bench/servers.sh

pages="build/bench/pages-demo-$(cat sandbox/server.py bench/prerender.sh | sha256sum | cut -c1-12)"
if [ ! -d "$pages" ]; then
  echo "== pre-rendering wf_demo from the sandbox into $pages"
  start_server python3 sandbox/server.py --port 0
  sh bench/prerender.sh "$base" "$pages" wf_demo:250
fi

echo "== OpenResty: one nginx worker, 16 walks of wf_demo at a time"
mkdir -p bench/results
lua5.4 bench/openresty.lua "$PWD/$pages" bench/results/openresty.md
