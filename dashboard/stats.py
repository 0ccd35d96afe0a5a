"""Operations figures (`GET /api/stats`, the page's operations panel) and the tier series.

Everything here is fleet-wide and read from Redis (the figures every process adds to), except the
counts by phase and kind, which come from the database through the `stats` cache entry:

- exchange calls per minute (CallStats: the last complete minutes) and per endpoint last minute;
- cache hit rate per component (TTLCache counters);
- connection reuse of this web process's HTTP pool (the workers' pools log theirs: `tpsl.stats`);
- persistence: events received, transactions, coalescing ratio, pending entries;
- monitors per tier (the registry's due sets), queue depths (LLEN on the broker), check lag
  p50/p99 per tier and reaction latency (LatencyRecorder, last `LAG_WINDOW_S`).

The whole set is computed at most once per `OPS_TTL_S` (2 s) in the fleet and shared through the
`stats` cache entry `ops` (`snapshot()`); the database counts inside it are their own `stats`
entry (300 s). The monitors-per-tier series the page plots is collected by beat (workers/series.py);
computing the figures only reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.queues import ALL_QUEUES
from persistence.stats import persist_stats
from workers.lag import CHECK_LAG, REACTION, REACTION_ALL
from workers.registry import TIER_ORDER
from workers.series import tier_series, tiers_key

if TYPE_CHECKING:
    from workers.runtime import Runtime
    from workers.ttl_cache import TTLCache

log = logging.getLogger(__name__)

OPS_TTL_S = 2.0  # the figures are computed at most this often in the fleet (the "stats" cache entry)
LAG_WINDOW_S = 300.0
CALL_MINUTES = 10
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: "<queue><sep><priority>" for priorities > 0
PRIORITY_STEPS = (3, 6, 9)


class OpsStats:
    """`OpsStats(rt, cache, data).compute()` → the /api/stats dict."""

    def __init__(
        self, rt: Runtime, cache: TTLCache | None, counts: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.rt = rt
        self.cache = cache
        self.counts = counts

    # -------------------------------------------------------------------------------- parts

    def call_minutes(self, *, now: float, minutes: int = CALL_MINUTES) -> list[tuple[int, dict[str, int]]]:
        """(minute, {"<account>|<path>[|err]": n}) of the last `minutes` complete minutes, oldest
        first, one round trip (exchange.bybit.callstats)."""
        from exchange.bybit.callstats import CallStats

        current = int(now // 60)
        span = range(current - minutes, current)
        counts = CallStats(self.rt.redis, prefix=self.rt.prefix).minutes(span)
        return list(zip(span, counts, strict=True))

    def calls(self, *, now: float) -> dict[str, Any]:
        minutes = self.call_minutes(now=now)
        per_minute = [(m, sum(v for k, v in d.items() if not k.endswith("|err"))) for m, d in minutes]
        detail = minutes[-1][1] if minutes else {}
        return {
            "per_minute": [{"minute": m, "at": m * 60, "calls": n} for m, n in per_minute],
            "last_minute": per_minute[-1][1] if per_minute else 0,
            "errors_last_minute": sum(v for k, v in detail.items() if k.endswith("|err")),
            "by_endpoint": {k: v for k, v in sorted(detail.items()) if not k.endswith("|err")},
            "errors_by_endpoint": {
                k[: -len("|err")]: v for k, v in sorted(detail.items()) if k.endswith("|err")
            },
        }

    def cache_stats(self) -> dict[str, Any]:
        if self.cache is None:
            return {"enabled": False, "components": {}, "hit_rate": None}
        comps = self.cache.stats()
        hits = sum(c["hits"] for c in comps.values())
        reads = sum(c["reads"] for c in comps.values())
        return {
            "enabled": self.cache.enabled,
            "components": comps,
            "hit_rate": round(hits / reads, 4) if reads else None,
        }

    def connections(self) -> dict[str, Any]:
        from exchange.bybit.session import get_session_pool

        stats = get_session_pool(self.rt.settings).stats()
        return {
            "scope": "this web process",
            "reuse_rate": stats["reuse_rate"],
            "attempts": stats["attempts"],
            "new_connections": stats["new_connections"],
            "open_connections": stats["open_connections"],
        }

    def persistence(self) -> dict[str, Any]:
        p = persist_stats(self.rt.redis, prefix=self.rt.prefix)
        return {
            "events_received": p["events_received"],
            "transactions": p["transactions"],
            "coalescing_ratio": p["coalescing_ratio"],
            "pending": p["pending"],
            "flushes": p["flushes"],
            "flush_failures": p["flush_failures"],
        }

    def registry(self) -> dict[str, Any]:
        """The registry's epoch: since when this Redis holds it, and the last rebuild from the
        database (a lost registry rebuilt without an operator), if any."""
        e = self.rt.registry.epoch() or {}

        def number(name: str) -> float | None:
            try:
                return float(e[name])
            except (KeyError, ValueError):
                return None

        restored = number("restored")
        return {
            "present": bool(e),
            "since": number("since"),
            "rebuilt_at": number("rebuilt_at"),
            "restored": None if restored is None else int(restored),
        }

    def monitors_by_tier(self) -> dict[str, int]:
        return {t.value: n for t, n in self.rt.registry.counts_by_tier().items()}

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each queue (the broker is the same Redis), priorities summed."""
        pipe = self.rt.redis.pipeline(transaction=False)
        for q in ALL_QUEUES:
            pipe.llen(q)
            for p in PRIORITY_STEPS:
                pipe.llen(f"{q}{PRIORITY_SEP}{p}")
        replies = iter(pipe.execute())
        out = {}
        for q in ALL_QUEUES:
            out[q] = int(next(replies)) + sum(int(next(replies)) for _ in PRIORITY_STEPS)
        return out

    def latency(self, metric: str, *, now: float, labels: list[str] | None = None) -> dict[str, Any]:
        summaries = self.rt.latency.summaries(metric, now=now, window_s=LAG_WINDOW_S, labels=labels)
        return {
            label: {
                "p50_s": round(h.p50_s, 4),
                "p99_s": round(h.p99_s, 4),
                "mean_s": round(h.mean_s, 4),
                "samples": h.count,
            }
            for label, h in summaries.items()
        }

    def check_lag(self, *, now: float) -> dict[str, Any]:
        return self.latency(CHECK_LAG, now=now, labels=[t.value for t in TIER_ORDER])

    # ---------------------------------------------------------------------------------- series

    def tier_series(self) -> list[dict[str, Any]]:
        return tier_series(self.rt.redis).read(tiers_key(self.rt.prefix))

    # --------------------------------------------------------------------------------- whole

    def snapshot(self) -> dict[str, Any]:
        """The figures as /api/stats, the page and /metrics serve them: computed at most once per
        `OPS_TTL_S` in the whole fleet (the `stats` cache entry `ops`, single-flight), so polling
        costs one Redis round trip. With the cache switched off: computed on every call."""
        if self.cache is None:
            return self.compute()
        return self.cache.get_or_load("stats", "ops", self.compute, ttl_s=OPS_TTL_S)

    def compute(self, *, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        by_tier = self.monitors_by_tier()
        monitors: dict[str, Any] = {"by_tier": by_tier, "live": sum(by_tier.values())}
        if self.counts is not None:
            try:
                c = self.counts()
                monitors["by_phase"] = c["monitors_by_phase"]
                monitors["total"] = c["monitors_total"]
                monitors["events_by_kind"] = c["events_by_kind"]
            except Exception as exc:
                log.warning("database counts unavailable: %s", type(exc).__name__)
        return {
            "at": now,
            "exchange_calls": self.calls(now=now),
            "cache": self.cache_stats(),
            "connections": self.connections(),
            "persistence": self.persistence(),
            "monitors": monitors,
            "registry": self.registry(),
            "queues": self.queue_depths(),
            "check_lag": self.check_lag(now=now),
            "reaction": self.latency(REACTION, now=now),
            "reaction_all": self.latency(REACTION_ALL, now=now),
        }
