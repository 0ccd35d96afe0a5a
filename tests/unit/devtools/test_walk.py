"""The demo after its scripts (devtools/demo/walk.py): plans the system accepts, on the right sides of
the price and on the tick, and a symbol gets a fresh monitor only once all of its monitors closed."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.models import Monitor, Phase, Side
from core.plan import parse_request
from devtools.demo.scenarios import SCENARIOS
from devtools.demo.walk import DISTANCE, RETRY_S, Encore
from exchange.paper.instruments import REAL_INSTRUMENTS

INSTRUMENTS = {s.symbol: s.to_core() for s in REAL_INSTRUMENTS}
TICKS = {s.symbol: s.tick_size for s in REAL_INSTRUMENTS}
SYMBOLS = [sc.symbol for sc in SCENARIOS]


def encore(seed: int = 18) -> Encore:
    return Encore(SYMBOLS, TICKS, seed=seed)


@pytest.mark.parametrize(
    ("symbol", "price"),
    [
        ("BTCUSDT", "67550.0"),
        ("ETHUSDT", "3545.00"),
        ("SOLUSDT", "156.20"),
        ("XRPUSDT", "0.5290"),
        ("LINKUSDT", "13.450"),
        ("BTCUSDT", "65000.3"),
    ],
)
def test_every_plan_is_accepted_with_take_profit_and_stop_on_their_sides(symbol, price) -> None:
    e = encore()
    price = Decimal(price)
    sides = set()
    for _ in range(8):
        plan = e.plan(symbol, price)
        parsed = parse_request(plan, instruments=INSTRUMENTS, mark_price=price).plan
        tp, sl = parsed.take_profits[0].price, parsed.stop_loss
        sides.add(parsed.side)
        above, below = (tp, sl) if parsed.side is Side.BUY else (sl, tp)
        assert above >= price * (1 + DISTANCE) and below <= price * (1 - DISTANCE), plan
        for p in (tp, sl):
            assert p % TICKS[symbol] == 0, plan
        assert plan["mirror"] is True and plan["account"] == "main"
    assert sides == {Side.BUY, Side.SELL}  # eight draws of a fair coin (seeded): both sides


def test_the_same_seed_gives_the_same_plans() -> None:
    a, b = encore(7), encore(7)
    assert [a.plan("SOLUSDT", Decimal("150")) for _ in range(5)] == [
        b.plan("SOLUSDT", Decimal("150")) for _ in range(5)
    ]


def monitor(mid: str, phase: Phase) -> Monitor:
    plan = parse_request(encore().plan("SOLUSDT", Decimal("150")), instruments=INSTRUMENTS).plan
    return replace(Monitor(id=mid, account="main", plan=plan), phase=phase)


def test_a_symbol_gets_a_fresh_monitor_only_when_all_of_its_monitors_closed() -> None:
    e = encore()
    assert e.due({}, now=0.0) == SYMBOLS  # nothing open yet: every symbol
    e.open("SOLUSDT", ["w1", "w1m"])
    assert e.monitor_ids == ["w1", "w1m"] and e.opened == 1
    cases = [
        ({}, False),  # not read yet
        ({"w1": monitor("w1", Phase.MONITORING), "w1m": monitor("w1m", Phase.MONITORING)}, False),
        ({"w1": monitor("w1", Phase.CLOSED), "w1m": monitor("w1m", Phase.MONITORING)}, False),
        ({"w1": monitor("w1", Phase.CLOSED), "w1m": None}, False),  # the mirror not readable
        ({"w1": monitor("w1", Phase.CLOSED), "w1m": monitor("w1m", Phase.CLOSED)}, True),
    ]
    for monitors, due in cases:
        assert ("SOLUSDT" in e.due(monitors, now=1.0)) is due, monitors


def test_a_failed_open_is_retried_after_a_pause() -> None:
    e = encore()
    e.failed("BTCUSDT", now=100.0)
    assert "BTCUSDT" not in e.due({}, now=100.0 + RETRY_S - 0.1)
    assert "BTCUSDT" in e.due({}, now=100.0 + RETRY_S)
