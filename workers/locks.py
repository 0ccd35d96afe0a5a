"""Locks in Redis: `redis.lock.Lock` (token-safe SET NX PX, Lua compare-and-delete/expire), and the
per-account lock of the checks, kept short and renewed while its holder lives.

The account lock lives `account_lock_ttl_s` (3 s by default) from its last renewal; a background
thread of the holding process renews every held account lock every third of that. A check that
runs for a minute keeps its account for a minute; a holder that is SIGKILLed (or loses Redis) stops
renewing, and the account is free again within `account_lock_ttl_s`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from config import keys

log = logging.getLogger(__name__)

__all__ = ["Lock", "LockHost", "account_lock_key", "hold_account", "lock", "release_quietly", "renewer"]


def lock(redis_client: Redis, key: str, ttl_s: float) -> Lock:
    """A lock of `key` living `ttl_s` seconds unless renewed; `acquire(blocking=False)` → bool,
    `release()` is harmless when the lock expired meanwhile. Usable from any thread."""
    if not key:
        raise ValueError("key: must be a non-empty string")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not 0 < ttl_s < 86400:
        raise ValueError(f"ttl_s: must be a number of seconds > 0 (got {ttl_s!r})")
    return Lock(redis_client, key, timeout=ttl_s, thread_local=False, raise_on_release_error=False)


def release_quietly(held: Lock) -> None:
    """Release a lock; one that expired meanwhile (someone else may hold it now) is left alone."""
    with contextlib.suppress(LockError):
        held.release()


def account_lock_key(account: str, *, prefix: str = keys.PREFIX) -> str:
    if not account:
        raise ValueError("account: must be a non-empty string")
    return keys.account_lock(prefix, account)


class Renewer:
    """One daemon thread per process that renews the locks this process holds (`reacquire`: the TTL
    back to its full lifetime) a third of a lifetime after they were taken or last renewed. Started
    on first use and again after a fork."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[Lock, float]] = {}  # id → (lock, when to renew, monotonic)
        self._wake = threading.Condition()
        self._pid = 0
        self._thread: threading.Thread | None = None

    @staticmethod
    def period(held: Lock) -> float:
        return float(held.timeout or 0) / 3

    def hold(self, held: Lock) -> None:
        with self._wake:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._held = {}
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="lock-renewer", daemon=True)
                self._thread.start()
            self._held[id(held)] = (held, time.monotonic() + self.period(held))
            self._wake.notify()

    def drop(self, held: Lock) -> None:
        with self._wake:
            self._held.pop(id(held), None)

    def held(self) -> int:
        with self._wake:
            return len(self._held)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [held for held, at in self._held.values() if at <= now]
                if not due:
                    self._wake.wait(min((at for _, at in self._held.values()), default=now + 60) - now)
                    continue
            for held in due:
                renewed = self._renew(held)
                with self._wake:
                    if id(held) in self._held:
                        if renewed is None:
                            del self._held[id(held)]
                        else:
                            self._held[id(held)] = (held, time.monotonic() + renewed)

    def _renew(self, held: Lock) -> float | None:
        """Seconds until the next renewal, None when the lock is lost."""
        try:
            held.reacquire()
            return self.period(held)
        except LockError:
            # expired (the process stalled past the TTL, or Redis lost the key): another check may
            # hold the account now; this pass finishes, and its saves are version-checked
            log.warning("lock %s expired before its holder finished (no longer renewed)", held.name)
            return None
        except RedisError as e:
            log.warning("lock %s not renewed (%s); retrying", held.name, type(e).__name__)
            return min(0.2, self.period(held))


_renewer = Renewer()


class _LockSettings(Protocol):
    @property
    def account_lock_ttl_s(self) -> float: ...


class LockHost(Protocol):
    """What `hold_account` reads of its runtime (a `workers.runtime.Runtime` in the product): the
    Redis client, the key prefix and the lock lifetime."""

    @property
    def redis(self) -> Redis: ...

    @property
    def prefix(self) -> str: ...

    @property
    def settings(self) -> _LockSettings: ...


def renewer() -> Renewer:
    return _renewer


@contextmanager
def hold_account(
    rt: LockHost, account_id: str, *, wait_s: float = 0.0, poll_s: float = 0.02
) -> Iterator[bool]:
    """Yields True while this block holds the account's lock (one check, create or remove per
    account at a time), False when another holder kept it `wait_s`. Renewed while the block runs;
    a holder that dies frees the account `account_lock_ttl_s` after its last renewal."""
    held = lock(rt.redis, account_lock_key(account_id, prefix=rt.prefix), rt.settings.account_lock_ttl_s)
    got = held.acquire(blocking=wait_s > 0, blocking_timeout=wait_s or None, sleep=poll_s)
    if not got:
        yield False
        return
    _renewer.hold(held)
    try:
        yield True
    finally:
        _renewer.drop(held)
        try:
            held.release()
        except LockError:
            log.warning("account lock of %s expired before release (it was not renewed in time)", account_id)
        except RedisError as e:
            # Redis is away: the lock expires by itself within its TTL
            log.warning("account lock of %s not released (%s)", account_id, type(e).__name__)
