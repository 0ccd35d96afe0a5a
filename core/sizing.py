"""Quantities and prices on the exchange's grid. Pure arithmetic on Decimal.

The one rule for splitting a position across take-profit levels lives here (`allocate`), and the
one rule for the breakeven price (`breakeven_price`): nothing else in the code base re-derives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from core.models import ZERO, Instrument, Side


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of `step` that is ≤ value (for value ≥ 0)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_up(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def round_nearest(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_HALF_EVEN) * step


def _normalized(value: Decimal, step: Decimal) -> Decimal:
    """Give a grid value the step's number of decimals, so it prints as the exchange expects
    ("0.010" on a 0.001 grid, "65000.1" on a 0.1 grid, "120" on a 10 grid)."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return value.quantize(Decimal(1).scaleb(min(exponent, 0)))


def qty_down(qty: Decimal, inst: Instrument) -> Decimal:
    return _normalized(round_down(qty, inst.qty_step), inst.qty_step)


def price_to_tick(price: Decimal, inst: Instrument, *, mode: str = "nearest") -> Decimal:
    """mode: "nearest", "up" or "down"."""
    if mode == "up":
        p = round_up(price, inst.tick_size)
    elif mode == "down":
        p = round_down(price, inst.tick_size)
    elif mode == "nearest":
        p = round_nearest(price, inst.tick_size)
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    return _normalized(p, inst.tick_size)


def allocate(total: Decimal, weights: Sequence[Decimal], inst: Instrument) -> list[Decimal]:
    """Split `total` (a size on the qtyStep grid) across levels in proportion to `weights`.

    Each level is rounded down to qtyStep; a level that would fall under minOrderQty is merged into
    the next one; the rounding remainder goes to the last level, so the result sums to exactly
    `total` and the last non-zero level closes the position. A remainder too small to stand alone
    (under minOrderQty) joins the level before it. Never a negative quantity; a zero means "no order
    for this level". If `total` itself is under minOrderQty it all goes to the last level: it is the
    only order that can close the position.
    """
    n = len(weights)
    if n == 0:
        return []
    if total <= 0:
        return [ZERO] * n
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    wsum = sum(weights, ZERO)
    if wsum <= 0:
        # nothing left to weigh by: the whole remainder on the last level
        return [ZERO] * (n - 1) + [qty_down(total, inst)]
    step = inst.qty_step
    out = [ZERO] * n
    carry = ZERO  # unrounded quantity carried into the next level
    given = ZERO
    for i, w in enumerate(weights[:-1]):
        ideal = total * w / wsum + carry
        q = round_down(ideal, step)
        if q < inst.min_qty:
            carry = ideal
            continue
        out[i] = q
        given += q
        carry = ideal - q
    last = total - given
    out[-1] = last
    if 0 < last < inst.min_qty:
        # merge a tiny remainder backwards into the nearest level that stands on its own
        for j in range(n - 2, -1, -1):
            if out[j] > 0:
                out[j] += last
                out[-1] = ZERO
                break
    return [_normalized(q, step) if q > 0 else ZERO for q in out]


def scale_qty(qty: Decimal, ratio: Decimal, inst: Instrument) -> Decimal:
    """A mirror's size: the main's size × ratio, rounded down to the grid (never up: no extra risk)."""
    return qty_down(qty * ratio, inst)


def breakeven_price(avg_entry: Decimal, side: Side, fee_buffer: Decimal, inst: Instrument) -> Decimal:
    """avg entry × (1 ± fee buffer), rounded away from the entry to the tick (up for a long, down
    for a short): a stop there closes at or beyond breakeven after fees."""
    if side is Side.BUY:
        return price_to_tick(avg_entry * (1 + fee_buffer), inst, mode="up")
    return price_to_tick(avg_entry * (1 - fee_buffer), inst, mode="down")


def stop_improves(current: Decimal, proposed: Decimal, side: Side) -> bool:
    """A long's stop only moves up, a short's only down."""
    return proposed > current if side is Side.BUY else proposed < current
