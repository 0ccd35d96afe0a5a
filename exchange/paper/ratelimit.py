"""Per-account, per-endpoint rate limits over rolling 1 s windows (Bybit's default level, as its
"rate limit" docs give it), reported on every private answer in X-Bapi-Limit / X-Bapi-Limit-Status /
X-Bapi-Limit-Reset-Timestamp. Batch endpoints count one unit per order item, in their own pool.

A breach is HTTP 200 + retCode 10006 with the reset timestamp = when the oldest request of the
window leaves it (always ≥ now). Switched off, every request passes and the headers show an
unlimited quota (`UNLIMITED` left of `UNLIMITED`): a client that paces itself by the headers, as
Bybit asks, is not held to a limit nobody enforces.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import FixInput

WINDOW_MS = 1000
UNLIMITED = 1_000_000  # what the headers report while the limits are switched off

DEFAULT_LIMITS: dict[str, int] = {
    "/v5/order/create": 10,
    "/v5/order/amend": 10,
    "/v5/order/cancel": 10,
    "/v5/order/cancel-all": 10,
    "/v5/order/create-batch": 10,
    "/v5/order/amend-batch": 10,
    "/v5/order/cancel-batch": 10,
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/position/set-leverage": 10,
    "/v5/position/switch-mode": 10,
    "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
    "/v5/account/fee-rate": 5,
}
FALLBACK_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int
    remaining: int
    reset_ms: int
    granted: int  # units allowed of those asked (0: throttled)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-bapi-limit", str(self.limit).encode()),
            (b"x-bapi-limit-status", str(self.remaining).encode()),
            (b"x-bapi-limit-reset-timestamp", str(self.reset_ms).encode()),
        ]


class RateLimiter:
    def __init__(
        self, limits: Mapping[str, int] | None = None, *, enabled: bool = True, window_ms: int = WINDOW_MS
    ) -> None:
        self.enabled = enabled
        self.window_ms = window_ms
        self.limits: dict[str, int] = dict(DEFAULT_LIMITS)
        if limits:
            self.configure(limits)
        self._windows: dict[tuple[str, str], deque[int]] = {}

    def configure(self, limits: Mapping[str, int]) -> None:
        for path, n in limits.items():
            if not isinstance(path, str) or not path.startswith("/v5/"):
                raise FixInput(f"limits.{path}", "must be a /v5/ path")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise FixInput(f"limits.{path}", "must be an integer >= 1 (requests per window)")
            self.limits[path] = n

    def reset(self) -> None:
        self._windows.clear()

    def limit_of(self, path: str) -> int:
        return self.limits.get(path, FALLBACK_LIMIT)

    def take(self, account: str, path: str, now_ms: int, units: int = 1) -> Quota:
        """Spend up to `units` of the account's quota on `path` (batch: one unit per item)."""
        if not self.enabled:
            return Quota(UNLIMITED, UNLIMITED, now_ms, units)
        limit = self.limit_of(path)
        window = self._windows.get((account, path))
        if window is None:
            window = self._windows[(account, path)] = deque()
        floor = now_ms - self.window_ms
        while window and window[0] <= floor:
            window.popleft()
        granted = min(units, limit - len(window))
        for _ in range(granted):
            window.append(now_ms)
        remaining = limit - len(window)
        reset = window[0] + self.window_ms if remaining == 0 else now_ms
        return Quota(limit, remaining, max(reset, now_ms), max(granted, 0))
