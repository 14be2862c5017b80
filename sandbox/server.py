#!/usr/bin/env python3
"""A local stand-in for the Workflows API: GET /v1/workflows/{id}/runs.

Serves deterministic data over real HTTP/1.1 (or HTTPS), lets tests inject faults
through the workflow id, and records every request in a log that tests can read.
doc/sandbox.md describes the interface; this file uses the standard library only.
"""

import argparse
import bisect
import calendar
import collections
import email.utils
import gzip
import hashlib
import http
import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

from forward_proxy import ProxyServer

STATUSES = ("running", "success", "failure", "waiting", "cancelled")
DEFAULT_TOKEN = "sandbox-token"
DEFAULT_SEED = "2026"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 2**63 - 1
DEFAULT_HUGE_BYTES = 48 * 1024 * 1024
DEFAULT_DRIP_MS = 1000
LOG_MEMORY_ENTRIES = 10_000
MAX_DISCARDED_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10
CLIENT_KEY_PASSWORD = "sandbox-key-passphrase"  # of --client-ca's encrypted client key
SERVE_POLL = 0.05  # how soon the accept loop notices a shutdown
PARENT_POLL = 0.2

# Every listing ends at the same instant, so data never depends on the wall clock.
ANCHOR = calendar.timegm((2026, 11, 27, 9, 0, 0))
RUNS_PATH = re.compile(r"^/v1/workflows/([^/]*)/runs$")


@dataclass(frozen=True)
class Workflow:
    name: str
    count: int
    step: int  # seconds between two consecutive starts, before jitter
    versions: int


WORKFLOWS = {
    w.name: w
    for w in (
        Workflow("wf_demo", 250, 5400, 7),
        Workflow("wf_empty", 0, 3600, 1),
        Workflow("wf_big", 20_000, 600, 40),
        Workflow("wf_huge", 200_000, 120, 120),
    )
}


def iso8601(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def new_request_id():
    return "req_" + secrets.token_hex(10)


# --------------------------------------------------------------------------- data


class RunFactory:
    """Builds any run of any workflow from (seed, workflow, index) alone.

    Index 0 is the newest run. Nothing is stored per run, so a listing of any
    length costs nothing until a page of it is asked for; only the per-status
    index lists are kept, built the first time a status filter needs them.
    """

    def __init__(self, seed):
        self.seed = seed
        self._status_indexes = {}
        self._lock = threading.Lock()

    def _digest(self, *parts):
        text = "\x1f".join(str(p) for p in (self.seed,) + parts)
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=24).digest()

    def _run_id(self, digest):
        return "run_" + digest[:8].hex()

    def _user(self, workflow, digest):
        # A handful of people per workflow, so the same names recur as in real data.
        return "user_" + self._digest(workflow.name, "user", digest[17] % 5)[:4].hex()

    @staticmethod
    def _status(index, digest):
        if index == 0:
            return "running"
        if index == 1:
            return "waiting"
        if index < 6:
            return ("running", "waiting", "success")[digest[10] % 3]
        roll = digest[10]
        if roll < 200:
            return "success"
        if roll < 236:
            return "failure"
        if roll < 251:
            return "cancelled"
        return "waiting"  # an old run still waiting for an approval

    @staticmethod
    def _total_cu(status, digest):
        if status == "waiting":
            return 0
        amount = int.from_bytes(digest[13:15], "big")
        if status != "running" and digest[15] < 77:
            return 1 + amount % 60
        cents = 1 + amount % 5999
        if cents % 100 == 0:
            cents += 25  # keep fractional values fractional on the wire
        return cents / 100

    def _version(self, workflow, index):
        return 1 + (workflow.count - 1 - index) * workflow.versions // workflow.count

    def _trigger(self, workflow, digest):
        roll = digest[16] % 20
        if roll < 7:
            return "api", self._user(workflow, digest)
        if roll < 14:
            return "schedule", "schedule"
        if roll < 17:
            return "webhook", "webhook"
        return "manual", self._user(workflow, digest)

    @staticmethod
    def _finished(status, started, digest):
        if status in ("running", "waiting"):
            return None
        if status == "cancelled":
            return started + 1 + int.from_bytes(digest[11:13], "big") % 600
        return started + 5 + int.from_bytes(digest[11:13], "big") % 2700

    def base_status(self, workflow, index):
        """The status a base run has until churn changes it."""
        return self._status(index, self._digest(workflow.name, index))

    def run_id(self, workflow, live_key, key):
        """The id alone of the run with listing key `key` (see LiveState): cheaper than run()."""
        if key < 0:
            return self._run_id(self._digest(workflow.name, "live", live_key, -key - 1))
        return self._run_id(self._digest(workflow.name, key))

    def run(self, workflow, index, status=None):
        """Base run `index`; `status`, when given, replaces its own (churn), with the
        fields that depend on it (finishedAt, totalCu) made to match."""
        digest = self._digest(workflow.name, index)
        status = status or self._status(index, digest)
        jitter = int.from_bytes(digest[8:10], "big") % workflow.step
        started = ANCHOR - index * workflow.step - jitter
        finished = self._finished(status, started, digest)
        source, by = self._trigger(workflow, digest)
        source_run_id = None
        version = self._version(workflow, index)
        rerun_of = index + 1 + digest[19] % 40
        if source in ("api", "manual") and digest[18] < 20 and rerun_of < workflow.count:
            source_run_id = self._run_id(self._digest(workflow.name, rerun_of))
            version = self._version(workflow, rerun_of)
        return {
            "finishedAt": None if finished is None else iso8601(finished),
            "id": self._run_id(digest),
            "isDustTest": digest[21] < 5,
            "isSimulation": digest[20] < 8,
            "sourceRunId": source_run_id,
            "startedAt": iso8601(started),
            "status": status,
            "totalCu": self._total_cu(status, digest),
            "triggerSource": source,
            "triggeredBy": by,
            "workflowId": workflow.name,
            "workflowVersion": version,
        }

    def live_run(self, workflow, live_key, arrival, status="running"):
        """The run that arrived `arrival`-th (0 = first) at the head of a live listing."""
        digest = self._digest(workflow.name, "live", live_key, arrival)
        source, by = self._trigger(workflow, digest)
        started = ANCHOR + 30 * (arrival + 1) + digest[8] % 30
        finished = self._finished(status, started, digest)
        return {
            "finishedAt": None if finished is None else iso8601(finished),
            "id": self._run_id(digest),
            "isDustTest": False,
            "isSimulation": False,
            "sourceRunId": None,
            # Strictly newer than every base run and every earlier arrival.
            "startedAt": iso8601(started),
            "status": status,
            "totalCu": self._total_cu(status, digest),
            "triggerSource": source,
            "triggeredBy": by,
            "workflowId": workflow.name,
            "workflowVersion": workflow.versions,
        }

    def indexes_with_status(self, workflow, status):
        with self._lock:
            by_status = self._status_indexes.get(workflow.name)
            if by_status is None:
                by_status = {s: [] for s in STATUSES}
                for index in range(workflow.count):
                    by_status[self._status(index, self._digest(workflow.name, index))].append(index)
                self._status_indexes[workflow.name] = by_status
            return by_status[status]


