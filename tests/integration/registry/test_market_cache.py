"""The shared market cache: single-flight loading across threads/processes, bounded waiting."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import redis

from config.settings import Settings
from workers.market_cache import MarketCache


def enc(value: dict) -> bytes:
    return json.dumps(value).encode()


def dec(raw: bytes) -> dict:
    return json.loads(raw)


def test_twenty_concurrent_callers_one_loader_call(redis_url: str, redis_client) -> None:
    settings = Settings(ticker_cache_s=600)  # a long TTL: a slow thread still finds the value
    calls = 0
    calls_lock = threading.Lock()

    def loader() -> dict:
        nonlocal calls
        with calls_lock:
            calls += 1
        time.sleep(0.05)  # a real exchange call takes a while: the others must wait, not load
        return {"BTCUSDT": "60000.5", "ETHUSDT": "3000.25"}

    n = 20
    barrier = threading.Barrier(n)
    results: list[dict | None] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)  # each as its own process would be
        try:
            cache = MarketCache(client, settings, wait_s=30)
            barrier.wait()
            results[i] = cache.tickers(loader, enc, dec)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert calls == 1
    assert all(r == {"BTCUSDT": "60000.5", "ETHUSDT": "3000.25"} for r in results)
    assert redis_client.exists("tpsl:market:tickers:linear:loading") == 0


def test_cached_value_is_shared_for_the_ticker_ttl(redis_client) -> None:
    cache = MarketCache(redis_client, Settings(ticker_cache_s=1.0))
    calls = itertools.count()

    def loader() -> dict:
        return {"n": next(calls)}

    assert cache.tickers(loader, enc, dec) == {"n": 0}
    assert cache.tickers(loader, enc, dec) == {"n": 0}  # a hit: no second load
    assert 0 < redis_client.pttl("tpsl:market:tickers:linear") <= 1000
    cache.invalidate("tickers:linear")
    assert cache.tickers(loader, enc, dec) == {"n": 1}


def test_a_failing_loader_raises_to_its_caller_and_frees_the_lock(redis_client) -> None:
    cache = MarketCache(redis_client, Settings())

    def broken() -> dict:
        raise ConnectionError("exchange unreachable")

    with pytest.raises(ConnectionError):
        cache.tickers(broken, enc, dec)
    assert redis_client.exists("tpsl:market:tickers:linear:loading") == 0
    assert redis_client.exists("tpsl:market:tickers:linear") == 0  # nothing cached
    assert cache.tickers(lambda: {"ok": True}, enc, dec) == {"ok": True}


def test_a_waiter_takes_the_value_another_process_loaded(redis_client) -> None:
    redis_client.set("tpsl:market:tickers:linear:loading", "other-process", px=60_000)

    def other_process_finishes(_: float) -> None:  # while we wait, the other loader writes
        redis_client.set("tpsl:market:tickers:linear", enc({"from": "other"}), px=1000)

    cache = MarketCache(redis_client, Settings(), sleep=other_process_finishes)

    def loader() -> dict:
        raise AssertionError("the waiter must not load")

    assert cache.tickers(loader, enc, dec) == {"from": "other"}


def test_a_waiter_loads_itself_when_the_loader_hangs(redis_client) -> None:
    # a loader elsewhere holds the lock and never finishes; the injected clock runs 0.5 s per look
    redis_client.set("tpsl:market:tickers:linear:loading", "hung-process", px=60_000)
    ticks = itertools.count()
    cache = MarketCache(
        redis_client,
        Settings(),
        wait_s=2.0,
        clock=lambda: next(ticks) * 0.5,
        sleep=lambda _: None,
    )
    calls = []
    assert cache.tickers(lambda: calls.append(1) or {"self": True}, enc, dec) == {"self": True}
    assert calls == [1]
    assert next(ticks) <= 10  # it gave up after about wait_s, not later
    # the hung process's lock is left alone
    assert redis_client.get("tpsl:market:tickers:linear:loading") == "hung-process"


def test_bad_arguments_name_the_field(redis_client) -> None:
    with pytest.raises(ValueError, match="wait_s: must be a finite number of seconds > 0"):
        MarketCache(redis_client, Settings(), wait_s=0)
    cache = MarketCache(redis_client, Settings())
    with pytest.raises(ValueError, match="ttl_s: must be a finite number of seconds > 0"):
        cache.get_or_load("x", dict, enc, dec, ttl_s=-1)
    with pytest.raises(ValueError, match="name: must be a non-empty string"):
        cache.get_or_load("", dict, enc, dec, ttl_s=1)
