#!/usr/bin/env python3
"""A light server of one pre-rendered listing at any offset, for bench/nvim.sh.

Walks start each page after the first on the last run handed out (offsets 0, 99,
198, ...), which bench/static_server.c cannot serve (it holds the pages at
multiples of 100), and sandbox/server.py builds every run of every page anew, which
costs ~2 ms of CPU a page taken from the client being measured on a small machine.
This server loads the sandbox's own pages once (bench/prerender.sh's identity
JSON, DIR/<offset>.json) and answers any `limit` and `offset` by joining the runs'
JSON, gzipped (level 1) when the client asks for it, after --latency-ms.

    python3 bench/offset_server.py --pages DIR [--port 0] [--latency-ms N] [--token T]

Prints "listening http://127.0.0.1:PORT" once ready; exits on SIGTERM and SIGINT.
One thread per connection, HTTP/1.1 with keep-alive.
"""
import argparse
import gzip
import json
import os
import re
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATH = re.compile(r"^/v1/workflows/([^/]+)/runs$")


def load_runs(directory):
    """Every run of the pre-rendered pages, each as its JSON text, in order."""
    runs, offset = [], 0
    while os.path.exists(os.path.join(directory, "%d.json" % offset)):
        with open(os.path.join(directory, "%d.json" % offset), encoding="utf-8") as page:
            items = json.load(page)["data"]["items"]
        runs.extend(json.dumps(run, sort_keys=True, separators=(",", ":")) for run in items)
        offset += len(items)
        if not items:
            break
    return runs


def make_handler(workflow, runs, latency, token):
    counter = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def answer(self, status, body, request_id):
            encoded = body.encode("utf-8")
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            if gzipped:
                encoded = gzip.compress(encoded, compresslevel=1)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.send_header("X-Request-Id", request_id)
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            self.wfile.write(encoded)

        def do_GET(self):
            counter[0] += 1
            request_id = "req_offset_%08d" % counter[0]
            url = urlsplit(self.path)
            match = PATH.match(url.path)
            if self.headers.get("Authorization") != "Bearer " + token:
                return self.answer(401, '{"code":401,"message":"invalid bearer token",'
                                   '"requestId":"%s"}' % request_id, request_id)
            if not match or match.group(1) != workflow:
                return self.answer(404, '{"code":404,"message":"workflow not found",'
                                   '"requestId":"%s"}' % request_id, request_id)
            query = parse_qs(url.query)
            limit = int(query.get("limit", ["20"])[0])
            offset = int(query.get("offset", ["0"])[0])
            items = runs[offset:offset + limit]
            has_more = offset + len(items) < len(runs)
            body = ('{"code":200,"data":{"hasMore":%s,"items":[%s],"limit":%d,"offset":%d},'
                    '"message":"success","requestId":"%s"}') % (
                        "true" if has_more else "false", ",".join(items), limit, offset,
                        request_id)
            if latency:
                time.sleep(latency / 1000.0)
            self.answer(200, body, request_id)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", required=True, help="DIR/<offset>.json of one workflow")
    parser.add_argument("--workflow", default="wf_big")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--token", default="sandbox-token")
    options = parser.parse_args()
    runs = load_runs(options.pages)
    # socketserver listens with a backlog of 5: a walk opening 9 connections at once
    # would see SYNs dropped and wait a second for their retransmission
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", options.port), make_handler(
        options.workflow, runs, options.latency_ms, options.token))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening http://127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()
