"""The sandbox's forward-proxy mode (server.py --proxy): an HTTP proxy that relays
absolute-form requests (http targets) and opens CONNECT tunnels (https targets), can
require Basic Proxy-Authorization, and logs one line per request that says what went
through it. Python standard library only."""

import base64
import select
import socket
import socketserver
import threading
import time

HEAD_LIMIT = 64 * 1024
UPSTREAM_TIMEOUT = 10
RELAY_CHUNK = 65536


def read_head(sock):
    """The bytes of one request head (through the blank line) and what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > HEAD_LIMIT:
            return None, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def parse_head(head):
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.append((name.strip(), value.strip()))
    return parts[0], parts[1], headers


def header(headers, wanted):
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return None


def split_authority(authority, default_port):
    host, _, port = authority.rpartition(":")
    if not host or not port.isdigit():
        return authority.strip("[]"), default_port
    return host.strip("[]"), int(port)


def relay(a, b):
    """Copies bytes both ways until either side closes."""
    sockets = [a, b]
    while True:
        readable, _, failed = select.select(sockets, [], sockets, 60)
        if failed or not readable:
            return
        for source in readable:
            target = b if source is a else a
            try:
                data = source.recv(RELAY_CHUNK)
            except OSError:
                return
            if not data:
                return
            try:
                target.sendall(data)
            except OSError:
                return


class ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self._handle()
        except OSError:
            pass  # a client or an upstream that went away: nobody to tell

    def _answer(self, status, reason, extra=""):
        body = f"{status} {reason}\n".encode("ascii")
        self.request.sendall((f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\n"
                              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
                             .encode("ascii") + body)

    def _log(self, method, target, status, authorized):
        self.server.request_log.append({"method": method, "target": target, "status": status,
                                        "authorized": authorized, "ts": time.time(),
                                        "via": "proxy"})

    def _authorized(self, headers):
        expected = self.server.credentials
        if expected is None:
            return None
        given = header(headers, "proxy-authorization") or ""
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        return decoded == expected

    def _handle(self):
        head, rest = read_head(self.request)
        if head is None:
            return
        parsed = parse_head(head)
        if parsed is None:
            self._answer(400, "Bad Request")
            return
        method, target, headers = parsed
        authorized = self._authorized(headers)
        if authorized is False:
            self._log(method, target, 407, False)
            self._answer(407, "Proxy Authentication Required",
                         'Proxy-Authenticate: Basic realm="sandbox"\r\n')
            return
        if method == "CONNECT":
            self._tunnel(target, authorized)
        elif target.lower().startswith("http://"):
            self._forward(method, target, headers, rest, authorized)
        else:
            self._log(method, target, 400, authorized)
            self._answer(400, "Bad Request")

    def _upstream(self, host, port):
        try:
            return socket.create_connection((host, port), timeout=UPSTREAM_TIMEOUT)
        except OSError:
            return None

    def _tunnel(self, target, authorized):
        host, port = split_authority(target, 443)
        upstream = self._upstream(host, port)
        if upstream is None:
            self._log("CONNECT", target, 502, authorized)
            self._answer(502, "Bad Gateway")
            return
        self._log("CONNECT", target, 200, authorized)
        with upstream:
            upstream.settimeout(None)
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            relay(self.request, upstream)

    def _forward(self, method, target, headers, rest, authorized):
        authority, slash, path = target[len("http://"):].partition("/")
        host, port = split_authority(authority, 80)
        upstream = self._upstream(host, port)
        if upstream is None:
            self._log(method, target, 502, authorized)
            self._answer(502, "Bad Gateway")
            return
        self._log(method, target, 200, authorized)
        lines = [f"{method} {slash}{path or ''} HTTP/1.1"]
        for name, value in headers:
            if name.lower() not in ("proxy-authorization", "proxy-connection", "connection"):
                lines.append(f"{name}: {value}")
        lines.append("Connection: close")
        with upstream:
            upstream.settimeout(None)
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rest)
            # One request per connection: the answer's own Connection header gives way
            # to "close", so that the client never reuses what the proxy will close.
            answer, body = read_head(upstream)
            if answer is None:
                return
            kept = [line for line in answer.split("\r\n")
                    if not line.lower().startswith("connection:")]
            kept.append("Connection: close")
            self.request.sendall(("\r\n".join(kept) + "\r\n\r\n").encode("latin-1") + body)
            while True:
                data = upstream.recv(RELAY_CHUNK)
                if not data:
                    return
                self.request.sendall(data)


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, *, credentials, request_log):
        self.credentials = credentials      # "user:password", or None: no auth asked
        self.request_log = request_log
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ProxyHandler)
