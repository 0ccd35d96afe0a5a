"""The plan rules: every check a `Plan` must pass, on a Plan however it was built.

`validate_plan` checks all of them (a plan decoded or mirrored, or built by a test); `recheck_plan`
does the same for a plan coming back from storage, leaving out the price and quantity grid;
`check_adoption` checks a plan against the open position it is to adopt; `resolve_position_idx` fits
a plan to its account's position mode. Each raises `PlanInvalid(field, problem)` for the first rule
broken in document order (the request order core/plan/parse.py describes).

The single checks (`check_price`, `check_entry`, `check_stop_loss`, …) are also what the parser
(core/plan/parse.py) runs while it reads a request, so a request and a built Plan meet the same
rules with the same messages.

The rules:

* ``account`` a non-empty string; ``symbol`` one of `instruments`; ``side`` ``Buy``/``Sell`` (or
  ``buy``/``sell``); ``position_idx`` 0 (one-way), 1 (hedge long, Buy only) or 2 (hedge short, Sell
  only), default 0.
* entries: 1-10 limit entries, or one market entry (``{"type": "market", "qty": …}``, alone or as the
  only item of the list), or none with ``adopt: true`` (adopt with entries is an error). Each qty
  positive, a multiple of qtyStep, ≥ minOrderQty, ≤ maxOrderQty (≤ maxMktOrderQty for a market
  entry); each limit price positive and on the tick; each entry's notional (qty × price, or × the
  mark price for a market entry when it is known) ≥ the instrument's minNotionalValue. **Limit entries
  are ordered nearest first**: a long's prices strictly descending, a short's strictly ascending
  (so they are also distinct). ``entry_price`` + ``qty`` instead of ``entries``: laid out by the
  preset (see core.presets); without a preset they make one limit entry, and ``qty`` alone one market
  entry.
* take_profits: 1-10 levels, each a price (number/string) or ``{"price", "fraction"}``; prices
  positive, on the tick, strictly ordered in the profit direction (long ascending, short descending)
  and on the profit side of the entries (long: above the highest limit entry, short: below the lowest;
  for a market entry or adoption: of `mark_price` when given). Fractions above 0, at most 1,
  with at most 18 decimal places (so their Decimal sum is exact), summing to exactly 1; either
  every level gives its fraction or none does (then the preset supplies them; a
  single level without a fraction is 100 %).
* stop_loss: required, positive, on the tick, on the loss side (long: below the lowest limit entry,
  short: above the highest; for a market entry or adoption: of `mark_price` when given), and always
  on the loss side of the first take-profit (long SL < TP1, short SL > TP1).
* breakeven_after: an integer 1..number of take-profits, or null (never); default: the preset's, else 1.
* fee_buffer: a fraction 0 ≤ x < 0.05; default: the `fee_buffer` argument (settings).
* entry_time_limit_s: seconds > 0, only with limit entries.
* mirror / adopt: booleans (defaults true / false).

Take-profit levels are allowed to fall under minOrderQty once sized (core.sizing.allocate merges
them); only the total must reach minOrderQty, which every entry reaching it already guarantees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation

from core.errors import PlanInvalid
from core.models import ZERO, EntryLevel, Instrument, Plan, Position, Side, TakeProfitLevel
from core.presets import PRESETS, get_preset

MAX_LEVELS = 10
MAX_FEE_BUFFER = Decimal("0.05")
_MAX_FRACTION_DECIMALS = 18


def validate_plan(plan: Plan, instrument: Instrument, *, mark_price: Decimal | None = None) -> None:
    """Check every plan rule (see the module docstring) on an already-built Plan; raise PlanInvalid
    for the first violation in document order."""
    if plan.symbol != instrument.symbol:
        raise PlanInvalid(
            "symbol", f"the plan is for {plan.symbol} but the instrument is {instrument.symbol}"
        )
    check_position_idx(plan.position_idx, plan.side)
    if plan.preset is not None and plan.preset not in PRESETS:
        get_preset(plan.preset)  # raises, naming the known presets
    check_entry_set(plan.entries, plan.adopt)
    prev: EntryLevel | None = None
    for i, entry in enumerate(plan.entries):
        check_entry(i, entry, prev, plan.side, instrument, mark_price)
        prev = entry
    check_take_profit_count(len(plan.take_profits))
    ref = profit_reference(plan.entries, plan.side, mark_price)
    prev_tp: TakeProfitLevel | None = None
    for i, tp in enumerate(plan.take_profits):
        check_tp_price(i, tp.price, prev_tp.price if prev_tp else None, plan.side, instrument, ref)
        check_fraction(i, tp.fraction)
        prev_tp = tp
    check_fraction_sum(plan.take_profits)
    check_stop_loss(plan.stop_loss, plan.side, plan.entries, plan.take_profits, instrument, mark_price)
    check_breakeven(plan.breakeven_after, len(plan.take_profits))
    check_fee_buffer(plan.fee_buffer)
    check_time_limit(plan.entry_time_limit_s, plan.entries)


def resolve_position_idx(plan: Plan, *, hedge: bool) -> tuple[Plan, bool]:
    """Fit a plan to its account's position mode (read from the account, not assumed): in hedge
    mode a plan without a positionIdx guards its side's own position (Buy → 1, Sell → 2), and the
    second value says it was inferred; in one-way mode positionIdx must be 0. A plan that cannot be
    placed is refused (PlanInvalid naming position_idx), never accepted and left unguarded."""
    idx = plan.position_idx
    if hedge:
        if idx == 0:
            return replace(plan, position_idx=1 if plan.side is Side.BUY else 2), True
        return plan, False
    if idx != 0:
        raise PlanInvalid(
            "position_idx",
            f"the account is in one-way mode on {plan.symbol}: "
            f"positionIdx must be 0 (or left out), got {idx}",
        )
    return plan, False


ANY_GRID = Decimal("1e-18")
ANY_SIZE = Decimal("1e18")


def recheck_plan(plan: Plan, instrument: Instrument | None = None) -> None:
    """Re-validate a plan that comes back from storage or a message (it is not trusted for having
    been valid once). Every rule is checked but the price and quantity grid (an exchange may change
    its tick size under a live monitor, and that must not drop its guard); the size limits are
    checked when the instrument is known. Raises PlanInvalid naming the first field that fails."""
    if instrument is None:
        instrument = Instrument(
            symbol=plan.symbol, tick_size=ANY_GRID, qty_step=ANY_GRID, min_qty=ANY_GRID, max_qty=ANY_SIZE
        )
    else:
        instrument = replace(instrument, tick_size=ANY_GRID, qty_step=ANY_GRID)
    validate_plan(plan, instrument)


def check_adoption(plan: Plan, position: Position) -> None:
    """The open `position` can be guarded by `plan`: same symbol and positionIdx, open (size > 0), same
    side, take-profits on the profit side of its avgPrice, stop on the loss side of its avgPrice (and of
    its mark price when known: a stop already crossed would fire at once). PlanInvalid otherwise."""
    if position.symbol != plan.symbol:
        raise PlanInvalid("symbol", f"the position is on {position.symbol}, the plan on {plan.symbol}")
    if position.position_idx != plan.position_idx:
        raise PlanInvalid(
            "position_idx",
            f"the position is on positionIdx {position.position_idx}, the plan names {plan.position_idx}",
        )
    if position.size <= 0 or position.side is None:
        raise PlanInvalid(
            "adopt", f"no open {plan.symbol} position (positionIdx {plan.position_idx}) to adopt"
        )
    if position.side is not plan.side:
        raise PlanInvalid(
            "side",
            f"the open position is {_long_short(position.side)} ({position.side.value}), "
            f"the plan is {plan.side.value}",
        )
    avg = position.avg_price
    for i, tp in enumerate(plan.take_profits):
        if not _beyond(tp.price, avg, plan.side):
            raise PlanInvalid(
                f"take_profits[{i}].price",
                f"{_a_long_short(plan.side)}'s take-profit must be {_above_below(plan.side)} the "
                f"position's average price {avg}, got {tp.price}",
            )
    if not _beyond(avg, plan.stop_loss, plan.side):
        raise PlanInvalid(
            "stop_loss",
            f"{_a_long_short(plan.side)}'s stop must be {_below_above(plan.side)} the position's "
            f"average price {avg}, got {plan.stop_loss}",
        )
    mark = position.mark_price
    if mark is not None and mark > 0 and not _beyond(mark, plan.stop_loss, plan.side):
        raise PlanInvalid(
            "stop_loss",
            f"{_a_long_short(plan.side)}'s stop must be {_below_above(plan.side)} the mark price "
            f"{mark}, got {plan.stop_loss} (it would fire at once)",
        )


# ---------------------------------------------------------------------------------- single rules


def check_position_idx(idx: int, side: Side) -> None:
    if idx not in (0, 1, 2):
        raise PlanInvalid(
            "position_idx", f"must be 0 (one-way), 1 (hedge long) or 2 (hedge short), got {idx}"
        )
    if (idx == 1 and side is not Side.BUY) or (idx == 2 and side is not Side.SELL):
        wanted = 1 if side is Side.BUY else 2
        raise PlanInvalid(
            "position_idx",
            f"positionIdx {idx} is the hedge-mode {'long' if idx == 1 else 'short'} side; "
            f"a {side.value} plan needs 0 or {wanted}",
        )


def check_price(field: str, price: Decimal, instrument: Instrument) -> None:
    if price <= 0:
        raise PlanInvalid(field, f"must be positive, got {price}")
    if not _is_multiple(price, instrument.tick_size):
        raise PlanInvalid(field, f"must be a multiple of the tick size {instrument.tick_size}, got {price}")


def check_qty_grid(field: str, qty: Decimal, instrument: Instrument) -> None:
    if qty <= 0:
        raise PlanInvalid(field, f"must be positive, got {qty}")
    if not _is_multiple(qty, instrument.qty_step):
        raise PlanInvalid(field, f"must be a multiple of qtyStep {instrument.qty_step}, got {qty}")


def check_entry_set(entries: tuple[EntryLevel, ...], adopt: bool) -> None:
    if adopt:
        if entries:
            raise PlanInvalid("entries", "must be left out when adopt is true")
        return
    if not entries:
        raise PlanInvalid("entries", "at least one entry is needed (or adopt: true)")
    if len(entries) > MAX_LEVELS:
        raise PlanInvalid("entries", f"at most {MAX_LEVELS} entries, got {len(entries)}")
    if len(entries) > 1:
        for i, e in enumerate(entries):
            if e.is_market:
                raise PlanInvalid(f"entries[{i}].price", "a market entry (no price) must be the only entry")


def check_entry(
    i: int,
    entry: EntryLevel,
    prev: EntryLevel | None,
    side: Side,
    instrument: Instrument,
    mark_price: Decimal | None,
    *,
    path: str | None = None,
) -> None:
    path = path or f"entries[{i}]"
    if entry.price is not None:
        check_price(f"{path}.price", entry.price, instrument)
        if prev is not None and prev.price is not None and not _beyond(prev.price, entry.price, side):
            raise PlanInvalid(
                f"{path}.price",
                f"{_a_long_short(side)}'s entries go nearest first, each {_below_above(side)} the one "
                f"before: {entry.price} is not {_below_above(side)} {prev.price}",
            )
    qty = entry.qty
    field = f"{path}.qty"
    check_qty_grid(field, qty, instrument)
    if qty < instrument.min_qty:
        raise PlanInvalid(field, f"must be at least minOrderQty {instrument.min_qty}, got {qty}")
    cap = instrument.max_mkt_qty if entry.is_market and instrument.max_mkt_qty else instrument.max_qty
    if qty > cap:
        which = "maxMktOrderQty" if entry.is_market and instrument.max_mkt_qty else "maxOrderQty"
        raise PlanInvalid(field, f"must be at most {which} {cap}, got {qty}")
    price = entry.price if entry.price is not None else mark_price
    if instrument.min_notional > 0 and price is not None and qty * price < instrument.min_notional:
        raise PlanInvalid(
            field,
            f"order value {qty} × {price} = {qty * price} is under the minimum order value "
            f"{instrument.min_notional}",
        )


def check_take_profit_count(n: int) -> None:
    if n < 1:
        raise PlanInvalid("take_profits", "at least one take-profit level is needed")
    if n > MAX_LEVELS:
        raise PlanInvalid("take_profits", f"at most {MAX_LEVELS} take-profit levels, got {n}")


def profit_reference(
    entries: Sequence[EntryLevel], side: Side, mark_price: Decimal | None
) -> tuple[Decimal, str] | None:
    """The price every take-profit must be beyond, and how to name it (None: nothing to compare)."""
    prices = [e.price for e in entries if e.price is not None]
    if prices:
        if side is Side.BUY:
            return max(prices), "the highest entry"
        return min(prices), "the lowest entry"
    if mark_price is not None:
        return mark_price, "the mark price"
    return None


def _loss_reference(
    entries: Sequence[EntryLevel], side: Side, mark_price: Decimal | None
) -> tuple[Decimal, str] | None:
    """The price the stop must be beyond on the loss side (None: nothing to compare)."""
    prices = [e.price for e in entries if e.price is not None]
    if prices:
        if side is Side.BUY:
            return min(prices), "the lowest entry"
        return max(prices), "the highest entry"
    if mark_price is not None:
        return mark_price, "the mark price"
    return None


def check_tp_price(
    i: int,
    price: Decimal,
    prev: Decimal | None,
    side: Side,
    instrument: Instrument,
    ref: tuple[Decimal, str] | None,
) -> None:
    field = f"take_profits[{i}].price"
    check_price(field, price, instrument)
    if ref is not None and not _beyond(price, ref[0], side):
        raise PlanInvalid(
            field,
            f"{_a_long_short(side)}'s take-profit must be {_above_below(side)} {ref[1]} {ref[0]}, "
            f"got {price}",
        )
    if prev is not None and not _beyond(price, prev, side):
        raise PlanInvalid(
            field,
            f"{_a_long_short(side)}'s take-profits go {_ascending(side)}: {price} is not "
            f"{_above_below(side)} the previous level {prev}",
        )


def check_fraction(i: int, fraction: Decimal) -> None:
    field = f"take_profits[{i}].fraction"
    if not ZERO < fraction <= 1:
        raise PlanInvalid(field, f"must be a fraction above 0 and at most 1, got {fraction}")
    exponent = fraction.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_FRACTION_DECIMALS:
        # keeps the sum of ≤ 10 fractions exact in Decimal's 28 digits: "sums to 1" means exactly 1
        raise PlanInvalid(field, f"has more than {_MAX_FRACTION_DECIMALS} decimal places: {fraction}")


def check_fraction_sum(levels: Sequence[TakeProfitLevel]) -> None:
    total = sum((tp.fraction for tp in levels), ZERO)
    if total != 1:
        raise PlanInvalid("take_profits", f"fractions must sum to exactly 1, they sum to {total}")


def check_stop_loss(
    sl: Decimal,
    side: Side,
    entries: Sequence[EntryLevel],
    take_profits: Sequence[TakeProfitLevel],
    instrument: Instrument,
    mark_price: Decimal | None,
) -> None:
    check_price("stop_loss", sl, instrument)
    ref = _loss_reference(entries, side, mark_price)
    if ref is not None and not _beyond(ref[0], sl, side):
        raise PlanInvalid(
            "stop_loss",
            f"{_a_long_short(side)}'s stop must be {_below_above(side)} {ref[1]} {ref[0]}, got {sl}",
        )
    if take_profits:
        tp1 = take_profits[0].price
        if not _beyond(tp1, sl, side):
            raise PlanInvalid(
                "stop_loss",
                f"{_a_long_short(side)}'s stop must be {_below_above(side)} the first take-profit "
                f"{tp1}, got {sl}",
            )


def check_breakeven(value: int | None, n_tps: int) -> None:
    if value is None:
        return
    if not 1 <= value <= n_tps:
        raise PlanInvalid(
            "breakeven_after",
            f"must be between 1 and {n_tps} (the number of take-profits) or null (never), got {value}",
        )


def check_fee_buffer(fee_buffer: Decimal) -> None:
    if not ZERO <= fee_buffer < MAX_FEE_BUFFER:
        raise PlanInvalid(
            "fee_buffer",
            f"must be a fraction from 0 up to (not including) {MAX_FEE_BUFFER}, got {fee_buffer}",
        )


def check_time_limit(limit: float | None, entries: tuple[EntryLevel, ...]) -> None:
    if limit is None:
        return
    if not math.isfinite(limit) or limit <= 0:
        raise PlanInvalid("entry_time_limit_s", f"must be a positive number of seconds, got {limit}")
    if not any(e.price is not None for e in entries):
        raise PlanInvalid("entry_time_limit_s", "applies to limit entries, and this plan has none")


# -------------------------------------------------------------------------------------- helpers


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    try:
        return value % step == 0
    except InvalidOperation:
        return False


def _beyond(a: Decimal, b: Decimal, side: Side) -> bool:
    """a lies strictly beyond b in the profit direction of `side` (above for a long)."""
    return a > b if side is Side.BUY else a < b


def _long_short(side: Side) -> str:
    return "long" if side is Side.BUY else "short"


def _a_long_short(side: Side) -> str:
    return "a long" if side is Side.BUY else "a short"


def _above_below(side: Side) -> str:
    return "above" if side is Side.BUY else "below"


def _below_above(side: Side) -> str:
    return "below" if side is Side.BUY else "above"


def _ascending(side: Side) -> str:
    return (
        "up from the first level (ascending)"
        if side is Side.BUY
        else "down from the first level (descending)"
    )
