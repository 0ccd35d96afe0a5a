"""Stop mode "position" (`Policy.stop_mode`): the stop is the position's own Full-mode stop-loss, set
with trading-stop. The protection rules of order mode hold here too, one test each, written like
test_race_rules.py (hand-built reads, no I/O); the simulator runs every seed in this mode as well
(`python -m tests.simulation --stop-mode position`)."""

from dataclasses import replace
from decimal import Decimal as D

from core import ids
from core.codec import monitor_from_dict, monitor_to_dict
from core.models import (
    ZERO,
    AmendOrder,
    BreakevenState,
    CloseReason,
    ErrorKind,
    EventKind,
    ExchangeOrderStatus,
    IntentResult,
    OrderRole,
    Phase,
    PlaceOrder,
    SetPositionStop,
    Side,
    Stage,
    Tier,
)
from core.policy import Policy
from core.step import STOP_PUSH_GRACE_S, acknowledge, open_monitor, step, stop_fills_to_look_up
from workers.executor import _calls

from .builders import conservative_long, ex_order, long_position, open_view, snapshot

POS = Policy(stop_mode="position")
FILLED = ExchangeOrderStatus.FILLED


def kinds(d):
    return [e.kind for e in d.events]


def stops(d):
    return [i for i in d.intents if isinstance(i, SetPositionStop)]


def stop_orders(d):
    return [i for i in d.intents if isinstance(i, PlaceOrder | AmendOrder) and "-SL-" in i.link_id]


def ack(d, t, **errors):
    """Every intent answered ok, but those named by link id with (kind, message)."""
    out = []
    for i in d.intents:
        err = errors.get(i.link_id)
        out.append(
            (i, IntentResult(i.link_id, False, err, "refused") if err else IntentResult(i.link_id, True))
        )
    return acknowledge(d.monitor, out, t)


def pos(size="0.030", avg="59500", sl=None):
    return replace(long_position(size, avg), stop_loss=None if sl is None else D(sl))


def stop_set(t=1020.0):
    """Three entries filled: the step at `t` that sets the position's stop, and that call."""
    d = open_monitor(
        "m000000009", "main", conservative_long(), snapshot(taken_at=1000.0, price="60500"), 1000.0, POS
    )
    m = ack(d, 1000.0).monitor
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders]
    d = step(m, snapshot(taken_at=t, positions=[pos()], closed=closed, price="59600"), t, POS)
    (sl,) = stops(d)
    return d, sl


def built(t=1020.0):
    """Three entries filled; ladder placed and the position's stop set and acknowledged."""
    d, sl = stop_set(t)
    assert sl.trigger_price == D("58000") and sl.stage == Stage.STOP and sl.position_idx == 0
    assert not stop_orders(d)  # no stop order at all in this mode
    assert d.intents[0] is sl  # sent first in the pass
    return ack(d, t).monitor


def read(m, t, *, size="0.030", sl="58000", price="59600", **kw):
    positions = [pos(size, sl=sl)] if size else []
    return snapshot(taken_at=t, positions=positions, open_orders=open_view(m), price=price, **kw)


def test_the_stop_is_set_on_the_position_and_nothing_more_is_sent_once_a_read_shows_it():
    m = built()
    assert m.stop_accepted == D("58000") and m.tier is Tier.CRITICAL  # set, not yet seen by a read
    d = step(m, read(m, 1030.0), 1030.0, POS)
    assert not d.intents and d.monitor.stop_seen == D("58000")
    assert d.monitor.tier is not Tier.CRITICAL


def test_a_partial_take_profit_needs_no_stop_call_the_exchange_resizes_it():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    _, s = tp1_filled(m)
    d = step(m, s, 1040.0, POS)
    assert EventKind.TP_HIT in kinds(d)
    assert not stop_orders(d)
    (sl,) = stops(d)  # the only stop call: breakeven, one trading-stop
    assert sl.trigger_price == D("59547.6")  # 59500 × 1.0008, rounded away from the entry (up)


def tp1_filled(m, t=1040.0):
    """The orders left open once TP1 filled, and a read at `t` showing it (the position 0.005, the
    first stop still on it, the price past TP1)."""
    tp1 = m.current(OrderRole.TP, 1)
    rest = [o for o in open_view(m) if o.link_id != tp1.link_id]
    s = snapshot(
        taken_at=t,
        positions=[pos("0.005", sl="58000")],
        open_orders=rest,
        closed=[ex_order(tp1, filled=tp1.qty, status=FILLED)],
        price="62100",
    )
    return rest, s


def test_breakeven_is_confirmed_only_by_a_read_showing_the_positions_stop_there():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    rest, s = tp1_filled(m)
    m = ack(step(m, s, 1040.0, POS), 1040.0).monitor
    assert m.breakeven is BreakevenState.PENDING
    # a read from before the call cannot confirm it, nor can one showing the old stop
    d = step(
        m, snapshot(taken_at=1039.0, positions=[pos("0.005", sl="58000")], open_orders=rest), 1041.0, POS
    )
    assert d.monitor.breakeven is BreakevenState.PENDING
    d = step(
        m, snapshot(taken_at=1042.0, positions=[pos("0.005", sl="59547.6")], open_orders=rest), 1042.0, POS
    )
    assert d.monitor.breakeven is BreakevenState.DONE and EventKind.BREAKEVEN_MOVED in kinds(d)


