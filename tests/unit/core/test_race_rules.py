"""The races the exchange produces, one regression test per rule of the protection issue, each
written from the defect's description (core.step's docstring lists the rules). Hand-built reads, no
I/O. The simulator (tests/simulation) found each defect first; its seeds are in test_simulation.py."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.errors import PlanInvalid
from core.models import (
    AmendOrder,
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
    Stage,
    Ticker,
)
from core.plan import resolve_position_idx
from core.policy import Policy
from core.step import acknowledge, is_finished, links_to_look_up
from core.step import open_monitor as core_open_monitor
from core.step import step as core_step
from tests.plugins.stop_mode import policy as suite_policy

from .builders import conservative_long, ex_order, fast_long, long_position, open_view, snapshot

FILLED = ExchangeOrderStatus.FILLED
CANCELLED = ExchangeOrderStatus.CANCELLED


# step and open_monitor in the suite's stop mode (TPSL_TEST_STOP_MODE) unless a policy is given; the
# tests of the stop order's own mechanics pin order mode (the `order_mode` fixture; position mode's
# counterparts are in test_position_stop.py).


def step(m, s, now, policy=None, **kw):
    return core_step(m, s, now, policy or suite_policy(), **kw)


def open_monitor(*args, policy=None, **kw):
    return core_open_monitor(*args, policy or suite_policy(), **kw)


def kinds(d):
    return [e.kind for e in d.events]


def places(d, role=None):
    return [i for i in d.intents if isinstance(i, PlaceOrder) and (role is None or f"-{role}" in i.link_id)]


def answers(d, odd, ok, error=None, message=""):
    """Every intent of `d` accepted, except `odd`, answered (ok, error, message)."""
    return [
        (i, IntentResult(i.link_id, ok, error, message) if i is odd else IntentResult(i.link_id, True))
        for i in d.intents
    ]


def ack_ok(d, t):
    return acknowledge(d.monitor, [(i, IntentResult(i.link_id, True)) for i in d.intents], t).monitor


def opened(plan=None, t=1000.0):
    d = open_monitor(
        "m000000009", "main", plan or conservative_long(), snapshot(taken_at=t, price="60500"), t
    )
    return ack_ok(d, t)


def built(t=1020.0):
    """All three entries filled; ladder and stop placed and acknowledged."""
    m = opened()
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders]
    d = step(
        m, snapshot(taken_at=t, positions=[long_position("0.030", "59500")], closed=closed, price="59600"), t
    )
    return ack_ok(d, t)


# ------------------------------------------------------------------------ 1. close only when confirmed


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_1_expired_entries_close_only_after_their_cancels_are_confirmed_and_a_racing_fill_is_guarded():
    m = opened(conservative_long(entry_time_limit_s=60.0))
    d = step(m, snapshot(taken_at=1061.0, open_orders=open_view(m), price="60500"), 1061.0)
    assert d.monitor.phase is Phase.CLOSING and not is_finished(d.monitor)
    assert {i.link_id for i in d.intents if isinstance(i, CancelOrder)} == {o.link_id for o in m.orders}
    assert EventKind.POSITION_CLOSED not in kinds(d)
    m = ack_ok(d, 1061.0)
    # E1 filled before its cancel landed: the next read shows it, and the position
    e1 = m.orders[0]
    rest = [ex_order(o, status=CANCELLED) for o in m.orders[1:]]
    s = snapshot(
        taken_at=1063.0,
        positions=[long_position("0.010")],
        closed=[ex_order(e1, filled=D("0.010"), status=FILLED), *rest],
        price="60100",
    )
    d2 = step(m, s, 1063.0)
    assert d2.monitor.phase is not Phase.CLOSED and d2.monitor.built_qty == D("0.010")
    (stop,) = places(d2, "SL")
    assert stop.qty == D("0.010") and stop.trigger_price == D("58000")


def test_1_a_closing_monitor_closes_once_a_read_shows_everything_final_and_flat():
    m = opened(conservative_long(entry_time_limit_s=60.0))
    m = ack_ok(step(m, snapshot(taken_at=1061.0, open_orders=open_view(m), price="60500"), 1061.0), 1061.0)
    gone = [ex_order(o, status=CANCELLED) for o in m.orders]
    d = step(m, snapshot(taken_at=1063.0, closed=gone, price="60500"), 1063.0)
    assert d.monitor.phase is Phase.CLOSED and d.monitor.closed_reason is CloseReason.EXPIRED
    assert kinds(d) == [EventKind.POSITION_CLOSED] and is_finished(d.monitor)


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_1_an_entry_fill_not_looked_up_yet_is_covered_by_what_the_exchange_shows():
    m = opened()
    rest = [ex_order(o) for o in m.orders[1:]]  # E1 left the open list; the look-ups did not reach it
    d = step(
        m,
        snapshot(taken_at=1010.0, positions=[long_position("0.010")], open_orders=rest, price="60000"),
        1010.0,
    )
    (stop,) = places(d, "SL")
    assert stop.qty >= D("0.010")  # the real position is covered at once; nothing is adopted
    assert d.monitor.built_qty == 0


# ---------------------------------------------------------------- 2. "not found" is unknown, not lost


def test_2_an_amend_answered_not_found_is_looked_up_before_anything_is_re_placed():
    m = built()
    tp1 = m.current(OrderRole.TP, 1)
    d = step(
        m,
        snapshot(
            taken_at=1030.0,
            positions=[long_position("0.020", "59500")],
            open_orders=open_view(m),
            price="61000",
        ),
        1030.0,
    )
    not_found = [
        (i, IntentResult(i.link_id, False, ErrorKind.NOT_FOUND, "order not exists or too late to replace"))
        if i.link_id == tp1.link_id
        else (i, IntentResult(i.link_id, True))
        for i in d.intents
    ]
    m2 = acknowledge(d.monitor, not_found, 1030.0).monitor
    assert m2.current(OrderRole.TP, 1).status is OrderStatus.OPEN  # unknown, not LOST
    # the next read does not list it and could not look it up: nothing is re-placed on a guess
    others = [ex_order(o) for o in m2.live_orders() if o.link_id != tp1.link_id]
    d2 = step(
        m2,
        snapshot(
            taken_at=1032.0, positions=[long_position("0.005", "59500")], open_orders=others, price="62100"
        ),
        1032.0,
    )
    assert not places(d2, "TP")
    # the look-up: it filled while we amended it: counted once, never re-placed
    filled = ex_order(tp1, filled=tp1.qty, status=FILLED)
    d3 = step(
        d2.monitor,
        snapshot(
            taken_at=1034.0,
            positions=[long_position("0.005", "59500")],
            open_orders=others,
            closed=[filled],
            price="62100",
        ),
        1034.0,
    )
    assert d3.monitor.current(OrderRole.TP, 1).status is OrderStatus.FILLED
    assert d3.monitor.current(OrderRole.TP, 1).generation == 1 and not places(d3, "TP1")
    assert d3.monitor.filled_of(OrderRole.TP, 1) == tp1.qty


# --------------------------------------------------------------- 3. unanswered creates are in flight


def test_3_a_timed_out_entry_is_cancelled_by_its_link_id_at_tp1_never_dropped_unsent():
    m = built_from(opened())  # 0.020 filled, E3 working
    e3 = m.current(OrderRole.ENTRY, 3)
    # E3's last create was never answered: it may be on the exchange although this read lacks it
    e3 = replace(e3, status=OrderStatus.PLACING, confirmed=False, unanswered_at=1035.0, changed_at=1035.0)
    m = replace(m, orders=tuple(e3 if o.link_id == e3.link_id else o for o in m.orders))
    tp1 = m.current(OrderRole.TP, 1)
    view = [
        ex_order(o, filled=D("0.005") if o.link_id == tp1.link_id else None)
        for o in m.live_orders()
        if o is not e3
    ]
    d = step(
        m,
        snapshot(
            taken_at=1040.0, positions=[long_position("0.015", "59750")], open_orders=view, price="62000"
        ),
        1040.0,
    )
    assert d.monitor.tp_hits == (1,)  # TP1 filled: no more entries
    cancels = {i.link_id for i in d.intents if isinstance(i, CancelOrder)}
    assert e3.link_id in cancels  # cancelled by its orderLinkId, not marked cancelled unsent
    assert d.monitor.current(OrderRole.ENTRY, 3).status is OrderStatus.CANCELLING


def built_from(m):
    """`m` with E1 and E2 filled (20 of 30) and the ladder and stop acknowledged."""
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders[:2]]
    live = [ex_order(o) for o in m.orders[2:] if o.confirmed]
    d = step(
        m,
        snapshot(
            taken_at=1020.0,
            positions=[long_position("0.020", "59750")],
            open_orders=live,
            closed=closed,
            price="59800",
        ),
        1020.0,
    )
    return ack_ok(d, 1020.0)


def test_3_a_cancelled_create_without_an_answer_is_gone_only_after_the_receive_window():
    policy = Policy(create_window_s=6.0)
    m = opened()
    e1 = replace(
        m.orders[0], status=OrderStatus.CANCELLING, confirmed=False, unanswered_at=1000.0, changed_at=1001.0
    )
    m = replace(m, orders=(e1, *m.orders[1:]), entries_closed=True)

    def at(t):  # a read at t that lists the other entries and did not find E1
        view = [ex_order(o) for o in m.orders[1:]]
        return step(
            m, snapshot(taken_at=t, open_orders=view, looked_up=[e1.link_id], price="60500"), t, policy
        )

    early = at(1003.0)
    assert early.monitor.orders[0].status is OrderStatus.CANCELLING  # it may still land: wait
    late = at(1007.0)
    assert late.monitor.orders[0].status is OrderStatus.CANCELLED


def test_3_a_create_refused_after_an_unanswered_one_stays_in_flight():
    m = opened()
    e1 = replace(m.orders[0], status=OrderStatus.PLACING, confirmed=False, unanswered_at=1000.0)
    m = replace(m, orders=(e1, *m.orders[1:]))
    intent = PlaceOrder("main", m.id, e1.link_id, "BTCUSDT", Side.BUY, e1.qty, price=e1.price)
    after = acknowledge(m, [(intent, IntentResult(e1.link_id, False, ErrorKind.INVALID_ORDER, "x"))], 1002.0)
    assert after.monitor.orders[0].status is OrderStatus.PLACING  # the first create may still land


@pytest.mark.parametrize("stop_mode", ["order", "position"])
def test_3_a_resent_create_refused_after_the_window_stays_watched_until_a_look_up_settles_it(stop_mode):
    # simulator seed 7794 (position mode): a breached stop's market close got no answer; its first
    # create landed and filled while the look-ups were cut short; the re-send, past the receive
    # window, was refused. The refusal proves nothing about the first create: it stays watched, and
    # the look-up that finds it filled counts the fill (it was marked lost and its fill never counted).
    policy = Policy(create_window_s=6.0, stop_mode=stop_mode)
    m = opened(fast_long())
    e1 = m.orders[0]
    filled = [ex_order(e1, filled=e1.qty, status=FILLED)]
    pos = [long_position("0.030")]
    d = step(m, snapshot(taken_at=1002.0, positions=pos, closed=filled, price="57900"), 1002.0, policy)
    (close,) = places(d, "SL")
    assert close.order_type == "Market" and close.trigger_price is None
    timeout = answers(d, close, False, ErrorKind.RETRY_LATER, "read timeout")
    m = acknowledge(
        d.monitor,
        timeout,
        1002.5,
    ).monitor
    # a read past the receive window whose look-ups were cut short: the same create again
    d = step(m, snapshot(taken_at=1009.0, positions=pos, closed=filled, price="57900"), 1009.0, policy)
    (again,) = places(d, "SL")
    assert again.link_id == close.link_id
    refused = answers(d, again, False, ErrorKind.INVALID_ORDER, "rejected")
    m = acknowledge(d.monitor, refused, 1009.5).monitor
    first = next(o for o in m.orders if o.link_id == close.link_id)
    assert first.status is not OrderStatus.LOST  # not proven absent: it may have landed
    flat = snapshot(taken_at=1011.0, positions=[], closed=filled, price="57900")
    assert close.link_id in links_to_look_up(m, flat)
    # the look-up finds it filled: its fill is the stop's
    found = [*filled, ex_order(first, filled=first.qty, status=FILLED, trigger_price=None)]
    d = step(
        m,
        snapshot(taken_at=1011.0, positions=[], closed=found, looked_up=[close.link_id], price="57900"),
        1011.0,
        policy,
    )
    sl = next(o for o in d.monitor.orders if o.link_id == close.link_id)
    assert sl.status is OrderStatus.FILLED and sl.filled == D("0.030")
    assert EventKind.SL_HIT in kinds(d)


# ------------------------------------------------------------------ 4. a market close is not a stop


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_4_a_breached_stop_market_close_is_awaited_never_amended():
    m = built()
    sl = m.current(OrderRole.SL, 0)
    # the stop was lost and the price is through it: a market close goes in its slot
    s = snapshot(
        taken_at=1030.0,
        positions=[long_position("0.030", "59500")],
        open_orders=[ex_order(o) for o in m.live_orders(OrderRole.TP)],
        closed=[ex_order(sl, status=CANCELLED)],
        price="57900",
    )
    d = step(m, s, 1030.0)
    (close,) = places(d, "SL")
    assert close.order_type == "Market" and close.trigger_price is None and close.reduce_only
    m2 = ack_ok(d, 1030.0)
    # a later read still lists it (not yet done): nothing is amended, nothing else is sent for the stop
    mc = m2.current(OrderRole.SL, 0)
    view = [ex_order(o) for o in m2.live_orders()] + [ex_order(mc, trigger_price=None)]
    d2 = step(
        m2,
        snapshot(
            taken_at=1032.0, positions=[long_position("0.030", "59500")], open_orders=view, price="57800"
        ),
        1032.0,
    )
    assert not [i for i in d2.intents if "-SL-" in i.link_id]


# ------------------------------------------------------------ 5. breach on the stop's trigger price


def test_5_breach_is_judged_on_the_stops_trigger_price_not_the_mark():
    m = opened(fast_long())
    e1 = m.orders[0]
    s = snapshot(
        taken_at=1002.0,
        positions=[long_position("0.030")],
        closed=[ex_order(e1, filled=e1.qty, status=FILLED)],
    )
    s = replace(s, tickers={"BTCUSDT": Ticker("BTCUSDT", last_price=D("57900"), mark_price=D("58300"))})
    d = step(m, s, 1002.0, Policy(stop_mode="order", stop_trigger_by="LastPrice"))
    (close,) = places(d, "SL")  # last is through the stop (mark is not): close at market
    assert close.trigger_price is None and close.order_type == "Market"
    d_mark = step(m, s, 1002.0, Policy(stop_mode="order", stop_trigger_by="MarkPrice"))
    (stop,) = places(d_mark, "SL")  # judged on the mark: not breached, a conditional stop
    assert stop.trigger_price == D("58000")


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_5_a_stop_refused_as_breached_is_replaced_by_a_market_close_at_once():
    m = opened(fast_long())
    e1 = m.orders[0]
    d = step(
        m,
        snapshot(
            taken_at=1002.0,
            positions=[long_position("0.030")],
            closed=[ex_order(e1, filled=e1.qty, status=FILLED)],
            price="58500",
        ),
        1002.0,
    )
    (stop,) = places(d, "SL")
    breached = answers(d, stop, False, ErrorKind.TRIGGER_PASSED, "expect Falling")
    ack = acknowledge(d.monitor, breached, 1002.5)
    (close,) = ack.intents  # the follow-up the caller sends in the same pass
    assert close.order_type == "Market" and close.reduce_only and close.qty == D("0.030")
    assert close.link_id != stop.link_id


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_5_a_resent_stop_refused_as_breached_while_its_first_create_may_land_closes_and_cancels_it():
    # simulator seed 18159: the stop's create got no answer; its re-send (same orderLinkId) is refused
    # as breached while the first create may still land. Waiting for its fate leaves the position
    # bare: close at market now and cancel the in-flight stop by its orderLinkId.
    m = opened(fast_long())
    e1 = m.orders[0]
    filled = [ex_order(e1, filled=e1.qty, status=FILLED)]
    d = step(
        m, snapshot(taken_at=1002.0, positions=[long_position("0.030")], closed=filled, price="58500"), 1002.0
    )
    (stop,) = places(d, "SL")
    timeout = answers(d, stop, False, ErrorKind.RETRY_LATER, "read timeout")
    m = acknowledge(d.monitor, timeout, 1002.5).monitor
    d = step(
        m, snapshot(taken_at=1004.0, positions=[long_position("0.030")], closed=filled, price="58400"), 1004.0
    )
    (again,) = places(d, "SL")
    assert again.link_id == stop.link_id  # in flight: the same create again
    refused = answers(d, again, False, ErrorKind.TRIGGER_PASSED, "expect Falling")
    ack = acknowledge(d.monitor, refused, 1004.5)
    cancels = [i for i in ack.intents if isinstance(i, CancelOrder)]
    closes = [i for i in ack.intents if isinstance(i, PlaceOrder)]
    assert [c.link_id for c in cancels] == [stop.link_id]
    (close,) = closes
    assert close.order_type == "Market" and close.reduce_only and close.qty == D("0.030")
    assert close.link_id != stop.link_id
    first = next(o for o in ack.monitor.orders if o.link_id == stop.link_id)
    assert first.status is OrderStatus.CANCELLING  # still watched: its fills count if it landed


# ----------------------------------------------------------------- 6. a level is hit at its first fill


def test_6_a_level_merged_into_the_next_is_done_when_that_order_fills_and_breakeven_follows():
    # TP1's share (2 % of 0.030 = 0.0006) is under minOrderQty: merged into TP2
    plan = conservative_long(
        take_profits=(
            replace(conservative_long().take_profits[0], fraction=D("0.02")),
            replace(conservative_long().take_profits[1], fraction=D("0.98")),
        ),
        breakeven_after=1,
    )
    m = opened(plan)
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders]
    m = ack_ok(
        step(
            m,
            snapshot(
                taken_at=1020.0, positions=[long_position("0.030", "59500")], closed=closed, price="59600"
            ),
            1020.0,
        ),
        1020.0,
    )
    assert m.current(OrderRole.TP, 1) is None  # no order of its own
    tp2 = m.current(OrderRole.TP, 2)
    s = snapshot(
        taken_at=1030.0,
        positions=[long_position("0.020", "59500")],
        open_orders=open_view(m, **{tp2.link_id: D("0.010")}),
        price="63000",
    )
    d = step(m, s, 1030.0)
    assert d.monitor.tp_hits == (1, 2)
    assert [e.payload["level"] for e in d.events if e.kind is EventKind.TP_HIT] == [1, 2]
    assert d.monitor.breakeven is BreakevenState.PENDING  # breakeven after TP1 follows


# --------------------------------------------------- 7. the stop covers entries not seen cancelled


def test_7_the_stop_keeps_covering_entries_whose_cancels_are_unconfirmed():
    m = built_from(opened())  # 0.020 filled, E3 (0.010) working, stop 0.030
    tp1 = m.current(OrderRole.TP, 1)
    s = snapshot(
        taken_at=1040.0,
        positions=[long_position("0.015", "59750")],
        open_orders=open_view(m, **{tp1.link_id: D("0.005")}),
        price="62000",
    )
    d = step(m, s, 1040.0)  # TP1's first fill: E3 is cancelled...
    assert any(isinstance(i, CancelOrder) and "-E3-" in i.link_id for i in d.intents)
    sl_amends = [i for i in d.intents if "-SL-" in i.link_id and not isinstance(i, CancelOrder)]
    # ...but until a read shows it gone, the stop still covers it: position 0.015 + E3 0.010
    assert all(getattr(i, "qty", None) in (None, D("0.025")) for i in sl_amends)


# ---------------------------------------------------------------------------- 8. the send order


def test_8_intents_go_out_stop_first_then_cancels_then_lowering_then_raising():
    m = built()
    tp1, tp2 = m.current(OrderRole.TP, 1), m.current(OrderRole.TP, 2)
    # a person added 0.010 (confirmed by two reads): the stop grows, the ladder re-splits
    view = open_view(m)
    m1 = step(
        m,
        snapshot(
            taken_at=1030.0, positions=[long_position("0.040", "59500")], open_orders=view, price="60000"
        ),
        1030.0,
    ).monitor
    d = step(
        m1,
        snapshot(
            taken_at=1032.0, positions=[long_position("0.040", "59500")], open_orders=view, price="60000"
        ),
        1032.0,
    )
    stages = [i.stage for i in d.intents]
    assert stages == sorted(stages) and d.intents[0].link_id.split("-")[1] == "SL"
    assert {tp1.link_id, tp2.link_id} & {i.link_id for i in d.intents}


def test_8_the_executor_sends_in_stage_order_and_holds_raises_after_a_failed_cancel():
    from workers.executor import _calls

    mk = lambda lid, stage: CancelOrder("main", "m", lid, "BTCUSDT", stage=stage)  # noqa: E731
    raise_ = PlaceOrder("main", "m", "tgm-TP1-1", "BTCUSDT", Side.SELL, D("1"), stage=Stage.RAISE)
    stop = PlaceOrder("main", "m", "tgm-SL-1", "BTCUSDT", Side.SELL, D("1"), stage=Stage.STOP)
    calls = _calls([raise_, mk("tgm-TP2-1", Stage.CANCEL), stop])
    assert [(stage, kind.__name__) for stage, kind, _ in calls] == [
        (Stage.STOP, "PlaceOrder"),
        (Stage.CANCEL, "CancelOrder"),
        (Stage.RAISE, "PlaceOrder"),
    ]


# ------------------------------------------------------ 9. breakeven settled by the stop's final state


def breakeven_amended():
    """Built, TP1 hit, and the stop amended to breakeven at 1050 (answered ok, no read since): the
    monitor, its stop, and the breakeven price."""
    m = built()
    sl = m.current(OrderRole.SL, 0)
    be = D("59547.6")
    m = replace(m, breakeven=BreakevenState.PENDING, breakeven_price=be, tp_hits=(1,))
    orders = tuple(
        replace(o, trigger_price=be, changed_at=1050.0) if o.link_id == sl.link_id else o for o in m.orders
    )
    return replace(m, orders=orders), sl, be


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_9_a_breakeven_move_unconfirmed_when_the_position_closes_is_settled_by_the_final_stop():
    m, sl, be = breakeven_amended()
    # every TP filled before any read showed the stop at breakeven; the stop's final state shows it
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.live_orders(OrderRole.TP)]
    gone_stop = ex_order(sl, status=ExchangeOrderStatus.DEACTIVATED, trigger_price=be)
    d = step(m, snapshot(taken_at=1060.0, closed=[*closed, gone_stop], price="65100"), 1060.0)
    ks = kinds(d)
    assert EventKind.BREAKEVEN_MOVED in ks and ks.index(EventKind.BREAKEVEN_MOVED) < ks.index(
        EventKind.POSITION_CLOSED
    )


@pytest.mark.usefixtures("order_mode")  # the stop order's own amends
def test_9_a_refused_amend_of_the_stops_quantity_alone_does_not_undo_a_breakeven_move_answered_ok():
    """The breakeven amend was answered ok and no read has shown it yet; the next amend of the stop
    changes its quantity alone and is refused (rate limited). The stop is still at breakeven: the
    move stays pending, to be confirmed by a read or by the stop's final state (seed 4788: the
    position closed by its take-profits, and the move was never recorded). A refused amend that
    carries the trigger is the move refused: due again."""
    m, sl, be = breakeven_amended()
    refused = IntentResult(sl.link_id, False, ErrorKind.BACK_OFF, "rate limited")
    for trigger, still_pending in ((None, True), (be, False)):
        amend = AmendOrder(
            "main", m.id, sl.link_id, "BTCUSDT", qty=D("0.020"), trigger_price=trigger, conditional=True
        )
        out = acknowledge(m, [(amend, refused)], 1052.0)
        assert (out.monitor.breakeven is BreakevenState.PENDING) is still_pending


@pytest.mark.usefixtures("order_mode")  # the stop order's own amends
def test_9_a_refused_amend_sending_the_trigger_again_does_not_undo_a_move_answered_ok():
    """Seed 38508 (the order-mode soak): the breakeven amend answered ok; its push was lost, and a
    refused amend of the quantity left the stop's record open to the view's older row, so the next
    amend carried the trigger again, and was refused too. The move was made once (the exchange
    answered ok): it stays pending, not due again, and the stop's final state records it."""
    m, sl, be = breakeven_amended()
    move = AmendOrder("main", m.id, sl.link_id, "BTCUSDT", qty=D("0.025"), trigger_price=be, conditional=True)
    m = acknowledge(m, [(move, IntentResult(sl.link_id, True))], 1050.0).monitor
    assert m.stop_accepted == be
    again = AmendOrder(
        "main", m.id, sl.link_id, "BTCUSDT", qty=D("0.020"), trigger_price=be, conditional=True
    )
    refused = IntentResult(sl.link_id, False, ErrorKind.BACK_OFF, "rate limited")
    out = acknowledge(m, [(again, refused)], 1052.0)
    assert out.monitor.breakeven is BreakevenState.PENDING and out.monitor.breakeven_price == be


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_9_a_stop_that_fires_at_breakeven_closes_as_breakeven_stop():
    m = built()
    sl = m.current(OrderRole.SL, 0)
    be = D("59547.6")
    m = replace(m, breakeven=BreakevenState.PENDING, breakeven_price=be, tp_hits=(1,))
    fired = ex_order(sl, filled=sl.qty, status=FILLED, trigger_price=be)
    tps = [ex_order(o, status=CANCELLED) for o in m.live_orders(OrderRole.TP)]
    d = step(m, snapshot(taken_at=1060.0, closed=[fired, *tps], price="59500"), 1060.0)
    assert d.monitor.closed_reason is CloseReason.BREAKEVEN_STOP
    ks = kinds(d)
    assert ks.index(EventKind.BREAKEVEN_MOVED) < ks.index(EventKind.POSITION_CLOSED)


