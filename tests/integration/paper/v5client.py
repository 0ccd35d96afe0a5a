"""A minimal signed v5 client for the paper exchange's HTTP tests (requests, no pybit): it signs
exactly what it sends, so tests can also send what pybit never would (mixed-case headers,
unsorted queries, stale timestamps)."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from exchange.paper.auth import signature
from exchange.paper.runner import PaperCredentials


class V5Client:
    def __init__(self, base_url: str, creds: PaperCredentials, *, recv_window: int = 5000) -> None:
        self.base_url = base_url
        self.creds = creds
        self.recv_window = recv_window
        self.http = requests.Session()

    def headers(self, payload: str, *, ts: int | None = None, secret: str | None = None) -> dict[str, str]:
        stamp = str(ts if ts is not None else int(time.time() * 1000))
        rw = str(self.recv_window)
        sign = signature(secret or self.creds.api_secret, stamp, self.creds.api_key, rw, payload.encode())
        return {
            "X-BAPI-API-KEY": self.creds.api_key,
            "X-BAPI-TIMESTAMP": stamp,
            "X-BAPI-RECV-WINDOW": rw,
            "X-BAPI-SIGN": sign,
            "X-BAPI-SIGN-TYPE": "2",
            "Content-Type": "application/json",
        }

    def raw_get(
        self, path: str, *, query: str | None = None, timeout: float = 10, **params: Any
    ) -> requests.Response:
        q = query if query is not None else "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        url = f"{self.base_url}{path}" + (f"?{q}" if q else "")
        return self.http.get(url, headers=self.headers(q), timeout=timeout)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.raw_get(path, **params).json()

    def raw_post(self, path: str, body: dict[str, Any], *, timeout: float = 10) -> requests.Response:
        raw = json.dumps(body)
        return self.http.post(f"{self.base_url}{path}", data=raw, headers=self.headers(raw), timeout=timeout)

    def post(self, path: str, *, timeout: float = 10, **body: Any) -> dict[str, Any]:
        return self.raw_post(path, body, timeout=timeout).json()