def test_the_stop_only_tightens_a_tighter_stop_set_by_hand_is_kept():
    m = built()
    d = step(m, read(m, 1030.0, sl="58800"), 1030.0, POS)
    assert not stops(d) and d.monitor.stop_seen == D("58800")


def test_a_stop_removed_by_hand_is_set_again_counted_then_the_position_is_closed_at_market():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    t = 1030.0
    for n in range(1, POS.max_repairs + 1):
        t += 10
        d = step(m, read(m, t, sl=None), t, POS)
        (sl,) = stops(d)
        assert sl.trigger_price == D("58000") and d.monitor.stop_resets == n
        m = ack(d, t).monitor
        m = step(m, read(m, t + 1), t + 1, POS).monitor  # seen again
    d = step(m, read(m, t + 20, sl=None), t + 20, POS)
    assert not stops(d)
    (close,) = stop_orders(d)
    assert close.order_type == "Market" and close.reduce_only and close.qty == D("0.030")
    assert any(
        e.payload.get("action") == "stop_repair_budget_spent" and e.payload.get("alert") for e in d.events
    )


def pushed_rows(s, seen_at):
    """The read as the stream view gives it, every position row received at `seen_at`."""
    return replace(s, pushed=True, position_seen_at={k: seen_at for k in s.positions})


def test_a_pushed_row_from_before_a_stop_call_answered_set_waits_for_its_push():
    m = built()  # set at 1020, answered "set"
    # the call's position push was lost: the row is the entry fills' (received at 1019), no stop
    for t, price in ((1022.0, "59600"), (1030.0, "59600"), (1080.0, "57900")):
        d = step(m, pushed_rows(read(m, t, sl=None, price=price), 1019.0), t, POS)
        # nothing sent again (it would be answered "not modified"), no market close through it
        # (the exchange holds the stop: it fires on its own), nothing learnt from the old row
        assert not d.intents and d.monitor.stop_seen is None and d.monitor.stop_resets == 0
        assert d.monitor.tier is Tier.CRITICAL  # unsettled until a row shows it
    # a row received after the call (the push came late, or the reconciliation wrote it): settled
    d = step(m, pushed_rows(read(m, 1081.0), 1080.5), 1081.0, POS)
    assert not d.intents and d.monitor.stop_seen == D("58000")
    # a row received later without it: removed by hand, set again and counted
    d = step(d.monitor, pushed_rows(read(m, 1090.0, sl=None), 1089.0), 1090.0, POS)
    (again,) = stops(d)
    assert again.trigger_price == D("58000") and d.monitor.stop_resets == 1


def test_a_pushed_read_from_before_the_call_learns_nothing_even_from_a_newer_row():
    # a view read's taken_at holds back the pushes still on their way; within it nothing is learnt,
    # so the removal a newer row shows is counted as a repair by the next read, not forgotten
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    assert m.stop_seen == D("58000") and m.stop_sent_at == 1020.0
    d = step(m, pushed_rows(read(m, 1019.5, sl=None), 1025.0), 1031.0, POS)
    assert not d.intents and d.monitor.stop_seen == D("58000")
    d = step(d.monitor, pushed_rows(read(m, 1032.0, sl=None), 1025.0), 1032.0, POS)
    (again,) = stops(d)
    assert again.trigger_price == D("58000") and d.monitor.stop_resets == 1


def test_a_pushed_row_from_before_a_stop_call_without_an_answer_has_it_sent_again():
    d, sl = stop_set()
    m = ack(d, 1020.0, **{sl.link_id: ErrorKind.RETRY_LATER}).monitor
    # the call may not have been carried out: the old row cannot tell, so it is sent again
    (again,) = stops(step(m, pushed_rows(read(m, 1022.0, sl=None), 1019.0), 1022.0, POS))
    assert again.trigger_price == D("58000")
    # a tighter trigger than the one answered "set" is sent too (the old answer is not for it)
    m = ack(step(m, pushed_rows(read(m, 1022.0, sl=None), 1019.0), 1022.0, POS), 1022.0).monitor
    assert m.stop_accepted == D("58000") and m.stop_accepted_at == 1022.0


def test_a_stop_set_again_at_the_instant_of_its_last_call_is_sent_the_step_is_not_dropped():
    # the monitor's state comes out equal (stop_sent_at is the same instant, nothing counted): a
    # step that acts is kept all the same (seeds 84707 and 95844 of the position soak)
    m = built()  # set at 1020, answered "set", not seen yet
    d = step(m, read(m, 1020.0, sl=None), 1020.0, POS)  # removed by hand at once
    (again,) = stops(d)
    assert again.trigger_price == D("58000") and d.monitor.version == m.version + 1


