#!/bin/sh
# make soak: careless but legal code on every host for SOAK_SECONDS each (default
# 30): nginx (tools/soak/nginx.lua), standalone luv on lua5.4 and on luajit, and
# headless Neovim (tools/soak/loop.lua), all against one sandbox. Each host prints
# one line per check; the last line sums them: "N passed, M failed" (non-zero exit
# when M > 0). A host that is not installed is skipped with a line saying so.
#
# The checks, one line each per host:
#   nginx   the workload ran; no worker crashed ("exited on signal", a new worker
#           pid); no [alert] or [crit] line; every answer 200 (others counted and
#           shown, an unanswered request included); every timer's walk ended; the
#           worker still answers; a graceful stop (SIGQUIT) ends nginx cleanly
#   lua5.4, luajit, nvim   the workload ran; nothing on stderr (nor in :messages);
#           no EEXIST; the loop ends by itself once the workload stops (Neovim: the
#           script ends); descriptors back where they were before the first client;
#           every task's on_done called
#
#   SOAK_SECONDS=10 SOAK_SEED=42 sh tools/soak/run.sh
set -u
cd "$(dirname "$0")/../.." || exit 1
. tools/lib.sh

SOAK_SECONDS=${SOAK_SECONDS:-30}
SOAK_SEED=${SOAK_SEED:-$(date +%s)}
work=$(mktemp -d /tmp/workflows-soak.XXXXXX)
sandbox_pid=""
cleanup() {
  if [ -n "$sandbox_pid" ]; then
    kill "$sandbox_pid" 2>/dev/null
    wait "$sandbox_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # the EXIT trap then stops the sandbox

python3 sandbox/server.py --port 0 >"$work/sandbox.out" 2>"$work/sandbox.err" &
sandbox_pid=$!
if ! url=$(listening_url "$sandbox_pid" "$work/sandbox.out"); then
  cat "$work/sandbox.err"
  tally "sandbox" 0 1
  finish
  exit
fi
echo "== soak: $SOAK_SECONDS s a host, seed $SOAK_SEED, sandbox $url"

# soak_host NAME COMMAND...: runs one host's checks and adds up its closing line.
soak_host() {
  name=$1
  shift
  started=$(date +%s)
  "$@" 2>&1 | tee "$work/$name.out"
  echo "== $name: took $(($(date +%s) - started)) s"
  tally_from "$name" "$(result_counts "$work/$name.out")"
}

soak_host nginx lua5.4 tools/soak/nginx.lua "$SOAK_SECONDS" "$url" "$SOAK_SEED"
for lua in lua5.4 luajit nvim; do
  if command -v "$lua" >/dev/null 2>&1; then
    soak_host "$lua" lua5.4 tools/soak/loop.lua "$lua" "$SOAK_SECONDS" "$url" "$SOAK_SEED"
  else
    echo "== $lua is not installed: skipped"
  fi
done

finish
