"""Tests for sandbox/server.py, each over real HTTP against a server subprocess.

Run with: python3 -m unittest discover -s sandbox -p 'test_*.py' -v
"""

import email.utils
import gzip
import http.client
import json
import os
import re
import selectors
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from urllib.parse import quote, urlencode

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")
TOKEN = "sandbox-token"
STATUSES = ["running", "success", "failure", "waiting", "cancelled"]
RUN_FIELDS = sorted([
    "finishedAt", "id", "isDustTest", "isSimulation", "sourceRunId", "startedAt", "status",
    "totalCu", "triggerSource", "triggeredBy", "workflowId", "workflowVersion",
])
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
REQUEST_ID = re.compile(r"^req_[0-9a-f]+$")


def read_lines(stream, count, timeout):
    """The first `count` lines of a child's stdout, or fewer if it ends or the time runs out."""
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while data.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines()[:count]


def process_gone(pid):
    """True once `pid` has exited, counting an unreaped zombie as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Sandbox:
    """One server process on a free port."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", *args], stdout=subprocess.PIPE)
        self.lines = read_lines(self.process.stdout, 2 if "--tls" in args else 1, timeout=10)
        if not self.lines or not self.lines[0].startswith("listening "):
            self.stop()
            raise RuntimeError(f"sandbox did not start: {self.lines!r}")
        self.url = self.lines[0].split()[1]
        self.host, port = self.url.split("//")[1].rsplit(":", 1)
        self.port = int(port)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        return self.process.returncode

    def connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(self, path, token=TOKEN, headers=None, method="GET", body=None, connection=None):
        """(status, headers, body bytes) of one request; the body is left as sent (maybe gzip)."""
        own = connection is None
        connection = connection or self.connection()
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            if own:
                connection.close()

    def get_json(self, path, **kwargs):
        status, headers, body = self.request(path, **kwargs)
        return status, headers, json.loads(body)

    def log(self, since=0):
        status, _, body = self.request(f"/_sandbox/log?since={since}", token=None)
        assert status == 200, status
        return json.loads(body)["entries"]

    def last_seq(self):
        entries = self.log()
        return entries[-1]["seq"] if entries else 0

    def raw_socket(self, path, extra=""):
        """A socket that has sent a GET for `path`; the caller reads the answer."""
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n{extra}\r\n".encode())
        return sock


def runs_path(workflow_id, **query):
    path = "/v1/workflows/" + quote(workflow_id, safe="") + "/runs"
    return path + "?" + urlencode(query) if query else path


def history_path(workflow_id, status=None, since=None):
    query = {"workflow": workflow_id}
    if status is not None:
        query["status"] = status
    if since is not None:
        query["since"] = since
    return "/_sandbox/history?" + urlencode(query)


def ids(runs):
    return [run["id"] for run in runs]


def run_is_consistent(run):
    """finishedAt is null exactly while running or waiting; totalCu is 0 while waiting."""
    open_ = run["status"] in ("running", "waiting")
    return ((run["finishedAt"] is None) == open_
            and (run["status"] != "waiting" or run["totalCu"] == 0))