# ------------------------------------------------------------------ 10. the account's position mode


@pytest.mark.parametrize(
    ("side", "idx", "hedge", "want", "inferred"),
    [
        (Side.BUY, 0, True, 1, True),
        (Side.SELL, 0, True, 2, True),
        (Side.BUY, 1, True, 1, False),
        (Side.SELL, 2, True, 2, False),
        (Side.BUY, 0, False, 0, False),
        (Side.SELL, 0, False, 0, False),
    ],
)
def test_10_a_plan_is_fitted_to_the_accounts_position_mode(side, idx, hedge, want, inferred):
    plan = replace(conservative_long(), side=side, position_idx=idx)
    fitted, was_inferred = resolve_position_idx(plan, hedge=hedge)
    assert fitted.position_idx == want and was_inferred is inferred


def test_10_a_hedge_index_on_a_one_way_account_is_refused_naming_the_field():
    with pytest.raises(PlanInvalid) as err:
        resolve_position_idx(conservative_long(position_idx=1), hedge=False)
    assert err.value.field == "position_idx"


def test_bounded_look_ups_take_stops_first():
    from core.ids import look_up_priority

    links = ["tgm000000009-TP1-1", "tgm000000009-E2-1", "tgm000000009-SL-3", "not-ours"]
    assert sorted(links, key=look_up_priority)[0] == "tgm000000009-SL-3"


