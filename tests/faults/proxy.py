"""A loopback HTTP proxy that forwards S3 requests to an upstream endpoint and fails chosen ones.

Why a proxy and not botocore stubs: the audit under test is a real CLI process talking HTTP to a
real (moto) S3 server. Faults have to happen on the wire, where boto3's retry logic, its timeouts
and Prefect's task retries see them exactly as they would see a throttled or hung AWS endpoint.

A `Rule` matches requests by HTTP method, S3 operation kind (list / get / head / put / ...) and a
regular expression on the object key, and fails the first `count` matches (or all of them) with
one `Action`: a 503 SlowDown error, a 403 AccessDenied, a delay longer than the client's read timeout, or a dropped
connection. Every request is recorded (method, bucket, key, operation, selected headers, what the
proxy did), so tests can assert what was attempted, e.g. that every PUT asked for encryption.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

SLOWDOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>"
)
ACCESS_DENIED_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>FAULT</RequestId></Error>"
)
#: the HTTP answer of each error action: status, reason, S3 error body
ERROR_RESPONSES = {"slowdown": (503, "Slow Down", SLOWDOWN_XML), "deny": (403, "Forbidden", ACCESS_DENIED_XML)}
#: Request headers worth keeping in the log (never Authorization: it carries a signature).
RECORDED_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
                    "content-type", "if-none-match", "x-amz-copy-source")


class Action(Enum):
    """What the proxy does to a matching request instead of forwarding it."""

    SLOWDOWN = "slowdown"  # 503 with the S3 SlowDown error body
    DENY = "deny"          # 403 with the S3 AccessDenied error body (a bucket policy that refuses)
    TIMEOUT = "timeout"    # hold the connection past the client's read timeout, then close it
    DROP = "drop"          # close the connection without any response


@dataclass(frozen=True)
class S3Request:
    """One request as the proxy saw it (path-style addressing: /bucket/key)."""

    method: str
    bucket: str
    key: str
    operation: str  # list, get, head, put, copy, delete, create_bucket, other
    headers: dict[str, str]
    outcome: str = "forwarded"
    prefix: str = ""  # the `prefix` parameter of a listing


def classify(method: str, path: str, query: str, headers: dict[str, str]) -> tuple[str, str, str]:
    """(bucket, key, operation) of a path-style S3 request."""
    parts = unquote(path).lstrip("/").split("/", 1)
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    params = parse_qs(query, keep_blank_values=True)
    if not key:
        if method == "GET":
            operation = "list" if "list-type" in params or "prefix" in params or not params else "other"
        elif method == "PUT":
            operation = "create_bucket"
        else:
            operation = "other"
    elif method == "GET":
        operation = "get"
    elif method == "HEAD":
        operation = "head"
    elif method == "PUT":
        operation = "copy" if "x-amz-copy-source" in headers else "put"
    elif method == "DELETE" or (method == "POST" and "delete" in params):
        operation = "delete"
    else:
        operation = "other"
    return bucket, key, operation


@dataclass
class Rule:
    """Fail `count` requests (None: every one) that match all the given conditions.

    The first `after` matching requests are let through, so a test can break a run half way, e.g.
    after a few report files were written.
    """

    action: Action
    operation: str | None = None       # list / get / head / put / copy / delete
    key: str | None = None             # regular expression searched in the object key (or list prefix)
    method: str | None = None
    count: int | None = 1
    delay: float = 0.0                 # for TIMEOUT: seconds to hold the connection
    after: int = 0
    hits: int = field(default=0, init=False)
    passed: int = field(default=0, init=False)

    def matches(self, request: S3Request, prefix: str) -> bool:
        if self.method and request.method != self.method:
            return False
        if self.operation and request.operation != self.operation:
            return False
        target = request.key or prefix
        return not (self.key and not re.search(self.key, target))

    def take(self) -> bool:
        """Whether this rule still has failures left to inject (and count one if so)."""
        if self.passed < self.after:
            self.passed += 1
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        self.hits += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so that boto3's `Expect: 100-continue` is answered
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        bucket, key, operation = classify(self.command, split.path, split.query, headers)
        prefix = parse_qs(split.query).get("prefix", [""])[0]
        request = S3Request(self.command, bucket, key, operation,
                            {h: headers[h] for h in RECORDED_HEADERS if h in headers}, prefix=prefix)
        body = self._body()
        rule = self.server.proxy.pick(request, prefix)
        self.close_connection = True
        if rule is None:
            self.server.proxy.record(request)
            self._forward(split, body)
            return
        self.server.proxy.record(S3Request(**{**request.__dict__, "outcome": rule.action.value}))
        if rule.action.value in ERROR_RESPONSES:
            status, reason, body = ERROR_RESPONSES[rule.action.value]
            payload = b"" if self.command == "HEAD" else body
            self.send_response(status, reason)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        elif rule.action is Action.TIMEOUT:
            time.sleep(rule.delay)
            self._drop()
        else:
            self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _forward(self, split, body: bytes) -> None:
        host, port = self.server.proxy.upstream
        connection = http.client.HTTPConnection(host, port, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "expect", "transfer-encoding", "content-length")}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                    self.send_header(name, value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
            self.send_header("Content-Length", length or "0")
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy


class FaultProxy:
    """Start with `with FaultProxy(upstream_url) as proxy:`; point boto3 at `proxy.url`."""

    def __init__(self, upstream_url: str, rules: list[Rule] | None = None) -> None:
        parsed = urlsplit(upstream_url)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.rules: list[Rule] = list(rules or [])
        self.requests: list[S3Request] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()

    def pick(self, request: S3Request, prefix: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(request, prefix) and rule.take():
                    return rule
        return None

    def record(self, request: S3Request) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self, operation: str | None = None, outcome: str | None = None) -> list[S3Request]:
        with self._lock:
            return [r for r in self.requests
                    if (operation is None or r.operation == operation) and (outcome is None or r.outcome == outcome)]

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
