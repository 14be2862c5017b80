#!/bin/sh
# Shows that prefetched pages are multiplexed over HTTP/2 when the server offers it:
# nginx terminates TLS with HTTP/2 in front of the sandbox (which speaks only
# HTTP/1.1), the client walks wf_big with prefetch 0, 2 and 7, and nginx's log
# tells how many connections each walk used and which protocol it spoke.
#
#   sh bench/http2.sh            (make bench-http2 installs nginx and runs it)
#
# Everything listens on 127.0.0.1 and is stopped by its pid on any exit.
set -eu
cd "$(dirname "$0")/.."
. tools/lib.sh

work=$(mktemp -d /tmp/workflows-h2.XXXXXX)
sandbox_pid=""
nginx_pid=""
cleanup() {
  for pid in $nginx_pid $sandbox_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 sandbox/server.py --port 0 --latency-ms "${LATENCY_MS:-20}" >"$work/sandbox.out" 2>&1 &
sandbox_pid=$!
url=$(listening_url "$sandbox_pid" "$work/sandbox.out")
upstream=${url#http://}

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events {}
http {
  log_format walk '\$connection \$server_protocol';
  access_log $work/access.log walk;
  client_body_temp_path $work;
  proxy_temp_path $work;
  upstream sandbox { server $upstream; keepalive 16; }
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / {
      proxy_pass http://sandbox;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
nginx -c "$work/nginx.conf" &
nginx_pid=$!
sleep 0.5

echo "prefetch  runs  seconds  connections  protocol"
for prefetch in 0 2 7; do
  : >"$work/access.log"
  line=$(LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="./?.so;;" \
    lua5.4 bench/http2_walk.lua "https://127.0.0.1:$port" "$work/cert.pem" "$prefetch")
  sleep 0.2   # nginx logs a request when its stream ends
  connections=$(awk '{ print $1 }' "$work/access.log" | sort -u | wc -l)
  protocols=$(awk '{ print $2 }' "$work/access.log" | sort -u | tr '\n' ' ')
  set -- $line
  printf '%8s  %5s  %7s  %11s  %s\n' "$prefetch" "$1" "$2" "$connections" "$protocols"
done
