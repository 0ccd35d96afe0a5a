"""The dashboard's TTL cache against a real Redis: expiry, counts, single-flight, invalidation, the
rollback switch, the periodic statistics line."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

import pytest

from config.settings import Settings
from workers.ttl_cache import FLEET, TTLCache, component_ttls


def make_cache(redis_client, **over):
    settings_over = {k: over.pop(k) for k in list(over) if k in Settings.model_fields}
    settings = Settings(redis_url="redis://unused", **settings_over)
    return TTLCache(redis_client, settings, prefix="t", **over)


class Loader:
    """Counts its calls (thread-safe); optionally waits on an event before answering."""

    def __init__(self, value=None, *, gate: threading.Event | None = None):
        self.calls = 0
        self.value = value if value is not None else {"n": 1}
        self.gate = gate
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return self.value


def test_settings_give_each_component_its_ttl():
    ttls = component_ttls(Settings(redis_url="redis://unused"))
    assert ttls == {
        "account": 60.0,
        "positions": 15.0,
        "orders": 15.0,
        "stats": 300.0,
        "market": 180.0,
        "insights": 1800.0,
    }


def test_hit_after_miss_and_counts(redis_client):
    cache = make_cache(redis_client)
    load = Loader({"equity": Decimal("10.50"), "rows": (1, 2)})
    first = cache.get_or_load("account", "main", load)
    second = cache.get_or_load("account", "main", load)
    assert first == second == {"equity": "10.50", "rows": [1, 2]}  # JSON both times (Decimals as strings)
    assert load.calls == 1
    stats = cache.stats()["account"]
    assert (stats["hits"], stats["misses"], stats["reads"], stats["hit_rate"]) == (1, 1, 2, 0.5)
    assert cache.stats()["positions"]["hit_rate"] is None  # never read


def test_counts_are_fleet_wide(redis_client):
    a, b = make_cache(redis_client), make_cache(redis_client)  # two processes' caches
    load = Loader()
    a.get_or_load("orders", "main", load)
    b.get_or_load("orders", "main", load)
    assert load.calls == 1
    assert a.stats()["orders"]["hits"] == 1 and b.stats()["orders"]["misses"] == 1


def test_entry_expires_after_its_ttl(redis_client):
    cache = make_cache(redis_client)
    load = Loader()
    cache.get_or_load("positions", "main", load, ttl_s=0.15)
    cache.get_or_load("positions", "main", load, ttl_s=0.15)
    assert load.calls == 1
    assert 0 < redis_client.pttl(cache.key("positions", "main")) <= 150
    time.sleep(0.3)
    cache.get_or_load("positions", "main", load, ttl_s=0.15)
    assert load.calls == 2


def test_component_ttl_comes_from_settings(redis_client):
    cache = make_cache(redis_client, cache_ttl_orders_s=7.0)
    cache.get_or_load("orders", "main", Loader())
    assert 6000 < redis_client.pttl(cache.key("orders", "main")) <= 7000
    with pytest.raises(ValueError, match="component"):
        cache.get_or_load("nope", "main", Loader())


def test_single_flight_twenty_threads_one_load(redis_client):
    """One caller loads while it is held at a gate; 19 more arrive meanwhile: none of them loads,
    all get its value."""
    cache = make_cache(redis_client, wait_s=30.0)
    gate = threading.Event()
    load = Loader({"v": 42}, gate=gate)
    results: list[object] = []
    errors: list[BaseException] = []
    arrived = threading.Semaphore(0)

    def reader():
        try:
            arrived.release()
            results.append(cache.get_or_load("stats", "ops", load))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    first = threading.Thread(target=reader)
    first.start()
    deadline = time.monotonic() + 10
    while load.calls == 0 and time.monotonic() < deadline:  # the first one is loading…
        time.sleep(0.01)
    assert load.calls == 1
    others = [threading.Thread(target=reader) for _ in range(19)]
    for t in others:
        t.start()
    for _ in range(20):
        assert arrived.acquire(timeout=10)
    time.sleep(0.2)  # …the others reach the cache while the load is held…
    gate.set()  # …then it finishes: they find its value
    for t in [first, *others]:
        t.join(30)
    assert not errors
    assert load.calls == 1
    assert len(results) == 20 and all(r == {"v": 42} for r in results)
    s = cache.stats()["stats"]
    assert s["misses"] == 1 and s["hits"] == 19
    # a reader the scheduler held back until after the load finished finds the value without
    # waiting: how many waited depends on the machine's load, not on the cache
    assert 1 <= s["waits"] <= 19


def test_a_loader_error_is_not_cached_and_frees_the_lock(redis_client):
    cache = make_cache(redis_client, wait_s=5.0)
    calls = []

    def failing():
        calls.append(1)
        raise RuntimeError("exchange down")

    with pytest.raises(RuntimeError):
        cache.get_or_load("account", "main", failing)
    assert redis_client.get(cache.key("account", "main")) is None
    assert cache.get_or_load("account", "main", Loader({"ok": True})) == {"ok": True}  # no wait behind a lock


def test_waiter_loads_itself_when_the_loader_elsewhere_hangs(redis_client):
    """A loader that holds the lock and never writes: waiters give up after wait_s and load."""
    clock = [0.0]
    cache = make_cache(redis_client, wait_s=1.0, clock=lambda: clock[0])
    redis_client.set(cache.key("market", "symbols") + ":loading", "someone-else", px=60_000)

    def tick(_s):
        clock[0] += 0.25

    cache._sleep = tick
    load = Loader(["BTCUSDT"])
    assert cache.get_or_load("market", "symbols", load) == ["BTCUSDT"]
    assert load.calls == 1


def test_invalidate_account_drops_its_entries_and_fleet_wide_ones(redis_client):
    cache = make_cache(redis_client, extra_ttls={"history": 30})
    for component in ("account", "positions", "orders"):
        cache.get_or_load(component, "main", Loader())
        cache.get_or_load(component, "mirror1", Loader())
    cache.get_or_load("history", "events:m1", Loader(), account="main")
    cache.get_or_load("history", "events:m2", Loader(), account="mirror1")
    cache.get_or_load("history", "closed:*", Loader(), account=FLEET)
    cache.get_or_load("insights", "days:7", Loader())  # untagged: kept

    assert cache.invalidate_account("main") == 7  # 3 fixed + 1 tagged + 1 fleet-wide + 2 index sets
    gone = [cache.key(c, "main") for c in ("account", "positions", "orders")]
    gone += [cache.key("history", "events:m1"), cache.key("history", "closed:*")]
    kept = [cache.key(c, "mirror1") for c in ("account", "positions", "orders")]
    kept += [cache.key("history", "events:m2"), cache.key("insights", "days:7")]
    assert [redis_client.exists(k) for k in gone] == [0] * len(gone)
    assert [redis_client.exists(k) for k in kept] == [1] * len(kept)

    load = Loader()
    cache.get_or_load("positions", "main", load)
    assert load.calls == 1  # read again from the source


def test_rollback_switch_reads_through_and_counts_misses(redis_client):
    cache = make_cache(redis_client, cache_enabled=False)
    load = Loader()
    for _ in range(3):
        cache.get_or_load("positions", "main", load)
    assert load.calls == 3
    assert redis_client.exists(cache.key("positions", "main")) == 0
    s = cache.stats()["positions"]
    assert (s["hits"], s["misses"], s["hit_rate"]) == (0, 3, 0.0)
    assert "disabled" in cache.summary_line()


def test_statistics_line_at_most_once_per_period_fleet_wide(redis_client, caplog):
    now = [1000.0]
    a = make_cache(redis_client, stats_period_s=300.0, wall_clock=lambda: now[0])
    b = make_cache(redis_client, stats_period_s=300.0, wall_clock=lambda: now[0])
    load = Loader()
    caplog.set_level(logging.INFO, logger="workers.ttl_cache")

    def lines():
        return [r for r in caplog.records if "cache hit rate" in r.getMessage()]

    a.get_or_load("account", "main", load)
    assert lines() == []  # not before one period
    now[0] += 301
    a.get_or_load("account", "main", load)
    a.get_or_load("account", "main", load)
    b.get_or_load("account", "main", load)  # another process, same period: silent
    assert len(lines()) == 1
    assert "account 50.0% (1/2)" in lines()[0].getMessage()  # the figures when it was written


def test_bad_names_are_refused(redis_client):
    cache = make_cache(redis_client)
    with pytest.raises(ValueError, match="key"):
        cache.get_or_load("account", "has space", Loader())
    with pytest.raises(ValueError, match="ttl_s"):
        cache.get_or_load("account", "main", Loader(), ttl_s=0)
    with pytest.raises(ValueError, match="ttl of x"):
        make_cache(redis_client, extra_ttls={"x": -1})
