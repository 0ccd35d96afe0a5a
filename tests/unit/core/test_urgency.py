"""The tier table, row by row (core.urgency)."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.models import BreakevenState, Monitor, OrderRole, OrderStatus, OwnedOrder, Phase, Side, Tier
from core.policy import Policy
from core.urgency import classify, in_flight, near, proximity_targets

from .builders import conservative_long, snapshot

NOW = 10_000.0


def order(role, level, status=OrderStatus.OPEN, qty="0.010", filled="0", price=None, trigger=None):
    return OwnedOrder(
        role,
        level,
        1,
        f"tgm000000001-{role.value}{level or ''}-1",
        Side.SELL,
        D(qty),
        price=D(price) if price else None,
        trigger_price=D(trigger) if trigger else None,
        filled=D(filled),
        status=status,
    )


LADDER = (
    order(OrderRole.TP, 1, qty="0.025", price="62000"),
    order(OrderRole.TP, 2, qty="0.002", price="63000"),
    order(OrderRole.SL, 0, qty="0.030", trigger="58000"),
)


def monitoring(**kw) -> Monitor:
    base = dict(
        id="m000000001",
        account="main",
        plan=conservative_long(),
        phase=Phase.MONITORING,
        orders=LADDER,
        position_size=D("0.030"),
        built_qty=D("0.030"),
        avg_entry=D("59500"),
        stop_price=D("58000"),
        entries_closed=True,
        last_activity_at=NOW - 5,
        version=3,
    )
    base.update(kw)
    return Monitor(**base)


def tp_done(level, qty):
    return order(OrderRole.TP, level, status=OrderStatus.FILLED, qty=qty, filled=qty, price="62000")


CASES = [
    # (name, monitor, mark price, expected)
    ("pending: nothing placed yet", monitoring(phase=Phase.PENDING, orders=()), "60500", Tier.CRITICAL),
    (
        "placement unconfirmed",
        monitoring(orders=(*LADDER[:2], replace(LADDER[2], status=OrderStatus.PLACING))),
        "60500",
        Tier.CRITICAL,
    ),
    (
        "cancel unconfirmed",
        monitoring(orders=(*LADDER, replace(LADDER[0], link_id="x", status=OrderStatus.CANCELLING))),
        "60500",
        Tier.CRITICAL,
    ),
    ("breakeven pending", monitoring(breakeven=BreakevenState.PENDING), "60500", Tier.CRITICAL),
    (
        "breakeven due but deferred",
        monitoring(tp_hits=(1,), phase=Phase.PROFIT_TAKING),
        "60500",
        Tier.CRITICAL,
    ),
    ("size change awaiting confirmation", monitoring(unexplained_at=NOW - 1), "60500", Tier.CRITICAL),
    ("mark near the next TP", monitoring(), "61800", Tier.CRITICAL),  # 0.32 % from 62000
    ("mark near the stop", monitoring(), "58200", Tier.CRITICAL),
    (
        "mark near a working entry",
        monitoring(
            phase=Phase.BUILDING, entries_closed=False, orders=(order(OrderRole.ENTRY, 2, price="59500"),)
        ),
        "59700",
        Tier.CRITICAL,
    ),
    ("quiet for ten minutes", monitoring(last_activity_at=NOW - 600), "60500", Tier.IDLE),
    (
        "90 % of the TP quantity filled",
        monitoring(
            phase=Phase.PROFIT_TAKING,
            tp_hits=(1, 2),
            breakeven=BreakevenState.DONE,
            position_size=D("0.003"),
            orders=(tp_done(1, "0.025"), tp_done(2, "0.002"), LADDER[2]),
        ),
        "60500",
        Tier.INACTIVE,
    ),
    (
        "profit taking with TPs pending",
        monitoring(
            phase=Phase.PROFIT_TAKING,
            tp_hits=(1,),
            breakeven=BreakevenState.DONE,
            position_size=D("0.005"),
            orders=(tp_done(1, "0.025"), *LADDER[1:]),
        ),
        "62500",
        Tier.ACTIVE,
    ),
    (
        "building with entries working",
        monitoring(
            phase=Phase.BUILDING,
            entries_closed=False,
            orders=(order(OrderRole.ENTRY, 2, price="59500"),),
            position_size=D(0),
            built_qty=D(0),
        ),
        "61000",
        Tier.ACTIVE,
    ),
    ("monitoring far from every price", monitoring(), "60500", Tier.STANDARD),
    (
        "closed, cancels unconfirmed",
        monitoring(phase=Phase.CLOSED, orders=(replace(LADDER[0], status=OrderStatus.CANCELLING),)),
        "60500",
        Tier.ACTIVE,
    ),
    ("closed and done", monitoring(phase=Phase.CLOSED, orders=()), "60500", Tier.IDLE),
]


@pytest.mark.parametrize(("m", "mark", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tier_table(m, mark, expected):
    assert classify(m, snapshot(taken_at=NOW, price=mark), NOW) is expected


# Read from the stream view, the fills a monitor waits for are pushed and call a check by
# themselves: neither a price near a trigger nor "fills expected" (active) sets its tier. The rows
# that differ from a polled read:
PUSHED = {
    "mark near the next TP": Tier.STANDARD,
    "mark near the stop": Tier.STANDARD,
    "mark near a working entry": Tier.STANDARD,
    "profit taking with TPs pending": Tier.STANDARD,
    "building with entries working": Tier.STANDARD,
}


@pytest.mark.parametrize(("name", "m", "mark", "expected"), CASES, ids=[c[0] for c in CASES])
def test_tier_table_of_a_pushed_read(name, m, mark, expected):
    pushed = replace(snapshot(taken_at=NOW, price=mark), pushed=True)
    assert classify(m, pushed, NOW) is PUSHED.get(name, expected)


def test_a_pushed_read_differs_only_where_pushes_call_the_check():
    """What a pushed read no longer counts: the price near a trigger (critical), or fills awaited
    (active). Work in flight, quiet, nearly done and closed are the same whichever way it was read."""
    for name, m, mark, polled in CASES:
        if name in PUSHED:
            by_price = polled is Tier.CRITICAL
            band = Policy().proximity_band
            assert by_price == (near(D(mark), proximity_targets(m), band) and not in_flight(m))
            assert by_price or polled is Tier.ACTIVE, name
        else:
            assert polled is not Tier.ACTIVE or m.phase is Phase.CLOSED, name


def test_thresholds_come_from_the_policy():
    m = monitoring()
    s = snapshot(taken_at=NOW, price="61000")  # 1.6 % under TP1
    assert classify(m, s, NOW) is Tier.STANDARD
    assert classify(m, s, NOW, Policy(proximity_band=D("0.02"))) is Tier.CRITICAL
    assert classify(m, s, NOW + 60, Policy(idle_after_s=60)) is Tier.IDLE


# The proximity rule on its own (`near`), as the stream process applies it to each pushed price:
# |price - target| <= price * band, the band a fraction of the price.
NEAR_CASES = [
    # (name, price, targets, band, near?)
    ("on the target", "62000", ("62000",), "0.005", True),
    ("just inside below", "61700", ("62000",), "0.005", True),  # 300 <= 308.5
    ("just outside below", "61690", ("62000",), "0.005", False),  # 310 > 308.45
    ("exactly on the edge", "60000", ("60300",), "0.005", True),  # 300 <= 300
    ("just inside above", "62300", ("62000",), "0.005", True),  # 300 <= 311.5
    ("just outside above", "62320", ("62000",), "0.005", False),  # 320 > 311.6
    ("one of several targets", "58200", ("62000", "58000"), "0.005", True),
    ("far from every target", "60500", ("62000", "58000", "59500"), "0.005", False),
    ("no targets", "60500", (), "0.005", False),
    ("no price", None, ("60500",), "0.005", False),
    ("price zero", "0", ("0",), "0.005", False),
    ("a band of zero: only exactly on it", "62000", ("62000",), "0", True),
    ("a band of zero, a tick off", "62000.1", ("62000",), "0", False),
    ("a wider band", "61000", ("62000",), "0.02", True),
]


@pytest.mark.parametrize(
    ("price", "targets", "band", "expected"), [c[1:] for c in NEAR_CASES], ids=[c[0] for c in NEAR_CASES]
)
def test_near_table(price, targets, band, expected):
    price = D(price) if price is not None else None
    assert near(price, [D(t) for t in targets], D(band)) is expected


def test_classify_and_near_agree_on_the_proximity_row():
    """The classifier's price row is `near` over `proximity_targets`: one rule, two callers."""
    m = monitoring()
    for mark in ("57500", "57900", "58200", "58400", "60500", "61600", "61700", "62300", "62400"):
        by_rule = near(D(mark), proximity_targets(m), Policy().proximity_band)
        by_tier = classify(m, snapshot(taken_at=NOW, price=mark), NOW) is Tier.CRITICAL
        assert by_rule is by_tier, mark


def test_proximity_targets():
    assert proximity_targets(monitoring()) == (D("62000"), D("58000"))  # the next TP, the stop
    building = monitoring(
        phase=Phase.BUILDING,
        entries_closed=False,
        position_size=D(0),
        built_qty=D(0),
        orders=(order(OrderRole.ENTRY, 2, price="59500"),),
    )
    assert proximity_targets(building) == (D("59500"),)  # no position: only the working entry
    assert proximity_targets(monitoring(phase=Phase.CLOSED)) == ()  # a closed monitor watches nothing
