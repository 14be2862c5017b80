# Servers for the bench scripts, started in the background and stopped by their
# pids on success, failure or Ctrl-C, with the scratch folder $work removed.
# Source it after tools/lib.sh, once $work exists. POSIX sh.
#
#   start_server COMMAND...   runs it, waits for its "listening URL" line, sets $base
#                             (and $server_pid); exits showing its stderr if it fails
#   stop_servers              stops every server started so far

pids=""      # the servers running now
started=0    # servers started so far, to name their output files

stop_servers() {
  for pid in $pids; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=""
}

cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # the EXIT trap then stops the servers

start_server() {
  started=$((started + 1))
  "$@" >"$work/server$started.out" 2>"$work/server$started.err" &
  server_pid=$!
  pids="$pids $server_pid"
  if ! base=$(listening_url "$server_pid" "$work/server$started.out"); then
    echo "${0##*/}: server did not start: $*" >&2
    cat "$work/server$started.err" >&2
    exit 1
  fi
}