def read_head(sock):
    """(status, headers with lower-case names, bytes already read past the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed inside the head: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


class ServerTestCase(unittest.TestCase):
    """Starts one server for the whole class; `server_args` adds flags."""

    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.sandbox = Sandbox(*cls.server_args)
        cls.addClassCleanup(cls.sandbox.stop)

    def unique(self, workflow_id):
        """`workflow_id` with an `n=` directive naming this test, so counters start afresh."""
        return f"{workflow_id};n={self.id()}"

    def history(self, workflow_id, status=None, since=None):
        status_code, _, body = self.sandbox.get_json(
            history_path(workflow_id, status, since), token=None)
        self.assertEqual(status_code, 200, body)
        return body

    def page(self, workflow_id, **query):
        status, _, body = self.sandbox.get_json(runs_path(workflow_id, **query))
        self.assertEqual(status, 200, body)
        return body["data"]

    def walk(self, workflow_id, **query):
        runs, offset = [], 0
        while True:
            path = runs_path(workflow_id, limit=100, offset=offset, **query)
            status, _, page = self.sandbox.get_json(path)
            self.assertEqual(status, 200)
            runs.extend(page["data"]["items"])
            if not page["data"]["hasMore"]:
                return runs
            offset += 100


class StartupTests(unittest.TestCase):
    def start(self, *args):
        sandbox = Sandbox(*args)
        self.addCleanup(sandbox.stop)
        return sandbox

    def test_ready_line_names_the_bound_url(self):
        sandbox = self.start()
        self.assertRegex(sandbox.lines[0], r"^listening http://127\.0\.0\.1:\d+$")
        self.assertNotEqual(sandbox.port, 0)
        self.assertEqual(sandbox.request(runs_path("wf_empty"))[0], 200)

    def test_big_listings_cost_nothing_at_start(self):
        started = time.monotonic()
        sandbox = self.start()
        self.assertLess(time.monotonic() - started, 2.0)
        started = time.monotonic()
        status, _, page = sandbox.get_json(runs_path("wf_huge", offset=199_999))
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertEqual(status, 200)
        self.assertEqual((len(page["data"]["items"]), page["data"]["hasMore"]), (1, False))

    def test_sigterm_exits_zero_quickly_with_silent_and_drip_connections_open(self):
        sandbox = self.start()
        silent = sandbox.raw_socket(runs_path("wf_demo;fault=silent"))
        drip = sandbox.raw_socket(runs_path("wf_demo;fault=drip"))
        self.addCleanup(silent.close)
        self.addCleanup(drip.close)
        self.assertEqual(read_head(drip)[0], 200)
        started = time.monotonic()
        sandbox.process.send_signal(signal.SIGTERM)
        self.assertEqual(sandbox.process.wait(5), 0)
        self.assertLess(time.monotonic() - started, 1.5)

    def test_sigint_exits_zero(self):
        sandbox = self.start()
        sandbox.process.send_signal(signal.SIGINT)
        self.assertEqual(sandbox.process.wait(5), 0)

    def test_watch_parent_exits_when_the_parent_dies(self):
        command = (f"{shlex.quote(sys.executable)} {shlex.quote(SERVER)} --port 0 --watch-parent &"
                   ' echo "pid $!"; exec sleep 60')
        parent = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE)
        self.addCleanup(parent.stdout.close)
        self.addCleanup(parent.wait)
        self.addCleanup(parent.kill)
        lines = read_lines(parent.stdout, 2, timeout=10)
        server_pid = int(next(line for line in lines if line.startswith("pid ")).split()[1])
        self.assertTrue(any(line.startswith("listening http://") for line in lines), lines)

        def kill_server_if_alive():
            if not process_gone(server_pid):
                os.kill(server_pid, signal.SIGKILL)

        self.addCleanup(kill_server_if_alive)
        self.assertFalse(process_gone(server_pid))
        parent.kill()
        parent.wait()
        self.assertTrue(wait_until(lambda: process_gone(server_pid), 3))


class DataTests(ServerTestCase):
    def test_page_has_the_documented_envelope_and_run_fields(self):
        status, headers, page = self.sandbox.get_json(runs_path("wf_demo", limit=5))
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(sorted(page), ["code", "data", "message", "requestId"])
        self.assertEqual((page["code"], page["message"]), (200, "success"))
        self.assertEqual(sorted(page["data"]), ["hasMore", "items", "limit", "offset"])
        self.assertEqual(len(page["data"]["items"]), 5)
        for run in page["data"]["items"]:
            self.assertEqual(sorted(run), RUN_FIELDS)

    def test_runs_have_realistic_values(self):
        runs = self.walk("wf_demo")
        ids = {run["id"] for run in runs}
        self.assertEqual(len(ids), 250)
        for run in runs:
            self.assertRegex(run["id"], r"^run_[0-9a-f]{16}$")
            self.assertEqual(run["workflowId"], "wf_demo")
            self.assertRegex(run["startedAt"], ISO_UTC)
            if run["status"] in ("running", "waiting"):
                self.assertIsNone(run["finishedAt"])
            else:
                self.assertRegex(run["finishedAt"], ISO_UTC)
                self.assertGreater(run["finishedAt"], run["startedAt"])
            self.assertIs(type(run["workflowVersion"]), int)
            self.assertIn(type(run["totalCu"]), (int, float))
            self.assertIn(run["triggerSource"], ("api", "schedule", "webhook", "manual"))
            self.assertRegex(run["triggeredBy"], r"^(user_[0-9a-f]+|schedule|webhook)$")
            self.assertIn(run["sourceRunId"], ids | {None})
        for flag in ("isSimulation", "isDustTest"):
            self.assertLess(sum(run[flag] for run in runs), 25)
        reruns = sum(run["sourceRunId"] is not None for run in runs)
        self.assertTrue(0 < reruns < 50, reruns)

    def test_runs_are_newest_first(self):
        started = [run["startedAt"] for run in self.walk("wf_demo")]
        self.assertEqual(started, sorted(started, reverse=True))
        self.assertEqual(len(set(started)), len(started))

    def test_total_cu_is_sent_as_integers_and_as_fractions(self):
        _, _, body = self.sandbox.request(runs_path("wf_demo", limit=100))
        self.assertRegex(body.decode(), r'"totalCu":\d+[,}]')
        self.assertRegex(body.decode(), r'"totalCu":\d+\.\d+[,}]')
        self.assertNotRegex(body.decode(), r'"totalCu":\d+\.0[,}]')

    def test_every_status_is_present_in_wf_demo(self):
        self.assertEqual({run["status"] for run in self.walk("wf_demo")}, set(STATUSES))

    def test_wf_demo_has_250_runs(self):
        _, _, page = self.sandbox.get_json(runs_path("wf_demo", limit=100, offset=200))
        self.assertEqual((len(page["data"]["items"]), page["data"]["hasMore"]), (50, False))

    def test_wf_empty_has_no_runs(self):
        _, _, page = self.sandbox.get_json(runs_path("wf_empty"))
        self.assertEqual(page["data"], {"hasMore": False, "items": [], "limit": 20, "offset": 0})

    def test_wf_big_has_20000_runs_and_has_more_is_exact(self):
        cases = [(19_899, 100, True), (19_900, 100, False), (19_999, 1, False), (20_000, 0, False)]
        for offset, count, has_more in cases:
            _, _, page = self.sandbox.get_json(runs_path("wf_big", limit=100, offset=offset))
            self.assertEqual((len(page["data"]["items"]), page["data"]["hasMore"]),
                             (count, has_more), offset)

    def test_limit_and_offset_default_to_20_and_0(self):
        _, _, page = self.sandbox.get_json(runs_path("wf_demo"))
        self.assertEqual((page["data"]["limit"], page["data"]["offset"]), (20, 0))
        self.assertEqual(len(page["data"]["items"]), 20)
        self.assertTrue(page["data"]["hasMore"])

    def test_limit_and_offset_are_echoed_and_select_that_slice(self):
        _, _, whole = self.sandbox.get_json(runs_path("wf_demo", limit=20))
        _, _, part = self.sandbox.get_json(runs_path("wf_demo", limit=7, offset=3))
        self.assertEqual((part["data"]["limit"], part["data"]["offset"]), (7, 3))
        self.assertEqual(part["data"]["items"], whole["data"]["items"][3:10])

    def test_status_filter_returns_every_run_of_that_status_and_no_other(self):
        runs = self.walk("wf_demo")
        for status in STATUSES:
            self.assertEqual(self.walk("wf_demo", status=status),
                             [run for run in runs if run["status"] == status], status)

    def test_status_filter_on_wf_big_is_fast_and_its_counts_add_up(self):
        def filtered_count(status):
            low, high = 0, 20_000  # the count is the smallest offset with an empty page
            while low < high:
                middle = (low + high) // 2
                path = runs_path("wf_big", status=status, limit=1, offset=middle)
                _, _, page = self.sandbox.get_json(path)
                if page["data"]["items"]:
                    self.assertEqual(page["data"]["items"][0]["status"], status)
                    low = middle + 1
                else:
                    high = middle
            return low

        started = time.monotonic()
        counts = {status: filtered_count(status) for status in STATUSES}
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(sum(counts.values()), 20_000, counts)
        _, _, page = self.sandbox.get_json(
            runs_path("wf_big", status="failure", limit=100, offset=counts["failure"] - 100))
        self.assertEqual((len(page["data"]["items"]), page["data"]["hasMore"]), (100, False))


class SeedTests(unittest.TestCase):
    def first_page(self, *args):
        sandbox = Sandbox(*args)
        self.addCleanup(sandbox.stop)
        return sandbox.get_json(runs_path("wf_big", limit=50, offset=1000))[2]["data"]

    def test_the_same_seed_gives_the_same_runs_and_another_seed_others(self):
        default = self.first_page()
        self.assertEqual(self.first_page(), default)
        self.assertEqual(self.first_page("--seed", "2026"), default)
        other = self.first_page("--seed", "7")
        self.assertEqual(len(other["items"]), 50)
        self.assertFalse({r["id"] for r in other["items"]} & {r["id"] for r in default["items"]})


class ValidationTests(ServerTestCase):
    def assert_error(self, path, status, message, token=TOKEN):
        code, headers, body = self.sandbox.get_json(path, token=token)
        self.assertEqual((code, body["code"], body["message"]), (status, status, message), path)
        self.assertEqual(sorted(body), ["code", "message", "requestId"])
        self.assertEqual(body["requestId"], headers["X-Request-Id"])
        return headers

    def test_limit_outside_1_to_100_or_not_an_integer_answers_400_naming_limit(self):
        for value in ["0", "101", "abc", "1.5", "-1", "", "1e2"]:
            self.assert_error(runs_path("wf_demo", limit=value), 400,
                              f'invalid limit "{value}": expected an integer from 1 to 100')

    def test_limit_1_and_100_are_accepted(self):
        for value in (1, 100):
            _, _, page = self.sandbox.get_json(runs_path("wf_demo", limit=value))
            self.assertEqual(len(page["data"]["items"]), value)

    def test_negative_or_non_integer_offset_answers_400_naming_offset(self):
        for value in ["-1", "1.5", "x", ""]:
            self.assert_error(runs_path("wf_demo", offset=value), 400,
                              f'invalid offset "{value}": expected an integer >= 0')

    def test_unknown_status_answers_400_listing_the_statuses(self):
        self.assert_error(runs_path("wf_demo", status="failed"), 400,
                          'invalid status "failed": expected one of '
                          "running, success, failure, waiting, cancelled")

    def test_missing_token_answers_401(self):
        headers = self.assert_error(runs_path("wf_demo"), 401, "missing bearer token", token=None)
        self.assertEqual(headers["WWW-Authenticate"], "Bearer")

    def test_wrong_token_answers_401(self):
        self.assert_error(runs_path("wf_demo"), 401, "invalid bearer token", token="nope")

    def test_the_bearer_scheme_is_case_insensitive(self):
        status, _, _ = self.sandbox.request(runs_path("wf_demo"), token=None,
                                            headers={"Authorization": f"bearer {TOKEN}"})
        self.assertEqual(status, 200)

    def test_unknown_workflow_answers_404_workflow_not_found(self):
        self.assert_error(runs_path("wf_nope"), 404, "workflow not found")

    def test_ids_of_any_bytes_answer_404_and_are_logged_decoded(self):
        ids = ["a/b", "..", "a b", "ünïcødé ✓", "x" * 10_240, "a;b", "%zz",
               "wf_demo/../wf_demo"]
        since = self.sandbox.last_seq()
        for workflow_id in ids:
            self.assert_error(runs_path(workflow_id), 404, "workflow not found")
        self.assertEqual([e["workflow_id"] for e in self.sandbox.log(since)], ids)

    def test_undecodable_bytes_in_an_id_are_replaced_in_the_log(self):
        since = self.sandbox.last_seq()
        self.assert_error("/v1/workflows/%FF%FEx/runs", 404, "workflow not found")
        self.assertEqual(self.sandbox.log(since)[0]["workflow_id"], "\ufffd\ufffdx")

    def test_other_paths_answer_404_not_found(self):
        paths = ["/", "/v1/workflows", "/v1/workflows/a/b/runs", "/v2/workflows/wf_demo/runs",
                 "/_sandbox/nope"]
        for path in paths:
            self.assert_error(path, 404, "not found")

    def test_other_methods_answer_405_and_keep_the_connection_usable(self):
        connection = self.sandbox.connection()
        self.addCleanup(connection.close)
        status, headers, body = self.sandbox.request(
            runs_path("wf_demo"), method="POST", body=b'{"x":1}', connection=connection)
        self.assertEqual((status, json.loads(body)["message"]), (405, "method not allowed"))
        self.assertEqual(headers["Allow"], "GET")
        status, headers, body = self.sandbox.request(
            runs_path("wf_demo"), method="HEAD", connection=connection)
        self.assertEqual((status, body), (405, b""))
        self.assertGreater(int(headers["Content-Length"]), 0)
        self.assertEqual(self.sandbox.request(runs_path("wf_demo"), connection=connection)[0], 200)

    def test_a_known_directive_with_a_bad_value_answers_400(self):
        self.assert_error(runs_path("wf_demo;status=abc"), 400,
                          'invalid sandbox directive "status=abc": '
                          "expected an HTTP status from 200 to 599")
        self.assert_error(runs_path("wf_demo;fault=dirp"), 400,
                          'invalid sandbox directive "fault=dirp": expected one of invalid_json, '
                          "wrong_shape, html, short, reset, drip, silent, huge, empty_has_more, "
                          "stuck_offset, redirect")
        self.assert_error(runs_path("wf_demo;status=503;fault=html"), 400,
                          "invalid sandbox directives: status and fault cannot be combined")


class CustomTokenTests(ServerTestCase):
    server_args = ("--token", "s3cret")

    def test_token_flag_replaces_the_default_token(self):
        self.assertEqual(self.sandbox.request(runs_path("wf_demo"), token="s3cret")[0], 200)
        self.assertEqual(self.sandbox.request(runs_path("wf_demo"), token=TOKEN)[0], 401)


class ProtocolTests(ServerTestCase):
    def test_every_response_has_a_unique_request_id_in_body_and_header(self):
        seen = set()
        for path, token in [(runs_path("wf_demo"), TOKEN), (runs_path("wf_nope"), TOKEN),
                            (runs_path("wf_demo"), None), ("/nope", TOKEN)] * 5:
            _, headers, body = self.sandbox.get_json(path, token=token)
            self.assertRegex(body["requestId"], REQUEST_ID)
            self.assertEqual(headers["X-Request-Id"], body["requestId"])
            seen.add(body["requestId"])
        self.assertEqual(len(seen), 20)

    def test_gzip_only_when_accept_encoding_allows_it(self):
        cases = [("gzip", True), ("deflate, gzip", True), ("*", True), ("gzip;q=0", False),
                 ("br", False), ("identity", False), (None, False)]
        _, _, plain = self.sandbox.request(runs_path("wf_demo"))
        for accept, gzipped in cases:
            headers = {"Accept-Encoding": accept} if accept else {"Accept-Encoding": ""}
            _, response_headers, body = self.sandbox.request(runs_path("wf_demo"), headers=headers)
            self.assertEqual(response_headers.get("Content-Encoding"),
                             "gzip" if gzipped else None, accept)
            self.assertEqual(response_headers["Vary"], "Accept-Encoding")
            self.assertEqual(int(response_headers["Content-Length"]), len(body))
            decoded = json.loads(gzip.decompress(body) if gzipped else body)
            self.assertEqual(decoded["data"], json.loads(plain)["data"])

    def test_error_answers_are_gzipped_too(self):
        _, headers, body = self.sandbox.request(runs_path("wf_nope"),
                                                headers={"Accept-Encoding": "gzip"})
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertEqual(json.loads(gzip.decompress(body))["message"], "workflow not found")

    def test_keep_alive_serves_two_requests_on_one_connection(self):
        since = self.sandbox.last_seq()
        connection = self.sandbox.connection()
        self.addCleanup(connection.close)
        for _ in range(2):
            status = self.sandbox.request(runs_path("wf_demo"), connection=connection)[0]
            self.assertEqual(status, 200)
        self.sandbox.request(runs_path("wf_demo"))
        numbers = [entry["connection"] for entry in self.sandbox.log(since)]
        self.assertEqual(numbers[0], numbers[1])
        self.assertNotEqual(numbers[1], numbers[2])


class ConcurrencyTests(ServerTestCase):
    server_args = ("--latency-ms", "200")

    def test_eight_requests_with_200_ms_latency_finish_together(self):
        statuses = []

        def fetch():
            statuses.append(self.sandbox.request(runs_path("wf_demo"))[0])

        threads = [threading.Thread(target=fetch) for _ in range(8)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        elapsed = time.monotonic() - started
        self.assertEqual(statuses, [200] * 8)
        self.assertGreaterEqual(elapsed, 0.2)
        self.assertLess(elapsed, 0.8)


class FaultTests(ServerTestCase):
    def test_latency_directive_delays_the_answer(self):
        started = time.monotonic()
        self.assertEqual(self.sandbox.request(runs_path("wf_demo;latency=300"))[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_status_answers_that_code_for_the_first_times_attempts(self):
        path = runs_path(self.unique("wf_demo;status=503;times=2"), limit=5)
        since = self.sandbox.last_seq()
        answers = [self.sandbox.get_json(path) for _ in range(3)]
        self.assertEqual([a[0] for a in answers], [503, 503, 200])
        self.assertEqual(answers[0][2]["message"], "service unavailable")
        self.assertEqual(answers[0][2]["code"], 503)
        self.assertEqual([e["fault"] for e in self.sandbox.log(since)], ["status", "status", None])

    def test_times_counts_each_query_string_separately(self):
        workflow_id = self.unique("wf_demo;status=500;times=1")
        self.assertEqual(self.sandbox.request(runs_path(workflow_id, limit=1))[0], 500)
        self.assertEqual(self.sandbox.request(runs_path(workflow_id, limit=2))[0], 500)
        self.assertEqual(self.sandbox.request(runs_path(workflow_id, limit=1))[0], 200)

    def test_status_without_times_applies_to_every_attempt(self):
        for _ in range(3):
            self.assertEqual(self.sandbox.request(runs_path("wf_demo;status=429"))[0], 429)

    def test_front_faults_answer_before_the_token_is_checked(self):
        self.assertEqual(self.sandbox.request(runs_path("wf_demo;status=503"), token=None)[0], 503)

    def test_retry_after_sends_seconds(self):
        status, headers, _ = self.sandbox.request(runs_path("wf_demo;status=429;retry_after=7"))
        self.assertEqual((status, headers["Retry-After"]), (429, "7"))

    def test_retry_after_date_sends_an_http_date_ahead(self):
        path = runs_path("wf_demo;status=503;retry_after_date=30")
        status, headers, _ = self.sandbox.request(path)
        ahead = email.utils.parsedate_to_datetime(headers["Retry-After"]).timestamp() - time.time()
        self.assertEqual(status, 503)
        self.assertRegex(headers["Retry-After"], r"^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$")
        self.assertTrue(27 <= ahead <= 31, ahead)

    def test_retry_after_also_goes_with_html(self):
        status, headers, _ = self.sandbox.request(runs_path("wf_demo;fault=html;retry_after=3"))
        self.assertEqual((status, headers["Retry-After"]), (502, "3"))

    def test_status_204_has_no_body(self):
        status, headers, body = self.sandbox.request(runs_path("wf_demo;status=204"))
        self.assertEqual((status, body), (204, b""))

    def test_invalid_json_is_a_200_that_does_not_parse(self):
        status, headers, body = self.sandbox.request(runs_path("wf_demo;fault=invalid_json"))
        self.assertEqual((status, headers["Content-Type"]), (200, "application/json"))
        self.assertTrue(body.startswith(b'{"code":200'))
        with self.assertRaises(json.JSONDecodeError):
            json.loads(body)

    def test_wrong_shape_has_items_as_an_object(self):
        status, _, page = self.sandbox.get_json(runs_path("wf_demo;fault=wrong_shape", limit=3))
        self.assertEqual(status, 200)
        self.assertIsInstance(page["data"]["items"], dict)
        self.assertEqual(len(page["data"]["items"]), 3)

    def test_html_is_a_502_error_page(self):
        status, headers, body = self.sandbox.request(runs_path("wf_demo;fault=html"))
        self.assertEqual((status, headers["Content-Type"]), (502, "text/html; charset=utf-8"))
        self.assertTrue(body.startswith(b"<!DOCTYPE html>"))

    def test_short_sends_less_than_its_content_length_then_closes(self):
        sock = self.sandbox.raw_socket(runs_path("wf_demo;fault=short"))
        self.addCleanup(sock.close)
        status, headers, body = read_head(sock)
        while chunk := sock.recv(65536):
            body += chunk
        self.assertEqual(status, 200)
        self.assertLess(len(body), int(headers["content-length"]))
        self.assertGreater(len(body), 0)

    def test_reset_sends_part_of_the_body_then_a_tcp_reset(self):
        sock = self.sandbox.raw_socket(runs_path("wf_demo;fault=reset"))
        self.addCleanup(sock.close)
        status, headers, body = read_head(sock)
        with self.assertRaises(ConnectionResetError):
            while chunk := sock.recv(65536):
                body += chunk
        self.assertEqual(status, 200)
        self.assertLess(len(body), int(headers["content-length"]))

    def test_drip_sends_one_byte_a_second(self):
        sock = self.sandbox.raw_socket(runs_path("wf_demo;fault=drip", limit=1))
        self.addCleanup(sock.close)
        status, _, body = read_head(sock)
        arrivals = [time.monotonic()] * len(body)
        while len(arrivals) < 3:
            self.assertEqual(len(sock.recv(1)), 1)
            arrivals.append(time.monotonic())
        self.assertEqual(status, 200)
        self.assertTrue(1.7 <= arrivals[2] - arrivals[0] <= 2.6, arrivals)

    def test_drip_delivers_the_whole_body_to_a_patient_client(self):
        started = time.monotonic()
        status, _, body = self.sandbox.request(runs_path("wf_demo;fault=drip;drip_ms=2", limit=1))
        self.assertEqual(status, 200)
        self.assertEqual(len(json.loads(body)["data"]["items"]), 1)
        self.assertGreater(time.monotonic() - started, len(body) * 0.002 * 0.9)

    def test_silent_never_answers_but_is_logged(self):
        since = self.sandbox.last_seq()
        sock = self.sandbox.raw_socket(runs_path("wf_demo;fault=silent"))
        self.addCleanup(sock.close)
        sock.settimeout(1)
        with self.assertRaises(TimeoutError):
            sock.recv(1)
        self.assertEqual([(e["status"], e["fault"]) for e in self.sandbox.log(since)],
                         [(None, "silent")])
        self.assertEqual(self.sandbox.request(runs_path("wf_demo"))[0], 200)

    def test_huge_streams_48_mib_by_default(self):
        connection = self.sandbox.connection()
        self.addCleanup(connection.close)
        connection.request("GET", runs_path("wf_demo;fault=huge"), headers={
            "Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip"})
        response = connection.getresponse()
        received = 0
        while chunk := response.read(1 << 20):
            received += len(chunk)
        self.assertEqual(response.status, 200)
        self.assertIsNone(response.headers["Content-Encoding"])
        self.assertEqual(int(response.headers["Content-Length"]), 48 * 1024 * 1024)
        self.assertEqual(received, 48 * 1024 * 1024)

    def test_huge_bytes_sets_the_size_of_a_valid_json_body(self):
        status, _, body = self.sandbox.request(runs_path("wf_demo;fault=huge;huge_bytes=100000"))
        self.assertEqual((status, len(body)), (200, 100_000))
        self.assertGreater(len(json.loads(body)["data"]["items"]), 100)

    def test_empty_has_more_claims_more_with_no_items(self):
        _, _, page = self.sandbox.get_json(runs_path("wf_demo;fault=empty_has_more", offset=40))
        self.assertEqual(page["data"], {"hasMore": True, "items": [], "limit": 20, "offset": 40})

    def test_stuck_offset_always_answers_the_first_page(self):
        _, _, first = self.sandbox.get_json(runs_path("wf_demo", limit=10))
        path = runs_path("wf_demo;fault=stuck_offset", limit=10, offset=40)
        _, _, stuck = self.sandbox.get_json(path)
        self.assertEqual(stuck["data"]["offset"], 0)
        self.assertEqual(stuck["data"]["items"], first["data"]["items"])

    def test_redirect_points_at_another_host(self):
        path = runs_path("wf_demo;fault=redirect", limit=5)
        status, headers, body = self.sandbox.get_json(path)
        self.assertEqual((status, body["message"]), (302, "found"))
        self.assertEqual(headers["Location"], f"http://127.0.0.2:{self.sandbox.port}{path}")

    def test_page_faults_leave_error_answers_alone(self):
        status, _, body = self.sandbox.get_json(runs_path("wf_demo;fault=invalid_json"), token=None)
        self.assertEqual((status, body["message"]), (401, "missing bearer token"))

    def test_after_times_a_transport_fault_answers_normally(self):
        path = runs_path(self.unique("wf_demo;fault=reset;times=1"))
        with self.assertRaises((http.client.IncompleteRead, ConnectionResetError)):
            self.sandbox.request(path)
        self.assertEqual(self.sandbox.request(path)[0], 200)

    def test_live_arrivals_are_running_so_other_filters_do_not_see_them(self):
        workflow_id = self.unique("wf_demo;live=2")
        _, _, running = self.sandbox.get_json(runs_path(workflow_id, status="running"))
        _, _, base_running = self.sandbox.get_json(runs_path("wf_demo", status="running"))
        _, _, failures = self.sandbox.get_json(runs_path(workflow_id, status="failure"))
        _, _, base_failures = self.sandbox.get_json(runs_path("wf_demo", status="failure"))
        self.assertEqual(running["data"]["items"][2:], base_running["data"]["items"][:18])
        self.assertEqual(failures["data"]["items"], base_failures["data"]["items"])

    def test_live_listing_gains_runs_at_its_head_before_each_answer(self):
        workflow_id = self.unique("wf_demo;live=3")
        _, _, first = self.sandbox.get_json(runs_path(workflow_id, limit=5))
        _, _, second = self.sandbox.get_json(runs_path(workflow_id, limit=5, offset=3))
        _, _, base = self.sandbox.get_json(runs_path("wf_demo", limit=2))
        items = first["data"]["items"]
        self.assertEqual(items[3:], base["data"]["items"])
        self.assertEqual([run["status"] for run in items[:3]], ["running"] * 3)
        self.assertGreater(items[2]["startedAt"], base["data"]["items"][0]["startedAt"])
        # Three more arrived before the second answer, shifting everything by three.
        self.assertEqual(second["data"]["items"], items)
        _, _, tail = self.sandbox.get_json(runs_path(workflow_id, limit=100, offset=250 + 9 - 1))
        self.assertEqual((len(tail["data"]["items"]), tail["data"]["hasMore"]), (1, False))


class ChurnTests(ServerTestCase):
    def test_churn_changes_n_statuses_before_each_answer_and_keeps_ids_and_order(self):
        workflow_id = self.unique("wf_demo;churn=3")
        base = self.walk("wf_demo")
        since = self.sandbox.last_seq()
        churned = []
        for offset in (0, 100, 200):
            churned.extend(self.page(workflow_id, limit=100, offset=offset)["items"])
        self.assertEqual(ids(churned), ids(base))
        changed = [(b["status"], c["status"]) for b, c in zip(base, churned) if b != c]
        self.assertTrue(1 <= len(changed) <= 9, changed)
        self.assertTrue(all(old != new for old, new in changed))
        self.assertTrue(all(run_is_consistent(run) for run in churned))
        self.assertEqual([e["version"] for e in self.sandbox.log(since)], [3, 6, 9])

    def test_a_changed_status_shows_in_every_later_answer_filtered_and_unfiltered(self):
        workflow_id = self.unique("wf_demo;churn=5")
        for status in STATUSES:
            # Nothing happens between this page and the history read, which has no events.
            page = self.page(workflow_id, status=status, limit=100)
            present = self.history(workflow_id, status)["present"]
            self.assertEqual(ids(page["items"]), present[:100])
            self.assertEqual(page["hasMore"], len(present) > 100)
            self.assertTrue(all(run["status"] == status for run in page["items"]))
            self.assertTrue(all(run_is_consistent(run) for run in page["items"]))
        last = self.page(workflow_id, limit=100, offset=150)["items"]
        membership = {}
        for status in STATUSES:
            membership.update(dict.fromkeys(self.history(workflow_id, status)["present"], status))
        self.assertEqual(len(membership), 250)
        self.assertEqual([run["status"] for run in last], [membership[run["id"]] for run in last])
        self.assertEqual(self.history(workflow_id)["version"], 6 * 5)

    def test_churned_runs_leave_both_ahead_of_and_behind_a_walk(self):
        workflow_id = self.unique("wf_demo;churn=2")
        start = self.history(workflow_id, "success")
        walked = self.walk_by(workflow_id, 20, status="success")
        window = self.history(workflow_id, "success", since=start["version"])
        changed = set(window["any"]) - set(window["throughout"])
        self.assertTrue(changed & set(walked), "no run left or joined behind the walk")
        self.assertTrue(changed - set(walked), "no run left or joined ahead of the walk")
        # A naive offset walk is not enough: it misses runs that never left.
        self.assertTrue(set(window["throughout"]) - set(walked), "the naive walk missed nothing")

    def walk_by(self, workflow_id, limit, **query):
        walked, offset = [], 0
        while True:
            page = self.page(workflow_id, limit=limit, offset=offset, **query)
            walked.extend(ids(page["items"]))
            if not page["hasMore"]:
                return walked
            offset += limit

    def test_churn_reaches_live_arrivals_too(self):
        workflow_id = self.unique("wf_empty;live=1;churn=1")
        statuses = set()
        for _ in range(30):
            statuses.update(run["status"] for run in self.page(workflow_id, limit=100)["items"])
        self.assertGreater(len(statuses), 2)
        items = self.page(workflow_id, limit=100)["items"]
        self.assertEqual(len(items), 31)
        self.assertEqual(sorted(ids(items)), sorted(self.history(workflow_id)["present"]))
        self.assertEqual(items, sorted(items, key=lambda run: run["startedAt"], reverse=True))

    def test_churn_on_an_empty_listing_changes_nothing(self):
        workflow_id = self.unique("wf_empty;churn=5")
        self.assertEqual(self.page(workflow_id)["items"], [])
        self.assertEqual(self.history(workflow_id)["version"], 0)

    def test_a_filtered_page_of_wf_big_with_churn_answers_in_a_few_ms(self):
        workflow_id = self.unique("wf_big;churn=5;live=2")
        connection = self.sandbox.connection()
        self.addCleanup(connection.close)
        self.sandbox.request(runs_path(workflow_id, status="success"), connection=connection)
        started = time.monotonic()
        for offset in range(0, 15_000, 500):
            status, _, _ = self.sandbox.request(
                runs_path(workflow_id, status="success", limit=100, offset=offset),
                connection=connection)
            self.assertEqual(status, 200)
        self.assertLess((time.monotonic() - started) / 30, 0.02)

    def test_bad_churn_and_jitter_values_answer_400(self):
        for directive in ("churn=-1", "churn=x", "churn=10001", "jitter=-5", "jitter=600001"):
            status, _, body = self.sandbox.get_json(runs_path(f"wf_demo;{directive}"))
            self.assertEqual(status, 400, directive)
            self.assertIn(directive, body["message"])


class JitterTests(ServerTestCase):
    def test_jitter_is_logged_per_request_within_0_to_ms(self):
        workflow_id = self.unique("wf_demo;jitter=40")
        since = self.sandbox.last_seq()
        for _ in range(12):
            self.page(workflow_id, limit=1)
        jitters = [entry["jitter_ms"] for entry in self.sandbox.log(since)]
        self.assertTrue(all(0 <= j <= 40 for j in jitters), jitters)
        self.assertGreater(len(set(jitters)), 3, jitters)

    def fire(self, workflow_id, count, spacing, **query):
        """`count` requests on their own connections, `spacing` s apart; returns
        [(request id, seconds from the first start to this answer, page)] by arrival."""
        results = {}
        started = time.monotonic()

        def fetch(number):
            status, headers, body = self.sandbox.request(runs_path(workflow_id, **query))
            results[number] = (headers["X-Request-Id"], time.monotonic() - started,
                               json.loads(body)["data"])

        threads = []
        for number in range(count):
            threads.append(threading.Thread(target=fetch, args=(number,)))
            threads[-1].start()
            time.sleep(spacing)
        for thread in threads:
            thread.join(10)
        return [results[number] for number in range(count)]

    def test_concurrent_answers_complete_out_of_order_and_in_parallel(self):
        workflow_id = self.unique("wf_demo;jitter=600")
        since = self.sandbox.last_seq()
        results = self.fire(workflow_id, 6, 0.05, limit=1)
        jitter = {e["request_id"]: e["jitter_ms"] / 1000 for e in self.sandbox.log(since)}
        for number, (request_id, elapsed, _) in enumerate(results):
            self.assertGreaterEqual(elapsed, number * 0.05 + jitter[request_id] - 0.01)
        finish_order = [r[0] for r in sorted(results, key=lambda r: r[1])]
        self.assertNotEqual(finish_order, [r[0] for r in results])
        self.assertLess(max(r[1] for r in results), 0.25 + 0.6 + 0.3)  # not one after another

    def test_jitter_composes_with_latency(self):
        workflow_id = self.unique("wf_demo;jitter=100;latency=200")
        since = self.sandbox.last_seq()
        for _ in range(4):
            started = time.monotonic()
            self.page(workflow_id, limit=1)
            elapsed = time.monotonic() - started
            jitter = self.sandbox.log(since)[-1]["jitter_ms"] / 1000
            self.assertGreaterEqual(elapsed, 0.2 + jitter - 0.005)
            self.assertLess(elapsed, 0.2 + jitter + 0.15)

    def test_a_page_is_taken_after_the_jitter_so_it_can_show_later_arrivals(self):
        workflow_id = self.unique("wf_demo;live=1;jitter=500")
        results = self.fire(workflow_id, 8, 0.03, limit=100)
        # How many arrivals each page shows: at least the ones up to its own request.
        shown = [sum(run["startedAt"] > "2026-11-27T09:00:00Z" for run in r[2]["items"])
                 for r in results]
        self.assertTrue(all(count >= number + 1 for number, count in enumerate(shown)), shown)
        self.assertTrue(any(count > number + 1 for number, count in enumerate(shown)), shown)


class MixTests(ServerTestCase):
    def test_live_churn_and_jitter_mix_in_one_id(self):
        workflow_id = self.unique("wf_demo;live=2;churn=3;jitter=20")
        start = self.history(workflow_id, "running")
        since = self.sandbox.last_seq()
        pages = [self.page(workflow_id, status="running", limit=100) for _ in range(5)]
        self.assertEqual([e["version"] for e in self.sandbox.log(since)], [5, 10, 15, 20, 25])
        window = self.history(workflow_id, "running", since=start["version"])
        self.assertEqual(window["version"], 25)
        now = self.history(workflow_id, "running")["present"]
        arrivals = self.history(workflow_id)["present"][:10]  # the newest, in the window
        self.assertTrue(set(window["throughout"]) <= set(start["present"]) & set(now))
        self.assertTrue(set(start["present"]) | set(now) <= set(window["any"]))
        # Every arrival joined the running listing, even if churn moved it on since.
        self.assertTrue(set(arrivals) <= set(window["any"]))
        self.assertFalse(set(arrivals) & set(window["throughout"]))
        self.assertTrue(set(ids(pages[-1]["items"])) <= set(window["any"]))
        self.assertTrue(all(run["status"] == "running" for p in pages for run in p["items"]))


class HistoryTests(ServerTestCase):
    def test_without_since_it_gives_the_version_and_the_present_ids_in_listing_order(self):
        body = self.history(self.unique("wf_demo"), "failure")
        self.assertEqual(sorted(body), ["present", "status", "version", "workflow"])
        self.assertEqual((body["version"], body["status"]), (0, "failure"))
        self.assertEqual(body["present"], ids(self.walk("wf_demo", status="failure")))
        self.assertEqual(self.history("wf_demo")["present"], ids(self.walk("wf_demo")))

    def test_throughout_and_any_are_exact_over_a_window(self):
        # One event per request, so a history read after each request sees every version.
        workflow_id = self.unique("wf_demo;churn=1")
        start = self.history(workflow_id, "success")
        snapshots = [set(start["present"])]
        for offset in range(0, 40 * 10, 10):
            self.page(workflow_id, status="success", limit=10, offset=offset)
            snapshots.append(set(self.history(workflow_id, "success")["present"]))
        window = self.history(workflow_id, "success", since=start["version"])
        self.assertEqual(sorted(window),
                         ["any", "since", "status", "throughout", "version", "workflow"])
        self.assertEqual((window["since"], window["version"]), (0, 40))
        self.assertEqual(set(window["throughout"]), set.intersection(*snapshots))
        self.assertEqual(set(window["any"]), set.union(*snapshots))
        self.assertLess(len(window["throughout"]), len(window["any"]))
        order = {run_id: n for n, run_id in enumerate(self.history("wf_demo")["present"])}
        self.assertEqual(window["any"], sorted(window["any"], key=order.get))
        self.assertEqual(window["throughout"], sorted(window["throughout"], key=order.get))
        # A later window starts from the state at its own version.
        middle = self.history(workflow_id, "success", since=20)
        self.assertEqual(set(middle["throughout"]), set.intersection(*snapshots[20:]))
        self.assertEqual(set(middle["any"]), set.union(*snapshots[20:]))

    def test_an_empty_window_has_throughout_equal_to_any_equal_to_present(self):
        workflow_id = self.unique("wf_demo;churn=4;live=1")
        self.page(workflow_id)
        now = self.history(workflow_id, "waiting")
        window = self.history(workflow_id, "waiting", since=now["version"])
        self.assertEqual(window["throughout"], now["present"])
        self.assertEqual(window["any"], now["present"])

    def test_unfiltered_nobody_leaves_and_arrivals_join(self):
        workflow_id = self.unique("wf_demo;churn=4;live=3")
        start = self.history(workflow_id)
        for _ in range(3):
            self.page(workflow_id)
        window = self.history(workflow_id, since=start["version"])
        self.assertEqual(window["throughout"], start["present"])
        self.assertEqual(len(window["any"]), 250 + 9)
        self.assertEqual(window["any"], self.history(workflow_id)["present"])
        self.assertEqual(window["any"][9:], start["present"])

    def test_history_causes_no_events_and_is_not_logged(self):
        workflow_id = self.unique("wf_demo;churn=4;live=3")
        since = self.sandbox.last_seq()
        for _ in range(3):
            self.assertEqual(self.history(workflow_id, "success")["version"], 0)
        self.assertEqual(self.sandbox.log(since), [])

    def test_other_ids_have_their_own_versions(self):
        workflow_id = self.unique("wf_demo;live=1")
        self.page(workflow_id)
        self.assertEqual(self.history(workflow_id)["version"], 1)
        self.assertEqual(self.history(workflow_id + ";n=other")["version"], 0)

    def test_bad_requests_answer_400_or_404(self):
        cases = [
            ("/_sandbox/history", 400, "missing workflow"),
            (history_path("wf_nope"), 404, "workflow not found"),
            (history_path("wf_demo;churn=x"), 400, 'invalid sandbox directive "churn=x"'),
            (history_path("wf_demo", status="failed"), 400, 'invalid status "failed"'),
            (history_path("wf_demo", since="x"), 400, 'invalid since "x"'),
            (history_path(self.unique("wf_demo"), since=1), 400,
             'invalid since "1": expected at most the current version 0'),
        ]
        for path, code, message in cases:
            status, _, body = self.sandbox.get_json(path, token=None)
            self.assertEqual(status, code, path)
            self.assertIn(message, body["message"])


class ChurnSeedTests(unittest.TestCase):
    def answers(self, *args):
        sandbox = Sandbox(*args)
        self.addCleanup(sandbox.stop)
        workflow_id = "wf_big;churn=7;live=2;jitter=30"
        pages = []
        for offset in (0, 100, 0, 300):
            for status in (None, "success", "running"):
                query = {"limit": 100, "offset": offset, **({"status": status} if status else {})}
                pages.append(sandbox.get_json(runs_path(workflow_id, **query))[2]["data"])
        jitters = [entry["jitter_ms"] for entry in sandbox.log()]
        _, _, history = sandbox.get_json(history_path(workflow_id, "success", 0), token=None)
        return pages, jitters, history

    def test_the_same_seed_and_requests_give_the_same_answers_and_another_seed_others(self):
        pages, jitters, history = self.answers()
        self.assertEqual(self.answers("--seed", "2026"), (pages, jitters, history))
        other_pages, other_jitters, other_history = self.answers("--seed", "7")
        self.assertNotEqual(other_jitters, jitters)
        self.assertNotEqual(other_history["any"], history["any"])


class LiveStateTests(unittest.TestCase):
    """The incremental per-status lists against a listing recomputed from scratch."""

    def test_filtered_listings_stay_the_unfiltered_one_filtered_under_live_and_churn(self):
        sys.path.insert(0, os.path.dirname(SERVER))
        self.addCleanup(sys.path.remove, os.path.dirname(SERVER))
        import server
        factory = server.RunFactory("2026")
        state = server.LiveState(factory, server.WORKFLOWS["wf_demo"], "wf_demo;x")
        # First arrivals only (the lists are not built yet), then arrivals and churn.
        for step in range(60):
            state.advance(step % 3, step % 5 if step >= 10 else 0)
            everything, _ = state.page(None, 0, 10_000)
            self.assertEqual(len(everything), 250 + state.arrivals)
            for status in STATUSES:
                filtered, has_more = state.page(status, 0, 10_000)
                self.assertEqual(filtered, [r for r in everything if r["status"] == status])
                self.assertFalse(has_more)
                middle, has_more = state.page(status, 3, 5)
                self.assertEqual(middle, filtered[3:8])
                self.assertEqual(has_more, len(filtered) > 8)
        self.assertEqual(len(state.events),
                         sum(s % 3 + (s % 5 if s >= 10 else 0) for s in range(60)))


class LogTests(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        descriptor, cls.log_path = tempfile.mkstemp(prefix="sandbox-log-", suffix=".jsonl")
        os.close(descriptor)
        cls.addClassCleanup(os.unlink, cls.log_path)
        cls.server_args = ("--log", cls.log_path)
        super().setUpClass()

    def file_entries(self):
        with open(self.log_path) as log:
            return [json.loads(line) for line in log]

    def test_an_entry_records_the_request_and_its_answer(self):
        since = self.sandbox.last_seq()
        before = time.time()
        _, headers, _ = self.sandbox.request(
            "/v1/workflows/wf%5Fdemo/runs?limit=3&status=fail%75re",
            headers={"User-Agent": "test/1"})
        [entry] = self.sandbox.log(since)
        self.assertEqual(sorted(entry), [
            "auth", "connection", "fault", "headers", "jitter_ms", "method", "path", "query",
            "raw_path", "request_id", "seq", "status", "ts", "version", "workflow_id"])
        self.assertEqual(entry["seq"], since + 1)
        self.assertEqual(entry["method"], "GET")
        self.assertEqual(entry["raw_path"], "/v1/workflows/wf%5Fdemo/runs?limit=3&status=fail%75re")
        self.assertEqual(entry["path"], "/v1/workflows/wf_demo/runs")
        self.assertEqual(entry["workflow_id"], "wf_demo")
        self.assertEqual(entry["query"], {"limit": "3", "status": "failure"})
        self.assertEqual(entry["headers"]["Authorization"], "Bearer ***")
        self.assertEqual(entry["headers"]["User-Agent"], "test/1")
        self.assertEqual((entry["auth"], entry["status"], entry["fault"]), ("valid", 200, None))
        self.assertEqual(entry["request_id"], headers["X-Request-Id"])
        self.assertTrue(before <= entry["ts"] <= time.time())
        self.assertEqual((entry["version"], entry["jitter_ms"]), (0, None))  # no events, no jitter

    def test_the_token_never_appears_in_the_log(self):
        since = self.sandbox.last_seq()
        self.sandbox.request(runs_path("wf_demo", t=TOKEN))
        self.sandbox.request(runs_path("wf_demo"), token="wrong")
        self.sandbox.request(runs_path("wf_demo"), token=None)
        entries = self.sandbox.log(since)
        self.assertEqual([e["auth"] for e in entries], ["valid", "invalid", "missing"])
        self.assertEqual([e["headers"].get("Authorization") for e in entries],
                         ["Bearer ***", "Bearer ***", None])
        self.assertEqual(entries[0]["query"], {"t": "***"})
        with open(self.log_path) as log:
            self.assertNotIn(TOKEN, log.read())
        self.assertNotIn(TOKEN, json.dumps(entries))

    def test_an_entry_is_written_when_the_request_arrives_before_any_latency(self):
        since = self.sandbox.last_seq()
        thread = threading.Thread(
            target=self.sandbox.request, args=(runs_path("wf_demo;latency=1500"),))
        thread.start()
        self.addCleanup(thread.join)
        self.assertTrue(wait_until(lambda: len(self.sandbox.log(since)) == 1, 1.0))
        self.assertTrue(thread.is_alive())

    def test_header_names_are_logged_in_canonical_case(self):
        since = self.sandbox.last_seq()
        self.sandbox.request(runs_path("wf_demo"), headers={"x-trace-id": "abc"})
        self.assertEqual(self.sandbox.log(since)[0]["headers"]["X-Trace-Id"], "abc")

    def test_since_returns_only_newer_entries(self):
        since = self.sandbox.last_seq()
        for limit in (1, 2, 3):
            self.sandbox.request(runs_path("wf_demo", limit=limit))
        self.assertEqual([e["query"]["limit"] for e in self.sandbox.log(since + 1)], ["2", "3"])
        self.assertEqual(self.sandbox.log(since + 3), [])

    def test_since_must_be_an_integer(self):
        status, _, body = self.sandbox.get_json("/_sandbox/log?since=x", token=None)
        self.assertEqual((status, body["message"]),
                         (400, 'invalid since "x": expected an integer >= 0'))

    def test_the_file_has_each_entry_before_its_response_arrives(self):
        for _ in range(20):
            _, headers, _ = self.sandbox.request(runs_path("wf_empty"))
            self.assertEqual(self.file_entries()[-1]["request_id"], headers["X-Request-Id"])
        self.assertEqual(self.file_entries(), self.sandbox.log()[-len(self.file_entries()):])

    def test_sandbox_endpoints_are_not_logged(self):
        since = self.sandbox.last_seq()
        self.sandbox.log()
        self.sandbox.request("/_sandbox/nope")
        self.assertEqual(self.sandbox.log(since), [])


class TlsTests(ServerTestCase):
    server_args = ("--tls",)

    def test_serves_https_with_the_printed_certificate(self):
        self.assertRegex(self.sandbox.lines[0], r"^listening https://127\.0\.0\.1:\d+$")
        self.assertRegex(self.sandbox.lines[1], r"^certificate /.+\.pem$")
        context = ssl.create_default_context(cafile=self.sandbox.lines[1].split(" ", 1)[1])
        for host in ("127.0.0.1", "localhost"):
            connection = http.client.HTTPSConnection(
                host, self.sandbox.port, context=context, timeout=10)
            self.addCleanup(connection.close)
            status, _, _ = self.sandbox.request(runs_path("wf_demo"), connection=connection)
            self.assertEqual(status, 200, host)

    def test_a_client_without_the_certificate_fails_verification(self):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.sandbox.port, context=ssl.create_default_context(), timeout=10)
        self.addCleanup(connection.close)
        with self.assertRaises(ssl.SSLCertVerificationError):
            connection.request("GET", runs_path("wf_demo"))

    def test_the_certificate_directory_is_removed_on_exit(self):
        sandbox = Sandbox("--tls")
        self.addCleanup(sandbox.stop)
        directory = os.path.dirname(sandbox.lines[1].split(" ", 1)[1])
        self.assertTrue(os.path.isdir(directory))
        self.assertEqual(sandbox.stop(), 0)
        self.assertFalse(os.path.exists(directory))


if __name__ == "__main__":
    unittest.main()
