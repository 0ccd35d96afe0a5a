"""Token locks in Redis: the per-account in-flight lock of the check task (and any other short lock).

`SET key token NX PX ttl` takes the lock; only the holder's token releases or extends it (Lua
compare-and-delete / compare-and-expire), so a holder whose lock expired can never release the
next holder's. A holder that dies leaves the lock to expire after its TTL.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

from workers.lua import source

log = logging.getLogger(__name__)


def _ttl_ms(ttl_s: float) -> int:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not (0 < ttl_s < math.inf):
        raise ValueError(f"ttl_s: must be a finite number of seconds > 0 (got {ttl_s!r})")
    return max(1, round(ttl_s * 1000))


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


class Lock:
    """One named lock. `acquire()` → token or None; `release(token)`, `extend(token)` → bool."""

    def __init__(self, redis_client: Redis, key: str, ttl_s: float) -> None:
        if not key:
            raise ValueError("key: must be a non-empty string")
        self.redis = redis_client
        self.key = key
        self.ttl_ms = _ttl_ms(ttl_s)
        self._release = redis_client.register_script(source("lock_release"))
        self._extend = redis_client.register_script(source("lock_extend"))

    def acquire(self) -> str | None:
        """The token of a lock now held, or None when someone else holds it."""
        token = secrets.token_hex(16)
        if self.redis.set(self.key, token, nx=True, px=self.ttl_ms):
            return token
        return None

    def release(self, token: str) -> bool:
        """Release if `token` still holds the lock. False when it expired (or was never ours)."""
        return bool(int(self._release(keys=[self.key], args=[token])))

    def extend(self, token: str, ttl_s: float | None = None) -> bool:
        """Give the held lock a new lifetime (default: the lock's TTL) from now. False when `token`
        does not hold it any more."""
        ms = self.ttl_ms if ttl_s is None else _ttl_ms(ttl_s)
        return bool(int(self._extend(keys=[self.key], args=[token, ms])))

    def holder(self) -> str | None:
        """The token holding the lock now, None when free."""
        return _text(self.redis.get(self.key))

    def __repr__(self) -> str:
        return f"Lock({self.key!r}, ttl_ms={self.ttl_ms})"


def account_lock_key(account: str, *, prefix: str = "tpsl") -> str:
    if not account:
        raise ValueError("account: must be a non-empty string")
    return f"{prefix}:lock:account:{account}"


def account_lock_for(redis_client: Redis, account: str, ttl_s: float, *, prefix: str = "tpsl") -> Lock:
    """The in-flight lock of one account's checks."""
    return Lock(redis_client, account_lock_key(account, prefix=prefix), ttl_s)


@contextmanager
def account_lock(
    redis_client: Redis, account: str, ttl_s: float, *, prefix: str = "tpsl"
) -> Iterator[str | None]:
    """`with account_lock(r, "main", 30) as token:` — token while this block holds the account's lock,
    None when another check holds it (the caller skips: that check covers the account). Released on
    exit, exception or not; `extend_account_lock` keeps a long check's lock alive."""
    lock = account_lock_for(redis_client, account, ttl_s, prefix=prefix)
    token = lock.acquire()
    try:
        yield token
    finally:
        if token is not None and not lock.release(token):
            log.warning(
                "account lock of %s expired before release (the check outlived its %d ms TTL)",
                account,
                lock.ttl_ms,
            )


def extend_account_lock(
    redis_client: Redis, account: str, token: str, ttl_s: float, *, prefix: str = "tpsl"
) -> bool:
    """Extend the account's lock held by `token` to `ttl_s` from now. False when it is no longer held."""
    return account_lock_for(redis_client, account, ttl_s, prefix=prefix).extend(token)
