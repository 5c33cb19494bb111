"""A forwarding proxy in front of a real Label Studio that injects faults the server cannot be asked for.

Requests go through to the real server unchanged; a fault armed with `inject` acts on the next
matching request(s):

- `error_after_forward`: the server does the work (e.g. stores the annotation), then the client is
  told HTTP 500, as when a reverse proxy or a crashed worker loses the answer;
- `drop_mid_response`: the server answers, the client gets half the body and a closed connection;
- `down_before_forward`: the request never reaches the server (it was down for that moment), the
  client is told HTTP 503, as when Label Studio dies between two requests of one export.

Used by the fault-injection tests and by benchmarks/bench_faults.py.
"""
from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

ACTIONS = ("error_after_forward", "drop_mid_response", "down_before_forward")
# Headers about this one connection, not the message; http.client sets Host and Content-Length itself.
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host",
        "content-length"}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    action: str
    times: int
    after: int  # matching requests still to let through before the first injection


class FaultProxy:
    """`with FaultProxy(upstream) as proxy:` serves on `proxy.url` until the block ends."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream_host, self.upstream_port = target.hostname or "127.0.0.1", target.port or 80
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.injected: list[str] = []  # "ACTION METHOD PATH", in the order they happened
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, method: str, path_pattern: str, action: str, times: int = 1, after: int = 0) -> None:
        """Arm a fault for `times` requests whose method and path (with query) match, once `after` went through."""
        if action not in ACTIONS:
            raise ValueError(f"unknown fault {action!r}; use one of {ACTIONS}")
        with self._lock:
            self._faults.append(Fault(method.upper(), re.compile(path_pattern), action, times, after))

    def clear(self) -> None:
        """Disarm every fault not yet used."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        """Faults armed but not injected yet (a test asserting a fault happened checks this is 0)."""
        with self._lock:
            return sum(f.times for f in self._faults)

    def take(self, method: str, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path.search(path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    self.injected.append(f"{fault.action} {method} {path}")
                    return fault.action
        return None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a dropped one never poisons the next

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: the tests' output is about the store, not every proxied request."""

    def _forward(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = proxy.take(self.command, self.path)
        if fault == "down_before_forward":
            self._answer(503, b'{"detail": "injected fault: the server was down for this request"}')
            return
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        if fault == "error_after_forward":
            self._answer(500, b'{"detail": "injected fault: the server did the work but the answer was lost"}')
            return
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "drop_mid_response":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward
