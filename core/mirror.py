"""Mirror scaling: a main account's plan at a mirror account's size.

`mirror_plan` keeps every price, fraction, the stop, the breakeven rule and the fee buffer, and scales
the entry quantities by the mirror ratio, rounding DOWN to qtyStep (never up: a mirror never carries
more risk than its ratio says). An entry too small to stand on its own after scaling (under
minOrderQty, or under the minimum order value at its limit price) is merged with its neighbour:

* it is carried forward into the NEXT entry (the one further from the market), its unrounded scaled
  quantity added to that entry's before rounding; the merged order keeps the next entry's price, so a
  merge never places size nearer to the market than the main plan does;
* what is still carried after the last entry joins the PREVIOUS kept entry (the last one that stood on
  its own), again before rounding;
* if no entry can stand on its own, the whole mirrored size is under the minimum: `None` (the plan
  cannot be mirrored; the caller alerts).

The result is a mirror of the plan: ``mirror=False`` (a mirror is not mirrored again). An adopted plan
(no entries) is returned as is, with ``mirror=False``: the mirror adopts its own open position, whose
size is read from its own account.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from core.errors import FixInput
from core.models import ZERO, EntryLevel, Instrument, Plan
from core.sizing import qty_down


def equity_ratio(main_equity: Decimal, mirror_equity: Decimal) -> Decimal:
    """Mirror ratio for an account sized by equity: mirror equity / main equity.

    FixInput when the main equity is zero or negative (no ratio can be derived from it) or the mirror
    equity is negative. A mirror with zero equity gets ratio 0 (mirror_plan then returns None)."""
    if main_equity <= 0:
        raise FixInput("main_equity", f"must be positive to size a mirror by equity, got {main_equity}")
    if mirror_equity < 0:
        raise FixInput("mirror_equity", f"must not be negative, got {mirror_equity}")
    return mirror_equity / main_equity


def mirror_plan(plan: Plan, ratio: Decimal, instrument: Instrument) -> Plan | None:
    """`plan` at `ratio` × its entry sizes (see the module docstring), or None when the mirrored size
    is under the instrument's minimum. FixInput when the ratio is negative or makes an entry larger than
    the instrument allows, ValueError when the instrument is not the plan's symbol."""
    if instrument.symbol != plan.symbol:
        raise ValueError(f"instrument {instrument.symbol} is not the plan's symbol {plan.symbol}")
    if ratio < 0:
        raise FixInput("ratio", f"a mirror ratio must not be negative, got {ratio}")
    if not plan.entries:
        return replace(plan, mirror=False)

    kept: list[tuple[Decimal | None, Decimal]] = []  # (price, unrounded scaled qty) of entries kept
    carry = ZERO
    for entry in plan.entries:
        amount = entry.qty * ratio + carry
        if _stands_alone(qty_down(amount, instrument), entry.price, instrument):
            kept.append((entry.price, amount))
            carry = ZERO
        else:
            carry = amount
    if not kept:
        return None
    if carry > 0:
        price, amount = kept[-1]
        kept[-1] = (price, amount + carry)

    entries: list[EntryLevel] = []
    for i, (price, amount) in enumerate(kept):
        qty = qty_down(amount, instrument)
        cap = (
            instrument.max_mkt_qty
            if price is None and instrument.max_mkt_qty is not None
            else instrument.max_qty
        )
        if qty > cap:
            raise FixInput(
                "ratio",
                f"mirror ratio {ratio} makes entry {i + 1} of {plan.symbol} {qty}, above the largest "
                f"order the exchange takes ({cap})",
            )
        entries.append(EntryLevel(qty=qty, price=price))
    return replace(plan, entries=tuple(entries), mirror=False)


def _stands_alone(qty: Decimal, price: Decimal | None, instrument: Instrument) -> bool:
    if qty < instrument.min_qty or qty <= 0:
        return False
    return price is None or instrument.min_notional <= 0 or qty * price >= instrument.min_notional
