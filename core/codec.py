"""JSON-able dicts for everything that crosses a process boundary (Celery messages, Redis state).

Exact round trips: ``x_from_dict(x_to_dict(v)) == v`` with every Decimal keeping its value *and* its
exponent (written as ``str(Decimal)``: ``"0.010"`` stays ``Decimal("0.010")``), enums written as their
``.value``, tuples as lists, ``None`` kept, Mapping payloads as plain dicts, frozensets as sorted lists.
The dicts hold only str / int / float / bool / None / list / dict, so any JSON encoder takes them.

Shapes:

* plan: the monitor-request shape (core.plan) without ``account``, plus every Plan field: ``symbol,
  side, preset, entries, take_profits, stop_loss, breakeven_after, mirror, adopt, position_idx,
  fee_buffer, entry_time_limit_s``. A limit entry is ``{"price", "qty"}``, a market entry
  ``{"type": "market", "qty"}``; take-profits are ``{"price", "fraction"}``.
* monitor: ``{"v": 1, …every Monitor field…, "plan": {…}, "orders": [{…OwnedOrder…}]}``. ``"v"`` is the
  schema version; `monitor_from_dict` refuses any version it does not know.
* event: every Event field, plus ``"critical"`` (derived from the kind on the way out, ignored on the
  way in).
* instrument, ticker, position, exchange order: their fields (the shared market cache, the API).

Speed matters (every monitor is decoded and encoded on every check), so each type has its own plain
function: no reflection over dataclass fields, enum values looked up in prebuilt dicts.

A dict that cannot be decoded raises `CodecError` (an InternalError naming what was being decoded).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import InternalError
from core.models import (
    BreakevenState,
    CloseReason,
    EntryLevel,
    Event,
    EventKind,
    ExchangeOrder,
    ExchangeOrderStatus,
    Instrument,
    Monitor,
    OrderRole,
    OrderStatus,
    OwnedOrder,
    Phase,
    Plan,
    Position,
    Side,
    TakeProfitLevel,
    Ticker,
    Tier,
)

MONITOR_SCHEMA_VERSION = 1

_SIDE = {m.value: m for m in Side}
_PHASE = {m.value: m for m in Phase}
_TIER = {m.value: m for m in Tier}
_ROLE = {m.value: m for m in OrderRole}
_ORDER_STATUS = {m.value: m for m in OrderStatus}
_X_STATUS = {m.value: m for m in ExchangeOrderStatus}
_BREAKEVEN = {m.value: m for m in BreakevenState}
_CLOSE = {m.value: m for m in CloseReason}
_KIND = {m.value: m for m in EventKind}


class CodecError(InternalError):
    """A dict that is not a valid encoding of what it was decoded as: corrupt stored state or a
    message this code did not write (the codec never reads input from a person). `field` names what
    was being decoded, `problem` what is wrong with it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _fail(what: str, exc: Exception) -> CodecError:
    if isinstance(exc, KeyError):
        return CodecError(what, f"missing key or unknown value {exc}")
    return CodecError(what, f"{type(exc).__name__}: {exc}")


_DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, InvalidOperation)


def _opt_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


# ------------------------------------------------------------------------------------------- plan


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "symbol": plan.symbol,
        "side": plan.side.value,
        "preset": plan.preset,
        "entries": [
            {"price": str(e.price), "qty": str(e.qty)}
            if e.price is not None
            else {"type": "market", "qty": str(e.qty)}
            for e in plan.entries
        ],
        "take_profits": [{"price": str(t.price), "fraction": str(t.fraction)} for t in plan.take_profits],
        "stop_loss": str(plan.stop_loss),
        "breakeven_after": plan.breakeven_after,
        "mirror": plan.mirror,
        "adopt": plan.adopt,
        "position_idx": plan.position_idx,
        "fee_buffer": str(plan.fee_buffer),
        "entry_time_limit_s": plan.entry_time_limit_s,
    }


