"""Load generator for the paper exchange benchmark: signed v5 GETs over raw HTTP/1.1 keep-alive
sockets, several requests in flight per process (one per connection, round-robin), so that the
Python client costs as little CPU as possible next to the server it measures.

Requests are pre-built: the signature is recomputed only when the millisecond timestamp changes.
Every answer is read completely and checked (HTTP 200 and retCode 0).
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from dataclasses import dataclass, field
from typing import Any

_OK = b'{"retCode":0,'


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    path: str
    query: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    recv_window: int = 5000


class SignedGet:
    """The bytes of a signed GET of `target`, re-signed once per millisecond."""

    def __init__(self, t: Target) -> None:
        self._t = t
        self._secret = t.api_secret.encode()
        self._prefix = (
            f"GET {t.path}?{t.query} HTTP/1.1\r\nHost: {t.host}:{t.port}\r\n"
            f"Content-Type: application/json\r\nX-BAPI-API-KEY: {t.api_key}\r\n"
            f"X-BAPI-SIGN-TYPE: 2\r\nX-BAPI-RECV-WINDOW: {t.recv_window}\r\n"
        ).encode()
        self._ts = 0
        self._bytes = b""

    def bytes(self) -> bytes:
        ts = int(time.time() * 1000)
        if ts != self._ts:
            t = self._t
            sig = hmac.new(
                self._secret, f"{ts}{t.api_key}{t.recv_window}{t.query}".encode(), hashlib.sha256
            ).hexdigest()
            self._bytes = self._prefix + f"X-BAPI-TIMESTAMP: {ts}\r\nX-BAPI-SIGN: {sig}\r\n\r\n".encode()
            self._ts = ts
        return self._bytes


class Connection:
    """One keep-alive connection; reads Content-Length framed answers."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sent_at = 0.0

    def send(self, data: bytes) -> None:
        self.sent_at = time.perf_counter()
        self.sock.sendall(data)

    def read(self) -> tuple[int, bytes]:
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        head = bytes(buf[:end]).decode("latin-1")
        status = int(head[9:12])
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
                break
        total = end + 4 + length
        while len(buf) < total:
            self._fill()
        body = bytes(buf[end + 4 : total])
        del buf[:total]
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def run_worker(target: Target, connections: int, window: Any, go: Any, out: Any) -> None:
    """Connect, report ready, wait for `go`, then hammer `target` until window[1] (epoch s),
    counting answers completed in [window[0], window[1]). Puts {"requests", "errors",
    "latencies_ms"} on the queue `out`."""
    request = SignedGet(target)
    conns = [Connection(target.host, target.port) for _ in range(connections)]
    out.put("ready")
    go.wait()
    start_at, stop_at = window[0], window[1]
    done = errors = 0
    latencies: list[float] = []
    try:
        for c in conns:
            c.send(request.bytes())
        while time.time() < stop_at:
            for c in conns:
                status, body = c.read()
                finished = time.perf_counter()
                if start_at <= time.time() < stop_at:
                    done += 1
                    latencies.append((finished - c.sent_at) * 1000)
                    if status != 200 or not body.startswith(_OK):
                        errors += 1
                c.send(request.bytes())
        for c in conns:  # drain the last answers
            c.read()
    finally:
        for c in conns:
            c.close()
    out.put({"requests": done, "errors": errors, "latencies_ms": latencies})
