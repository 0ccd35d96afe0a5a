"""What keeps the demo live once its scripted scenarios have ended, until the demo stops: the paper
exchange random-walks the scenarios' prices (its own seeded walk, `POST /paper/walk`), and each of
those symbols always has a monitor of the main account (mirrored) guarding a position: when one
closes, on its take-profit or its stop, a fresh one is opened at the price of the moment.

`Encore` is the plan of that, pure (no I/O, `now` and prices are parameters, the side of each new
position comes from a seeded random generator); the demo's loop does the walking and the creating.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from random import Random
from typing import Any

from core.models import Monitor, Phase

SEED = 18
VOLATILITY = 0.0008  # the walk's relative step (× N(0, 1)) every INTERVAL_MS: ≈0.8 % in 50 s
INTERVAL_MS = 500
DISTANCE = Decimal("0.008")  # take-profit and stop this far from the price (0.8 %)
RETRY_S = 5.0  # a monitor that could not be opened is tried again after this long, seconds
MIN_LEFT_S = 20.0  # not worth starting with less of the demo left, seconds
QTY = {"BTCUSDT": "0.050", "ETHUSDT": "1.00", "SOLUSDT": "10", "XRPUSDT": "1000", "LINKUSDT": "30"}


@dataclass
class Slot:
    """One symbol's current monitors (the main one first, then its mirrors)."""

    symbol: str
    monitor_ids: tuple[str, ...] = ()
    opened: int = 0
    next_try_at: float = 0.0

    def free(self, monitors: Mapping[str, Monitor | None]) -> bool:
        """No monitor yet, or every one of them seen closed."""
        return all(
            (m := monitors.get(mid)) is not None and m.phase is Phase.CLOSED for mid in self.monitor_ids
        )


class Encore:
    """Which symbols need a fresh monitor now, and its plan."""

    def __init__(self, symbols: Iterable[str], ticks: Mapping[str, Decimal], *, seed: int = SEED) -> None:
        self.slots = {s: Slot(s) for s in symbols if s in QTY}
        self.ticks = dict(ticks)
        self._rng = Random(seed)

    @property
    def symbols(self) -> list[str]:
        return list(self.slots)

    @property
    def monitor_ids(self) -> list[str]:
        return [mid for slot in self.slots.values() for mid in slot.monitor_ids]

    @property
    def opened(self) -> int:
        return sum(slot.opened for slot in self.slots.values())

    def due(self, monitors: Mapping[str, Monitor | None], now: float) -> list[str]:
        """Symbols whose monitors have all closed (or that have none yet), not waiting for a retry."""
        return [s for s, slot in self.slots.items() if now >= slot.next_try_at and slot.free(monitors)]

    def plan(self, symbol: str, price: Decimal) -> dict[str, Any]:
        """A `fast` plan at market (as the README's "Plans" section shows): a random side, one
        take-profit and the stop DISTANCE away from `price`, on the symbol's tick, never nearer."""
        tick = self.ticks[symbol]
        side = self._rng.choice(("Buy", "Sell"))
        up = _on_tick(price * (1 + DISTANCE), tick, ROUND_CEILING)
        down = _on_tick(price * (1 - DISTANCE), tick, ROUND_FLOOR)
        take_profit, stop = (up, down) if side == "Buy" else (down, up)
        return {
            "account": "main",
            "symbol": symbol,
            "side": side,
            "preset": "fast",
            "qty": QTY[symbol],
            "take_profits": [str(take_profit)],
            "stop_loss": str(stop),
            "mirror": True,
        }

    def open(self, symbol: str, monitor_ids: Sequence[str]) -> None:
        slot = self.slots[symbol]
        slot.monitor_ids = tuple(monitor_ids)
        slot.opened += 1

    def failed(self, symbol: str, now: float) -> None:
        self.slots[symbol].next_try_at = now + RETRY_S

    def rows(self) -> list[tuple[str, tuple[str, ...]]]:
        """(label, monitor ids) per symbol, for the view."""
        return [(f"walk {s.removesuffix('USDT')}", slot.monitor_ids) for s, slot in self.slots.items()]


def _on_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding) * tick


__all__ = ["Encore", "Slot"]
