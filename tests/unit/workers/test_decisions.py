"""The decisions of workers/ that are not I/O, as tables: how claims become check messages, in
which order a pass's intents are sent, what reconcile does with a database row, which records are
refused, which creates are answered from the read, which tier moves a pass makes, the reaction
latency of a pass, which events alert."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.errors import ErrorKind
from core.models import (
    AmendOrder,
    CancelOrder,
    Event,
    EventKind,
    ExchangeOrder,
    ExchangeOrderStatus,
    IntentResult,
    Monitor,
    PlaceOrder,
    Side,
    Snapshot,
    Stage,
    Tier,
)
from persistence.records import MonitorRecord
from tests.unit.core.builders import INSTRUMENTS, conservative_long
from workers.checker import reaction_of, tier_moves
from workers.dispatcher import CheckOrder, group_claims
from workers.executor import _calls
from workers.notifiers import describe
from workers.placements import split_known
from workers.quarantine import disagreement
from workers.reconcile import KEEP, REFRESH, RESTORE, registry_action
from workers.recorder import needs_alert
from workers.registry import Claimed
from workers.store import record_of

CRIT, ACTIVE, STD, IDLE = Tier.CRITICAL, Tier.ACTIVE, Tier.STANDARD, Tier.IDLE


def monitor(mid: str = "m1", **kw: object) -> Monitor:
    return replace(Monitor(id=mid, account="main", plan=conservative_long()), **kw)


# ------------------------------------------------------------------------------ dispatcher


@pytest.mark.parametrize(
    ("claimed", "orders"),
    [
        ([], []),
        (  # one account: its most urgent tier picks the queue, the earliest due time the start
            [Claimed("a", "main", STD, 10.0, 1.0), Claimed("b", "main", CRIT, 12.0, 0.0)],
            [CheckOrder("main", CRIT, ("a", "b"), 10.0)],
        ),
        (  # ride-alongs do not set the start while a due monitor is there
            [Claimed("a", "main", IDLE, 30.0, 0.0, True), Claimed("b", "main", STD, 20.0, 0.5)],
            [CheckOrder("main", STD, ("a", "b"), 20.0)],
        ),
        (  # only ride-alongs (claimed ahead): the earliest of them
            [Claimed("a", "main", IDLE, 30.0, 0.0, True), Claimed("b", "main", IDLE, 25.0, 0.0, True)],
            [CheckOrder("main", IDLE, ("a", "b"), 25.0)],
        ),
        (  # one message per account, accounts in order, monitors in claim order
            [
                Claimed("x", "mirror1", ACTIVE, 5.0, 0.0),
                Claimed("y", "main", IDLE, 7.0, 0.0),
                Claimed("z", "mirror1", STD, 4.0, 0.0),
            ],
            [CheckOrder("main", IDLE, ("y",), 7.0), CheckOrder("mirror1", ACTIVE, ("x", "z"), 4.0)],
        ),
    ],
)
def test_claims_become_one_check_per_account(claimed, orders):
    assert group_claims(claimed) == orders


# -------------------------------------------------------------------------------- executor


def place(link: str, stage: int = Stage.RAISE) -> PlaceOrder:
    return PlaceOrder("main", "m1", link, "BTCUSDT", Side.BUY, D(1), stage=stage)


def amend(link: str, stage: int = Stage.RAISE) -> AmendOrder:
    return AmendOrder("main", "m1", link, "BTCUSDT", qty=D(1), stage=stage)


def cancel(link: str) -> CancelOrder:
    return CancelOrder("main", "m1", link, "BTCUSDT")


@pytest.mark.parametrize(
    ("intents", "calls"),
    [
        ([], []),
        (  # stop first, then cancels, then lowering amends, then raises (places before amends)
            [amend("r1"), place("p1"), cancel("c1"), amend("l1", Stage.LOWER), place("s1", Stage.STOP)],
            [
                (Stage.STOP, PlaceOrder, ["s1"]),
                (Stage.CANCEL, CancelOrder, ["c1"]),
                (Stage.LOWER, AmendOrder, ["l1"]),
                (Stage.RAISE, PlaceOrder, ["p1"]),
                (Stage.RAISE, AmendOrder, ["r1"]),
            ],
        ),
        (  # one call per (stage, kind), intents kept in their order
            [place("p2"), cancel("c1"), place("p1"), cancel("c2")],
            [(Stage.CANCEL, CancelOrder, ["c1", "c2"]), (Stage.RAISE, PlaceOrder, ["p2", "p1"])],
        ),
        (  # a stop amended and a stop placed: both in the first stage
            [amend("s2", Stage.STOP), place("s1", Stage.STOP)],
            [(Stage.STOP, PlaceOrder, ["s1"]), (Stage.STOP, AmendOrder, ["s2"])],
        ),
    ],
)
def test_a_pass_is_sent_in_stage_order(intents, calls):
    assert [(stage, kind, [i.link_id for i in group]) for stage, kind, group in _calls(intents)] == calls


# ------------------------------------------------------------------------------ placements


def open_order(link: str, order_id: str) -> ExchangeOrder:
    return ExchangeOrder(
        order_id, link, "BTCUSDT", Side.BUY, "Limit", D(1), D(0), ExchangeOrderStatus.NEW, price=D(60000)
    )


@pytest.mark.parametrize(
    ("intents", "open_links", "known", "send"),
    [
        ([], [], [], []),
        ([place("p1"), place("p2")], [], [], ["p1", "p2"]),
        ([place("p1"), place("p2")], ["p2"], [("p2", "o-p2")], ["p1"]),  # p2 was placed already
        ([amend("p1"), cancel("p2")], ["p1", "p2"], [], ["p1", "p2"]),  # only creates are answered
    ],
)
def test_creates_the_read_shows_open_are_not_sent_again(intents, open_links, known, send):
    snap = Snapshot("main", 0.0, {}, {lk: open_order(lk, f"o-{lk}") for lk in open_links}, INSTRUMENTS)
    answered, rest = split_known(intents, snap)
    assert [(i.link_id, r.order_id) for i, r in answered] == known
    assert all(r.ok for _, r in answered)
    assert [i.link_id for i in rest] == send


# ------------------------------------------------------------------------------- reconcile


@pytest.mark.parametrize(
    ("db_version", "live_version", "action"),
    [
        (3, None, RESTORE),  # the registry lost it
        (3, 2, REFRESH),  # the registry lost a save the database has
        (3, 3, KEEP),
        (3, 5, KEEP),  # the registry is ahead (saves not yet flushed): it leads
    ],
)
def test_what_reconcile_does_with_an_open_database_monitor(db_version, live_version, action):
    assert registry_action(db_version, live_version) == action


# ------------------------------------------------------------------------------ quarantine


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        (None, None, None),
        ("id", "other", "id"),
        ("account", "mirror1", "account"),
        ("symbol", "ETHUSDT", "symbol"),
        ("side", "Sell", "side"),
    ],
)
def test_a_record_whose_columns_and_state_disagree_is_refused(column, value, field):
    m = monitor()
    record = record_of(m)
    if column is not None:
        record = MonitorRecord(**{**record.to_dict(), column: value})
    assert disagreement(record, m) == field


# --------------------------------------------------------------------------------- checker


@pytest.mark.parametrize(
    ("moves", "want"),
    [
        ([], {}),
        ([(STD, STD)], {}),  # unchanged: no registry call
        ([(STD, CRIT)], {CRIT: {"m0": CRIT}}),
        (
            [(STD, CRIT), (IDLE, CRIT), (CRIT, STD), (ACTIVE, ACTIVE)],
            {CRIT: {"m0": CRIT, "m1": CRIT}, STD: {"m2": STD}},
        ),
    ],
)
def test_tier_moves_are_grouped_by_new_tier(moves, want):
    pairs = [(monitor(f"m{i}", tier=old), monitor(f"m{i}", tier=new)) for i, (old, new) in enumerate(moves)]
    assert tier_moves(pairs) == want


def event(kind: EventKind, **payload: object) -> Event:
    return Event("e", "m1", "main", kind, 0.0, 1, payload)


OK = IntentResult("l1", True, answered_at=1_000.5)
LATER = IntentResult("l2", True, answered_at=1_002.0)
REFUSED = IntentResult("l1", False, ErrorKind.INVALID_ORDER, answered_at=1_000.2)
KNOWN = IntentResult("l1", True)  # a create the read already showed: nothing was sent, no answer time
THROTTLED = IntentResult("l2", False, ErrorKind.BACK_OFF, answered_at=1_000.6)  # left to the next pass
UNSENT = IntentResult("l3", False, ErrorKind.BACK_OFF, "not sent: …", sent=False)
TP = event(EventKind.TP_HIT, exchange_ms=1_000_000)


@pytest.mark.parametrize(
    ("events", "outcomes", "want"),
    [
        ([], [(place("l1"), OK)], None),  # no fill
        ([TP], [], None),  # nothing sent
        ([TP], [(place("l1"), KNOWN)], None),  # nothing sent: the read showed it
        ([TP], [(place("l1"), REFUSED)], ("tp_hit", None, None)),  # none taken: no reaction yet
        ([TP], [(place("l1"), OK)], ("tp_hit", 0.5, 0.5)),
        ([TP], [(place("l1"), OK), (place("l2"), LATER)], ("tp_hit", 0.5, 2.0)),  # the stop, then TPs
        ([TP], [(place("l1"), OK), (place("l2"), THROTTLED)], ("tp_hit", 0.5, None)),  # deferred
        ([TP], [(place("l1"), OK), (place("l3"), UNSENT)], ("tp_hit", 0.5, None)),  # deferred
        ([TP], [(place("l2"), THROTTLED)], ("tp_hit", None, None)),  # all deferred
        (  # the earliest fill of the pass is the one reacted to
            [event(EventKind.TP_HIT, exchange_ms=1_000_200), event(EventKind.SL_HIT, exchange_ms=1_000_100)],
            [(place("l1"), REFUSED), (place("l1"), OK)],
            ("sl_hit", 0.4, 0.4),
        ),
        ([event(EventKind.TP_HIT, exchange_ms=1_000_900)], [(place("l1"), OK)], ("tp_hit", 0.0, 0.0)),  # skew
    ],
)
def test_reaction_latency_of_a_pass(events, outcomes, want):
    got = reaction_of(events, outcomes)
    if want is None:
        assert got is None
        return
    kind, first, whole = want
    assert got is not None and got.kind == kind
    assert got.first_s == (None if first is None else pytest.approx(first))
    assert got.all_s == (None if whole is None else pytest.approx(whole))
    assert got.deferred is (whole is None)
    assert got.seen_s is None  # no read time given


@pytest.mark.parametrize(("read_at", "seen"), [(1_000.3, 0.3), (999.9, 0.0)])  # a clock behind: 0
def test_the_detection_part_of_a_reaction_runs_from_the_fill_to_the_read(read_at, seen):
    got = reaction_of([TP], [(place("l1"), OK)], read_at)
    assert got is not None and got.seen_s == pytest.approx(seen)
    assert got.first_s == pytest.approx(0.5)  # the whole reaction still runs to the answer


# -------------------------------------------------------------------------------- alerting


@pytest.mark.parametrize(
    ("kind", "payload", "alert"),
    [
        (EventKind.SL_HIT, {}, True),  # critical
        (EventKind.TP_HIT, {}, True),
        (EventKind.POSITION_UPDATE, {}, False),
        (EventKind.POSITION_UPDATE, {"alert": True}, True),  # asked for
        (EventKind.MONITORING_UPDATE, {"alert": False}, False),
    ],
)
def test_which_events_alert(kind, payload, alert):
    assert needs_alert(event(kind, **payload)) is alert


@pytest.mark.parametrize(
    ("alert", "line"),
    [
        (
            {
                "kind": "tp_hit",
                "account": "main",
                "monitor_id": "m1",
                "payload": {"level": 2, "symbol": "BTCUSDT"},
            },
            "TP2 hit BTCUSDT (main / m1)",
        ),
        ({"kind": "position_closed", "payload": {"reason": "sl_hit"}}, "Position closed (sl_hit)"),
        ({"kind": "tp_hit", "payload": {}}, "TP? hit"),  # a missing field never fails the alert
        (
            {"kind": "something_new", "account": "main", "payload": {"message": "x"}},
            "something_new (main) message x",
        ),
    ],
)
def test_an_alert_is_one_human_line(alert, line):
    assert describe(alert) == line