class LiveState:
    """The listing of one decoded workflow id (directives included) as it changes.

    Every run has a key that fixes its place in the unfiltered listing, newest
    first: base run i has key i, the a-th live arrival (0 = first) key -(a + 1).
    Events (an arrival, a status change) are numbered per id: the version is how
    many have happened. Statuses that churn changed live in `overlay`; the
    per-status key lists are built (copied from the shared base ones) only at the
    first status change, and then kept up to date one key at a time.
    """

    def __init__(self, factory, workflow, live_key, clock=time.monotonic):
        self.factory = factory
        self.workflow = workflow
        self.live_key = live_key
        self.lock = threading.Lock()
        self.arrivals = 0
        self.overlay = {}  # key -> status, for runs whose status churn changed
        self.events = []  # (key, old status or None for an arrival, new status)
        self._lists = None  # status -> ascending keys of the runs with that status
        # Clock mode (every_ms=...): arrivals and finishes fall due by the clock and
        # happen, in time order, at the next request or history read.
        try:
            self.directives = parse_workflow_id(live_key)[1]
        except DirectiveError:
            self.directives = Directives()
        self._clock = clock
        self._started = clock()
        self._ticks = 0  # ticks of the clock that brought their arrivals
        self._finishing = collections.deque()  # (key, due), in due order

    def _base(self, status):
        return self.factory.indexes_with_status(self.workflow, status)

    def _status_of(self, key):
        status = self.overlay.get(key)
        if status is None:
            status = "running" if key < 0 else self.factory.base_status(self.workflow, key)
        return status

    def _size(self, status):
        if status is None:
            return self.arrivals + self.workflow.count
        if self._lists is not None:
            return len(self._lists[status])
        return (self.arrivals if status == "running" else 0) + len(self._base(status))

    def _keys(self, status, start, end):
        """The keys at positions start..end-1 of the listing under `status`."""
        if status is None:
            return list(range(start - self.arrivals, end - self.arrivals))
        if self._lists is not None:
            return self._lists[status][start:end]
        prefix = self.arrivals if status == "running" else 0
        keys = [p - self.arrivals for p in range(start, min(end, prefix))]
        return keys + self._base(status)[max(start, prefix) - prefix:max(end, prefix) - prefix]

    def _build_lists(self):
        self._lists = {status: list(self._base(status)) for status in STATUSES}
        self._lists["running"][:0] = range(-self.arrivals, 0)

    def advance(self, arrivals, churn):
        """One request's events: `arrivals` new runs, then `churn` status changes.

        Which runs change, and to what, depends only on the seed, the id and the
        event's number, so the same sequence of requests gives the same changes.
        Returns the version after them.
        """
        with self.lock:
            self._follow_clock()
            for _ in range(arrivals):
                self._arrive()
            total = self.arrivals + self.workflow.count
            for _ in range(churn if total else 0):
                digest = self.factory._digest(
                    self.workflow.name, "churn", self.live_key, len(self.events))
                key = int.from_bytes(digest[:8], "big") % total - self.arrivals
                old = self._status_of(key)
                self._change(key, old, [s for s in STATUSES if s != old][digest[8] % (len(STATUSES) - 1)])
            return len(self.events)

    def _arrive(self):
        """One run arrives at the head; returns its key."""
        self.arrivals += 1
        key = -self.arrivals
        if self._lists is not None:
            self._lists["running"].insert(0, key)
        self.events.append((key, None, "running"))
        return key

    def _change(self, key, old, new):
        if self._lists is None:
            self._build_lists()
        keys = self._lists[old]
        del keys[bisect.bisect_left(keys, key)]
        bisect.insort(self._lists[new], key)
        self.overlay[key] = new
        self.events.append((key, old, new))

    def _finish(self, key):
        """A run of the clock finishes: success, or failure one time in four (seeded)."""
        if self._status_of(key) != "running":
            return  # churn moved it on already
        digest = self.factory._digest(self.workflow.name, "finish", self.live_key, key)
        self._change(key, "running", "failure" if digest[0] % 4 == 0 else "success")

    def _follow_clock(self):
        """The arrivals and finishes that fell due since the last look, in time order."""
        every_ms = self.directives.every_ms
        if not every_ms:
            return
        directives, now = self.directives, self._clock()
        while True:
            arrival = math.inf
            if directives.ticks is None or self._ticks < directives.ticks:
                arrival = self._started + (self._ticks + 1) * every_ms / 1000
            finish = self._finishing[0][1] if self._finishing else math.inf
            if min(arrival, finish) > now:
                return
            if finish <= arrival:
                self._finish(self._finishing.popleft()[0])
                continue
            self._ticks += 1
            for _ in range(directives.burst):
                key = self._arrive()
                if directives.finish_ms is not None:
                    self._finishing.append((key, arrival + directives.finish_ms / 1000))

    def page(self, status, offset, limit):
        """(items, has_more): the page as it is at this moment."""
        with self.lock:
            size = self._size(status)
            keys = self._keys(status, offset, min(offset + limit, size)) if offset < size else []
            pairs = [(key, self.overlay.get(key)) for key in keys]
        items = []
        for key, status_now in pairs:
            if key < 0:
                items.append(self.factory.live_run(
                    self.workflow, self.live_key, -key - 1, status_now or "running"))
            else:
                items.append(self.factory.run(self.workflow, key, status_now))
        return items, offset + len(items) < size

    def history(self, status, since):
        """(version, throughout, any) as run ids in listing order, for the window from
        version `since` to now; with `since` None, (version, present now, None)."""
        with self.lock:
            self._follow_clock()
            version = len(self.events)
            current = self._keys(status, 0, self._size(status))
            if since is not None:
                if since > version:
                    raise ValueError(
                        f'invalid since "{since}": expected at most the current version {version}')
                window = self.events[since:]
                at_start = set(current)
                for key, old, new in reversed(window):
                    if status is None:
                        if old is None:
                            at_start.discard(key)
                    else:
                        if new == status:
                            at_start.discard(key)
                        if old == status:
                            at_start.add(key)
                joined = {key for key, old, new in window
                          if (old is None if status is None else new == status)}
                left = {key for key, old, new in window if status is not None and old == status}
        run_id = self.factory.run_id
        ids = lambda keys: [run_id(self.workflow, self.live_key, key) for key in keys]
        if since is None:
            return version, ids(current), None
        return version, ids(sorted(at_start - left)), ids(sorted(at_start | joined))


