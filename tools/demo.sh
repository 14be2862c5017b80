#!/bin/sh
# Starts the sandbox on a free port, runs examples/failed_runs.lua against it, and
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
