"""Request counters of the paper exchange (GET /paper/stats)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RequestStats:
    """Every /v5 request received, by endpoint and by presented API key, plus the number of TCP
        connections seen (distinct client (host, port) pairs: exact for HTTP/1.1 keep-alive while the
        OS does not reuse a port within one stats period), and the units the rate limit refused (a whole
    request answered 10006 counts its units; a batch counts its refused items), by endpoint."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.by_endpoint: dict[str, int] = {}
        self.by_account: dict[str, dict[str, int]] = {}
        self._clients: set[tuple[str, int]] = set()
        self.rate_limited: dict[str, int] = {}

    def count(self, path: str, api_key: str | None) -> None:
        self.total += 1
        self.by_endpoint[path] = self.by_endpoint.get(path, 0) + 1
        if api_key:
            per = self.by_account.get(api_key)
            if per is None:
                per = self.by_account[api_key] = {}
            per[path] = per.get(path, 0) + 1

    def limited(self, path: str, units: int) -> None:
        if units > 0:
            self.rate_limited[path] = self.rate_limited.get(path, 0) + units

    def connection(self, client: tuple[str, int]) -> None:
        self._clients.add(client)

    def snapshot(self, label: Callable[[str], str]) -> dict[str, Any]:
        """The counters; `label` names the account of a presented API key (keys never leave)."""
        by_account: dict[str, dict[str, int]] = {}
        for key, per in self.by_account.items():
            into = by_account.setdefault(label(key), {})
            for path, n in per.items():
                into[path] = into.get(path, 0) + n
        return {
            "total": self.total,
            "by_endpoint": dict(self.by_endpoint),
            "by_account": by_account,
            "connections": len(self._clients),
            "rate_limited": dict(self.rate_limited),
        }