def plan_from_dict(d: Mapping[str, Any]) -> Plan:
    """Decode a plan_to_dict dict. No plan rule is checked here (core.plan.validate_plan does that)."""
    try:
        return _plan_from_dict(d)
    except CodecError:
        raise
    except _DECODE_ERRORS as exc:
        raise _fail("plan", exc) from exc


def _plan_from_dict(d: Mapping[str, Any]) -> Plan:
    raw_entries = d["entries"]
    if isinstance(raw_entries, Mapping):  # the request shape's single market entry
        raw_entries = (raw_entries,)
    limit = d.get("entry_time_limit_s")
    return Plan(
        symbol=d["symbol"],
        side=_SIDE[d["side"]],
        entries=tuple(EntryLevel(qty=Decimal(e["qty"]), price=_opt_dec(e.get("price"))) for e in raw_entries),
        take_profits=tuple(
            TakeProfitLevel(price=Decimal(t["price"]), fraction=Decimal(t["fraction"]))
            for t in d["take_profits"]
        ),
        stop_loss=Decimal(d["stop_loss"]),
        breakeven_after=d.get("breakeven_after", 1),
        fee_buffer=Decimal(d.get("fee_buffer", "0.0008")),
        adopt=d.get("adopt", False),
        position_idx=d.get("position_idx", 0),
        mirror=d.get("mirror", True),
        entry_time_limit_s=None if limit is None else float(limit),
        preset=d.get("preset"),
    )


# ---------------------------------------------------------------------------------------- monitor


def owned_order_to_dict(o: OwnedOrder) -> dict[str, Any]:
    return {
        "role": o.role.value,
        "level": o.level,
        "generation": o.generation,
        "link_id": o.link_id,
        "side": o.side.value,
        "qty": str(o.qty),
        "price": None if o.price is None else str(o.price),
        "trigger_price": None if o.trigger_price is None else str(o.trigger_price),
        "filled": str(o.filled),
        "status": o.status.value,
        "changed_at": o.changed_at,
        "confirmed": o.confirmed,
        "unanswered_at": o.unanswered_at,
    }


def owned_order_from_dict(d: Mapping[str, Any]) -> OwnedOrder:
    price = d["price"]
    trigger = d["trigger_price"]
    return OwnedOrder(
        role=_ROLE[d["role"]],
        level=d["level"],
        generation=d["generation"],
        link_id=d["link_id"],
        side=_SIDE[d["side"]],
        qty=Decimal(d["qty"]),
        price=None if price is None else Decimal(price),
        trigger_price=None if trigger is None else Decimal(trigger),
        filled=Decimal(d["filled"]),
        status=_ORDER_STATUS[d["status"]],
        changed_at=float(d["changed_at"]),
        # states saved before these fields existed: an order past PLACING was answered or seen
        confirmed=bool(d.get("confirmed", d["status"] not in ("placing", "retry"))),
        unanswered_at=float(d.get("unanswered_at", 0.0)),
    )


def monitor_to_dict(m: Monitor) -> dict[str, Any]:
    return {
        "v": MONITOR_SCHEMA_VERSION,
        "id": m.id,
        "account": m.account,
        "plan": plan_to_dict(m.plan),
        "phase": m.phase.value,
        "orders": [owned_order_to_dict(o) for o in m.orders],
        "position_size": str(m.position_size),
        "closed_ahead": str(m.closed_ahead),
        "avg_entry": None if m.avg_entry is None else str(m.avg_entry),
        "built_qty": str(m.built_qty),
        "stop_price": str(m.stop_price),
        "breakeven": m.breakeven.value,
        "breakeven_price": None if m.breakeven_price is None else str(m.breakeven_price),
        "tp_hits": list(m.tp_hits),
        "entries_closed": m.entries_closed,
        "closed_reason": None if m.closed_reason is None else m.closed_reason.value,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "last_activity_at": m.last_activity_at,
        "tier": m.tier.value,
        "version": m.version,
        "mirror_of": m.mirror_of,
        "ratio": str(m.ratio),
        "unexplained_at": m.unexplained_at,
        "confirm_by_rest": m.confirm_by_rest,
        "repairs": m.repairs,
        "halted": m.halted,
        "last_price": None if m.last_price is None else str(m.last_price),
        "stop_sent_at": m.stop_sent_at,
        "stop_seen": _opt_str(m.stop_seen),
        "stop_accepted": _opt_str(m.stop_accepted),
        "stop_accepted_at": m.stop_accepted_at,
        "stop_entries_filled": str(m.stop_entries_filled),
        "stop_resets": m.stop_resets,
        "stop_fired": str(m.stop_fired),
        "stop_fired_ms": m.stop_fired_ms,
        "stop_crossed": m.stop_crossed,
    }


