"""Parsing: from a monitor request (the pinned JSON shape) to a validated `Plan`.

`parse_request` turns the request of ``POST /api/monitors`` / ``tpsl monitor add --plan FILE`` into a
`MonitorRequest` (account + Plan) or raises `PlanInvalid(field, problem)`; it never returns a partial
plan. `parse_plan` does the same for the shape without ``account``. The rules a plan must meet are
in core/plan/rules.py.

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

Parsing checks each value as it reads it, with the single rules of core/plan/rules.py, so an error
names the first field that is wrong in document order.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import PlanInvalid
from core.models import EntryLevel, Instrument, Plan, Side, TakeProfitLevel
from core.plan.rules import (
    MAX_LEVELS,
    check_breakeven,
    check_entry,
    check_fee_buffer,
    check_fraction,
    check_fraction_sum,
    check_position_idx,
    check_price,
    check_qty_grid,
    check_stop_loss,
    check_take_profit_count,
    check_time_limit,
    check_tp_price,
    profit_reference,
)
from core.presets import Preset, get_preset, lay_out_entries

DEFAULT_FEE_BUFFER = Decimal("0.0008")

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
_MAX_ADJUSTED = 18  # a price or quantity of 10**19 or more is not a number anyone means
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
    check_stop_loss(stop_loss, side, entries, take_profits, instrument, mark_price)
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
    check_position_idx(value, side)
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
        check_entry(i, entry, prev, side, instrument, mark_price, path=path)
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
    check_qty_grid("qty", qty, instrument)
    qty = _on_grid(qty, instrument.qty_step)
    if preset is None:
        entries: tuple[EntryLevel, ...] = (EntryLevel(qty=qty, price=entry_price),)
    else:
        entries = lay_out_entries(preset, side, entry_price, qty, instrument)
    prev: EntryLevel | None = None
    for i, entry in enumerate(entries):
        try:
            check_entry(i, entry, prev, side, instrument, mark_price)
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
    check_take_profit_count(len(items))
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
    ref = profit_reference(entries, side, mark_price)
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
        check_tp_price(i, price, prev_price, side, instrument, ref)
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
        check_fraction(i, fraction)
        out.append(TakeProfitLevel(price=price, fraction=fraction))
        prev_price = price
    check_fraction_sum(out)
    return tuple(out)


def _parse_breakeven(data: Mapping[str, Any], preset: Preset | None, n_tps: int) -> int | None:
    if "breakeven_after" not in data:
        return preset.breakeven_after if preset is not None else 1
    value = data["breakeven_after"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PlanInvalid(
            "breakeven_after", f"must be a whole number 1..{n_tps} or null (never), got {_show(value)}"
        )
    check_breakeven(value, n_tps)
    return value


def _parse_fee_buffer(data: Mapping[str, Any], default: Decimal) -> Decimal:
    value = _get(data, "fee_buffer")
    if value is _MISSING:
        return default
    fee_buffer = _parse_decimal(value, "fee_buffer")
    check_fee_buffer(fee_buffer)
    return fee_buffer


def _parse_time_limit(data: Mapping[str, Any], entries: tuple[EntryLevel, ...]) -> float | None:
    value = _get(data, "entry_time_limit_s")
    if value is _MISSING:
        return None
    seconds = _parse_decimal(value, "entry_time_limit_s")
    limit = float(seconds)
    check_time_limit(limit, entries)
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
    check_price(field, price, instrument)
    return _on_grid(price, instrument.tick_size)


def _parse_qty(value: Any, field: str, instrument: Instrument) -> Decimal:
    if value is _MISSING or value is None:
        raise PlanInvalid(field, "required")
    qty = _parse_decimal(value, field)
    check_qty_grid(field, qty, instrument)
    return _on_grid(qty, instrument.qty_step)


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


def _on_grid(value: Decimal, step: Decimal) -> Decimal:
    """An on-grid value with the grid's number of decimals (value unchanged)."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    try:
        return value.quantize(Decimal(1).scaleb(min(exponent, 0)))
    except InvalidOperation:  # more digits than the context holds: keep it as it was given
        return value


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
