"""The JSON shapes the API answers (and the page and the CLI show), built from plain dicts.

A monitor view is built from the monitor's state dict (`core.codec.monitor_to_dict`: what the
registry and the database both hold), so listing many monitors decodes JSON once and builds no
core objects. Decimals stay the strings they were stored as.

Monitor view (`GET /api/monitors/{id}`; POST answers the same with 201):

    id, account, symbol, side, position_idx, phase, tier, live, orders[…], tp_hits, breakeven,
    closed_reason, plan{…}, stop_price (the stop wanted now: the plan's, or breakeven once due),
    breakeven_price, position_size, avg_entry, built_qty, last_price, entries[…],
    take_profits[{level, price, fraction, status: hit|pending, qty, filled, order}],
    stop{price, planned, on_exchange, at_breakeven, breakeven, qty, status, link_id},
    next_check{tier, at} | null,
    mirror_of, ratio, halted, repairs, version, created_at, updated_at, last_activity_at
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.ids import parse_link_id

LIVE_ORDER_STATUSES = frozenset({"placing", "open", "cancelling"})


def order_view(o: Mapping[str, Any]) -> dict[str, Any]:
    """One owned order (OwnedOrder dict) as the API shows it."""
    return {
        "link_id": o["link_id"],
        "role": o["role"],
        "level": o["level"],
        "generation": o["generation"],
        "side": o["side"],
        "qty": o["qty"],
        "price": o.get("price"),
        "trigger_price": o.get("trigger_price"),
        "filled": o["filled"],
        "status": o["status"],
    }


Slots = dict[tuple[str, int], list[Mapping[str, Any]]]


def _slots(orders: list[Mapping[str, Any]]) -> Slots:
    """Orders grouped by (role, level), every generation of a slot together."""
    out: Slots = {}
    for o in orders:
        out.setdefault((o["role"], o["level"]), []).append(o)
    return out


def _current(slots: Slots, role: str, level: int) -> Mapping[str, Any] | None:
    """The newest generation in a slot."""
    group = slots.get((role, level))
    return max(group, key=lambda o: o["generation"]) if group else None


def _filled_of(slots: Slots, role: str, level: int) -> str:
    """Filled across every generation of a slot (one order: its own figure, no arithmetic)."""
    group = slots.get((role, level))
    if not group:
        return "0"
    if len(group) == 1:
        return str(group[0]["filled"])
    return str(sum((Decimal(o["filled"]) for o in group), Decimal(0)))


def effective_stop(state: Mapping[str, Any]) -> str | None:
    """The stop the monitor keeps on the exchange: the plan's, or the breakeven price once the move
    is due or done — whichever protects more (core.step's rule)."""
    stop = state.get("stop_price")
    be = state.get("breakeven_price")
    if be is None or state.get("breakeven", "none") == "none" or stop is None:
        return stop
    buy = state["plan"]["side"] == "Buy"
    try:
        better = Decimal(be) > Decimal(stop) if buy else Decimal(be) < Decimal(stop)
    except ArithmeticError:
        return stop
    return be if better else stop


def monitor_view(
    state: Mapping[str, Any],
    *,
    live: bool,
    next_check: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """The API shape of a monitor from its state dict. `next_check`: (tier, epoch s) from the
    registry's due sets (None for a closed monitor or one not scheduled)."""
    plan = state["plan"]
    orders = list(state.get("orders") or ())
    slots = _slots(orders)
    hits = list(state.get("tp_hits") or ())
    ladder = []
    for i, tp in enumerate(plan.get("take_profits") or (), start=1):
        cur = _current(slots, "TP", i)
        ladder.append(
            {
                "level": i,
                "price": tp["price"],
                "fraction": tp["fraction"],
                "status": "hit" if i in hits else "pending",
                "qty": cur["qty"] if cur else None,
                "filled": _filled_of(slots, "TP", i),
                "order": cur["status"] if cur else None,
            }
        )
    sl = _current(slots, "SL", 0)
    breakeven = state.get("breakeven", "none")
    stop = effective_stop(state)
    entries = []
    for i, e in enumerate(plan.get("entries") or (), start=1):
        cur = _current(slots, "E", i)
        entries.append(
            {
                "level": i,
                "price": e.get("price"),
                "qty": e["qty"],
                "market": e.get("price") is None,
                "filled": _filled_of(slots, "E", i),
                "order": cur["status"] if cur else None,
            }
        )
    return {
        "id": state["id"],
        "account": state["account"],
        "symbol": plan["symbol"],
        "side": plan["side"],
        "position_idx": plan.get("position_idx", 0),
        "position_mode": "hedge" if plan.get("position_idx", 0) in (1, 2) else "one-way",
        "phase": state["phase"],
        "tier": state["tier"],
        "live": live,
        "orders": [order_view(o) for o in orders],
        "tp_hits": hits,
        "breakeven": breakeven,
        "closed_reason": state.get("closed_reason"),
        "plan": dict(plan),
        "stop_price": stop,
        "breakeven_price": state.get("breakeven_price"),
        "position_size": state.get("position_size"),
        "avg_entry": state.get("avg_entry"),
        "built_qty": state.get("built_qty"),
        "last_price": state.get("last_price"),
        "entries": entries,
        "take_profits": ladder,
        "stop": {
            "price": stop,
            "planned": plan.get("stop_loss"),
            "on_exchange": sl["trigger_price"] if sl else None,
            "at_breakeven": breakeven == "done",
            "breakeven": breakeven,
            "qty": sl["qty"] if sl else None,
            "status": sl["status"] if sl else None,
            "link_id": sl["link_id"] if sl else None,
        },
        "next_check": None if next_check is None else {"tier": next_check[0], "at": next_check[1]},
        "mirror_of": state.get("mirror_of"),
        "ratio": state.get("ratio"),
        "halted": bool(state.get("halted", False)),
        "repairs": state.get("repairs", 0),
        "version": state.get("version"),
        "created_at": state.get("created_at"),
        "updated_at": state.get("updated_at"),
        "last_activity_at": state.get("last_activity_at"),
    }


def event_view(e: Mapping[str, Any]) -> dict[str, Any]:
    """An event (persistence.queries.StoredEvent.to_dict() or core.codec.event_to_dict)."""
    return {
        "id": e["id"],
        "kind": e["kind"],
        "critical": bool(e["critical"]),
        "at": e["at"],
        "payload": dict(e.get("payload") or {}),
        "monitor_id": e.get("monitor_id"),
        "account": e.get("account"),
        "monitor_version": e.get("monitor_version"),
    }


def exchange_order_view(o: Mapping[str, Any]) -> dict[str, Any]:
    """An order as the exchange lists it (core.codec.exchange_order_to_dict), with its owner when it
    is one of ours (monitor id and role from the orderLinkId)."""
    out = dict(o)
    parsed = parse_link_id(o.get("link_id") or "")
    if parsed is not None:
        mid, role, level, _gen = parsed
        out["monitor_id"] = mid
        out["role"] = role.value if level == 0 else f"{role.value}{level}"
    else:
        out["monitor_id"] = None
        out["role"] = None
    return out