def monitor_from_dict(d: Mapping[str, Any]) -> Monitor:
    version = d.get("v") if isinstance(d, Mapping) else None
    if version != MONITOR_SCHEMA_VERSION:
        raise CodecError(
            "v",
            f"unknown monitor schema version {version!r}; this build reads version {MONITOR_SCHEMA_VERSION}",
        )
    try:
        avg_entry = d["avg_entry"]
        be_price = d["breakeven_price"]
        reason = d["closed_reason"]
        last_price = d["last_price"]
        unexplained_at = d["unexplained_at"]
        return Monitor(
            id=d["id"],
            account=d["account"],
            plan=_plan_from_dict(d["plan"]),
            phase=_PHASE[d["phase"]],
            orders=tuple([owned_order_from_dict(o) for o in d["orders"]]),
            position_size=Decimal(d["position_size"]),
            closed_ahead=Decimal(d.get("closed_ahead", "0")),  # states saved before it existed: none
            avg_entry=None if avg_entry is None else Decimal(avg_entry),
            built_qty=Decimal(d["built_qty"]),
            stop_price=Decimal(d["stop_price"]),
            breakeven=_BREAKEVEN[d["breakeven"]],
            breakeven_price=None if be_price is None else Decimal(be_price),
            tp_hits=tuple(d["tp_hits"]),
            entries_closed=d["entries_closed"],
            closed_reason=None if reason is None else _CLOSE[reason],
            created_at=float(d["created_at"]),
            updated_at=float(d["updated_at"]),
            last_activity_at=float(d["last_activity_at"]),
            tier=_TIER[d["tier"]],
            version=d["version"],
            mirror_of=d["mirror_of"],
            ratio=Decimal(d["ratio"]),
            unexplained_at=None if unexplained_at is None else float(unexplained_at),
            confirm_by_rest=bool(d.get("confirm_by_rest", False)),
            repairs=d["repairs"],
            halted=d["halted"],
            last_price=None if last_price is None else Decimal(last_price),
            # states saved before the position's own stop existed have none of these
            stop_sent_at=float(d.get("stop_sent_at", 0.0)),
            stop_seen=_opt_dec(d.get("stop_seen")),
            stop_accepted=_opt_dec(d.get("stop_accepted")),
            stop_accepted_at=float(d.get("stop_accepted_at", 0.0)),
            stop_entries_filled=Decimal(d.get("stop_entries_filled", "0")),  # saved before it existed
            stop_resets=int(d.get("stop_resets", 0)),
            stop_fired=Decimal(d.get("stop_fired", "0")),
            stop_fired_ms=int(d.get("stop_fired_ms", 0)),  # states saved before it existed: none
            stop_crossed=bool(d.get("stop_crossed", False)),
        )
    except _DECODE_ERRORS as exc:
        raise _fail(f"monitor {d.get('id')!r}", exc) from exc


# ----------------------------------------------------------------------------------------- events


def event_to_dict(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "monitor_id": e.monitor_id,
        "account": e.account,
        "kind": e.kind.value,
        "critical": e.kind.critical,
        "at": e.at,
        "monitor_version": e.monitor_version,
        "payload": dict(e.payload),
    }


def event_from_dict(d: Mapping[str, Any]) -> Event:
    """`critical` in the dict is ignored: it always follows from the kind."""
    try:
        return Event(
            id=d["id"],
            monitor_id=d["monitor_id"],
            account=d["account"],
            kind=_KIND[d["kind"]],
            at=float(d["at"]),
            monitor_version=d["monitor_version"],
            payload=dict(d.get("payload") or {}),
        )
    except _DECODE_ERRORS as exc:
        raise _fail("event", exc) from exc


