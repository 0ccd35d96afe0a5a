"""The Redis key schema: every key tpsl-guard stores is built here, and nowhere else.

docs/architecture.md ("Redis key schema") lists each key with its type, owner and contents. The
strings are part of existing deployments' data: changing one orphans what is stored under the old
name. `tests/unit/test_keys.py` pins every string and checks that no other module builds a key.

Each builder takes the prefix first (`PREFIX` in production; tests use their own prefixes to stay
apart). The owners keep their own key methods (`Registry.monitor_key`, …) as thin calls into this
module. One key is also derived inside a Lua script: `workers/lua/remove.lua` rebuilds
`account_monitors` from the stored account (a test keeps the two in step).

Celery's broker keys (queues, unacked messages) belong to kombu and are not built here.
"""

from __future__ import annotations

from typing import NamedTuple

PREFIX = "tpsl"

LOADING_SUFFIX = ":loading"


def loading(key: str) -> str:
    """The single-flight lock beside a cached value: whoever holds it loads the value."""
    return f"{key}{LOADING_SUFFIX}"


# --------------------------------------------------------------------- registry (workers/registry.py)


def monitor(prefix: str, monitor_id: str) -> str:
    return f"{prefix}:mon:{monitor_id}"


def all_monitors(prefix: str) -> str:
    return f"{prefix}:mons"


def account_monitors(prefix: str, account: str) -> str:
    return f"{prefix}:acct:{account}:mons"


def accounts(prefix: str) -> str:
    return f"{prefix}:accounts"


def due(prefix: str, tier: str) -> str:
    """`tier` is a tier's value ("critical", …)."""
    return f"{prefix}:due:{tier}"


def registry_epoch(prefix: str) -> str:
    return f"{prefix}:registry:epoch"


# ------------------------------------------------------------------------------------------ locks


def account_lock(prefix: str, account: str) -> str:
    return f"{prefix}:lock:account:{account}"


def reconcile_lock(prefix: str) -> str:
    return f"{prefix}:lock:reconcile"


# ----------------------------------------------------------------------------- worker state


def position_monitors(prefix: str, account: str) -> str:
    return f"{prefix}:pos:{account}:mon"


def position_sizes(prefix: str, account: str) -> str:
    return f"{prefix}:pos:{account}:size"


def position_mode(prefix: str, account: str) -> str:
    return f"{prefix}:posmode:{account}"


def stream_pending(prefix: str, account: str) -> str:
    """Set of monitor ids pushes marked for the account's next stream-triggered check."""
    return f"{prefix}:stream:{account}:pending"


def stream_queued(prefix: str, account: str) -> str:
    """Flag: a stream-triggered check of the account is queued (at most one at a time)."""
    return f"{prefix}:stream:{account}:queued"


def stream_health(prefix: str) -> str:
    """Hash account → JSON of its private stream's state (connected, last push, gaps)."""
    return f"{prefix}:stream:health"


def stream_prices(prefix: str) -> str:
    """Hash SYMBOL → JSON {last, mark, at}: the price the public ticker stream last pushed, and when
    the stream last confirmed it (a push, or a heartbeat while its connection is up)."""
    return f"{prefix}:stream:prices"


def view_orders(prefix: str, account: str) -> str:
    """Hash orderLinkId → the account's order as its stream last showed it (ours only)."""
    return f"{prefix}:view:{account}:orders"


def view_positions(prefix: str, account: str) -> str:
    """Hash SYMBOL|idx → the account's position as its stream last showed it."""
    return f"{prefix}:view:{account}:positions"


def view_fills(prefix: str, account: str) -> str:
    """Hash SYMBOL → the exchange time (ms) of the latest execution pushed on that symbol (a
    position push older than it does not show that fill yet)."""
    return f"{prefix}:view:{account}:fills"


def view_stop_fills(prefix: str, account: str) -> str:
    """Hash SYMBOL|Side → the exchange time (ms) of the latest pushed fill of a position's own
    stop-loss (stop mode position): what judges a close the guard's own orders do not explain."""
    return f"{prefix}:view:{account}:stop_fills"


def view_stamps(rows_key: str) -> str:
    """Hash beside a view hash: field → the exchange time (ms) of the state held (newer wins)."""
    return f"{rows_key}:stamps"


def view_meta(prefix: str, account: str) -> str:
    """Hash: gap_at (the stream last re-subscribed), reconciled_at, divergences."""
    return f"{prefix}:view:{account}:meta"


def view_alive(prefix: str, account: str) -> str:
    """String with a short TTL, refreshed by the stream process while the account's stream is up."""
    return f"{prefix}:view:{account}:alive"


def quarantine(prefix: str) -> str:
    return f"{prefix}:quarantine"


def market(prefix: str, name: str) -> str:
    return f"{prefix}:market:{name}"


def read_stats(prefix: str, name: str) -> str:
    """`name` is "reads" (account reads), "view_reads" (those served by a stream view) or
    "checked" (monitors checked)."""
    return f"{prefix}:stats:{name}"


# ------------------------------------------------------------------------- the dashboard's cache


def cache(prefix: str, component: str, key: str) -> str:
    """`component` and `key` already checked and escaped by workers/ttl_cache.py."""
    return f"{prefix}:cache:{component}:{key}"


def cache_index(prefix: str, account: str) -> str:
    return f"{prefix}:cache:idx:{account}"


def cache_stats(prefix: str) -> str:
    return f"{prefix}:cache:stats"


def cache_logged(prefix: str) -> str:
    return f"{prefix}:cache:logged"


# ------------------------------------------------------------------------------------- latency


def latency(prefix: str, metric: str, label: str, slot: int) -> str:
    return f"{prefix}:lat:{metric}:{label}:{slot}"


def latency_labels(prefix: str, metric: str) -> str:
    return f"{prefix}:lat:{metric}:labels"


# --------------------------------------------------------------------------------- persistence


def persist_stats(prefix: str) -> str:
    return f"{prefix}:stats:persist"


def persist_pending(prefix: str) -> str:
    return f"{prefix}:persist:pending"


def persist_processing(prefix: str) -> str:
    return f"{prefix}:persist:processing"


def persist_taken(prefix: str, token: str) -> str:
    """One pending hash taken (renamed) by a flusher."""
    return f"{persist_processing(prefix)}:{token}"


# ------------------------------------------------------------------------------------- exchange


def calls(prefix: str, minute: int) -> str:
    return f"{prefix}:calls:{minute}"


def rate_limit_bucket(account: str, group: str) -> str:
    """The name of one (account, endpoint group) bucket; `rate_limit` turns it into keys."""
    return f"{account}:{group}"


class RateLimitKeys(NamedTuple):
    log: str  # zset: the grants of the rolling window
    until: str  # string: the back-off deadline (epoch ms)
    level: str  # hash: `t` = units left at the last use


def rate_limit(prefix: str, bucket: str) -> RateLimitKeys:
    base = f"{prefix}:rl:{bucket}"
    return RateLimitKeys(f"{base}:log", f"{base}:until", base)


# ------------------------------------------------------------------------------------ dashboard


def tier_series(prefix: str) -> str:
    return f"{prefix}:dash:series:tiers"


def price_series(prefix: str, symbol: str) -> str:
    return f"{prefix}:dash:series:px:{symbol}"
