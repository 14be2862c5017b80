"""Tests for the sandbox's forward-proxy mode (--proxy) and its client-certificate TLS
mode (--tls --client-ca), over real sockets against server subprocesses.

Run with: python3 -m unittest discover -s sandbox -p 'test_*.py' -v
"""

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

from test_server import SERVER, TOKEN, Sandbox, read_head, read_lines, runs_path

PROXY_AUTH = "alice:proxy-secret"


class ProxySandbox:
    """A --proxy server with its request log in a file."""

    def __init__(self, *args):
        self.log_path = tempfile.mktemp(prefix="proxy-log-")
        self.process = subprocess.Popen(
            [sys.executable, SERVER, "--port", "0", "--proxy", "--log", self.log_path, *args],
            stdout=subprocess.PIPE)
        lines = read_lines(self.process.stdout, 1, timeout=10)
        if not lines or not lines[0].startswith("listening http://"):
            self.stop()
            raise RuntimeError(f"proxy did not start: {lines!r}")
        self.port = int(lines[0].rsplit(":", 1)[1])

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process.stdout.close()
        if os.path.exists(self.log_path):
            os.remove(self.log_path)

    def log(self):
        with open(self.log_path) as file:
            return [json.loads(line) for line in file]

    def exchange(self, head):
        """Sends `head` on a fresh connection; returns (status, headers, rest, socket)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(head.encode("latin-1"))
        status, headers, rest = read_head(sock)
        return status, headers, rest, sock


def basic(credentials):
    return "Basic " + base64.b64encode(credentials.encode()).decode()


class ProxyTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = Sandbox()
        cls.addClassCleanup(cls.api.stop)
        cls.tls = Sandbox("--tls")
        cls.addClassCleanup(cls.tls.stop)

    def proxy(self, *args):
        proxy = ProxySandbox(*args)
        self.addCleanup(proxy.stop)
        return proxy

    def test_relays_an_absolute_form_request_and_logs_it(self):
        proxy = self.proxy()
        target = f"{self.api.url}{runs_path('wf_demo', limit=1)}"
        status, headers, rest, sock = proxy.exchange(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
        with sock:
            body = rest
            while len(body) < int(headers["content-length"]):
                body += sock.recv(65536)
        self.assertEqual(status, 200)
        self.assertEqual(headers["connection"], "close")
        self.assertEqual(len(json.loads(body)["data"]["items"]), 1)
        self.assertEqual([(e["method"], e["target"], e["status"]) for e in proxy.log()],
                         [("GET", target, 200)])
        self.assertEqual(self.api.log()[-1]["path"], "/v1/workflows/wf_demo/runs")

    def test_opens_a_connect_tunnel_to_a_tls_origin(self):
        proxy = self.proxy()
        authority = self.tls.url.split("//")[1]
        status, _, _, sock = proxy.exchange(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
        self.assertEqual(status, 200)
        context = ssl.create_default_context(cafile=self.tls.lines[1].split(" ", 1)[1])
        with context.wrap_socket(sock, server_hostname="127.0.0.1") as tunnel:
            tunnel.sendall(f"GET {runs_path('wf_demo', limit=1)} HTTP/1.1\r\nHost: x\r\n"
                           f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode())
            answer, _, _ = read_head(tunnel)
        self.assertEqual(answer, 200)
        self.assertEqual([(e["method"], e["target"], e["status"]) for e in proxy.log()],
                         [("CONNECT", authority, 200)])

    def test_asks_for_credentials_and_logs_no_secret(self):
        proxy = self.proxy("--proxy-auth", PROXY_AUTH)
        authority = self.tls.url.split("//")[1]
        refused, headers, _, sock = proxy.exchange(f"CONNECT {authority} HTTP/1.1\r\n\r\n")
        sock.close()
        self.assertEqual(refused, 407)
        self.assertEqual(headers["proxy-authenticate"], 'Basic realm="sandbox"')
        wrong, _, _, sock = proxy.exchange(
            f"CONNECT {authority} HTTP/1.1\r\nProxy-Authorization: {basic('alice:wrong')}\r\n\r\n")
        sock.close()
        self.assertEqual(wrong, 407)
        right, _, _, sock = proxy.exchange(
            f"CONNECT {authority} HTTP/1.1\r\nProxy-Authorization: {basic(PROXY_AUTH)}\r\n\r\n")
        sock.close()
        self.assertEqual(right, 200)
        log = proxy.log()
        self.assertEqual([(e["status"], e["authorized"]) for e in log],
                         [(407, False), (407, False), (200, True)])
        with open(proxy.log_path) as file:
            self.assertNotIn("proxy-secret", file.read())

    def test_answers_502_when_the_origin_is_down(self):
        proxy = self.proxy()
        status, _, _, sock = proxy.exchange("CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n")
        sock.close()
        self.assertEqual(status, 502)
        self.assertEqual(proxy.log()[0]["status"], 502)

    def test_refuses_bad_combinations_of_flags(self):
        for args in (("--proxy-auth", PROXY_AUTH), ("--proxy", "--tls"),
                     ("--proxy", "--proxy-auth", "nocolon"), ("--client-ca",)):
            result = subprocess.run([sys.executable, SERVER, *args], capture_output=True, timeout=10)
            self.assertEqual(result.returncode, 2, args)


class ClientCertificateTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        process = subprocess.Popen([sys.executable, SERVER, "--port", "0", "--tls", "--client-ca"],
                                   stdout=subprocess.PIPE)
        cls.process = process
        lines = read_lines(process.stdout, 8, timeout=20)
        cls.addClassCleanup(cls.stop)
        cls.files = dict(line.split(" ", 1) for line in lines)
        cls.port = int(cls.files["listening"].rsplit(":", 1)[1])

    @classmethod
    def stop(cls):
        cls.process.terminate()
        cls.process.wait(5)
        cls.process.stdout.close()

    def status_with(self, cert=None, key=None, password=None):
        context = ssl.create_default_context(cafile=self.files["certificate"])
        if cert:
            context.load_cert_chain(cert, key, password=password)
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)
        self.addCleanup(connection.close)
        connection.request("GET", runs_path("wf_demo", limit=1),
                           headers={"Authorization": f"Bearer {TOKEN}"})
        return connection.getresponse().status

    def test_prints_the_client_files(self):
        for name in ("client-cert", "client-key", "client-key-encrypted", "stranger-cert",
                     "stranger-key"):
            self.assertTrue(os.path.isfile(self.files[name]), name)
        self.assertEqual(self.files["client-key-password"], "sandbox-key-passphrase")

    def test_accepts_the_client_certificate_of_its_ca(self):
        self.assertEqual(self.status_with(self.files["client-cert"], self.files["client-key"]), 200)
        self.assertEqual(self.status_with(self.files["client-cert"],
                                          self.files["client-key-encrypted"],
                                          self.files["client-key-password"]), 200)

    def test_refuses_no_certificate_and_another_cas(self):
        for args in ((), (self.files["stranger-cert"], self.files["stranger-key"])):
            with self.assertRaises((ssl.SSLError, ConnectionError), msg=args):
                self.status_with(*args)


if __name__ == "__main__":
    unittest.main()
