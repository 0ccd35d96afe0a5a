"""Focused cases of core.step with hand-built reads: what one pass does with what the exchange shows."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.models import (
    BreakevenState,
    CancelOrder,
    CloseReason,
    ErrorKind,
    EventKind,
    ExchangeOrderStatus,
    IntentResult,
    OrderRole,
    OrderStatus,
    Phase,
    PlaceOrder,
    Side,
    Tier,
)
from core.step import acknowledge, links_to_look_up
from core.step import open_monitor as core_open_monitor
from core.step import step as core_step
from tests.plugins.stop_mode import policy as suite_policy

from .builders import conservative_long, ex_order, long_position, open_view, snapshot

# step and open_monitor in the suite's stop mode (TPSL_TEST_STOP_MODE) unless a policy is given; the
# tests of the stop order's own mechanics pin order mode (the `order_mode` fixture; position mode's
# counterparts are in test_position_stop.py).


def step(m, s, now, policy=None, **kw):
    return core_step(m, s, now, policy or suite_policy(), **kw)


def open_monitor(*args, policy=None, **kw):
    return core_open_monitor(*args, policy or suite_policy(), **kw)


def kinds(decision):
    return [e.kind for e in decision.events]


def places(decision):
    return [i for i in decision.intents if isinstance(i, PlaceOrder)]


def ack_all(decision, now):
    return acknowledge(decision.monitor, [(i, IntentResult(i.link_id, True)) for i in decision.intents], now)


def opened(t=1000.0):
    d = open_monitor("m000000001", "main", conservative_long(), snapshot(taken_at=t, price="60500"), t)
    return ack_all(d, t).monitor, d


def test_open_places_the_three_limit_entries_and_records_creation():
    m, d = opened()
    entries = places(d)
    assert [(p.link_id, p.side, p.price, p.qty, p.order_type, p.reduce_only) for p in entries] == [
        ("tgm000000001-E1-1", Side.BUY, D("60000"), D("0.010"), "Limit", False),
        ("tgm000000001-E2-1", Side.BUY, D("59500"), D("0.010"), "Limit", False),
        ("tgm000000001-E3-1", Side.BUY, D("59000"), D("0.010"), "Limit", False),
    ]
    assert kinds(d)[0] is EventKind.MONITOR_CREATED
    assert d.monitor.phase is Phase.BUILDING
    assert d.monitor.tier is Tier.CRITICAL  # placements unconfirmed
    assert all(o.status is OrderStatus.OPEN for o in m.orders)  # acknowledged


def test_the_same_read_twice_changes_nothing():
    m, _ = opened()
    s = snapshot(taken_at=1005.0, open_orders=open_view(m), price="60400")
    d1 = step(m, s, 1005.0)
    d2 = step(d1.monitor, s, 1005.0)
    assert d2.intents == () and d2.events == () and d2.monitor == d1.monitor


@pytest.mark.parametrize(
    ("price", "later_s", "new_state", "shown"),
    [
        ("60400", 1.0, False, "60500"),  # only the price moved, noted 1 s ago: no new state
        ("60400", 29.9, False, "60500"),
        ("60400", 30.0, True, "60400"),  # …until the shown price is price_note_s old
        ("60500", 45.0, False, "60500"),  # the same price: nothing to note however old
    ],
)
def test_a_moving_price_alone_renews_the_state_only_when_its_note_is_old(price, later_s, new_state, shown):
    m, _ = opened(t=1000.0)
    settled = step(m, snapshot(taken_at=1001.0, open_orders=open_view(m), price="60500"), 1001.0).monitor
    assert settled.last_price == D("60500")
    t = settled.updated_at + later_s
    d = step(settled, snapshot(taken_at=t, open_orders=open_view(settled), price=price), t)
    assert d.intents == () and d.events == ()
    assert (d.monitor is not settled) is new_state
    assert d.monitor.last_price == D(shown)


def test_a_price_rides_along_with_any_other_change_at_once():
    m, _ = opened(t=1000.0)
    settled = step(m, snapshot(taken_at=1001.0, open_orders=open_view(m), price="60500"), 1001.0).monitor
    e1 = settled.orders[0]
    s = snapshot(
        taken_at=1002.0,
        positions=[long_position("0.010", "60000")],
        open_orders=[ex_order(o) for o in settled.orders[1:]],
        closed=[ex_order(e1, filled=D("0.010"), status=ExchangeOrderStatus.FILLED)],
        price="60100",
    )
    d = step(settled, s, 1002.0)  # an entry filled 1 s after the last note
    assert d.monitor.version == settled.version + 1 and d.monitor.last_price == D("60100")


def test_a_read_older_than_our_intent_cannot_confirm_or_refute_it():
    m, _ = opened(t=1000.0)
    # a read started before the entries were sent shows none of them, and nothing was looked up
    stale = snapshot(taken_at=999.0, price="60500")
    again = step(m, stale, 1001.0)
    assert places(again) == []
    assert all(o.status is OrderStatus.OPEN for o in again.monitor.orders)


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_first_entry_fill_places_the_ladder_and_a_stop_covering_the_whole_plan():
    m, _ = opened()
    e1 = m.orders[0]
    view = [ex_order(o) for o in m.orders[1:]]
    s = snapshot(
        taken_at=1010.0,
        positions=[long_position("0.010", "60000")],
        open_orders=view,
        closed=[ex_order(e1, filled=D("0.010"), status=ExchangeOrderStatus.FILLED)],
        price="60000",
    )
    d = step(m, s, 1010.0)
    tps = [p for p in places(d) if "-TP" in p.link_id]
    sl = [p for p in places(d) if "-SL" in p.link_id]
    assert [(p.link_id, p.qty, p.price) for p in tps] == [
        ("tgm000000001-TP1-1", D("0.008"), D("62000")),
        ("tgm000000001-TP2-1", D("0.001"), D("63000")),
        ("tgm000000001-TP4-1", D("0.001"), D("65000")),  # TP3 under minOrderQty merged forward
    ]
    assert all(p.reduce_only and p.side is Side.SELL for p in tps)
    (stop,) = sl
    assert (stop.qty, stop.trigger_price, stop.trigger_direction) == (D("0.030"), D("58000"), 2)
    assert stop.reduce_only and stop.close_on_trigger and stop.order_type == "Market"
    assert EventKind.PARTIAL_FILL in kinds(d)
    assert d.monitor.built_qty == D("0.010") and d.monitor.phase is Phase.BUILDING


def test_an_order_missing_but_not_looked_up_is_unknown_and_left_alone():
    m, _ = opened()
    s = snapshot(taken_at=1010.0, open_orders=[ex_order(o) for o in m.orders[1:]], price="60300")
    assert links_to_look_up(m, s) == {m.orders[0].link_id}
    d = step(m, s, 1010.0)
    assert d.intents == ()
    assert d.monitor.orders[0].status is OrderStatus.OPEN


def _built_long(t=1020.0):
    """A long with all three entries filled and its ladder and stop acknowledged."""
    m, _ = opened()
    closed = [ex_order(o, filled=o.qty, status=ExchangeOrderStatus.FILLED) for o in m.orders]
    s = snapshot(taken_at=t, positions=[long_position("0.030", "59500")], closed=closed, price="59600")
    d = step(m, s, t)
    return ack_all(d, t).monitor


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_fully_built_ladder_sums_exactly_to_the_position():
    m = _built_long()
    tps = m.live_orders(OrderRole.TP)
    assert [o.qty for o in tps] == [D("0.025"), D("0.002"), D("0.001"), D("0.002")]
    assert sum(o.qty for o in tps) == D("0.030")
    (sl,) = m.live_orders(OrderRole.SL)
    assert sl.qty == D("0.030")
    assert m.phase is Phase.MONITORING and m.entries_closed


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_lost_stop_is_replaced_with_a_new_generation_and_counted():
    m = _built_long()
    sl = m.current(OrderRole.SL, 0)
    others = [ex_order(o) for o in m.live_orders(OrderRole.TP)]
    s = snapshot(
        taken_at=1030.0,
        positions=[long_position("0.030", "59500")],
        open_orders=others,
        looked_up=[sl.link_id],
        price="59700",
    )
    d = step(m, s, 1030.0)
    (p,) = places(d)
    assert p.link_id == "tgm000000001-SL-2" and p.qty == D("0.030") and p.trigger_price == D("58000")
    assert d.monitor.repairs == 1
    assert any(e.payload.get("action") == "repaired" for e in d.events)


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_tp1_fill_moves_the_stop_to_breakeven_and_confirms_only_when_seen():
    m = _built_long()
    tp1 = m.current(OrderRole.TP, 1)
    rest = [ex_order(o) for o in m.live_orders() if o.link_id != tp1.link_id]
    s = snapshot(
        taken_at=1040.0,
        positions=[long_position("0.005", "59500")],
        open_orders=rest,
        closed=[ex_order(tp1, filled=tp1.qty, status=ExchangeOrderStatus.FILLED)],
        price="62000",
    )
    d = step(m, s, 1040.0)
    assert EventKind.TP_HIT in kinds(d)
    assert d.monitor.tp_hits == (1,)
    assert d.monitor.breakeven is BreakevenState.PENDING
    assert d.monitor.breakeven_price == D("59547.6")  # 59500 × 1.0008 rounded up to the tick
    (amend,) = [i for i in d.intents if i.link_id.endswith("SL-1")]
    assert amend.trigger_price == D("59547.6") and amend.qty == D("0.005") and amend.conditional
    assert EventKind.BREAKEVEN_MOVED not in kinds(d)
    m2 = ack_all(d, 1040.0).monitor
    # the next read shows the stop at breakeven: now it is done
    view = [ex_order(o) for o in m2.live_orders()]
    s2 = snapshot(
        taken_at=1045.0, positions=[long_position("0.005", "59500")], open_orders=view, price="62100"
    )
    d2 = step(m2, s2, 1045.0)
    assert d2.monitor.breakeven is BreakevenState.DONE
    assert EventKind.BREAKEVEN_MOVED in kinds(d2)


def test_a_placement_refused_before_it_was_carried_out_is_resent_with_the_same_link_id():
    d = open_monitor("m000000002", "main", conservative_long(), snapshot(taken_at=1.0, price="60500"), 1.0)
    failed = [(i, IntentResult(i.link_id, False, ErrorKind.BACK_OFF, "rate limited")) for i in d.intents]
    m = acknowledge(d.monitor, failed, 1.0).monitor
    assert all(o.status is OrderStatus.RETRY and o.unanswered_at == 0 for o in m.orders)
    d2 = step(m, snapshot(taken_at=3.0, price="60500"), 3.0)
    assert [p.link_id for p in places(d2)] == [p.link_id for p in places(d)]


def test_a_create_without_an_answer_is_in_flight_until_a_read_finds_it_or_it_is_resent():
    d = open_monitor("m000000002", "main", conservative_long(), snapshot(taken_at=1.0, price="60500"), 1.0)
    failed = [(i, IntentResult(i.link_id, False, ErrorKind.RETRY_LATER, "timeout")) for i in d.intents]
    m = acknowledge(d.monitor, failed, 1.0).monitor
    assert all(o.status is OrderStatus.PLACING and not o.confirmed for o in m.orders)
    assert {o.link_id for o in m.orders} <= links_to_look_up(m, snapshot(taken_at=2.0, price="60500"))
    e1, e2, e3 = m.orders
    # the next read finds E1 (it landed); E2 and E3 were looked up and not found: sent again under
    # the same orderLinkId (if the first create lands after all, the exchange refuses the duplicate)
    s = snapshot(taken_at=2.0, open_orders=[ex_order(e1)], looked_up=[e2.link_id, e3.link_id], price="60500")
    d2 = step(m, s, 2.0)
    assert d2.monitor.orders[0].status is OrderStatus.OPEN and d2.monitor.orders[0].confirmed
    assert [p.link_id for p in places(d2)] == [e2.link_id, e3.link_id]


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_rejected_placement_is_not_retried_forever():
    m = _built_long()
    sl = m.current(OrderRole.SL, 0)
    rest = [ex_order(o) for o in m.live_orders(OrderRole.TP)]
    t = 1100.0
    passes = 0
    for _ in range(5):
        passes += 1
        s = snapshot(
            taken_at=t,
            positions=[long_position("0.030", "59500")],
            open_orders=rest,
            looked_up=[sl.link_id],
            price="59700",
        )
        d = step(m, s, t)
        new = [p for p in places(d) if "-SL-" in p.link_id]
        if new[0].trigger_price is None:
            m = d.monitor
            break
        (sl_place,) = new
        m = acknowledge(
            d.monitor,
            [(sl_place, IntentResult(sl_place.link_id, False, ErrorKind.INVALID_ORDER, "rejected"))],
            t,
        ).monitor
        sl = m.current(OrderRole.SL, 0)
        t += 10
    # three re-placements; the fourth pass does not leave the position bare: it alerts and closes it
    # at market, reduce-only
    assert m.halted and m.repairs == 3 and passes == 4
    assert any(e.payload.get("action") == "repair_limit_reached" for e in d.events)
    assert any(e.payload.get("action") == "stop_repair_budget_spent" and e.payload["alert"] for e in d.events)
    (close,) = new
    assert close.order_type == "Market" and close.reduce_only and close.trigger_price is None
    assert close.qty == D("0.030")


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_stop_fires_closes_the_monitor_and_cancels_every_leftover():
    m = _built_long()
    sl = m.current(OrderRole.SL, 0)
    rest = [ex_order(o) for o in m.live_orders(OrderRole.TP)]
    s = snapshot(
        taken_at=1200.0,
        positions=[],
        open_orders=rest,
        closed=[ex_order(sl, filled=sl.qty, status=ExchangeOrderStatus.FILLED)],
        price="57990",
    )
    d = step(m, s, 1200.0)
    # closing: every leftover is cancelled; closed only once a read shows them gone
    assert d.monitor.phase is Phase.CLOSING and d.monitor.closed_reason is CloseReason.STOP_LOSS
    assert kinds(d)[:1] == [EventKind.SL_HIT] and EventKind.POSITION_CLOSED not in kinds(d)
    cancelled = {i.link_id for i in d.intents if isinstance(i, CancelOrder)}
    assert cancelled == {o.link_id for o in m.live_orders(OrderRole.TP)}
    m2 = ack_all(d, 1200.0).monitor
    gone = [ex_order(o, status=ExchangeOrderStatus.CANCELLED) for o in m.live_orders(OrderRole.TP)]
    d2 = step(m2, snapshot(taken_at=1202.0, positions=[], closed=gone, price="57990"), 1202.0)
    assert d2.monitor.phase is Phase.CLOSED and d2.monitor.closed_reason is CloseReason.STOP_LOSS
    assert kinds(d2) == [EventKind.POSITION_CLOSED] and d2.intents == ()


def test_an_unexplained_flat_read_waits_for_a_second_read():
    m = _built_long()
    view = [ex_order(o) for o in m.live_orders()]
    first = step(m, snapshot(taken_at=1300.0, positions=[], open_orders=view, price="59600"), 1300.0)
    assert first.monitor.phase is not Phase.CLOSED and first.intents == ()
    assert first.monitor.tier is Tier.CRITICAL
    # the confirming read, with what a worker looks up for it (in position mode, the symbol's
    # executions: no fill of the position's stop among them)
    again = snapshot(taken_at=1302.0, positions=[], open_orders=view, price="59600")
    second = step(first.monitor, replace(again, stop_fills_read=frozenset({"BTCUSDT"})), 1302)
    assert second.monitor.phase is Phase.CLOSING and second.monitor.closed_reason is CloseReason.MANUAL
    assert {i.link_id for i in second.intents} == {o.link_id for o in m.live_orders()}


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_a_size_change_is_never_adopted_while_one_of_our_orders_is_unaccounted_for():
    """A fill whose order was not looked up yet must not be taken for a change by hand: once the
    order is seen, its fill would be counted a second time (found by the benchmark)."""
    m, _ = opened()
    e1 = m.orders[0]
    rest = [ex_order(o) for o in m.orders[1:]]
    # E1 filled; it left the open list, but this read could not look it up (bounded look-ups):
    # nothing is adopted and no take-profit is placed on a guess, but what is there is covered
    for t in (1010.0, 1012.0, 1014.0):
        d = step(
            m, snapshot(taken_at=t, positions=[long_position("0.010")], open_orders=rest, price="60000"), t
        )
        assert d.monitor.built_qty == 0 and d.monitor.phase is not Phase.CLOSED
        stops = [p for p in places(d) if "-SL-" in p.link_id]
        assert [p.link_id for p in places(d)] == [p.link_id for p in stops]
        if t == 1010.0:
            (stop,) = stops
            assert stop.qty >= D("0.030")  # the position, plus every entry not seen cancelled
        m = ack_all(d, t).monitor
        rest = [
            *rest,
            *(
                ex_order(o)
                for o in m.orders
                if o.role is OrderRole.SL and o.link_id not in {r.link_id for r in rest}
            ),
        ]
    # the look-up comes: the fill is counted once
    s = snapshot(
        taken_at=1016.0,
        positions=[long_position("0.010")],
        open_orders=rest,
        closed=[ex_order(e1, filled=D("0.010"), status=ExchangeOrderStatus.FILLED)],
        price="60000",
    )
    d = step(m, s, 1016.0)
    assert d.monitor.built_qty == D("0.010") and d.monitor.position_size == D("0.010")
    assert d.monitor.current(OrderRole.SL, 0).qty == D("0.030")  # position + the two entries left