@pytest.mark.usefixtures("order_mode")  # hand-built reads around our stop order
def test_9_a_stop_that_fired_before_breakeven_was_due_is_a_stop_loss():
    m = built()
    sl = m.current(OrderRole.SL, 0)
    # the move is due, but the exchange never showed the stop at breakeven: the close is a stop-loss
    m = replace(m, breakeven=BreakevenState.PENDING, breakeven_price=D("59547.6"), tp_hits=(1,))
    fired = ex_order(sl, filled=sl.qty, status=FILLED)  # at the plan's 58000
    tps = [ex_order(o, status=CANCELLED) for o in m.live_orders(OrderRole.TP)]
    d = step(m, snapshot(taken_at=1060.0, closed=[fired, *tps], price="57900"), 1060.0)
    assert d.monitor.closed_reason is CloseReason.STOP_LOSS
    assert EventKind.BREAKEVEN_MOVED not in kinds(d)


# ------------------------------------------------------- fills counted in another order than they came


def test_a_close_counted_before_the_entry_fills_it_closed_is_settled_by_them_not_taken_for_a_change():
    """A read lists our orders before the position: E2 filled in between, so the read shows 0.020
    with only E1's fill, and the price through the stop. The market close is sized on what is there
    (0.020); the next read holds its fill and E2 still open; the one after, E2's fill. The close was
    counted before the entry it closed: E2's fill settles it. Before, the balance was clamped at zero
    when the close was counted, and E2's fill then looked like a position grown on a flat book: set
    guarded again, closed at market again (refused: no position), a change by hand recorded."""
    m = opened()
    e1, e2, e3 = m.orders
    s = snapshot(
        taken_at=1010.0,
        positions=[long_position("0.020", "59750")],
        open_orders=[ex_order(e2), ex_order(e3)],
        closed=[ex_order(e1, filled=e1.qty, status=FILLED)],
        price="57900",
    )
    d = step(m, s, 1010.0)
    (close,) = places(d, "SL")
    assert close.qty == D("0.020") and close.order_type == "Market"
    m = ack_ok(d, 1010.0)
    sl = m.current(OrderRole.SL, 0)
    s = snapshot(
        taken_at=1012.0,
        open_orders=[ex_order(e2), ex_order(e3)],
        closed=[ex_order(sl, filled=D("0.020"), status=FILLED)],
        price="57900",
    )
    d = step(m, s, 1012.0)
    assert EventKind.SL_HIT in kinds(d) and d.monitor.phase is Phase.CLOSING
    assert d.monitor.closed_ahead == D("0.010")  # closes counted beyond the entries counted so far
    m = ack_ok(d, 1012.0)
    s = snapshot(
        taken_at=1014.0,
        closed=[ex_order(e2, filled=e2.qty, status=FILLED), ex_order(e3, status=CANCELLED)],
        price="57900",
    )
    d = step(m, s, 1014.0)
    assert [e.payload.get("level") for e in d.events if e.kind is EventKind.PARTIAL_FILL] == [2]
    assert not places(d) and EventKind.POSITION_UPDATE not in kinds(d)
    assert "reguarded" not in [e.payload.get("action") for e in d.events]
    assert d.monitor.phase is Phase.CLOSED and d.monitor.closed_reason is CloseReason.STOP_LOSS
    assert d.monitor.closed_ahead == 0 and d.monitor.built_qty == D("0.020")