# ---------------------------------------------------------------------- directives

FAULTS = (
    "invalid_json", "wrong_shape", "html", "short", "reset", "drip",
    "silent", "huge", "empty_has_more", "stuck_offset", "redirect",
)
# Faults that stand in for the API itself: no token check, no workflow lookup.
FRONT_FAULTS = ("status", "html", "redirect", "silent")
# Faults that replace the body of a 200 page.
PAGE_FAULTS = ("invalid_json", "wrong_shape", "empty_has_more", "stuck_offset", "huge")
# Faults that change how any answer travels.
TRANSPORT_FAULTS = ("drip", "short", "reset")

INTEGER_DIRECTIVES = {
    # key: (lowest, highest, what the message says is expected)
    "latency": (0, 600_000, "milliseconds from 0 to 600000"),
    "status": (200, 599, "an HTTP status from 200 to 599"),
    "retry_after_date": (-10**9, 10**9, "an integer number of seconds"),
    "times": (0, 10**9, "an integer >= 0"),
    "live": (0, 10_000, "an integer from 0 to 10000"),
    "churn": (0, 10_000, "an integer from 0 to 10000"),
    "jitter": (0, 600_000, "milliseconds from 0 to 600000"),
    "huge_bytes": (1024, 2**40, "an integer from 1024 to 2^40"),
    "drip_ms": (0, 60_000, "milliseconds from 0 to 60000"),
    "every_ms": (1, 3_600_000, "milliseconds from 1 to 3600000"),
    "burst": (1, 10_000, "an integer from 1 to 10000"),
    "ticks": (1, 10**9, "an integer >= 1"),
    "finish_ms": (0, 3_600_000, "milliseconds from 0 to 3600000"),
}
# Directives of the clock mode that mean nothing without every_ms.
CLOCK_DIRECTIVES = ("burst", "ticks", "finish_ms")
DIRECTIVE_KEYS = set(INTEGER_DIRECTIVES) | {"n", "fault", "retry_after"}


class DirectiveError(ValueError):
    pass


