# Sourced by the scripts that start a server in the background (the sandbox, the
# benchmark's static server): every such server prints "listening URL" when ready.

# listening_url PID FILE: waits up to 10 s for FILE to hold the ready line of the
# server PID and prints its URL; fails, showing FILE, if the server dies or stays
# silent.
listening_url() {
  tries=0
  until grep -qs '^listening ' "$2"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$1" 2>/dev/null; then
      cat "$2" >&2
      return 1
    fi
    sleep 0.1
  done
  sed -n 's/^listening //p' "$2"
}