def test_an_open_order_a_stale_list_lacks_and_its_look_up_finds_has_its_fills_counted():
    """The open list is served a second stale and lacks E1; its look-up finds it open with a first
    fill, which the position shows. Before, an open order seen by the look-up only was left for the
    next list: the fill was not counted, yet E1 counted as accounted for, so the position (our own
    fill) was confirmed as grown by hand and the fill was counted again when a list showed it."""
    m = opened()
    e1, e2, e3 = m.orders
    part = ex_order(e1, filled=D("0.004"), status=ExchangeOrderStatus.PARTIALLY_FILLED)

    def stale(t):
        return snapshot(
            taken_at=t,
            positions=[long_position("0.004")],
            open_orders=[ex_order(e2), ex_order(e3)],
            closed=[part],
            price="60100",
        )

    def by_hand(d):
        return [e for e in d.events if e.payload.get("reason") == "changed_outside"]

    d = step(m, stale(1010.0), 1010.0)
    assert [e.payload["qty"] for e in d.events if e.kind is EventKind.PARTIAL_FILL] == ["0.004"]
    assert d.monitor.unexplained_at is None and d.monitor.position_size == D("0.004")
    assert d.monitor.current(OrderRole.ENTRY, 1).status is OrderStatus.OPEN
    m = ack_ok(d, 1010.0)
    d = step(m, stale(1011.0), 1011.0)  # a second such read: nothing to confirm, nothing counted again
    assert not by_hand(d) and EventKind.PARTIAL_FILL not in kinds(d)
    m = ack_ok(d, 1011.0)
    listed = open_view(m, **{e1.link_id: D("0.004")})
    d = step(m, replace(stale(1012.0), open_orders={o.link_id: o for o in listed}, closed_orders={}), 1012.0)
    assert not by_hand(d) and EventKind.PARTIAL_FILL not in kinds(d)  # the list shows it again
    assert d.monitor.built_qty == D("0.004")


