"""Price feeds: a seeded random walk and CSV replay. Pure: they produce prices; the server's
background tasks apply them to the engine at the requested pace."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from random import Random

from core.errors import FixInput


class RandomWalk:
    """Geometric random walk: each step multiplies every price by exp(volatility × N(0, 1)),
    rounded to the symbol's tick (never below one tick). The same seed gives the same path."""

    def __init__(
        self,
        start: Mapping[str, Decimal],
        ticks: Mapping[str, Decimal],
        *,
        seed: int = 0,
        volatility: float = 0.001,
    ) -> None:
        if not start:
            raise FixInput("symbols", "the walk needs at least one symbol")
        if not (0 < volatility < 1):
            raise FixInput("volatility", "must be between 0 and 1 (relative step, e.g. 0.001)")
        self.volatility = volatility
        self._rng = Random(seed)
        self._ticks = dict(ticks)
        self._prices = {s: float(p) for s, p in start.items()}

    def step(self) -> dict[str, Decimal]:
        out = {}
        for symbol, price in self._prices.items():
            price *= math.exp(self.volatility * self._rng.gauss(0.0, 1.0))
            self._prices[symbol] = price
            tick = self._ticks[symbol]
            rounded = (Decimal(repr(price)) / tick).to_integral_value(ROUND_HALF_UP) * tick
            out[symbol] = rounded if rounded > 0 else tick
        return out


@dataclass(frozen=True, slots=True)
class ReplayStep:
    offset_ms: int  # since the first row
    prices: dict[str, Decimal]


def parse_replay_csv(text: str, known: Sequence[str] | set[str]) -> list[ReplayStep]:
    """Rows `ts,symbol,price` (ts in epoch milliseconds; an optional header line) → steps grouped
    by timestamp, in time order (rows with equal ts are applied together)."""
    rows: list[tuple[int, int, str, Decimal]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if n == 1 and parts[:1] == ["ts"]:
            continue
        if len(parts) != 3:
            raise FixInput(f"csv line {n}", "expected 3 columns: ts,symbol,price")
        ts_s, symbol, price_s = parts
        try:
            ts = int(Decimal(ts_s))
            price = Decimal(price_s)
        except (InvalidOperation, ValueError):
            raise FixInput(f"csv line {n}", "ts and price must be numbers") from None
        if symbol not in known:
            raise FixInput(f"csv line {n}", f"unknown symbol {symbol!r}")
        if not price.is_finite() or price <= 0:
            raise FixInput(f"csv line {n}", "price must be > 0")
        rows.append((ts, n, symbol, price))
    if not rows:
        raise FixInput("csv", "no rows")
    rows.sort()
    t0 = rows[0][0]
    steps: list[ReplayStep] = []
    for ts, _, symbol, price in rows:
        if steps and steps[-1].offset_ms == ts - t0:
            steps[-1].prices[symbol] = price
        else:
            steps.append(ReplayStep(ts - t0, {symbol: price}))
    return steps