def test_a_call_unanswered_after_one_answered_set_at_the_same_instant_is_not_taken_as_set():
    # seed 67473: the acceptance of the first call must not answer for the second, sent at the same
    # instant and lost; a pushed row from before them (its push lost) then has the stop sent again
    m = built()
    d = step(m, read(m, 1020.0, sl=None), 1020.0, POS)
    (again,) = stops(d)
    m = ack(d, 1020.0, **{again.link_id: ErrorKind.RETRY_LATER}).monitor
    assert m.stop_accepted == D("58000") and m.stop_accepted_at == 0.0
    (third,) = stops(step(m, pushed_rows(read(m, 1022.0, sl=None), 1019.9), 1022.0, POS))
    assert third.trigger_price == D("58000")


def test_a_breakeven_move_answered_set_is_never_undone_by_a_later_refusal():
    # seed 77879: the move answered "set", then loosened or removed by hand with the price through
    # breakeven. It stays the stop the guard wants: never the plan's looser one again
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    rest, s = tp1_filled(m)
    m = ack(step(m, s, 1040.0, POS), 1040.0).monitor
    assert m.breakeven is BreakevenState.PENDING and m.stop_accepted == D("59547.6")
    loosened = snapshot(
        taken_at=1050.0, positions=[pos("0.005", sl="58500")], open_orders=rest, price="59400"
    )
    d = step(m, loosened, 1050.0, POS)
    assert not d.intents and d.monitor.breakeven is BreakevenState.PENDING
    # refused as breached while the position holds a (looser) stop: the move stays made
    m = ack(
        step(
            m,
            snapshot(taken_at=1050.0, positions=[pos("0.005", sl="58500")], open_orders=rest, price="59600"),
            1050.0,
            POS,
        ),
        1050.0,
        **{ids.position_stop_id(m.id): ErrorKind.TRIGGER_PASSED},
    ).monitor
    assert m.breakeven is BreakevenState.PENDING
    gone = snapshot(taken_at=1060.0, positions=[pos("0.005")], open_orders=rest, price="59400")
    d = step(m, gone, 1060.0, POS)
    assert not stops(d)  # not the plan's 58000: the price is through breakeven, close at market
    (close,) = stop_orders(d)
    assert close.order_type == "Market" and close.qty == D("0.005")


def test_breakeven_is_not_confirmed_by_a_pushed_row_from_before_its_call():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    rest, s = tp1_filled(m)
    m = ack(step(m, s, 1040.0, POS), 1040.0).monitor  # breakeven answered "set"
    assert m.breakeven is BreakevenState.PENDING and m.stop_accepted == D("59547.6")
    old = snapshot(taken_at=1050.0, positions=[pos("0.005", sl="58000")], open_orders=rest, price="62100")
    d = step(m, pushed_rows(old, 1039.5), 1050.0, POS)
    assert not d.intents and d.monitor.breakeven is BreakevenState.PENDING
    new = snapshot(taken_at=1051.0, positions=[pos("0.005", sl="59547.6")], open_orders=rest, price="62100")
    d = step(m, pushed_rows(new, 1040.5), 1051.0, POS)
    assert d.monitor.breakeven is BreakevenState.DONE and EventKind.BREAKEVEN_MOVED in kinds(d)


def test_a_breach_is_judged_on_the_stops_own_trigger_price_and_closes_at_market():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    s = replace(read(m, 1040.0, sl=None, price="57900"))  # removed, and the last price is through it
    d = step(m, s, 1040.0, POS)
    assert not stops(d)
    (close,) = stop_orders(d)
    assert close.order_type == "Market" and close.trigger_price is None


def test_a_trading_stop_refused_as_breached_closes_at_market_in_the_same_pass():
    d = open_monitor(
        "m000000009", "main", conservative_long(), snapshot(taken_at=1000.0, price="60500"), 1000.0, POS
    )
    m = ack(d, 1000.0).monitor
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders]
    d = step(m, snapshot(taken_at=1020.0, positions=[pos()], closed=closed, price="58100"), 1020.0, POS)
    (sl,) = stops(d)
    a = ack(d, 1020.0, **{sl.link_id: ErrorKind.TRIGGER_PASSED})
    (close,) = [i for i in a.intents if isinstance(i, PlaceOrder)]  # the follow-up, sent in the same pass
    assert close.order_type == "Market" and close.reduce_only and close.qty == D("0.030")


def test_a_trading_stop_without_an_answer_is_settled_by_the_next_read():
    d, sl = stop_set()
    m = ack(d, 1020.0, **{sl.link_id: ErrorKind.RETRY_LATER}).monitor
    assert m.stop_accepted is None and m.stop_resets == 0
    # it landed: nothing more; it did not: set again (the same value, harmless), not counted
    assert not stops(step(m, read(m, 1022.0), 1022.0, POS))
    d = step(m, read(m, 1022.0, sl=None), 1022.0, POS)
    (again,) = stops(d)
    assert again.trigger_price == D("58000") and d.monitor.stop_resets == 0


