"""Holding an account for the length of a pass: one check (or create/remove) per account at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workers.locks import account_lock_for


@contextmanager
def hold_account(rt: Any, account_id: str, *, wait_s: float = 0.0, poll_s: float = 0.02) -> Iterator[bool]:
    """Yields True while this block holds the account's lock, False if it stayed busy `wait_s`.
    The lock expires by itself after `account_lock_ttl_s` if its holder dies."""
    lock = account_lock_for(rt.redis, account_id, rt.settings.account_lock_ttl_s, prefix=rt.prefix)
    deadline = time.monotonic() + wait_s
    token = lock.acquire()
    while token is None and time.monotonic() < deadline:
        time.sleep(poll_s)
        token = lock.acquire()
    try:
        yield token is not None
    finally:
        if token is not None:
            lock.release(token)
