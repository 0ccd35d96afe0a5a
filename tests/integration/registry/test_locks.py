"""Per-account lock: exclusive, renewed while its holder runs, free again soon after its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from config.settings import Settings
from tests.plugins.stack import wait_for
from workers.locks import account_lock_key, hold_account, lock, release_quietly, renewer

ROOT = Path(__file__).resolve().parents[3]


def rt_for(client, ttl_s: float) -> SimpleNamespace:
    """What `hold_account` reads of a Runtime: its Redis, key prefix and lock lifetime."""
    return SimpleNamespace(redis=client, prefix="tpsl", settings=Settings(account_lock_ttl_s=ttl_s))


def test_a_held_account_is_refused_to_the_second_holder_and_freed_on_exit(redis_client) -> None:
    rt = rt_for(redis_client, 3)
    with hold_account(rt, "main") as first:
        assert first is True
        with hold_account(rt, "main") as second:
            assert second is False
        with hold_account(rt, "mirror1") as other_account:
            assert other_account is True
    assert redis_client.get(account_lock_key("main")) is None
    assert renewer().held() == 0


def test_the_lock_is_released_when_the_block_raises(redis_client) -> None:
    with pytest.raises(RuntimeError), hold_account(rt_for(redis_client, 3), "main") as held:
        assert held
        raise RuntimeError("boom")
    assert redis_client.get(account_lock_key("main")) is None


def test_a_long_holder_keeps_the_account_past_the_lock_lifetime(redis_client) -> None:
    rt = rt_for(redis_client, 0.3)
    with hold_account(rt, "main") as held:
        assert held
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # five lifetimes: only the renewals keep it
            assert 0 < redis_client.pttl(account_lock_key("main")) <= 300
            with hold_account(rt, "main") as again:
                assert again is False
            time.sleep(0.05)
    assert redis_client.get(account_lock_key("main")) is None


def test_a_waiting_holder_gets_the_account_when_it_is_released(redis_client) -> None:
    rt = rt_for(redis_client, 3)
    got = threading.Event()
    with hold_account(rt, "main"):

        def second() -> None:
            with hold_account(rt, "main", wait_s=5) as held:
                if held:
                    got.set()

        t = threading.Thread(target=second)
        t.start()
        assert not got.wait(0.2)
    t.join(5)
    assert got.is_set()


HOLDER = """
import sys, time, redis
from types import SimpleNamespace
from config.settings import Settings
from workers.locks import hold_account
rt = SimpleNamespace(redis=redis.Redis.from_url(sys.argv[1], decode_responses=True), prefix="tpsl",
                     settings=Settings(account_lock_ttl_s=float(sys.argv[2])))
with hold_account(rt, "main") as held:
    print("held" if held else "busy", flush=True)
    time.sleep(60)
"""


def test_a_sigkilled_holder_frees_the_account_within_the_lock_lifetime(redis_url, redis_client) -> None:
    ttl = 1.0
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_url, str(ttl)], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        time.sleep(2 * ttl)  # two lifetimes: still held, renewed by the holder's thread
        assert redis_client.exists(account_lock_key("main"))
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(5)
        rt = rt_for(redis_client, 3)

        def free() -> bool:
            with hold_account(rt, "main") as held:
                return held

        wait_for(free, timeout=10, what="the account to be free")
        assert time.monotonic() - killed <= ttl + 0.2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_only_one_of_many_concurrent_holders_gets_the_account(redis_url: str, redis_client) -> None:
    n = 20
    barrier = threading.Barrier(n)
    got: list[bool] = [False] * n
    release_all = threading.Event()

    def holder(i: int) -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            barrier.wait()
            with hold_account(rt_for(client, 3), "main") as held:
                got[i] = held
                if held:
                    release_all.wait(10)
        finally:
            client.close()

    threads = [threading.Thread(target=holder, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    wait_for(lambda: sum(t.is_alive() for t in threads) <= 1, what="every loser to finish")
    release_all.set()
    for t in threads:
        t.join(10)
    assert sum(got) == 1
    assert redis_client.get(account_lock_key("main")) is None


def test_a_plain_lock_expires_and_its_late_release_leaves_the_next_holder_alone(redis_client) -> None:
    first = lock(redis_client, "t:lock", 0.05)
    assert first.acquire(blocking=False)
    second = lock(redis_client, "t:lock", 30)
    wait_for(lambda: second.acquire(blocking=False), timeout=5, what="the expired lock to be free")
    release_quietly(first)  # the old holder wakes up late
    assert second.owned()
    release_quietly(second)
    assert redis_client.get("t:lock") is None


def test_bad_lock_arguments_name_the_field(redis_client) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        lock(redis_client, "t:lock", 0)
    with pytest.raises(ValueError, match="key"):
        lock(redis_client, "", 1)
    with pytest.raises(ValueError, match="account"):
        account_lock_key("")
