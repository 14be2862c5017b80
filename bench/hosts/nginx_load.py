"""Load for the OpenResty benchmark (bench/scenarios/openresty.lua): WALKERS keep-alive
connections each asking nginx for GET WALK_PATH again and again (each answer is one
walk of a workflow, done by the handler), while one more connection, from a
process of its own, pings GET /ping on a fixed schedule. Prints one JSON object.

    python3 bench/hosts/nginx_load.py URL WALK_PATH WALKERS SECONDS [PING_EVERY_MS]

Ping latency is measured from the time each ping was due when the previous one
was still unanswered then: when the worker is blocked, the pings that should have
gone out meanwhile count as waiting too (no coordinated omission).
"""
import asyncio
import json
import multiprocessing
import sys
import time
from urllib.parse import urlsplit


async def get(reader, writer, path):
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return status, body


async def walker(host, port, path, stop_at, result):
    reader, writer = await asyncio.open_connection(host, port)
    while time.monotonic() < stop_at:
        started = time.monotonic()
        status, body = await get(reader, writer, path)
        if status != 200:
            result["failures"] += 1
            result["last_failure"] = body.decode(errors="replace")[:300]
            continue
        result["walks"] += 1
        result["runs"] += int(body)
        result["walk_seconds"] += time.monotonic() - started
    writer.close()


async def pinger(host, port, every, stop_at, latencies):
    reader, writer = await asyncio.open_connection(host, port)
    due = time.monotonic()
    while due < stop_at:
        now = time.monotonic()
        if due > now:
            # on time: measured from the send, so that a late wake-up of this
            # process's own sleep is not counted against nginx
            await asyncio.sleep(due - now)
            sent = time.monotonic()
        else:
            # late, because the last ping took longer than the interval: the wait
            # since it was due counts
            sent = due
        status, _ = await get(reader, writer, "/ping")
        latencies.append(time.monotonic() - sent)
        due += every
    writer.close()


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))
    return ordered[index]


def ping_process(host, port, every, stop_at, sender):
    """The pinger, in a process of its own: sharing an event loop with the walkers
    would add their parsing to the pings' latency."""
    latencies = []
    asyncio.run(pinger(host, port, every, stop_at, latencies))
    sender.send(latencies)


async def walkers_until(host, port, path, count, stop_at, result):
    await asyncio.gather(*[walker(host, port, path, stop_at, result) for _ in range(count)])


def main():
    url, path, walkers, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    every = (float(sys.argv[5]) if len(sys.argv) > 5 else 5.0) / 1000
    parts = urlsplit(url)
    result = {"walks": 0, "runs": 0, "walk_seconds": 0.0, "failures": 0}
    started = time.monotonic()
    stop_at = started + seconds
    receiver, sender = multiprocessing.Pipe(duplex=False)
    pings = multiprocessing.Process(target=ping_process,
                                    args=(parts.hostname, parts.port, every, stop_at, sender))
    pings.start()
    asyncio.run(walkers_until(parts.hostname, parts.port, path, walkers, stop_at, result))
    latencies = receiver.recv()
    pings.join()
    elapsed = time.monotonic() - started
    print(json.dumps({
        "seconds": elapsed,
        "walks": result["walks"],
        "runs": result["runs"],
        "failures": result["failures"],
        "last_failure": result.get("last_failure"),
        "walks_per_second": result["walks"] / elapsed,
        "mean_walk_ms": 1000 * result["walk_seconds"] / result["walks"] if result["walks"] else None,
        "pings": len(latencies),
        "ping_p50_ms": 1000 * percentile(latencies, 0.50),
        "ping_p99_ms": 1000 * percentile(latencies, 0.99),
        "ping_max_ms": 1000 * max(latencies),
    }))


if __name__ == "__main__":
    main()