# -------------------------------------------------------------------- reads from the stream view


def test_a_position_change_a_pushed_read_cannot_explain_is_confirmed_only_by_a_rest_read():
    """One lost message of the order stream can carry a burst's fills: the view then shows the
    position without TP1's fill and TP1 still open. A pushed read notes the change; no pushed read
    confirms it as a change by hand (the ladder is not rebuilt on it, the size not adopted); the
    REST read that follows finds TP1 filled and counts it once."""
    m = built()
    m = step(
        m,
        snapshot(taken_at=1030.0, positions=[long_position("0.030", "59500")], open_orders=open_view(m)),
        1030.0,
    ).monitor
    tp1 = m.current(OrderRole.TP, 1)
    left = D("0.030") - tp1.qty
    pushed = replace(
        snapshot(
            taken_at=1040.0,
            positions=[long_position(str(left), "59500")],
            open_orders=open_view(m),
            price="62100",
        ),
        pushed=True,
    )
    d = step(m, pushed, 1040.0)
    assert d.monitor.unexplained_at == 1040.0 and EventKind.POSITION_UPDATE not in kinds(d)
    assert d.monitor.confirm_by_rest  # the worker reads REST for it once it stays unexplained
    m = ack_ok(d, 1040.0)
    later = replace(pushed, taken_at=1045.0)
    d = step(m, later, 1045.0)
    assert d.monitor.unexplained_at == 1040.0 and d.monitor.built_qty == D("0.030")
    assert not [e for e in d.events if e.payload.get("reason") == "changed_outside"]
    # the same read by REST (which, in position mode, looks up the executions: no stop fill) would
    # have confirmed it as a change by hand
    by_rest = step(m, replace(later, pushed=False, stop_fills_read=frozenset({"BTCUSDT"})), 1045.0)
    assert [e.payload.get("reason") for e in by_rest.events if e.kind is EventKind.POSITION_UPDATE] == [
        "changed_outside"
    ]
    # the REST read that comes: TP1 left the open list and its look-up shows it filled
    rest = snapshot(
        taken_at=1046.0,
        positions=[long_position(str(left), "59500")],
        open_orders=[o for o in open_view(m) if o.link_id != tp1.link_id],
        closed=[ex_order(tp1, filled=tp1.qty, status=FILLED)],
        price="62100",
    )
    d = step(m, rest, 1046.0)
    assert EventKind.TP_HIT in kinds(d) and d.monitor.unexplained_at is None and not d.monitor.confirm_by_rest
    assert d.monitor.built_qty == D("0.030") and d.monitor.position_size == left
    assert not [e for e in d.events if e.payload.get("reason") == "changed_outside"]


@pytest.mark.usefixtures("order_mode")  # the stop order's trigger, as the view holds it
def test_a_pushed_order_row_from_before_our_last_amend_does_not_undo_it():
    """The view holds each order as its last push brought it. When our amend's push is lost, the
    row still shows the trigger from before it; a read from the view must not take it over the one
    we set (that undid breakeven moves in the record: seeds 417, 1714, 1925). A row pushed after the
    amend, and a REST read, do show what the exchange holds, and that still wins."""
    m = built()
    sl = m.current(OrderRole.SL, 0)
    sent_ms = int(sl.changed_at * 1000)

    def read_with(trigger, updated_ms, *, pushed):
        rows = [
            replace(o, trigger_price=D(trigger), updated_ms=updated_ms) if o.link_id == sl.link_id else o
            for o in open_view(m)
        ]
        s = snapshot(
            taken_at=1030.0, positions=[long_position("0.030", "59500")], open_orders=rows, price="59600"
        )
        return replace(s, pushed=pushed)

    def stop_amends(d):
        return [i for i in d.intents if isinstance(i, AmendOrder) and i.link_id == sl.link_id]

    old_row = step(m, read_with("57500", sent_ms - 1, pushed=True), 1030.0)
    assert old_row.monitor.current(OrderRole.SL, 0).trigger_price == sl.trigger_price
    assert not stop_amends(old_row)  # nothing taken from it, nothing to set again
    for newer in (
        read_with("57500", sent_ms + 5, pushed=True),
        read_with("57500", sent_ms - 1, pushed=False),
    ):
        # the looser trigger the exchange holds is taken, and the stop tightened back to the plan's
        (amend,) = stop_amends(step(m, newer, 1030.0))
        assert amend.trigger_price == sl.trigger_price == D("58000")
