"""The API's monitor shape, built from the state dict the registry and the database hold."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from core.codec import monitor_to_dict
from core.ids import link_id
from core.models import (
    BreakevenState,
    CloseReason,
    Monitor,
    OrderRole,
    OrderStatus,
    OwnedOrder,
    Phase,
    Side,
    Tier,
)
from readmodel.views import effective_stop, event_view, exchange_order_view, monitor_view
from tests.unit.core.builders import conservative_long, conservative_short

MID = "abcdefghjk"


def order(role, level, gen=1, **kw):
    return OwnedOrder(
        role=role,
        level=level,
        generation=gen,
        link_id=link_id(MID, role, level, gen),
        side=kw.pop("side", Side.SELL),
        qty=kw.pop("qty", D("0.010")),
        **kw,
    )


def monitor(**kw) -> Monitor:
    base = dict(
        id=MID,
        account="main",
        plan=conservative_long(),
        tier=Tier.ACTIVE,
        version=3,
        created_at=100.0,
        stop_price=D("58000"),
    )
    base.update(kw)
    return Monitor(**base)


def test_ladder_hits_and_current_generation():
    m = monitor(
        phase=Phase.PROFIT_TAKING,
        tp_hits=(1,),
        orders=(
            order(
                OrderRole.TP,
                1,
                qty=D("0.025"),
                price=D("62000"),
                filled=D("0.025"),
                status=OrderStatus.FILLED,
            ),
            order(OrderRole.TP, 2, 1, qty=D("0.002"), price=D("63000"), status=OrderStatus.LOST),
            order(OrderRole.TP, 2, 2, qty=D("0.002"), price=D("63000"), status=OrderStatus.OPEN),
            order(OrderRole.SL, 0, qty=D("0.005"), trigger_price=D("58000"), status=OrderStatus.OPEN),
        ),
    )
    v = monitor_view(monitor_to_dict(m), live=True, next_check=("active", 123.5))
    assert [(t["level"], t["status"]) for t in v["take_profits"]] == [
        (1, "hit"),
        (2, "pending"),
        (3, "pending"),
        (4, "pending"),
    ]
    assert v["take_profits"][0]["filled"] == "0.025"
    assert v["take_profits"][1]["order"] == "open"  # generation 2, not the lost generation 1
    assert v["take_profits"][2]["qty"] is None  # no order for that level
    assert v["stop"] == {
        "price": "58000",
        "planned": "58000",
        "on_exchange": "58000",
        "at_breakeven": False,
        "breakeven": "none",
        "qty": "0.005",
        "status": "open",
        "link_id": f"tg{MID}-SL-1",
    }
    assert v["next_check"] == {"tier": "active", "at": 123.5}
    assert v["phase"] == "profit_taking" and v["tier"] == "active" and v["live"] is True
    assert len(v["orders"]) == 4 and "changed_at" not in v["orders"][0]
    assert v["tp_hits"] == [1] and v["closed_reason"] is None


def test_effective_stop_follows_breakeven_only_when_it_protects_more():
    long_be = monitor(stop_price=D("58000"), breakeven=BreakevenState.PENDING, breakeven_price=D("60048.1"))
    assert effective_stop(monitor_to_dict(long_be)) == "60048.1"
    not_yet = replace(long_be, breakeven=BreakevenState.NONE)
    assert effective_stop(monitor_to_dict(not_yet)) == "58000"
    short = monitor(
        plan=conservative_short(),
        stop_price=D("62000"),
        breakeven=BreakevenState.DONE,
        breakeven_price=D("60400"),
    )
    assert effective_stop(monitor_to_dict(short)) == "60400"
    worse = replace(short, breakeven_price=D("63000"))  # would loosen a short's stop: never
    assert effective_stop(monitor_to_dict(worse)) == "62000"
    v = monitor_view(monitor_to_dict(short), live=True)
    assert (
        v["stop"]["at_breakeven"] is True and v["stop_price"] == "60400" and v["stop"]["planned"] == "62000"
    )


def test_closed_monitor_view():
    m = monitor(phase=Phase.CLOSED, closed_reason=CloseReason.BREAKEVEN_STOP, tp_hits=(1,))
    v = monitor_view(monitor_to_dict(m), live=False)
    assert v["closed_reason"] == "breakeven_stop" and v["next_check"] is None and v["live"] is False
    assert [e["price"] for e in v["entries"]] == ["60000", "59500", "59000"]


def test_event_view_keeps_the_pinned_keys():
    e = event_view(
        {"id": "e1", "monitor_id": MID, "account": "main", "kind": "tp_hit", "critical": 1, "at": 5.0,
         "monitor_version": 4, "payload": {"level": 1}}
    )  # fmt: skip
    assert e["critical"] is True and e["payload"] == {"level": 1} and e["kind"] == "tp_hit"
    assert {"id", "kind", "critical", "at", "payload"} <= e.keys()


def test_exchange_orders_are_attributed_to_their_monitor():
    ours = exchange_order_view({"link_id": f"tg{MID}-TP2-3", "symbol": "BTCUSDT"})
    assert ours["monitor_id"] == MID and ours["role"] == "TP2"
    stop = exchange_order_view({"link_id": f"tg{MID}-SL-1"})
    assert stop["role"] == "SL"
    manual = exchange_order_view({"link_id": "", "symbol": "BTCUSDT"})
    assert manual["monitor_id"] is None and manual["role"] is None
