"""Bybit v5 adapter: the only code that talks to an exchange.

    from exchange.bybit import build_client
    client = build_client(account.base_url, settings, redis=redis_client)
    snap = client.snapshot(account)

Modules: client (BybitClient, the ExchangePort), session (pooled sessions and the per-process
registry), signing, parse, errors (map_error), ratelimit (Redis and in-process token buckets),
cache (instrument filters), factory (build_client). Its benchmark is development tooling
(devtools/bench/bybit_client.py, `tpsl paper client-bench`).
Importing this package creates no session, pool or connection.
"""

from __future__ import annotations

from exchange.bybit.client import BybitClient
from exchange.bybit.factory import build_client
from exchange.bybit.session import SessionPool, get_session_pool, reset_for_fork

__all__ = ["BybitClient", "SessionPool", "build_client", "get_session_pool", "reset_for_fork"]
