"""From a monitor request (the pinned JSON shape) to a validated `Plan`, and the plan rules.

`parse_request` turns the request of ``POST /api/monitors`` / ``tpsl monitor add --plan FILE`` into a
`MonitorRequest` (account + Plan) or raises `PlanInvalid(field, problem)`; it never returns a partial
plan. `validate_plan` checks the same rules on a `Plan` built elsewhere (a decoded or mirrored plan);
`check_adoption` checks a plan against the open position it is to adopt.

Request keys (anything else is an error naming the key)::

    account, symbol, side, position_idx, preset, adopt, entries | entry_price + qty, take_profits,
    stop_loss, breakeven_after, fee_buffer, entry_time_limit_s, mirror

That list is also the *document order*: when a request breaks several rules, the error names the first
one in that order (and within a list, the first level; within a level, price before qty/fraction).
Unknown keys are reported before anything else, so a typo (``"stop_los"``) is named as such rather
than as a missing ``stop_loss``. A JSON ``null`` counts as "left out", except for ``breakeven_after``
where ``null`` means "never move the stop to breakeven".

Numbers (prices, quantities, fractions, fee_buffer) may be strings or JSON numbers; booleans,
NaN/infinity and non-numeric strings are refused. Prices and quantities that are on their grid are
returned with the grid's number of decimals ("0.01" on a 0.001 grid becomes ``Decimal("0.010")``).

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

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import PlanInvalid
from core.models import ZERO, EntryLevel, Instrument, Plan, Position, Side, TakeProfitLevel
from core.presets import PRESETS, Preset, get_preset, lay_out_entries

MAX_LEVELS = 10
DEFAULT_FEE_BUFFER = Decimal("0.0008")
MAX_FEE_BUFFER = Decimal("0.05")

PLAN_FIELDS: tuple[str, ...] = (
    "symbol",
    "side",
    "position_idx",
    "preset",
    "adopt",
    "entries",
    "entry_price",
    "qty",
    "take_profits",
    "stop_loss",
    "breakeven_after",
    "fee_buffer",
    "entry_time_limit_s",
    "mirror",
)
REQUEST_FIELDS: tuple[str, ...] = ("account", *PLAN_FIELDS)
_ENTRY_FIELDS = ("type", "price", "qty")
_TP_FIELDS = ("price", "fraction")
_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL, "buy": Side.BUY, "sell": Side.SELL}
# ASCII digits only: Decimal() would also read "٣" or "１２" as numbers
_NUMBER_RE = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,4})?\s*", re.ASCII)
_MAX_ADJUSTED = 18
_MAX_FRACTION_DECIMALS = 18  # a price or quantity of 10**19 or more is not a number anyone means
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class MonitorRequest:
    """A parsed, validated monitor request: whose account, and the plan."""

    account: str
    plan: Plan


# ------------------------------------------------------------------------------------ entry points


def parse_request(
    data: Mapping[str, Any],
    *,
    instruments: Mapping[str, Instrument],
    fee_buffer: Decimal = DEFAULT_FEE_BUFFER,
    mark_price: Decimal | None = None,
) -> MonitorRequest:
    """The request shape → MonitorRequest, or PlanInvalid naming the first field that is wrong.

    `instruments`: the exchange filters by symbol (the symbol must be one of them). `fee_buffer`: the
    default breakeven buffer (settings.fee_buffer) for a request that gives none. `mark_price`: the
    symbol's mark price when the caller has it; market entries and adoptions are checked against it
    (take-profits beyond it, the stop on the loss side of it, a market entry's minimum order value)."""
    _require_object(data, "request")
    _reject_unknown(data, REQUEST_FIELDS, "")
    account = _parse_account(data)
    plan = _parse_plan(data, instruments, fee_buffer, mark_price)
    return MonitorRequest(account=account, plan=plan)


def parse_plan(
    data: Mapping[str, Any],
    *,
    instruments: Mapping[str, Instrument],
    fee_buffer: Decimal = DEFAULT_FEE_BUFFER,
    mark_price: Decimal | None = None,
) -> Plan:
    """The request shape without ``account`` → a validated Plan (same rules as parse_request)."""
    _require_object(data, "plan")
    _reject_unknown(data, PLAN_FIELDS, "")
    return _parse_plan(data, instruments, fee_buffer, mark_price)


def validate_plan(plan: Plan, instrument: Instrument, *, mark_price: Decimal | None = None) -> None:
    """Check every plan rule (see the module docstring) on an already-built Plan; raise PlanInvalid
    for the first violation in document order."""
    if plan.symbol != instrument.symbol:
        raise PlanInvalid(
            "symbol", f"the plan is for {plan.symbol} but the instrument is {instrument.symbol}"
        )
    _check_position_idx(plan.position_idx, plan.side)
    if plan.preset is not None and plan.preset not in PRESETS:
        get_preset(plan.preset)  # raises, naming the known presets
    _check_entry_set(plan.entries, plan.adopt)
    prev: EntryLevel | None = None
    for i, entry in enumerate(plan.entries):
        _check_entry(i, entry, prev, plan.side, instrument, mark_price)
        prev = entry
    _check_take_profit_count(len(plan.take_profits))
    ref = _profit_reference(plan.entries, plan.side, mark_price)
    prev_tp: TakeProfitLevel | None = None
    for i, tp in enumerate(plan.take_profits):
        _check_tp_price(i, tp.price, prev_tp.price if prev_tp else None, plan.side, instrument, ref)
        _check_fraction(i, tp.fraction)
        prev_tp = tp
    _check_fraction_sum(plan.take_profits)
    _check_stop_loss(plan.stop_loss, plan.side, plan.entries, plan.take_profits, instrument, mark_price)
    _check_breakeven(plan.breakeven_after, len(plan.take_profits))
    _check_fee_buffer(plan.fee_buffer)
    _check_time_limit(plan.entry_time_limit_s, plan.entries)


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


# --------------------------------------------------------------------------------------- parsing


def _parse_plan(
    data: Mapping[str, Any],
    instruments: Mapping[str, Instrument],
    default_fee_buffer: Decimal,
    mark_price: Decimal | None,
) -> Plan:
    instrument = _parse_symbol(data, instruments)
    side = _parse_side(data)
    position_idx = _parse_position_idx(data, side)
    preset = _parse_preset(data)
    adopt = _parse_bool(data, "adopt", False)
    entries = _parse_entries(data, adopt, preset, side, instrument, mark_price)
    take_profits = _parse_take_profits(data, preset, side, instrument, entries, mark_price)
    stop_loss = _parse_price(data.get("stop_loss", _MISSING), "stop_loss", instrument, required=True)
    assert stop_loss is not None
    _check_stop_loss(stop_loss, side, entries, take_profits, instrument, mark_price)
    breakeven_after = _parse_breakeven(data, preset, len(take_profits))
    fee_buffer = _parse_fee_buffer(data, default_fee_buffer)
    time_limit = _parse_time_limit(data, entries)
    mirror = _parse_bool(data, "mirror", True)
    return Plan(
        symbol=instrument.symbol,
        side=side,
        entries=entries,
        take_profits=take_profits,
        stop_loss=stop_loss,
        breakeven_after=breakeven_after,
        fee_buffer=fee_buffer,
        adopt=adopt,
        position_idx=position_idx,
        mirror=mirror,
        entry_time_limit_s=time_limit,
        preset=preset.name if preset is not None else None,
    )


def _parse_account(data: Mapping[str, Any]) -> str:
    value = _get(data, "account")
    if value is _MISSING:
        raise PlanInvalid("account", 'required: the id of the account to guard (e.g. "main")')
    if not isinstance(value, str) or not value.strip():
        raise PlanInvalid("account", f"must be a non-empty string, got {_show(value)}")
    return value


def _parse_symbol(data: Mapping[str, Any], instruments: Mapping[str, Instrument]) -> Instrument:
    value = _get(data, "symbol")
    if value is _MISSING:
        raise PlanInvalid("symbol", 'required (e.g. "BTCUSDT")')
    if not isinstance(value, str):
        raise PlanInvalid("symbol", f"must be a string, got {_show(value)}")
    instrument = instruments.get(value)
    if instrument is None:
        hint = ""
        if value.upper() in instruments:
            hint = f" (did you mean {value.upper()!r}?)"
        raise PlanInvalid("symbol", f"unknown symbol {value!r}{hint}")
    return instrument


def _parse_side(data: Mapping[str, Any]) -> Side:
    value = _get(data, "side")
    if value is _MISSING:
        raise PlanInvalid("side", "required: Buy (long) or Sell (short)")
    side = _SIDES.get(value) if isinstance(value, str) else None
    if side is None:
        raise PlanInvalid("side", f"must be Buy or Sell, got {_show(value)}")
    return side


def _parse_position_idx(data: Mapping[str, Any], side: Side) -> int:
    value = _get(data, "position_idx")
    if value is _MISSING:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanInvalid("position_idx", f"must be 0, 1 or 2, got {_show(value)}")
    _check_position_idx(value, side)
    return value


def _parse_preset(data: Mapping[str, Any]) -> Preset | None:
    value = _get(data, "preset")
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise PlanInvalid("preset", f"must be a preset name, got {_show(value)}")
    return get_preset(value)


def _parse_bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = _get(data, key)
    if value is _MISSING:
        return default
    if not isinstance(value, bool):
        raise PlanInvalid(key, f"must be true or false, got {_show(value)}")
    return value


def _parse_entries(
    data: Mapping[str, Any],
    adopt: bool,
    preset: Preset | None,
    side: Side,
    instrument: Instrument,
    mark_price: Decimal | None,
) -> tuple[EntryLevel, ...]:
    raw = _get(data, "entries")
    entry_price_raw = _get(data, "entry_price")
    qty_raw = _get(data, "qty")
    if adopt:
        if raw is not _MISSING and not (isinstance(raw, list | tuple) and not raw):
            raise PlanInvalid(
                "entries", "must be left out when adopt is true (the open position is adopted as it is)"
            )
        for key, val in (("entry_price", entry_price_raw), ("qty", qty_raw)):
            if val is not _MISSING:
                raise PlanInvalid(key, f"must be left out when adopt is true, got {_show(val)}")
        return ()
    if raw is not _MISSING:
        for key, val in (("entry_price", entry_price_raw), ("qty", qty_raw)):
            if val is not _MISSING:
                raise PlanInvalid(key, "give either entries or entry_price + qty, not both")
        return _parse_entry_list(raw, side, instrument, mark_price)
    if entry_price_raw is _MISSING and qty_raw is _MISSING:
        raise PlanInvalid(
            "entries", "required: give entries, entry_price + qty (or qty for a market entry), or adopt: true"
        )
    return _parse_entry_shorthand(entry_price_raw, qty_raw, preset, side, instrument, mark_price)


def _parse_entry_list(
    raw: Any, side: Side, instrument: Instrument, mark_price: Decimal | None
) -> tuple[EntryLevel, ...]:
    if isinstance(raw, Mapping):
        if str(raw.get("type", "")).lower() != "market":
            raise PlanInvalid(
                "entries",
                'must be a list of {"price", "qty"} entries, '
                'or one market entry {"type": "market", "qty": …}',
            )
        items: list[Any] = [raw]
        paths = ["entries"]
    elif isinstance(raw, Sequence) and not isinstance(raw, str | bytes):
        items = list(raw)
        paths = [f"entries[{i}]" for i in range(len(items))]
    else:
        raise PlanInvalid("entries", f"must be a list of entries, got {_show(raw)}")
    if not items:
        raise PlanInvalid("entries", "at least one entry is needed (or adopt: true)")
    if len(items) > MAX_LEVELS:
        raise PlanInvalid("entries", f"at most {MAX_LEVELS} entries, got {len(items)}")
    out: list[EntryLevel] = []
    prev: EntryLevel | None = None
    for i, (item, path) in enumerate(zip(items, paths, strict=True)):
        _require_object(item, path, 'an object with "price" and "qty"')
        _reject_unknown(item, _ENTRY_FIELDS, path)
        kind = _get(item, "type")
        if kind is _MISSING:
            kind = "limit"
        if not isinstance(kind, str) or kind.lower() not in ("limit", "market"):
            raise PlanInvalid(f"{path}.type", f"must be limit or market, got {_show(kind)}")
        market = kind.lower() == "market"
        if market:
            if len(items) > 1:
                raise PlanInvalid(f"{path}.type", "a market entry must be the only entry")
            if _get(item, "price") is not _MISSING:
                raise PlanInvalid(f"{path}.price", "a market entry has no price (leave it out)")
            price = None
        else:
            price = _parse_price(item.get("price", _MISSING), f"{path}.price", instrument, required=True)
        qty = _parse_qty(item.get("qty", _MISSING), f"{path}.qty", instrument)
        entry = EntryLevel(qty=qty, price=price)
        _check_entry(i, entry, prev, side, instrument, mark_price, path=path)
        out.append(entry)
        prev = entry
    return tuple(out)


def _parse_entry_shorthand(
    entry_price_raw: Any,
    qty_raw: Any,
    preset: Preset | None,
    side: Side,
    instrument: Instrument,
    mark_price: Decimal | None,
) -> tuple[EntryLevel, ...]:
    entry_price = None
    if entry_price_raw is not _MISSING:
        entry_price = _parse_price(entry_price_raw, "entry_price", instrument, required=True)
    if qty_raw is _MISSING:
        raise PlanInvalid("qty", "required with entry_price (or give entries)")
    qty = _parse_decimal(qty_raw, "qty")
    _check_qty_grid("qty", qty, instrument)
    qty = _on_grid(qty, instrument.qty_step)
    if preset is None:
        entries: tuple[EntryLevel, ...] = (EntryLevel(qty=qty, price=entry_price),)
    else:
        entries = lay_out_entries(preset, side, entry_price, qty, instrument)
    prev: EntryLevel | None = None
    for i, entry in enumerate(entries):
        try:
            _check_entry(i, entry, prev, side, instrument, mark_price)
        except PlanInvalid as exc:
            what = exc.field.rsplit(".", 1)[-1]
            laid_out = ", ".join(f"{e.qty} @ {e.price or 'market'}" for e in entries)
            context = f"the {preset.name} preset lays out {laid_out}; " if preset else ""
            field = "entry_price" if what == "price" else "qty"
            which = f"entry {i + 1}: " if len(entries) > 1 else ""
            raise PlanInvalid(field, f"{context}{which}{exc.problem}") from None
        prev = entry
    return entries


def _parse_take_profits(
    data: Mapping[str, Any],
    preset: Preset | None,
    side: Side,
    instrument: Instrument,
    entries: tuple[EntryLevel, ...],
    mark_price: Decimal | None,
) -> tuple[TakeProfitLevel, ...]:
    raw = _get(data, "take_profits")
    if raw is _MISSING:
        raise PlanInvalid("take_profits", "required: 1 to 10 take-profit levels")
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise PlanInvalid("take_profits", f"must be a list of take-profit levels, got {_show(raw)}")
    items = list(raw)
    _check_take_profit_count(len(items))
    has_fraction = [isinstance(it, Mapping) and _get(it, "fraction") is not _MISSING for it in items]
    fractions: Sequence[Decimal] | None = None
    if not any(has_fraction):
        if preset is not None:
            if len(preset.tp_fractions) != len(items):
                raise PlanInvalid(
                    "take_profits",
                    f"the {preset.name} preset supplies {len(preset.tp_fractions)} "
                    f"fraction{'s' if len(preset.tp_fractions) != 1 else ''} "
                    f"({preset.fractions_text}) but {len(items)} prices were given: give "
                    f"{len(preset.tp_fractions)} prices, or each level's fraction",
                )
            fractions = preset.tp_fractions
        elif len(items) == 1:
            fractions = (Decimal(1),)
    ref = _profit_reference(entries, side, mark_price)
    out: list[TakeProfitLevel] = []
    prev_price: Decimal | None = None
    for i, item in enumerate(items):
        path = f"take_profits[{i}]"
        if isinstance(item, Mapping):
            _reject_unknown(item, _TP_FIELDS, path)
            price_raw = item.get("price", _MISSING)
        else:
            price_raw = item
        price = _parse_price(price_raw, f"{path}.price", instrument, required=True)
        assert price is not None
        _check_tp_price(i, price, prev_price, side, instrument, ref)
        if fractions is not None:
            fraction = fractions[i]
        elif not has_fraction[i]:
            why = (
                "either every level gives its fraction or none does"
                if any(has_fraction)
                else "give each level's fraction, or a preset that supplies them"
            )
            raise PlanInvalid(f"{path}.fraction", f"required: {why}")
        else:
            fraction = _parse_decimal(item["fraction"], f"{path}.fraction")
        _check_fraction(i, fraction)
        out.append(TakeProfitLevel(price=price, fraction=fraction))
        prev_price = price
    _check_fraction_sum(out)
    return tuple(out)


def _parse_breakeven(data: Mapping[str, Any], preset: Preset | None, n_tps: int) -> int | None:
    if "breakeven_after" not in data:
        return preset.breakeven_after if preset is not None else 1
    value = data["breakeven_after"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PlanInvalid(
            "breakeven_after", f"must be a whole number 1..{n_tps} or null (never), got {_show(value)}"
        )
    _check_breakeven(value, n_tps)
    return value


def _parse_fee_buffer(data: Mapping[str, Any], default: Decimal) -> Decimal:
    value = _get(data, "fee_buffer")
    if value is _MISSING:
        return default
    fee_buffer = _parse_decimal(value, "fee_buffer")
    _check_fee_buffer(fee_buffer)
    return fee_buffer


def _parse_time_limit(data: Mapping[str, Any], entries: tuple[EntryLevel, ...]) -> float | None:
    value = _get(data, "entry_time_limit_s")
    if value is _MISSING:
        return None
    seconds = _parse_decimal(value, "entry_time_limit_s")
    limit = float(seconds)
    _check_time_limit(limit, entries)
    return limit


# ------------------------------------------------------------------------------ value parsing


def _parse_decimal(value: Any, field: str) -> Decimal:
    """A finite Decimal from a string or a JSON number (never from a bool, NaN or infinity)."""
    if isinstance(value, bool):
        raise PlanInvalid(field, f"must be a number, got {_show(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PlanInvalid(field, f"must be a finite number, got {value}")
        result = Decimal(repr(value))  # the shortest decimal that reads back as this float
    elif isinstance(value, str):
        if _NUMBER_RE.fullmatch(value) is None:
            raise PlanInvalid(field, f"must be a number, got {value!r}")
        result = Decimal(value.strip())
    else:
        raise PlanInvalid(field, f"must be a number (a string or a JSON number), got {_show(value)}")
    if not result.is_finite():
        raise PlanInvalid(field, f"must be a finite number, got {result}")
    if result and result.adjusted() > _MAX_ADJUSTED:
        raise PlanInvalid(field, f"is out of range: {result}")
    return result


def _parse_price(value: Any, field: str, instrument: Instrument, *, required: bool) -> Decimal | None:
    if value is _MISSING or value is None:
        if required:
            raise PlanInvalid(field, "required")
        return None
    price = _parse_decimal(value, field)
    _check_price(field, price, instrument)
    return _on_grid(price, instrument.tick_size)


def _parse_qty(value: Any, field: str, instrument: Instrument) -> Decimal:
    if value is _MISSING or value is None:
        raise PlanInvalid(field, "required")
    qty = _parse_decimal(value, field)
    _check_qty_grid(field, qty, instrument)
    return _on_grid(qty, instrument.qty_step)


# ---------------------------------------------------------------------------------------- rules


def _check_position_idx(idx: int, side: Side) -> None:
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


def _check_price(field: str, price: Decimal, instrument: Instrument) -> None:
    if price <= 0:
        raise PlanInvalid(field, f"must be positive, got {price}")
    if not _is_multiple(price, instrument.tick_size):
        raise PlanInvalid(field, f"must be a multiple of the tick size {instrument.tick_size}, got {price}")


def _check_qty_grid(field: str, qty: Decimal, instrument: Instrument) -> None:
    if qty <= 0:
        raise PlanInvalid(field, f"must be positive, got {qty}")
    if not _is_multiple(qty, instrument.qty_step):
        raise PlanInvalid(field, f"must be a multiple of qtyStep {instrument.qty_step}, got {qty}")


def _check_entry_set(entries: tuple[EntryLevel, ...], adopt: bool) -> None:
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


def _check_entry(
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
        _check_price(f"{path}.price", entry.price, instrument)
        if prev is not None and prev.price is not None and not _beyond(prev.price, entry.price, side):
            raise PlanInvalid(
                f"{path}.price",
                f"{_a_long_short(side)}'s entries go nearest first, each {_below_above(side)} the one "
                f"before: {entry.price} is not {_below_above(side)} {prev.price}",
            )
    qty = entry.qty
    field = f"{path}.qty"
    _check_qty_grid(field, qty, instrument)
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


def _check_take_profit_count(n: int) -> None:
    if n < 1:
        raise PlanInvalid("take_profits", "at least one take-profit level is needed")
    if n > MAX_LEVELS:
        raise PlanInvalid("take_profits", f"at most {MAX_LEVELS} take-profit levels, got {n}")


def _profit_reference(
    entries: tuple[EntryLevel, ...], side: Side, mark_price: Decimal | None
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
    entries: tuple[EntryLevel, ...], side: Side, mark_price: Decimal | None
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


def _check_tp_price(
    i: int,
    price: Decimal,
    prev: Decimal | None,
    side: Side,
    instrument: Instrument,
    ref: tuple[Decimal, str] | None,
) -> None:
    field = f"take_profits[{i}].price"
    _check_price(field, price, instrument)
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


def _check_fraction(i: int, fraction: Decimal) -> None:
    field = f"take_profits[{i}].fraction"
    if not ZERO < fraction <= 1:
        raise PlanInvalid(field, f"must be a fraction above 0 and at most 1, got {fraction}")
    exponent = fraction.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_FRACTION_DECIMALS:
        # keeps the sum of ≤ 10 fractions exact in Decimal's 28 digits: "sums to 1" means exactly 1
        raise PlanInvalid(field, f"has more than {_MAX_FRACTION_DECIMALS} decimal places: {fraction}")


def _check_fraction_sum(levels: Sequence[TakeProfitLevel]) -> None:
    total = sum((tp.fraction for tp in levels), ZERO)
    if total != 1:
        raise PlanInvalid("take_profits", f"fractions must sum to exactly 1, they sum to {total}")


def _check_stop_loss(
    sl: Decimal,
    side: Side,
    entries: Sequence[EntryLevel],
    take_profits: Sequence[TakeProfitLevel],
    instrument: Instrument,
    mark_price: Decimal | None,
) -> None:
    _check_price("stop_loss", sl, instrument)
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


def _check_breakeven(value: int | None, n_tps: int) -> None:
    if value is None:
        return
    if not 1 <= value <= n_tps:
        raise PlanInvalid(
            "breakeven_after",
            f"must be between 1 and {n_tps} (the number of take-profits) or null (never), got {value}",
        )


def _check_fee_buffer(fee_buffer: Decimal) -> None:
    if not ZERO <= fee_buffer < MAX_FEE_BUFFER:
        raise PlanInvalid(
            "fee_buffer",
            f"must be a fraction from 0 up to (not including) {MAX_FEE_BUFFER}, got {fee_buffer}",
        )


def _check_time_limit(limit: float | None, entries: tuple[EntryLevel, ...]) -> None:
    if limit is None:
        return
    if not math.isfinite(limit) or limit <= 0:
        raise PlanInvalid("entry_time_limit_s", f"must be a positive number of seconds, got {limit}")
    if not any(e.price is not None for e in entries):
        raise PlanInvalid("entry_time_limit_s", "applies to limit entries, and this plan has none")


# -------------------------------------------------------------------------------------- helpers


def _get(data: Mapping[str, Any], key: str) -> Any:
    """The value of `key`, or _MISSING when it is absent or null."""
    value = data.get(key, _MISSING)
    return _MISSING if value is None else value


def _require_object(value: Any, field: str, what: str = "a JSON object") -> None:
    if not isinstance(value, Mapping):
        raise PlanInvalid(field, f"must be {what}, got {_show(value)}")


def _reject_unknown(data: Mapping[Any, Any], known: Sequence[str], path: str) -> None:
    for key in data:
        if key not in known:
            name = str(key)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed = ", ".join(known)
            raise PlanInvalid(
                f"{path}.{name}" if path else name, f"unknown field {name!r}{hint}; known: {allowed}"
            )


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    try:
        return value % step == 0
    except InvalidOperation:
        return False


def _on_grid(value: Decimal, step: Decimal) -> Decimal:
    """An on-grid value with the grid's number of decimals (value unchanged)."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    try:
        return value.quantize(Decimal(1).scaleb(min(exponent, 0)))
    except InvalidOperation:  # more digits than the context holds: keep it as it was given
        return value


def _beyond(a: Decimal, b: Decimal, side: Side) -> bool:
    """a lies strictly beyond b in the profit direction of `side` (above for a long)."""
    return a > b if side is Side.BUY else a < b


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


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
