"""A minimal blocking WebSocket helper for the stream tests (the `websockets` package's sync client)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
from websockets.sync.client import ClientConnection, connect


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


def auth_args(api_key: str, api_secret: str, expires_ms: int | None = None) -> list[Any]:
    expires = expires_ms if expires_ms is not None else int(time.time() * 1000) + 1000
    signature = hmac.new(api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return [api_key, expires, signature]


class WsTestClient:
    def __init__(self, base_url: str, path: str) -> None:
        self.conn: ClientConnection = connect(ws_url(base_url, path), open_timeout=5).__enter__()

    def send(self, message: dict[str, Any]) -> None:
        self.conn.send(orjson.dumps(message).decode())

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return orjson.loads(self.conn.recv(timeout=timeout))

    def request(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        self.send(message)
        return self.recv(timeout)

    def auth(self, api_key: str, api_secret: str) -> dict[str, Any]:
        return self.request({"op": "auth", "args": auth_args(api_key, api_secret)})

    def pushes(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [self.recv(timeout) for _ in range(n)]

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.conn.recv(timeout=seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> WsTestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
