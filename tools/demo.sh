#!/bin/sh
# Starts the sandbox on a free port, runs examples/failed_runs.lua and a short
# `workflows watch` against it, and
# stops the sandbox whatever happens.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh
ready=$(mktemp)
python3 sandbox/server.py --port 0 >"$ready" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$ready"' EXIT INT TERM
url=$(listening_url "$server" "$ready") || { echo "demo: the sandbox did not start" >&2; exit 1; }
echo "sandbox: $url (token sandbox-token)"
WORKFLOWS_BASE_URL=$url WORKFLOWS_API_TOKEN=sandbox-token \
  LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" \
  lua5.4 examples/failed_runs.lua wf_demo
# A listing that lives by the clock (doc/sandbox.md): a run arrives every 300 ms and
# finishes 600 ms later; the command reports each arrival and each change as it comes.
echo
echo "workflows watch: a run every 300 ms, each done 600 ms later (six events)"
WORKFLOWS_BASE_URL=$url WORKFLOWS_API_TOKEN=sandbox-token \
  lua5.4 bin/workflows watch 'wf_empty;every_ms=300;finish_ms=600' --interval 0.2 --count 6 \
  --format table --fields id,status,finishedAt,totalCu