# A close the guard did not make is judged by the account's executions (a fill of the position's
# own stop-loss, or none), looked up by the read that confirms the flat position. Without them (the
# look-up failed for `stop_fill_wait_s`) the price judges: PRICE_ONLY is that fallback at once.
PRICE_ONLY = Policy(stop_mode="position", stop_fill_wait_s=0.0)
SELL = Side.SELL  # the side of the execution that closes the long


def flat(m, t, price, *, fills=None, looked=True):
    """A flat read: the monitor's orders gone; with `looked`, the executions of BTCUSDT were looked
    up and `fills` ({side: execTime ms}) are the position stop's fills among them."""
    gone = [ex_order(o, status=ExchangeOrderStatus.CANCELLED) for o in m.live_orders()]
    s = snapshot(taken_at=t, closed=gone, price=price)
    if looked:
        s = replace(
            s,
            stop_fills={("BTCUSDT", side): ms for side, ms in (fills or {}).items()},
            stop_fills_read=frozenset({"BTCUSDT"}),
        )
    return s


def test_a_flat_read_with_the_price_through_the_stop_is_the_stop_firing():
    m = step(built(), read(built(), 1030.0), 1030.0, PRICE_ONLY).monitor
    m = step(m, flat(m, 1040.0, "57900", looked=False), 1040.0, PRICE_ONLY).monitor  # waits for a 2nd
    d = step(m, flat(m, 1042.0, "58100", looked=False), 1042.0, PRICE_ONLY)
    assert EventKind.SL_HIT in kinds(d)
    assert d.monitor.closed_reason is CloseReason.STOP_LOSS


def test_a_flat_read_never_through_the_stop_is_a_close_by_hand():
    m = step(built(), read(built(), 1030.0), 1030.0, PRICE_ONLY).monitor
    m = step(m, flat(m, 1040.0, "59000", looked=False), 1040.0, PRICE_ONLY).monitor
    d = step(m, flat(m, 1042.0, "59000", looked=False), 1042.0, PRICE_ONLY)
    assert EventKind.SL_HIT not in kinds(d)
    assert d.monitor.closed_reason is CloseReason.MANUAL


def test_the_confirming_read_looks_up_the_executions_of_the_symbol_only_when_it_must_judge():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    assert stop_fills_to_look_up(m, flat(m, 1040.0, "59000", looked=False), POS) == set()  # 1st flat
    m1 = step(m, flat(m, 1040.0, "59000", looked=False), 1040.0, POS).monitor
    assert m1.unexplained_at == 1040.0
    second = flat(m1, 1042.0, "59000", looked=False)
    assert stop_fills_to_look_up(m1, second, POS) == {"BTCUSDT"}
    assert stop_fills_to_look_up(m1, second, Policy(stop_mode="order")) == set()
    assert stop_fills_to_look_up(m1, flat(m1, 1042.0, "59000"), POS) == set()  # looked up already
    assert stop_fills_to_look_up(m1, read(m1, 1042.0), POS) == set()  # open again: nothing to judge
    never_set = replace(m1, stop_seen=None, stop_accepted=None, stop_sent_at=0.0)
    # an entry filled: the stop attached to it was set on the position by the exchange, and may have fired
    assert stop_fills_to_look_up(never_set, second, POS) == {"BTCUSDT"}
    unfilled = tuple(replace(o, filled=ZERO) if o.role is OrderRole.ENTRY else o for o in never_set.orders)
    never_set = replace(never_set, orders=unfilled)
    assert stop_fills_to_look_up(never_set, second, POS) == set()  # no stop could have fired
    # a read of the stream view waits for the pushes (the stop's fill is pushed too) a moment first
    soon = replace(flat(m1, 1040.0 + STOP_PUSH_GRACE_S / 2, "59000", looked=False), pushed=True)
    assert stop_fills_to_look_up(m1, soon, POS) == set()
    later = replace(flat(m1, 1040.0 + STOP_PUSH_GRACE_S, "59000", looked=False), pushed=True)
    assert stop_fills_to_look_up(m1, later, POS) == {"BTCUSDT"}  # none came: look it up


def test_a_fill_of_the_positions_stop_is_the_stop_firing_even_when_the_price_came_back():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    m = step(m, flat(m, 1040.0, "59000", looked=False), 1040.0, POS).monitor
    d = step(m, flat(m, 1042.0, "59000", fills={SELL: 1_041_500}), 1042.0, POS)
    (sl,) = [e for e in d.events if e.kind is EventKind.SL_HIT]
    assert sl.payload["exchange_ms"] == 1_041_500 and sl.payload["on_position"] is True
    assert d.monitor.closed_reason is CloseReason.STOP_LOSS


