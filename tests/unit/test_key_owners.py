"""Each Redis key has one owner module: only it builds the key (through config/keys.py) and so only it
reads or writes what is stored there; other modules call the owner's read methods
(`Registry.states`, `Registry.due_entries`, `exchange.bybit.ratelimit.bucket_levels`, …)."""

from __future__ import annotations

import ast

from config import keys
from tests.unit.test_keys import ROOT, product_files

REGISTRY = "workers/registry.py"
OWNERS: dict[str, set[str]] = {
    "monitor": {REGISTRY},
    "all_monitors": {REGISTRY},
    "account_monitors": {REGISTRY},
    "accounts": {REGISTRY},
    "due": {REGISTRY},
    "registry_epoch": {REGISTRY},
    "reconcile_lock": {"workers/reconcile.py"},
    "account_lock": {"workers/locks.py"},
    "position_monitors": {"workers/position_index.py"},
    "position_sizes": {"workers/position_index.py"},
    "position_mode": {"workers/lifecycle.py"},
    "quarantine": {"workers/quarantine.py"},
    "stream_pending": {"workers/stream_triggers.py"},
    "stream_queued": {"workers/stream_triggers.py"},
    "stream_health": {"tasks/stream.py"},
    "stream_prices": {"workers/stream_prices.py"},
    "view_orders": {"workers/stream_view.py"},
    "view_positions": {"workers/stream_view.py"},
    "view_stamps": {"workers/stream_view.py"},
    "view_fills": {"workers/stream_view.py"},
    "view_stop_fills": {"workers/stream_view.py"},
    "view_meta": {"workers/stream_view.py"},
    "view_alive": {"workers/stream_view.py"},
    "market": {"workers/market_cache.py"},
    "loading": {"workers/single_flight.py", "workers/market_cache.py"},
    "read_stats": {"workers/checker.py"},
    "cache": {"workers/ttl_cache.py"},
    "cache_index": {"workers/ttl_cache.py"},
    "cache_stats": {"workers/ttl_cache.py"},
    "cache_logged": {"workers/ttl_cache.py"},
    "latency": {"workers/lag.py"},
    "latency_labels": {"workers/lag.py"},
    "persist_stats": {"persistence/stats.py"},
    "persist_pending": {"persistence/pending.py", "persistence/stats.py"},
    "persist_processing": {"persistence/pending.py"},
    "persist_taken": {"persistence/pending.py"},
    "calls": {"exchange/bybit/callstats.py"},
    "rate_limit": {"exchange/bybit/ratelimit.py"},
    "rate_limit_bucket": {"exchange/bybit/ratelimit.py"},
    "tier_series": {"workers/series.py"},
    "price_series": {"workers/series.py"},
}
SHARED = {"PREFIX", "LOADING_SUFFIX", "RateLimitKeys"}
# the registry's own key methods: a module that calls one reads the registry's hashes or due sets
REGISTRY_KEY_METHODS = {"monitor_key", "account_key", "due_key", "split_member", "member"}


def uses_in(source: str, rel: str) -> list[tuple[str, str, int]]:
    """(builder or method, module, line) of each `keys.<builder>` and registry key method used."""
    out = []
    for node in ast.walk(ast.parse(source, rel)):
        if not isinstance(node, ast.Attribute):
            continue
        of_keys = isinstance(node.value, ast.Name) and node.value.id == "keys"
        if of_keys or (node.attr in REGISTRY_KEY_METHODS and rel != REGISTRY):
            out.append((node.attr, rel, node.lineno))
    return out


def uses() -> list[tuple[str, str, int]]:
    out = []
    for path in product_files():
        if path.is_file():
            out += uses_in(path.read_text(), str(path.relative_to(ROOT)))
    return out


def test_every_key_builder_has_an_owner():
    builders = {n for n, v in vars(keys).items() if callable(v) and not n.startswith("_")}
    assert builders - SHARED - {"NamedTuple"} == set(OWNERS)


def test_only_the_owner_builds_and_reads_its_keys():
    offenders = []
    for name, module, line in uses():
        if name in SHARED:
            continue
        if name in REGISTRY_KEY_METHODS:
            offenders.append(f"{module}:{line}: Registry.{name} (use the registry's read methods)")
        elif module not in OWNERS.get(name, set()):
            offenders.append(f"{module}:{line}: keys.{name} belongs to {sorted(OWNERS.get(name, {'?'}))}")
    assert offenders == [], "read another component's keys through its owner:\n" + "\n".join(offenders)


def test_the_owner_check_sees_a_foreign_read():
    """The walk above finds both shapes it forbids, and lets the owner's own use pass."""
    src = "pipe.hmget(reg.monitor_key(mid), 'version')\nbucket = keys.rate_limit(keys.PREFIX, b)\n"
    assert sorted(uses_in(src, "dashboard/metrics.py")) == [
        ("PREFIX", "dashboard/metrics.py", 2),
        ("monitor_key", "dashboard/metrics.py", 1),
        ("rate_limit", "dashboard/metrics.py", 2),
    ]
    assert [u[0] for u in uses_in("self.monitor_key(m)", REGISTRY)] == []