@dataclass
class Directives:
    latency: int = 0
    fault: str = None  # "status" for status=CODE, else one of FAULTS
    status: int = None
    retry_after: str = None
    retry_after_date: int = None
    times: int = None
    live: int = 0
    churn: int = 0
    jitter: int = 0
    huge_bytes: int = DEFAULT_HUGE_BYTES
    drip_ms: int = DEFAULT_DRIP_MS
    every_ms: int = None
    burst: int = 1
    ticks: int = None
    finish_ms: int = None


def parse_workflow_id(workflow_id):
    """Split `name;key=value;...` into the workflow name and its directives.

    An id whose `;` parts are not all `known_key=value` is an ordinary (unknown)
    id, so arbitrary ids still answer 404; a known key with a bad value raises
    DirectiveError, so a typo in a test fails loudly instead of passing unnoticed.
    """
    name, sep, rest = workflow_id.partition(";")
    directives = Directives()
    if not sep:
        return name, directives
    parts = rest.split(";")
    pairs = [part.partition("=") for part in parts]
    if any(not eq or key not in DIRECTIVE_KEYS for key, eq, _ in pairs):
        return workflow_id, directives
    for part, (key, _, value) in zip(parts, pairs):
        if key in INTEGER_DIRECTIVES:
            low, high, expected = INTEGER_DIRECTIVES[key]
            if not re.fullmatch(r"-?[0-9]{1,15}", value) or not low <= int(value) <= high:
                raise DirectiveError(f'invalid sandbox directive "{part}": expected {expected}')
            setattr(directives, key, int(value))
        elif key == "fault":
            if value not in FAULTS:
                raise DirectiveError(
                    f'invalid sandbox directive "{part}": expected one of {", ".join(FAULTS)}')
            directives.fault = value
        elif key == "retry_after":
            # Sent verbatim, so a test can also try a malformed Retry-After.
            if not value or not value.isprintable() or not value.isascii():
                raise DirectiveError(f'invalid sandbox directive "{part}": expected a header value')
            directives.retry_after = value
    keys = {key for key, _, _ in pairs}
    if "status" in keys and "fault" in keys:
        raise DirectiveError("invalid sandbox directives: status and fault cannot be combined")
    if "retry_after" in keys and "retry_after_date" in keys:
        raise DirectiveError(
            "invalid sandbox directives: retry_after and retry_after_date cannot be combined")
    if "every_ms" not in keys and any(key in keys for key in CLOCK_DIRECTIVES):
        raise DirectiveError(
            "invalid sandbox directives: burst, ticks and finish_ms need every_ms")
    if directives.status is not None:
        directives.fault = "status"
    return name, directives


# ---------------------------------------------------------------------- state


class RequestLog:
    """Entries in arrival order, in memory (the newest ones) and in an optional file."""

    def __init__(self, path):
        self._entries = []
        self._seq = 0
        self._lock = threading.Lock()
        self._fd = None
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, entry):
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
            if len(self._entries) > LOG_MEMORY_ENTRIES:
                del self._entries[: len(self._entries) - LOG_MEMORY_ENTRIES]
            if self._fd is not None:
                line = (json.dumps(entry, sort_keys=True) + "\n").encode("ascii")
                while line:  # one write per line almost always; loop for partial writes
                    line = line[os.write(self._fd, line):]

    def since(self, seq):
        with self._lock:
            return [e for e in self._entries if e["seq"] > seq]

    def close(self):
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class Counters:
    """Per-key counts that must survive across connections: attempts and live arrivals."""

    def __init__(self):
        self._counts = {}
        self._lock = threading.Lock()

    def add(self, key, amount=1):
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount
            return self._counts[key]


# ---------------------------------------------------------------------- answers


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = None
    fault: str = None
    transport: str = None  # None, or "drip", "short", "reset", "silent", "huge"
    drip_ms: int = DEFAULT_DRIP_MS
    huge: tuple = None  # (size, limit, offset) for the huge fault
    render: object = None  # for a page: makes `body` when the page is taken (after jitter)


@dataclass
class ApiRequest:
    """What the answer to an API request depends on."""

    request_id: str
    raw_path: str
    raw_query: str
    query: dict
    auth: str  # "valid", "invalid" or "missing"
    workflow_id: str = None  # the decoded path segment, directives included
    name: str = None  # the workflow id without its directives
    directives: Directives = None
    version: int = None  # the id's event version after this request's events
    jitter_ms: int = None