def test_a_flat_read_from_the_view_with_the_stops_fill_pushed_is_judged_from_the_view():
    # the stop's pushed fill explains the flat position: the next read from the view judges it, and
    # the worker has no reason to read REST for it (`confirm_by_rest`); without the fill pushed a
    # read from the view cannot, and asks for a REST read
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    gone = flat(m, 1040.0, "57900", looked=False)
    with_fill = replace(gone, pushed=True, stop_fills={("BTCUSDT", SELL): 1_039_500})
    m1 = step(m, with_fill, 1040.0, POS).monitor
    assert m1.unexplained_at == 1040.0 and not m1.confirm_by_rest
    d = step(m1, replace(with_fill, taken_at=1042.0), 1042.0, POS)
    assert EventKind.SL_HIT in kinds(d) and d.monitor.closed_reason is CloseReason.STOP_LOSS
    bare = step(m, replace(gone, pushed=True), 1040.0, POS).monitor
    assert bare.unexplained_at == 1040.0 and bare.confirm_by_rest
    d = step(bare, replace(gone, pushed=True, taken_at=1042.0), 1042.0, POS)
    assert EventKind.SL_HIT not in kinds(d) and d.monitor.phase is not Phase.CLOSED


def test_no_fill_of_the_positions_stop_is_a_close_by_hand_even_with_the_price_through_it():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    m = step(m, flat(m, 1040.0, "57900", looked=False), 1040.0, POS).monitor
    assert m.stop_crossed  # the price alone would call it the stop
    d = step(m, flat(m, 1042.0, "57900", fills={}), 1042.0, POS)
    assert EventKind.SL_HIT not in kinds(d)
    assert d.monitor.closed_reason is CloseReason.MANUAL


def test_a_stop_fill_from_before_the_monitor_or_of_the_other_side_is_not_its_stop():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    m = step(m, flat(m, 1040.0, "59000", looked=False), 1040.0, POS).monitor
    older = int(m.created_at * 1000) - 1  # a stop of an earlier position of the symbol
    d = step(m, flat(m, 1042.0, "59000", fills={SELL: older, Side.BUY: 1_041_000}), 1042.0, POS)
    assert EventKind.SL_HIT not in kinds(d) and d.monitor.closed_reason is CloseReason.MANUAL


def test_while_the_executions_cannot_be_read_the_judgement_waits_then_the_price_judges():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    m = step(m, flat(m, 1040.0, "57900", looked=False), 1040.0, POS).monitor
    d = step(m, flat(m, 1045.0, "57900", looked=False), 1045.0, POS)  # the look-up failed
    assert d.monitor.phase is not Phase.CLOSING and d.monitor.closed_reason is None  # not judged
    later = 1040.0 + POS.stop_fill_wait_s
    d = step(d.monitor, flat(d.monitor, later, "57900", looked=False), later, POS)
    assert EventKind.SL_HIT in kinds(d) and d.monitor.closed_reason is CloseReason.STOP_LOSS


def test_a_flat_read_is_judged_only_once_a_reads_price_is_surely_from_after_the_close():
    # the demo (streams on) recorded stops as hand closes: the checks called by the fill's pushes read
    # the flat position within the shared ticker cache's time, both with the price from before the
    # stop fired. No read's price was through the stop: the flat read waits for one made
    # `price_max_age_s` after the first, whose price is from after the close.
    policy = Policy(stop_mode="position", price_max_age_s=1.0, stop_fill_wait_s=0.0)
    m = step(built(), read(built(), 1030.0), 1030.0, policy).monitor
    gone = [ex_order(o, status=ExchangeOrderStatus.CANCELLED) for o in m.live_orders()]
    m = step(m, snapshot(taken_at=1040.0, closed=gone, price="59600"), 1040.0, policy).monitor  # stale
    d = step(m, snapshot(taken_at=1040.3, closed=gone, price="59600"), 1040.3, policy)  # stale again
    assert d.monitor.phase is not Phase.CLOSING and d.monitor.closed_reason is None  # not judged yet
    d = step(d.monitor, snapshot(taken_at=1041.1, closed=gone, price="57900"), 1041.1, policy)
    assert EventKind.SL_HIT in kinds(d)
    assert d.monitor.closed_reason is CloseReason.STOP_LOSS
    # a close by hand (the price never through the stop) is still judged, one read later
    m = step(built(), read(built(), 1030.0), 1030.0, policy).monitor
    m = step(m, snapshot(taken_at=1040.0, closed=gone, price="59000"), 1040.0, policy).monitor
    m = step(m, snapshot(taken_at=1040.3, closed=gone, price="59000"), 1040.3, policy).monitor
    d = step(m, snapshot(taken_at=1041.1, closed=gone, price="59000"), 1041.1, policy)
    assert EventKind.SL_HIT not in kinds(d) and d.monitor.closed_reason is CloseReason.MANUAL


def test_nothing_is_set_on_a_flat_read_and_a_zero_position_answer_changes_nothing():
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    gone = [ex_order(o, status=ExchangeOrderStatus.CANCELLED) for o in m.live_orders()]
    d = step(m, snapshot(taken_at=1040.0, closed=gone, price="59000"), 1040.0, POS)
    assert not stops(d)
    sl = SetPositionStop("main", m.id, ids.position_stop_id(m.id), "BTCUSDT", D("58000"))
    a = acknowledge(d.monitor, [(sl, IntentResult(sl.link_id, False, ErrorKind.NO_POSITION, "zero"))], 1040.0)
    assert not a.intents and a.monitor.phase is d.monitor.phase


