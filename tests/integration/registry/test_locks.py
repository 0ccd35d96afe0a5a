"""Per-account in-flight lock: exclusive, released only by its token, expires when its holder dies."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from workers.locks import Lock, account_lock, account_lock_key, extend_account_lock


def test_lock_is_exclusive_and_released_only_by_its_token(redis_client) -> None:
    lock = Lock(redis_client, "t:lock", 30)
    token = lock.acquire()
    assert token is not None
    assert lock.holder() == token
    assert lock.acquire() is None
    assert Lock(redis_client, "t:lock", 30).acquire() is None  # another handle, same key

    assert lock.release("not-the-token") is False
    assert lock.holder() == token
    assert lock.release(token) is True
    assert lock.holder() is None
    assert lock.release(token) is False  # twice: nothing left to release


def test_extend_only_with_the_token(redis_client) -> None:
    lock = Lock(redis_client, "t:lock", 1)
    token = lock.acquire()
    assert token is not None
    assert 0 < redis_client.pttl("t:lock") <= 1000
    assert lock.extend(token, 60) is True
    assert 1000 < redis_client.pttl("t:lock") <= 60_000
    assert lock.extend("not-the-token", 120) is False
    assert redis_client.pttl("t:lock") <= 60_000


def test_lock_of_a_dead_holder_expires_and_its_late_release_is_harmless(redis_client) -> None:
    dead = Lock(redis_client, "t:lock", 0.05)  # 50 ms
    stale = dead.acquire()
    assert stale is not None
    # the holder "dies": nobody releases. Poll (no fixed sleep) until the TTL frees the lock.
    fresh = None
    deadline = time.monotonic() + 10
    while fresh is None and time.monotonic() < deadline:
        time.sleep(0.01)
        fresh = Lock(redis_client, "t:lock", 30).acquire()
    assert fresh is not None and fresh != stale
    # the old holder wakes up and releases: the new holder's lock survives
    assert dead.release(stale) is False
    assert dead.extend(stale) is False
    assert dead.holder() == fresh


def test_account_lock_yields_none_to_the_second_checker(redis_client) -> None:
    with account_lock(redis_client, "main", 30) as first:
        assert first is not None
        with account_lock(redis_client, "main", 30) as second:
            assert second is None
        # the refused one released nothing
        assert redis_client.get(account_lock_key("main")) == first.encode()
        with account_lock(redis_client, "mirror1", 30) as other_account:
            assert other_account is not None
        assert extend_account_lock(redis_client, "main", first, 60) is True
        assert extend_account_lock(redis_client, "main", "not-the-token", 60) is False
    assert redis_client.get(account_lock_key("main")) is None


def test_account_lock_is_released_when_the_check_raises(redis_client) -> None:
    with pytest.raises(RuntimeError), account_lock(redis_client, "main", 30) as token:
        assert token is not None
        raise RuntimeError("check failed")
    assert redis_client.get(account_lock_key("main")) is None


def test_only_one_of_many_concurrent_checkers_gets_the_lock(redis_url: str, redis_client) -> None:
    n = 20
    barrier = threading.Barrier(n)
    got: list[str | None] = [None] * n
    release_all = threading.Event()

    def checker(i: int) -> None:
        client = redis.Redis.from_url(redis_url)
        try:
            barrier.wait()
            with account_lock(client, "main", 30) as token:
                got[i] = token
                if token is not None:
                    release_all.wait(10)
        finally:
            client.close()

    threads = [threading.Thread(target=checker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    # wait until every loser has finished (19 threads), then let the winner go
    deadline = time.monotonic() + 30
    while sum(t.is_alive() for t in threads) > 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    release_all.set()
    for t in threads:
        t.join(10)
    assert sum(token is not None for token in got) == 1
    assert redis_client.get(account_lock_key("main")) is None


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), "30"])
def test_bad_ttl_names_the_field(redis_client, ttl) -> None:
    with pytest.raises(ValueError, match="ttl_s: must be a finite number of seconds > 0"):
        Lock(redis_client, "t:lock", ttl)