def dumps(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def reason(status):
    try:
        return http.HTTPStatus(status).phrase.lower()
    except ValueError:
        return "unknown status"


def envelope(status, message, request_id, headers=None):
    body = dumps({"code": status, "message": message, "requestId": request_id})
    return Answer(status, body, headers=headers)


def page_body(items, has_more, limit, offset, request_id):
    return dumps({
        "code": 200,
        "data": {"hasMore": has_more, "items": items, "limit": limit, "offset": offset},
        "message": "success",
        "requestId": request_id,
    })


def html_error_page():
    return (
        b"<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n"
        b"<body>\n<center><h1>502 Bad Gateway</h1></center>\n"
        b"<hr><center>nginx</center>\n</body>\n</html>\n"
    )


def huge_body_chunks(size, run, limit, offset, request_id):
    """Yield exactly `size` bytes of valid JSON (one run repeated) without holding it all."""
    item = dumps(run)
    head = b'{"code":200,"data":{"hasMore":false,"items":[' + item
    tail = (b'],"limit":%d,"offset":%d},"message":"success","requestId":"' % (limit, offset)
            + request_id.encode("ascii") + b'"}')
    unit = b"," + item
    repeats, padding = divmod(max(0, size - len(head) - len(tail)), len(unit))
    per_chunk = max(1, 65536 // len(unit))
    chunk = unit * per_chunk
    yield head
    while repeats >= per_chunk:
        yield chunk
        repeats -= per_chunk
    yield unit * repeats + b" " * padding + tail


def parse_query(raw_query):
    query = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(key, value)  # like most servers, the first of repeated values counts
    return query


def parse_page_params(query):
    """(limit, offset, status) from the query, or raise ValueError naming the parameter."""
    limit_text = query.get("limit")
    limit = DEFAULT_LIMIT
    if limit_text is not None:
        if not re.fullmatch(r"[0-9]{1,20}", limit_text) or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise ValueError(
                f'invalid limit "{limit_text}": expected an integer from 1 to {MAX_LIMIT}')
        limit = int(limit_text)
    offset_text = query.get("offset")
    offset = 0
    if offset_text is not None:
        if not re.fullmatch(r"[0-9]{1,20}", offset_text) or int(offset_text) > MAX_OFFSET:
            raise ValueError(f'invalid offset "{offset_text}": expected an integer >= 0')
        offset = int(offset_text)
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f'invalid status "{status}": expected one of {", ".join(STATUSES)}')
    return limit, offset, status


def accepts_gzip(accept_encoding):
    """True when Accept-Encoding allows gzip (explicitly or through `*`) with q > 0."""
    if not accept_encoding:
        return False
    weights = {}
    for part in accept_encoding.split(","):
        coding, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[coding.lower()] = q
    if "gzip" in weights:
        return weights["gzip"] > 0
    return weights.get("*", 0) > 0


def canonical_header(name):
    return "-".join(word.capitalize() for word in name.split("-"))


# ---------------------------------------------------------------------- HTTP


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "workflows-sandbox/1.0"
    # Each answer goes out as two writes (head, body); with Nagle's algorithm the
    # second waits for the client's delayed ACK, adding ~40 ms to every kept-alive
    # request.
    disable_nagle_algorithm = True

    def setup(self):
        self.connection_number = self.server.connections.add("connections")
        context = self.server.ssl_context
        if context is not None:
            self.request.settimeout(HANDSHAKE_TIMEOUT)
            self.request = context.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()

    def finish(self):
        super().finish()
        if self.server.ssl_context is not None:
            # wrap_socket detached the socket the server would close, so close ours.
            try:
                self.request.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.request.close()

    def handle(self):
        try:
            super().handle()
        except OSError:
            pass  # the client went away (or failed TLS); there is nobody to answer

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        pass  # the request log replaces http.server's stderr lines

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (malformed requests) in the API's envelope."""
        self.close_connection = True
        request_id = new_request_id()
        answer = envelope(code, message or reason(code), request_id)
        self._write_head(answer, request_id, len(answer.body), gzipped=False)
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(answer.body)

    # -- routing

    def _dispatch(self):
        self._head_sent = False
        self._discard_request_body()
        raw_path, _, raw_query = self.path.partition("?")
        if raw_path == "/_sandbox/log" and self.command == "GET":
            self._serve_log(raw_query)
        elif raw_path == "/_sandbox/history" and self.command == "GET":
            self._serve_history(raw_query)
        elif raw_path.startswith("/_sandbox/"):
            request_id = new_request_id()
            self._send(envelope(404, "not found", request_id), request_id)
        else:
            try:
                self._serve_api(raw_path, raw_query)
            except OSError:
                raise  # the client went away: handle() ends the connection quietly
            except Exception:  # a bug here must still answer, and show in the server's stderr
                traceback.print_exc()
                self.close_connection = True
                if not self._head_sent:
                    request_id = new_request_id()
                    self._send(envelope(500, "internal server error", request_id), request_id)

    def _discard_request_body(self):
        """Read a request body nobody wants so that the connection stays in step."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
        elif length is not None:
            if length.isdigit() and int(length) <= MAX_DISCARDED_BODY:
                self.rfile.read(int(length))
            else:
                self.close_connection = True

    def _serve_log(self, raw_query):
        request_id = new_request_id()
        since_text = parse_query(raw_query).get("since", "0")
        if not re.fullmatch(r"[0-9]{1,20}", since_text):
            message = f'invalid since "{since_text}": expected an integer >= 0'
            answer = envelope(400, message, request_id)
        else:
            entries = self.server.request_log.since(int(since_text))
            answer = Answer(200, json.dumps({"entries": entries}, sort_keys=True).encode("ascii"))
        self._send(answer, request_id)

    def _serve_history(self, raw_query):
        request_id = new_request_id()
        query = parse_query(raw_query)
        try:
            answer = Answer(200, dumps(self._history(query)))
        except LookupError as error:
            answer = envelope(404, error.args[0], request_id)
        except ValueError as error:
            answer = envelope(400, str(error), request_id)
        self._send(answer, request_id)

    def _history(self, query):
        """The body of a history answer; ValueError (400) or LookupError (404)."""
        workflow_id = query.get("workflow")
        if workflow_id is None:
            raise ValueError("missing workflow: expected workflow=<id with its directives>")
        name, _ = parse_workflow_id(workflow_id)  # DirectiveError is a ValueError: 400
        workflow = WORKFLOWS.get(name)
        if workflow is None:
            raise LookupError("workflow not found")
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise ValueError(f'invalid status "{status}": expected one of {", ".join(STATUSES)}')
        since_text = query.get("since")
        since = None
        if since_text is not None:
            if not re.fullmatch(r"[0-9]{1,20}", since_text):
                raise ValueError(f'invalid since "{since_text}": expected an integer >= 0')
            since = int(since_text)
        version, throughout, anytime = self.server.state(workflow, workflow_id).history(
            status, since)
        body = {"workflow": workflow_id, "status": status, "version": version}
        if since is None:
            body["present"] = throughout
        else:
            body.update(since=since, throughout=throughout, any=anytime)
        return body

    def _serve_api(self, raw_path, raw_query):
        arrived = time.time()
        request = ApiRequest(new_request_id(), raw_path, raw_query, parse_query(raw_query),
                             self._auth_state())
        match = RUNS_PATH.match(raw_path)
        if match:
            request.workflow_id = unquote_to_bytes(match.group(1)).decode("utf-8", "replace")
        latency = self.server.latency_ms
        if self.command != "GET":
            answer = envelope(405, "method not allowed", request.request_id, {"Allow": "GET"})
        elif request.workflow_id is None:
            answer = envelope(404, "not found", request.request_id)
        else:
            try:
                request.name, request.directives = parse_workflow_id(request.workflow_id)
            except DirectiveError as error:
                answer = envelope(400, str(error), request.request_id)
            else:
                latency += request.directives.latency
                answer = self._answer_runs(request)
        self._log(arrived, request, answer)
        # Events happened on arrival (in _answer_runs); jitter then delays the moment
        # the page is taken, so that concurrent pages are taken in any order, and
        # latency delays the answer after that.
        if request.jitter_ms and self.server.stopping.wait(request.jitter_ms / 1000):
            self.close_connection = True
            return
        if answer.render is not None:
            answer.body = answer.render()
        if latency and self.server.stopping.wait(latency / 1000):
            self.close_connection = True
            return
        self._send(answer, request.request_id)

    def _auth_state(self):
        values = self.headers.get_all("Authorization") or []
        if not values:
            return "missing"
        scheme, _, credentials = values[0].partition(" ")
        if len(values) == 1 and scheme.lower() == "bearer" and credentials == self.server.token:
            return "valid"
        return "invalid"

    def _answer_runs(self, request):
        server, directives = self.server, request.directives
        workflow = WORKFLOWS.get(request.name)
        state = None
        if workflow is not None:
            state = server.state(workflow, request.workflow_id)
            request.version = state.advance(directives.live, directives.churn)
        if directives.jitter:
            number = server.request_numbers.add(request.workflow_id)
            digest = server.factory._digest(request.name, "jitter", request.workflow_id, number)
            request.jitter_ms = int.from_bytes(digest[:4], "big") % (directives.jitter + 1)
        fault = directives.fault
        if directives.times is not None:
            attempt = server.attempts.add(request.workflow_id + "?" + request.raw_query)
            if attempt > directives.times:
                fault = None

        if fault in FRONT_FAULTS:
            return self._front_fault(fault, request)
        answer = self._answer_listing(request, fault, state)
        if fault in TRANSPORT_FAULTS:
            answer.fault = answer.transport = fault
            answer.drip_ms = directives.drip_ms
        return answer

    def _front_fault(self, fault, request):
        directives, request_id = request.directives, request.request_id
        if fault == "silent":
            return Answer(0, fault="silent", transport="silent")
        if fault == "redirect":
            scheme = "https" if self.server.ssl_context else "http"
            location = f"{scheme}://127.0.0.2:{self.server.server_port}{self.path}"
            answer = envelope(302, "found", request_id, {"Location": location})
        elif fault == "html":
            answer = Answer(502, html_error_page(), "text/html; charset=utf-8", headers={})
        else:
            answer = envelope(directives.status, reason(directives.status), request_id, {})
        if directives.retry_after is not None:
            answer.headers["Retry-After"] = directives.retry_after
        elif directives.retry_after_date is not None:
            answer.headers["Retry-After"] = email.utils.formatdate(
                time.time() + directives.retry_after_date, usegmt=True)
        answer.fault = fault
        return answer

    def _answer_listing(self, request, fault, state):
        """The API's own answer: 401, 404, 400 or a page (which a page fault may replace)."""
        request_id = request.request_id
        if request.auth != "valid":
            message, challenge = {
                "missing": ("missing bearer token", "Bearer"),
                "invalid": ("invalid bearer token", 'Bearer error="invalid_token"'),
            }[request.auth]
            return envelope(401, message, request_id, {"WWW-Authenticate": challenge})
        if state is None:
            return envelope(404, "workflow not found", request_id)
        try:
            limit, offset, status = parse_page_params(request.query)
        except ValueError as error:
            return envelope(400, str(error), request_id)
        if fault == "stuck_offset":
            offset = 0

        def render():
            items, has_more = state.page(status, offset, limit)
            if fault == "empty_has_more":
                items, has_more = [], True
            body = page_body(items, has_more, limit, offset, request_id)
            if fault == "invalid_json":
                return body[: len(body) * 2 // 3]  # any proper prefix of an object is invalid
            if fault == "wrong_shape":
                shaped = {run["id"]: run for run in items} or {"count": 0}
                return page_body(shaped, has_more, limit, offset, request_id)
            return body

        answer = Answer(200)
        if fault == "huge":
            answer.transport = "huge"
            answer.huge = (request.directives.huge_bytes, limit, offset)
        else:
            answer.render = render
        if fault in PAGE_FAULTS:
            answer.fault = fault
        return answer

    # -- the log

    def _log(self, arrived, request, answer):
        mask = self.server.mask
        headers = {}
        for header_name, value in self.headers.items():
            header_name = canonical_header(header_name)
            if header_name == "Authorization":
                scheme, space, _ = value.partition(" ")
                value = scheme + " ***" if space else "***"
            value = mask(value)
            if header_name in headers:
                value = headers[header_name] + ", " + value
            headers[header_name] = value
        workflow_id = request.workflow_id
        self.server.request_log.append({
            "method": self.command,
            "raw_path": mask(self.path),
            "path": mask(unquote(request.raw_path, errors="replace")),
            "workflow_id": None if workflow_id is None else mask(workflow_id),
            "query": {mask(k): mask(v) for k, v in request.query.items()},
            "headers": headers,
            "auth": request.auth,
            "connection": self.connection_number,
            "status": answer.status or None,
            "fault": answer.fault,
            "request_id": request.request_id,
            "ts": arrived,
            "version": request.version,
            "jitter_ms": request.jitter_ms,
        })

    # -- sending

    def _write_head(self, answer, request_id, content_length, gzipped):
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(content_length))
        self.send_header("X-Request-Id", request_id)
        self.send_header("Vary", "Accept-Encoding")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        for header_name, value in (answer.headers or {}).items():
            self.send_header(header_name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._head_sent = True

    def _send(self, answer, request_id):
        transport = answer.transport
        if transport == "silent":
            self.server.stopping.wait()  # never answer; return only so that shutdown is quick
            self.close_connection = True
            return
        if transport == "huge":
            self._send_huge(answer, request_id)
            return
        body = answer.body
        if answer.status in (204, 304):
            body = b""
        gzipped = bool(body) and accepts_gzip(self.headers.get("Accept-Encoding"))
        if gzipped:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        if transport in ("short", "reset"):
            self.close_connection = True
        self._write_head(answer, request_id, len(body), gzipped)
        if self.command == "HEAD" or not body:
            return
        if transport is None:
            self.wfile.write(body)
        elif transport == "drip":
            self._drip(body, answer.drip_ms)
        elif transport == "short":
            self.wfile.write(body[: len(body) // 2])
        elif transport == "reset":
            self.wfile.write(body[: len(body) // 2])
            time.sleep(0.05)  # let the partial body reach the client before the reset
            self._reset_connection()

    def _drip(self, body, interval_ms):
        for position in range(len(body)):
            self.wfile.write(body[position:position + 1])
            if position + 1 < len(body) and self.server.stopping.wait(interval_ms / 1000):
                self.close_connection = True
                return

    def _send_huge(self, answer, request_id):
        size, limit, offset = answer.huge
        run = self.server.factory.run(WORKFLOWS["wf_demo"], 0)
        self._write_head(answer, request_id, size, gzipped=False)
        for chunk in huge_body_chunks(size, run, limit, offset, request_id):
            self.wfile.write(chunk)

    def _reset_connection(self):
        """Close with SO_LINGER 0, so the client gets a TCP RST instead of a FIN."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drops the makefile reference that would keep the socket open
        self.connection.close()


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, *, token, latency_ms, seed, ssl_context, log_path):
        self.token = token
        self.latency_ms = latency_ms
        self.factory = RunFactory(seed)
        self.ssl_context = ssl_context
        self.request_log = RequestLog(log_path)
        self.attempts = Counters()
        self.request_numbers = Counters()
        self._states = {}
        self._states_lock = threading.Lock()
        self.connections = Counters()
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)

    def server_bind(self):
        # HTTPServer.server_bind would resolve our own name (getfqdn), which can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def state(self, workflow, workflow_id):
        """The LiveState of a decoded id, made on first use."""
        with self._states_lock:
            state = self._states.get(workflow_id)
            if state is None:
                state = self._states[workflow_id] = LiveState(self.factory, workflow, workflow_id)
            return state

    def mask(self, text):
        return text.replace(self.token, "***")

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):
            return  # clients that vanish or fail the TLS handshake are not server errors
        super().handle_error(request, client_address)


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        check=True, timeout=10,
    )
    return cert, key


def make_client_certificates(directory, password):
    """For --client-ca: a CA the server trusts for client certificates, a client
    certificate it signed (its key in the clear and encrypted with `password`), and a
    stranger's certificate signed by another CA. Returns {name: path}."""
    paths = {}

    def run(*args):
        subprocess.run(["openssl", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, check=True, timeout=10)

    def path(name):
        paths[name] = os.path.join(directory, name + ".pem")
        return paths[name]

    for ca in ("client-ca", "stranger-ca"):
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", path(ca + "-key"), "-out", path(ca), "-days", "30",
            "-subj", f"/CN=sandbox {ca}")
    for who, ca in (("client", "client-ca"), ("stranger", "stranger-ca")):
        run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", path(who + "-key"), "-out", path(who + "-csr"),
            "-subj", f"/CN=sandbox {who}")
        run("x509", "-req", "-in", paths[who + "-csr"], "-CA", paths[ca], "-CAkey",
            paths[ca + "-key"], "-CAcreateserial", "-out", path(who + "-cert"), "-days", "30")
    run("pkey", "-in", paths["client-key"], "-aes-128-cbc", "-passout", "pass:" + password,
        "-out", path("client-key-encrypted"))
    return paths


def parse_args(argv):
    parser = argparse.ArgumentParser(description="A local Workflows API for tests and demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every API answer")
    parser.add_argument("--seed", default=DEFAULT_SEED)
    parser.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate")
    parser.add_argument("--client-ca", action="store_true",
                        help="with --tls: require a client certificate signed by the "
                             "sandbox's own client CA (made at start-up)")
    parser.add_argument("--proxy", action="store_true",
                        help="run as a forward proxy (absolute-form requests and CONNECT) "
                             "instead of the API")
    parser.add_argument("--proxy-auth", metavar="USER:PASSWORD",
                        help="with --proxy: require this Basic Proxy-Authorization")
    parser.add_argument("--log", metavar="FILE",
                        help="append the request log to FILE as JSON lines")
    parser.add_argument("--watch-parent", action="store_true",
                        help="exit when the process that started the server dies")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token must not be empty")
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    if args.client_ca and not args.tls:
        parser.error("--client-ca needs --tls")
    if args.proxy_auth is not None and (not args.proxy or ":" not in args.proxy_auth):
        parser.error("--proxy-auth needs --proxy and the form USER:PASSWORD")
    if args.proxy and args.tls:
        parser.error("--proxy speaks plain HTTP to its clients: drop --tls")
    return args


def main(argv=None):
    args = parse_args(argv)
    stop_requested = []

    def request_stop(signum, frame):
        # Only a flag here: the main loop below does the rest outside the handler.
        stop_requested.append(signum)

    # A signal also writes to this pipe, which wakes the main loop's select at once.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    parent = os.getppid()

    cert_dir = None
    ssl_context = None
    if args.proxy:
        return serve_proxy(args, stop_requested, wake_read, parent)
    try:
        if args.tls:
            cert_dir = tempfile.mkdtemp(prefix="workflows-sandbox-")
            cert, key = make_certificate(cert_dir)
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(cert, key)
            ssl_context.set_alpn_protocols(["http/1.1"])
            if args.client_ca:
                client_files = make_client_certificates(cert_dir, CLIENT_KEY_PASSWORD)
                ssl_context.verify_mode = ssl.CERT_REQUIRED
                ssl_context.load_verify_locations(client_files["client-ca"])
        server = SandboxServer((args.host, args.port), token=args.token, latency_ms=args.latency_ms,
                               seed=args.seed, ssl_context=ssl_context, log_path=args.log)
        thread = threading.Thread(target=server.serve_forever, args=(SERVE_POLL,), daemon=True)
        thread.start()
        host = server.server_address[0]
        if ":" in host:
            host = f"[{host}]"
        lines = f"listening {'https' if args.tls else 'http'}://{host}:{server.server_port}\n"
        if args.tls:
            lines += f"certificate {cert}\n"
        if args.client_ca:
            for name in ("client-cert", "client-key", "client-key-encrypted", "stranger-cert",
                         "stranger-key"):
                lines += f"{name} {client_files[name]}\n"
            lines += f"client-key-password {CLIENT_KEY_PASSWORD}\n"
        sys.stdout.write(lines)  # one write, so a reader never sees the first line alone
        sys.stdout.flush()

        while not stop_requested:
            select.select([wake_read], [], [], PARENT_POLL)
            if args.watch_parent and os.getppid() != parent:
                break
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.request_log.close()
    finally:
        if cert_dir is not None:
            shutil.rmtree(cert_dir, ignore_errors=True)
    return 0


def serve_proxy(args, stop_requested, wake_read, parent):
    """--proxy: the forward proxy until a signal (or the parent's end) stops it."""
    request_log = RequestLog(args.log)
    server = ProxyServer((args.host, args.port), credentials=args.proxy_auth,
                         request_log=request_log)
    thread = threading.Thread(target=server.serve_forever, args=(SERVE_POLL,), daemon=True)
    thread.start()
    host = server.server_address[0]
    if ":" in host:
        host = f"[{host}]"
    sys.stdout.write(f"listening http://{host}:{server.server_address[1]}\n")
    sys.stdout.flush()
    while not stop_requested:
        select.select([wake_read], [], [], PARENT_POLL)
        if args.watch_parent and os.getppid() != parent:
            break
    server.shutdown()
    server.server_close()
    request_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