def test_the_monitor_round_trips_the_codec_and_the_executor_sends_the_stop_first():
    m = built()
    sl = SetPositionStop("main", m.id, ids.position_stop_id(m.id), "BTCUSDT", D("58000"), "MarkPrice", 1)
    assert monitor_from_dict(monitor_to_dict(m)) == m
    place = PlaceOrder(
        "main", m.id, "tgm000000009-SL-1", "BTCUSDT", m.plan.side.opposite, D("1"), stage=Stage.STOP
    )
    (first, *_), *_ = [(kind, g) for _, kind, g in _calls([place, sl])]
    assert first is SetPositionStop


def test_order_mode_is_unchanged_no_trading_stop_is_ever_sent():
    order = Policy(stop_mode="order")
    d = open_monitor(
        "m000000009", "main", conservative_long(), snapshot(taken_at=1000.0, price="60500"), 1000.0, order
    )
    m = ack(d, 1000.0).monitor
    closed = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders]
    d = step(m, snapshot(taken_at=1020.0, positions=[pos()], closed=closed, price="59600"), 1020.0, order)
    assert not stops(d) and len(stop_orders(d)) == 1
    assert d.monitor.phase is Phase.MONITORING


def test_the_setting_reaches_the_policy_and_only_the_two_modes_are_accepted(monkeypatch):
    import pytest
    from pydantic import ValidationError

    from config.settings import Settings

    monkeypatch.delenv("TPSL_STOP_MODE", raising=False)  # set by the suite (tests/plugins/stop_mode.py)
    assert Policy.from_settings(Settings()).stop_mode == "position"  # the default
    assert Policy().stop_mode == "position"  # the core's default is the settings' default
    assert Policy.from_settings(Settings(ticker_cache_s=0.25)).price_max_age_s == 0.25
    assert Policy.from_settings(Settings(stop_mode="order")).stop_mode == "order"
    with pytest.raises(ValidationError):
        Settings(stop_mode="trailing")


def pushed(s, **fills_ms):
    """`s` with fills of the position's own stop-loss as a stream view holds them (pushed only: an
    absent fill proves nothing)."""
    return replace(s, stop_fills={("BTCUSDT", Side(k.capitalize())): v for k, v in fills_ms.items()})


def test_a_stop_gone_because_it_fired_while_the_position_was_opened_again_is_the_stop_not_a_repair():
    # the stop fired and the position was opened again to the same size (a hand add, or entries)
    # before any read saw it flat: the read shows it open without its stop
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    assert m.stop_seen == D("58000")
    bare = read(m, 1040.0, sl=None)
    assert stop_fills_to_look_up(m, bare, POS) == {"BTCUSDT"}  # fired, or removed by hand?
    assert stop_fills_to_look_up(m, replace(bare, pushed=True), POS) == set()  # its fill comes pushed
    d = step(m, pushed(bare, sell=1_035_000), 1040.0, POS)
    (sl,) = [e for e in d.events if e.kind is EventKind.SL_HIT]
    assert sl.payload["qty"] == "0.030" and sl.payload["exchange_ms"] == 1_035_000
    (again,) = stops(d)  # set again on what is there now, as a new stop: no repair counted
    assert again.trigger_price == D("58000") and d.monitor.stop_resets == 0 and d.monitor.repairs == 0
    assert "position_stop_gone_set_again" not in [e.payload.get("action") for e in d.events]
    # without a fill of it (looked up: none) it was removed by hand: set again, counted
    looked = replace(bare, stop_fills_read=frozenset({"BTCUSDT"}))
    d = step(m, looked, 1040.0, POS)
    assert EventKind.SL_HIT not in kinds(d) and d.monitor.stop_resets == 1
    assert "position_stop_gone_set_again" in [e.payload.get("action") for e in d.events]


def test_a_stop_that_fired_before_entries_built_the_position_again_is_the_stop_not_a_change_by_hand():
    # the stop closed the position (0.030) and 0.020 was bought again before the next read (a
    # smaller position, not flat): judged at the first read that shows it, once
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    first = read(m, 1040.0, size="0.020", sl=None)
    assert stop_fills_to_look_up(m, first, POS) == {"BTCUSDT"}
    d = step(m, pushed(first, sell=1_035_000), 1040.0, POS)
    assert [e.payload["qty"] for e in d.events if e.kind is EventKind.SL_HIT] == ["0.030"]
    assert d.monitor.stop_resets == 0 and stops(d)  # the stop set again on the 0.020 now there
    d = step(d.monitor, pushed(read(d.monitor, 1042.0, size="0.020", sl=None), sell=1_035_000), 1042.0, POS)
    assert EventKind.SL_HIT not in kinds(d)  # recorded once
    assert d.monitor.position_size == D("0.020") and d.monitor.phase is not Phase.CLOSING


def partly_built(n, size):
    """The first `n` entries filled (`size`), the rest working; the position's stop set and seen."""
    m = ack(
        open_monitor(
            "m000000009", "main", conservative_long(), snapshot(taken_at=1000.0, price="60500"), 1000.0, POS
        ),
        1000.0,
    ).monitor
    done = [ex_order(o, filled=o.qty, status=FILLED) for o in m.orders[:n]]
    working = [ex_order(o) for o in m.orders[n:]]
    s = snapshot(taken_at=1020.0, positions=[pos(size)], open_orders=working, closed=done, price="59600")
    m = ack(step(m, s, 1020.0, POS), 1020.0).monitor
    m = step(m, read(m, 1030.0, size=size), 1030.0, POS).monitor
    assert m.stop_seen == D("58000")
    return m


def test_a_smaller_read_after_the_stop_fired_waits_for_its_fill_like_a_flat_one_then_the_price_judges():
    # E1 and E2 built 0.020 and the stop is set; the stop fires (the read is flat, E3 still working,
    # the executions not answered), then E3 fills: the next read shows 0.010. That smaller size is
    # the stop's close plus E3, not a change by hand; while the stop's fill cannot be read it waits,
    # as a flat read does, and then the price (through the stop at the flat read) judges it
    m = partly_built(2, "0.020")
    e3 = m.current(OrderRole.ENTRY, 3)
    flat = snapshot(taken_at=1040.0, open_orders=open_view(m), price="57900")
    m = step(m, flat, 1040.0, POS).monitor
    assert m.unexplained_at == 1040.0 and m.stop_crossed
    ladder = [o for o in open_view(m) if o.link_id != e3.link_id]

    def smaller(t):
        e3_filled = ex_order(e3, filled=e3.qty, status=FILLED)
        return snapshot(
            taken_at=t, positions=[pos("0.010")], open_orders=ladder, closed=[e3_filled], price="59100"
        )

    d = step(m, smaller(1042.0), 1042.0, POS)  # the look-up of the executions failed
    assert EventKind.SL_HIT not in kinds(d) and EventKind.POSITION_UPDATE not in kinds(d)
    m = ack(d, 1042.0).monitor
    later = 1040.0 + POS.stop_fill_wait_s
    d = step(m, smaller(later), later, POS)
    assert [e.payload["qty"] for e in d.events if e.kind is EventKind.SL_HIT] == ["0.020"]
    assert [e.payload.get("reason") for e in d.events if e.kind is EventKind.POSITION_UPDATE] == [
        "stop_fired"
    ]
    assert d.monitor.position_size == D("0.010") and d.monitor.phase is not Phase.CLOSING


def test_a_stop_fill_found_while_a_smaller_size_waits_leaves_the_balance_the_entries_opened_again():
    # E1 built 0.010; E2's first 0.001 filled, then the stop closed the 0.011, then E2 filled the
    # rest: 0.009 open again. The read that finds the stop's fill cannot judge the size yet (E3 is
    # missing from it), so the stop-gone path records the fill; its close must leave the balance, or
    # E2's 0.009, once counted, makes 0.020 expected against 0.009 there: a change by hand
    m = partly_built(1, "0.010")
    e2, e3 = m.current(OrderRole.ENTRY, 2), m.current(OrderRole.ENTRY, 3)
    ladder = [o for o in open_view(m) if "-E" not in o.link_id]
    flat_read = snapshot(
        taken_at=1040.0, open_orders=[ex_order(e2, filled=D("0.001")), ex_order(e3), *ladder], price="59100"
    )
    m = ack(step(m, flat_read, 1040.0, POS), 1040.0).monitor
    assert m.unexplained_at == 1040.0 and m.position_size == D("0.011")
    e2_filled = ex_order(e2, filled=e2.qty, status=FILLED)
    found = replace(
        snapshot(
            taken_at=1045.0, positions=[pos("0.009")], open_orders=ladder, closed=[e2_filled], price="59100"
        ),
        stop_fills={("BTCUSDT", SELL): 1_041_000},
        stop_fills_read=frozenset({"BTCUSDT"}),
    )
    d = step(m, found, 1045.0, POS)  # E3 unaccounted for: the size waits; the stop's fill is recorded
    assert [e.payload["qty"] for e in d.events if e.kind is EventKind.SL_HIT] == ["0.011"]
    assert d.monitor.position_size == D("0.009") and d.monitor.unexplained_at == 1040.0
    m = ack(d, 1045.0).monitor
    later = snapshot(
        taken_at=1047.0, positions=[pos("0.009")], open_orders=[ex_order(e3), *ladder], price="59100"
    )
    d = step(m, later, 1047.0, POS)
    assert not [e for e in d.events if e.payload.get("reason") == "changed_outside"]
    assert d.monitor.unexplained_at is None and d.monitor.position_size == D("0.009")


# --------------------------------------------------------------- the stop attached to the entries


def first_entry_filled(t=1010.0, *, sl="58000"):
    """Entries placed (the plan's stop attached to each), then a read at `t` showing the first one
    filled and the position holding `sl`."""
    m = ack(
        open_monitor(
            "m000000009", "main", conservative_long(), snapshot(taken_at=1000.0, price="60500"), 1000.0, POS
        ),
        1000.0,
    ).monitor
    e1 = m.current(OrderRole.ENTRY, 1)
    s = snapshot(
        taken_at=t,
        positions=[pos("0.010", avg="60000", sl=sl)],
        open_orders=[o for o in open_view(m) if o.link_id != e1.link_id],
        closed=[ex_order(e1, filled=e1.qty, status=FILLED)],
        price="59900",
    )
    return m, s


def held(m, t, sl):
    """A read at `t`: the first entry's position holding `sl`, the rest of ours open."""
    return snapshot(
        taken_at=t, positions=[pos("0.010", avg="60000", sl=sl)], open_orders=open_view(m), price="59900"
    )


def second_entry_filled(m, t, *, sl, price="59400"):
    e2 = m.current(OrderRole.ENTRY, 2)
    return snapshot(
        taken_at=t,
        positions=[pos("0.020", avg="59750", sl=sl)],
        open_orders=[o for o in open_view(m) if o.link_id != e2.link_id],
        closed=[ex_order(e2, filled=e2.qty, status=FILLED)],
        price=price,
    )


def test_the_entries_carry_the_plans_stop_so_their_first_fill_needs_no_stop_call():
    plan, first = conservative_long(), snapshot(taken_at=1000.0, price="60500")
    placed = open_monitor("m000000009", "main", plan, first, 1000.0, POS).intents
    assert len(placed) == 3 and all(isinstance(i, PlaceOrder) for i in placed)
    assert {(i.stop_loss, i.stop_loss_by) for i in placed} == {(D("58000"), "LastPrice")}
    in_order_mode = open_monitor("m000000009", "main", plan, first, 1000.0, Policy(stop_mode="order")).intents
    assert {i.stop_loss for i in in_order_mode} == {
        None
    }  # there the stop is an order of ours, after the fill

    m, s = first_entry_filled()
    d = step(m, s, 1010.0, POS)
    assert EventKind.PARTIAL_FILL in kinds(d)
    assert not stops(d) and d.monitor.stop_seen == D("58000")  # the exchange set it with the fill
    # a read that shows the position without it (its push not come yet) has it set, not repaired
    m, s = first_entry_filled(sl=None)
    d = step(m, s, 1010.0, POS)
    (sl,) = stops(d)
    assert sl.trigger_price == D("58000") and "position_stop_gone_set_again" not in str(d.events)


def test_a_tighter_stop_an_entry_fill_replaced_with_the_plans_is_put_back():
    m, s = first_entry_filled()
    m = ack(step(m, s, 1010.0, POS), 1010.0).monitor
    m = step(m, held(m, 1020.0, "58500"), 1020.0, POS).monitor
    assert m.stop_seen == D("58500")  # moved by hand: tighter, kept
    d = step(m, second_entry_filled(m, 1030.0, sl="58000"), 1030.0, POS)
    (sl,) = stops(d)
    assert sl.trigger_price == D("58500")
    assert any(e.payload.get("action") == "position_stop_put_back" for e in d.events)

    # the price is through it already: closed at market, as a position whose stop fired and that an
    # entry reopened
    d = step(m, second_entry_filled(m, 1030.0, sl="58000", price="58400"), 1030.0, POS)
    assert not stops(d)
    (close,) = [i for i in d.intents if isinstance(i, PlaceOrder) and i.order_type == "Market"]
    assert close.reduce_only and close.qty == D("0.020")

    # no entry filled since: the plan's stop set back by hand is the trader's call
    d = step(m, held(m, 1030.0, "58000"), 1030.0, POS)
    assert not stops(d)


def test_a_newer_fill_of_the_stop_on_a_smaller_read_after_it_fired_is_another_firing():
    """An entry filling in parts while the price is through the stop sets the attached stop again
    with each fill, and it fires again (simulator seed 4302): the second close is the stop's, not a
    change by hand. Only a fill newer than the one counted says so."""
    m = step(built(), read(built(), 1030.0), 1030.0, POS).monitor
    m = replace(m, stop_fired=D("0.010"), stop_fired_ms=1_000_000)  # it fired once already

    def smaller(t, fill_ms):
        s = read(m, t, size="0.020")
        return replace(
            s, stop_fills={("BTCUSDT", Side.SELL): fill_ms}, stop_fills_read=frozenset({"BTCUSDT"})
        )

    for fill_ms, reason in ((1_040_500, "stop_fired"), (1_000_000, "changed_outside")):
        first = step(m, smaller(1040.0, fill_ms), 1040.0, POS).monitor  # seen: awaits a second read
        d = step(first, smaller(1042.0, fill_ms), 1042.0, POS)
        (update,) = [e for e in d.events if e.kind is EventKind.POSITION_UPDATE]
        assert update.payload["reason"] == reason
        assert EventKind.SL_HIT not in kinds(d)  # said once, at the first firing
        if reason == "stop_fired":
            assert d.monitor.stop_fired == D("0.020") and d.monitor.stop_fired_ms == fill_ms
