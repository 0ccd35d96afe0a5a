"""Bybit v5 adapter: the only code that talks to an exchange.

    from exchange.bybit import build_client
    client = build_client(account.base_url, settings, redis=redis_client)
    snap = client.snapshot(account)

Modules: client (BybitClient, the ExchangePort), session (pooled sessions and the per-process
registry), signing, parse, errors (map_error), ratelimit (Redis and in-process token buckets),
cache (instrument filters), factory (build_client). Its benchmark is development tooling
(devtools/bench/bybit_client.py, `tpsl paper client-bench`).
Importing this package creates no session, pool or connection, and imports no HTTP library: the
names below are loaded on first use, so the stream process (which needs only `parse` and `stream`)
does not load the REST client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exchange.bybit.client import BybitClient
    from exchange.bybit.factory import build_client
    from exchange.bybit.session import SessionPool, get_session_pool, reset_for_fork

__all__ = ["BybitClient", "SessionPool", "build_client", "get_session_pool", "reset_for_fork"]

_HOME = {
    "BybitClient": "exchange.bybit.client",
    "build_client": "exchange.bybit.factory",
    "SessionPool": "exchange.bybit.session",
    "get_session_pool": "exchange.bybit.session",
    "reset_for_fork": "exchange.bybit.session",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
