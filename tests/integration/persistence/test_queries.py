"""The read side returns what was written, as plain data; prune removes only old closed monitors."""

from __future__ import annotations

import pytest

from core.errors import FixInput
from core.models import CloseReason, EventKind
from persistence.queries import (
    StoredEvent,
    StoredMonitor,
    counts,
    events_for,
    get_monitor,
    insights,
    list_monitors,
    prune,
    recent_events,
)
from tests.integration.persistence.support import event, event_ids, monitor_rows, record

K = EventKind


@pytest.fixture
def history(writer):
    """Four monitors: two closed (TP ladder done; breakeven stop), one stopped out, one open."""
    # m1: created 1000, TP1 at 1100, TP2 at 1200, closed tp_complete at 1300
    writer.write_critical(
        [
            event("m1", K.MONITOR_CREATED, 1, 1000.0),
            event("m1", K.TP_HIT, 2, 1100.0, payload={"level": 1}),
            event("m1", K.TP_HIT, 3, 1200.0, payload={"level": 2}),
            event("m1", K.POSITION_CLOSED, 4, 1300.0, payload={"reason": "tp_complete"}),
        ],
        [record("m1", 4, phase="closed", closed_reason="tp_complete", created_at=1000.0, updated_at=1300.0)],
    )
    # m2: created 2000, TP1 at 2300, breakeven, stopped at breakeven 2600
    writer.write_critical(
        [
            event("m2", K.MONITOR_CREATED, 1, 2000.0),
            event("m2", K.TP_HIT, 2, 2300.0, payload={"level": 1}),
            event("m2", K.BREAKEVEN_MOVED, 3, 2301.0),
            event("m2", K.POSITION_CLOSED, 4, 2600.0, payload={"reason": "breakeven_stop"}),
        ],
        [
            record(
                "m2", 4, phase="closed", closed_reason="breakeven_stop", created_at=2000.0, updated_at=2600.0
            )
        ],
    )
    # m3 (mirror account): created 3000, stop loss at 3500
    writer.write_critical(
        [
            event("m3", K.MONITOR_CREATED, 1, 3000.0, account="mirror1"),
            event("m3", K.SL_HIT, 2, 3500.0, account="mirror1"),
        ],
        [
            record(
                "m3",
                2,
                account="mirror1",
                mirror_of="m2",
                phase="closed",
                closed_reason="stop_loss",
                created_at=3000.0,
                updated_at=3500.0,
            )
        ],
    )
    # m4: open, profit taking, critical tier; non-critical updates go through the buffer
    writer.write_critical([event("m4", K.MONITOR_CREATED, 1, 4000.0)], [record("m4", 1, created_at=4000.0)])
    writer.buffer(
        [event("m4", K.POSITION_UPDATE, 2, 4100.0)],
        [record("m4", 2, created_at=4000.0, phase="profit_taking", tier="critical")],
    )
    writer.flush()
    return writer


def test_list_and_get_return_plain_records(history, session):
    all_ = list_monitors(session)
    assert [m.id for m in all_] == ["m4", "m3", "m2", "m1"]  # newest first
    assert all(isinstance(m, StoredMonitor) for m in all_)
    m4 = get_monitor(session, "m4")
    assert m4 is not None and (m4.phase, m4.tier, m4.version, m4.state) == (
        "profit_taking",
        "critical",
        2,
        {"version": 2},
    )
    assert m4.closed_at is None
    assert get_monitor(session, "nope") is None
    assert get_monitor(session, "m3").to_dict()["mirror_of"] == "m2"


def test_list_filters_and_pages(history, session):
    assert [m.id for m in list_monitors(session, account="mirror1")] == ["m3"]
    assert [m.id for m in list_monitors(session, phase="closed")] == ["m3", "m2", "m1"]
    assert [m.id for m in list_monitors(session, open_only=True)] == ["m4"]
    assert [m.id for m in list_monitors(session, limit=2, offset=1)] == ["m3", "m2"]
    assert list_monitors(session, account="main", phase="closed", limit=1)[0].id == "m2"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"phase": "open"}, "phase"),
    ],
)
def test_list_arguments_are_checked(session, kwargs, field):
    with pytest.raises(FixInput) as err:
        list_monitors(session, **kwargs)
    assert err.value.field == field


def test_events_newest_first_with_paging(history, session):
    evs = events_for(session, "m1")
    assert [e.kind for e in evs] == ["position_closed", "tp_hit", "tp_hit", "monitor_created"]
    assert all(isinstance(e, StoredEvent) for e in evs)
    assert evs[0].critical and evs[0].payload == {"reason": "tp_complete"} and evs[0].at == 1300.0
    page = events_for(session, "m1", limit=2, before=1200.0)
    assert [e.at for e in page] == [1100.0, 1000.0]
    assert events_for(session, "nope") == []
    with pytest.raises(FixInput, match="before"):
        events_for(session, "m1", before=float("inf"))
    recent = recent_events(session, 3)
    assert [(e.monitor_id, e.kind) for e in recent] == [
        ("m4", "position_update"),
        ("m4", "monitor_created"),
        ("m3", "sl_hit"),
    ]
    assert recent[0].critical is False


def test_counts(history, session):
    c = counts(session)
    assert c["monitors_total"] == 4 and c["monitors_open"] == 1
    assert c["monitors_by_phase"]["closed"] == 3 and c["monitors_by_phase"]["profit_taking"] == 1
    assert c["monitors_by_phase"]["pending"] == 0
    assert c["monitors_by_tier"] == {"critical": 1, "active": 0, "standard": 0, "inactive": 0, "idle": 0}
    assert c["monitors_by_account"] == {"main": 1}
    assert c["events_by_kind"]["tp_hit"] == 3 and c["events_by_kind"]["monitor_created"] == 4
    assert c["events_by_kind"]["partial_fill"] == 0
    assert c["events_total"] == 12


def test_insights(history, session):
    ins = insights(session, since=0.0)
    assert ins["closed"] == 3
    every_reason = dict.fromkeys((r.value for r in CloseReason), 0)
    assert ins["close_reasons"] == every_reason | {"tp_complete": 1, "stop_loss": 1, "breakeven_stop": 1}
    assert ins["tp_hit_rates"] == {"1": {"hits": 2, "rate": 2 / 3}, "2": {"hits": 1, "rate": 1 / 3}}
    assert ins["breakeven_stops"] == 1 and ins["stop_losses"] == 1
    assert ins["avg_time_to_tp1_s"] == pytest.approx((100.0 + 300.0) / 2)
    assert ins["avg_time_to_close_s"] == pytest.approx((300.0 + 600.0 + 500.0) / 3)

    later = insights(session, since=2500.0)  # only m2 (closed 2600) and m3 (closed 3500)
    assert later["closed"] == 2 and later["tp_hit_rates"] == {"1": {"hits": 1, "rate": 0.5}}
    assert later["avg_time_to_tp1_s"] == pytest.approx(300.0)

    empty = insights(session, since=10_000.0)
    assert empty["closed"] == 0 and empty["tp_hit_rates"] == {}
    assert empty["avg_time_to_tp1_s"] is None and empty["avg_time_to_close_s"] is None


def test_prune_removes_old_closed_monitors_and_their_events(history, engine, session):
    assert prune(session, closed_before=1000.0) == 0
    assert prune(session, closed_before=3000.0) == 2  # m1 (closed 1300) and m2 (closed 2600)
    assert set(monitor_rows(engine)) == {"m3", "m4"}
    remaining = {e.monitor_id for e in recent_events(session, 100)}
    assert remaining == {"m3", "m4"}
    assert len(event_ids(engine)) == 4  # m3: 2, m4: 2
    assert prune(session, closed_before=1e12) == 1  # m3; the open m4 is never pruned
    assert set(monitor_rows(engine)) == {"m4"}
    with pytest.raises(FixInput, match="closed_before"):
        prune(session, closed_before="yesterday")  # type: ignore[arg-type]