# ------------------------------------------------------------------------------- snapshot parts


def instrument_to_dict(i: Instrument) -> dict[str, Any]:
    return {
        "symbol": i.symbol,
        "tick_size": str(i.tick_size),
        "qty_step": str(i.qty_step),
        "min_qty": str(i.min_qty),
        "max_qty": str(i.max_qty),
        "min_notional": str(i.min_notional),
        "max_mkt_qty": _opt_str(i.max_mkt_qty),
    }


def instrument_from_dict(d: Mapping[str, Any]) -> Instrument:
    try:
        return _instrument_from_dict(d)
    except _DECODE_ERRORS as exc:
        raise _fail("instrument", exc) from exc


def _instrument_from_dict(d: Mapping[str, Any]) -> Instrument:
    return Instrument(
        symbol=d["symbol"],
        tick_size=Decimal(d["tick_size"]),
        qty_step=Decimal(d["qty_step"]),
        min_qty=Decimal(d["min_qty"]),
        max_qty=Decimal(d["max_qty"]),
        min_notional=Decimal(d["min_notional"]),
        max_mkt_qty=_opt_dec(d["max_mkt_qty"]),
    )


def position_to_dict(p: Position) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "position_idx": p.position_idx,
        "side": None if p.side is None else p.side.value,
        "size": str(p.size),
        "avg_price": str(p.avg_price),
        "mark_price": _opt_str(p.mark_price),
        "unrealised_pnl": str(p.unrealised_pnl),
        "realised_pnl": str(p.realised_pnl),
        "leverage": _opt_str(p.leverage),
        "stop_loss": _opt_str(p.stop_loss),
    }


def position_from_dict(d: Mapping[str, Any]) -> Position:
    side = d["side"]
    return Position(
        symbol=d["symbol"],
        position_idx=d["position_idx"],
        side=None if side is None else _SIDE[side],
        size=Decimal(d["size"]),
        avg_price=Decimal(d["avg_price"]),
        mark_price=_opt_dec(d["mark_price"]),
        unrealised_pnl=Decimal(d["unrealised_pnl"]),
        realised_pnl=Decimal(d["realised_pnl"]),
        leverage=_opt_dec(d["leverage"]),
        stop_loss=_opt_dec(d.get("stop_loss")),
    )


def exchange_order_to_dict(o: ExchangeOrder) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "link_id": o.link_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "order_type": o.order_type,
        "qty": str(o.qty),
        "filled": str(o.filled),
        "status": o.status.value,
        "price": _opt_str(o.price),
        "trigger_price": _opt_str(o.trigger_price),
        "reduce_only": o.reduce_only,
        "position_idx": o.position_idx,
        "avg_price": _opt_str(o.avg_price),
        "created_ms": o.created_ms,
        "updated_ms": o.updated_ms,
    }


def exchange_order_from_dict(d: Mapping[str, Any]) -> ExchangeOrder:
    return ExchangeOrder(
        order_id=d["order_id"],
        link_id=d["link_id"],
        symbol=d["symbol"],
        side=_SIDE[d["side"]],
        order_type=d["order_type"],
        qty=Decimal(d["qty"]),
        filled=Decimal(d["filled"]),
        status=_X_STATUS[d["status"]],
        price=_opt_dec(d["price"]),
        trigger_price=_opt_dec(d["trigger_price"]),
        reduce_only=d["reduce_only"],
        position_idx=d["position_idx"],
        avg_price=_opt_dec(d["avg_price"]),
        created_ms=d["created_ms"],
        updated_ms=d["updated_ms"],
    )


def ticker_to_dict(t: Ticker) -> dict[str, Any]:
    return {"symbol": t.symbol, "last_price": str(t.last_price), "mark_price": str(t.mark_price)}


def ticker_from_dict(d: Mapping[str, Any]) -> Ticker:
    return Ticker(
        symbol=d["symbol"], last_price=Decimal(d["last_price"]), mark_price=Decimal(d["mark_price"])
    )
