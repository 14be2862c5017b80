"""Load for `make soak`'s nginx host (tools/soak/nginx.lua): CONCURRENCY threads,
each on its own keep-alive connection, send a random mix of careless requests
(spec/support/careless_ngx.lua) for SECONDS, then print one JSON object: how many
requests of each kind were sent, their statuses, and the requests that got no
answer at all (a connection reset or closed mid-request: what a crashed worker
leaves its clients with).

    python3 tools/soak/load.py URL SECONDS CONCURRENCY SEED
"""
import http.client
import json
import random
import sys
import threading
import time
from urllib.parse import urlsplit

# kind -> weight: mostly careless walks, collections in between, a few that close
KINDS = [("walk", 50), ("timer", 15), ("collect", 15), ("proper", 12), ("ping", 8)]
REQUEST_TIMEOUT = 15  # seconds; a request takes milliseconds: one unanswered by then never will be


def pick_path(rng):
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    if kind == "ping":
        return kind, "/ping"
    if kind == "collect":
        return kind, "/careless/collect"
    query = "prefetch=%d&stop=%d&latency=%d&clients=%d&limit=%d&collect=%d&exit=%d" % (
        rng.randint(0, 8), rng.randint(1, 30), rng.randint(0, 10), rng.randint(1, 3),
        rng.choice((10, 10, 50, 100)), rng.choice((0, 0, 0, rng.randint(1, 30))),
        rng.random() < 0.2)
    return kind, "/careless/%s?%s" % (kind, query)


def worker(host, port, stop_at, rng, result, lock):
    connection = None
    while time.monotonic() < stop_at:
        kind, path = pick_path(rng)
        if connection is None:
            connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            body = answer.read()
            status = answer.status
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            connection = None
            with lock:
                result["unanswered"] += 1
                if len(result["unanswered_examples"]) < 5:
                    result["unanswered_examples"].append("%s: %s" % (path, type(error).__name__))
            continue
        with lock:
            counts = result["kinds"].setdefault(kind, {})
            counts[str(status)] = counts.get(str(status), 0) + 1
            if status != 200 and len(result["failure_examples"]) < 5:
                result["failure_examples"].append(
                    "%s -> %d %s" % (path, status, body.decode(errors="replace")[:200].strip()))
    if connection is not None:
        connection.close()


def main():
    url, seconds, concurrency, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    result = {"kinds": {}, "unanswered": 0, "unanswered_examples": [], "failure_examples": []}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=worker, args=(parts.hostname, parts.port, stop_at,
                                                     random.Random("%s-%d" % (seed, i)), result, lock))
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
