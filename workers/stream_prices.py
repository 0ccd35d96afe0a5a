"""Prices from the public ticker streams, in Redis: written by the stream process, read by checks.

The stream process (tasks/stream.py) holds `tickers.{SYMBOL}` of every monitored symbol. Each push
writes the symbol's last and mark price with the time it arrived (`put`), and every second the
process confirms the prices of the symbols whose connection is up (`put` again, at that time: the
exchange pushes every change, so a quiet symbol's price on a live connection is still current).
A connection that goes down has its symbols' prices dropped (`drop`) until its snapshots come back.

A check takes a symbol's price from here when it is fresh: confirmed less than
`ticker_stream_fresh_s` ago (`fresh`). Anything else (the stream process stopped, the connection
down, a symbol not subscribed yet) is not fresh, and the check reads the shared REST ticker cache
as it does without streams (workers/checker.py: `tickers_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import orjson
from redis import Redis

from config import keys
from core.models import Ticker

log = logging.getLogger(__name__)


class StreamPrices:
    def __init__(self, redis_client: Redis, *, prefix: str = keys.PREFIX) -> None:
        self.redis = redis_client
        self.key = keys.stream_prices(prefix)

    def put(self, tickers: Iterable[Ticker], at: float) -> None:
        """These prices, confirmed by the stream at `at` (time.time())."""
        mapping: dict[Any, Any] = {
            t.symbol: orjson.dumps({"last": str(t.last_price), "mark": str(t.mark_price), "at": at}).decode()
            for t in tickers
        }
        if mapping:
            self.redis.hset(self.key, mapping=mapping)

    def drop(self, symbols: Iterable[str]) -> None:
        """The stream no longer keeps these prices current (connection down, unsubscribed)."""
        names = list(symbols)
        if names:
            self.redis.hdel(self.key, *names)

    def fresh(self, symbols: Collection[str], *, now: float, max_age_s: float) -> dict[str, Ticker]:
        """The prices of these symbols that the stream confirmed at most `max_age_s` before `now`;
        the others are left out (stale, missing or unreadable)."""
        names = sorted(set(symbols))
        if not names:
            return {}
        raw = cast("list[str | None]", self.redis.hmget(self.key, names))
        out: dict[str, Ticker] = {}
        for symbol, value in zip(names, raw, strict=True):
            if value is None:
                continue
            try:
                d = orjson.loads(value)
                at = float(d["at"])
                ticker = Ticker(symbol, Decimal(d["last"]), Decimal(d["mark"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidOperation):
                log.warning("stream price of %s unreadable; the REST ticker cache answers for it", symbol)
                continue
            if now - at <= max_age_s:
                out[symbol] = ticker
        return out

    def all(self) -> dict[str, tuple[Ticker, float]]:
        """Every price held, with its confirmation time (for tests and operators)."""
        out: dict[str, tuple[Ticker, float]] = {}
        for symbol, value in cast("dict[str, str]", self.redis.hgetall(self.key)).items():
            d = orjson.loads(value)
            out[symbol] = (Ticker(symbol, Decimal(d["last"]), Decimal(d["mark"])), float(d["at"]))
        return out
