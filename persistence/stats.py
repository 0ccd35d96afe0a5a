"""Persistence counters, kept in Redis so every worker process adds to the same figures.

Hash `<prefix>:stats:persist`; `persist_stats(redis)` reads it. The coalescing ratio is events
received per database transaction: 1.0 means one transaction per event (the synchronous baseline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import redis

from config import keys

log = logging.getLogger(__name__)

RECEIVED_CRITICAL = "events_received_critical"
RECEIVED_NONCRITICAL = "events_received_noncritical"
EVENTS_WRITTEN = "events_written"
MONITOR_ROWS_WRITTEN = "monitor_rows_written"
TRANSACTIONS = "transactions"
FLUSHES = "flushes"  # flushes that wrote something
FLUSH_FAILURES = "flush_failures"
ENTRIES_FLUSHED = "entries_flushed"  # pending entries written by flushes
ENTRIES_GIVEN_BACK = "entries_given_back"  # pending entries merged back after a failed flush

COUNTERS = (
    RECEIVED_CRITICAL,
    RECEIVED_NONCRITICAL,
    EVENTS_WRITTEN,
    MONITOR_ROWS_WRITTEN,
    TRANSACTIONS,
    FLUSHES,
    FLUSH_FAILURES,
    ENTRIES_FLUSHED,
    ENTRIES_GIVEN_BACK,
)


def stats_key(prefix: str = keys.PREFIX) -> str:
    return keys.persist_stats(prefix)


def add(client: redis.Redis, prefix: str, deltas: Mapping[str, int]) -> None:
    """Add to the counters. Best effort: the data is already safe, so a Redis failure here is logged,
    not raised (raising would make a Celery task redo a write that succeeded)."""
    nonzero = {k: v for k, v in deltas.items() if v}
    if not nonzero:
        return
    try:
        pipe = client.pipeline(transaction=False)
        key = stats_key(prefix)
        for name, value in nonzero.items():
            pipe.hincrby(key, name, value)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("persist counters not updated: %s", exc)


def coalescing_ratio(stats: Mapping[str, Any]) -> float | None:
    """Events received per database transaction; None before the first transaction."""
    transactions = int(stats.get(TRANSACTIONS, 0))
    if transactions <= 0:
        return None
    received = int(stats.get(RECEIVED_CRITICAL, 0)) + int(stats.get(RECEIVED_NONCRITICAL, 0))
    return received / transactions


def persist_stats(client: redis.Redis, *, prefix: str = keys.PREFIX) -> dict[str, Any]:
    """Every counter (0 when never incremented), `events_received` (both kinds), `pending` (entries
    waiting for the next flush) and `coalescing_ratio` (None before the first transaction)."""
    raw = cast("dict[str, str]", client.hgetall(stats_key(prefix)))
    out: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    for name, value in raw.items():
        out[name] = int(value)  # clients decode responses (workers/runtime.redis_client)
    out["events_received"] = out[RECEIVED_CRITICAL] + out[RECEIVED_NONCRITICAL]
    out["pending"] = cast(int, client.hlen(keys.persist_pending(prefix)))
    out["coalescing_ratio"] = coalescing_ratio(out)
    return out
