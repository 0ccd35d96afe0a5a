"""Call statistics of one exchange host's session: counters (calls, attempts, new and reused
connections, idle expiries, re-creations, errors by kind) and a latency histogram. Thread-safe;
read by the dashboard's pool figures and the benchmark (`SessionPool.stats()`)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

LATENCY_BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)


class LatencyHistogram:
    """Fixed buckets (ms); percentiles are read as the upper bound of the bucket they fall in."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BOUNDS_MS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum_ms = 0.0

    def add(self, ms: float) -> None:
        i = 0
        while i < len(self.bounds) and ms > self.bounds[i]:
            i += 1
        self.counts[i] += 1
        self.count += 1
        self.sum_ms += ms

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def as_dict(self) -> dict[str, Any]:
        buckets = {f"le_{b:g}": c for b, c in zip(self.bounds, self.counts, strict=False)}
        buckets["le_inf"] = self.counts[-1]
        return {
            "count": self.count,
            "sum_ms": round(self.sum_ms, 3),
            "mean_ms": round(self.sum_ms / self.count, 3) if self.count else None,
            "p50_ms": self.percentile(0.50),
            "p95_ms": self.percentile(0.95),
            "p99_ms": self.percentile(0.99),
            "buckets": buckets,
        }


class SessionStats:
    """Counters of one host's session (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0  # PooledSession.request calls
        self.attempts = 0  # HTTP exchanges sent (a retried GET counts each attempt)
        self.new_connections = 0  # sockets opened
        self.expired_idle = 0  # connections closed for idling past keep-alive
        self.recreations = 0
        self.consecutive_failures = 0
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def observe_latency(self, ms: float) -> None:
        with self._lock:
            self.latency.add(ms)

    def succeeded(self) -> None:
        with self._lock:
            self.consecutive_failures = 0

    def failed(self, kind: str) -> int:
        """Count a transport failure; returns the number of consecutive ones."""
        with self._lock:
            self.errors[kind] += 1
            self.consecutive_failures += 1
            return self.consecutive_failures

    def recreated(self) -> None:
        with self._lock:
            self.recreations += 1
            self.consecutive_failures = 0

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            reused = max(self.attempts - self.new_connections, 0)
            return {
                "calls": self.calls,
                "attempts": self.attempts,
                "new_connections": self.new_connections,
                "reused_connections": reused,
                "reuse_rate": round(reused / self.attempts, 4) if self.attempts else None,
                "expired_idle": self.expired_idle,
                "recreations": self.recreations,
                "consecutive_failures": self.consecutive_failures,
                "errors": dict(self.errors),
                "latency": self.latency.as_dict(),
            }
