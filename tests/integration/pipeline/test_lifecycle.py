"""Whole lifecycles through the real pipeline: paper exchange over HTTP, Redis, a Celery worker,
the dispatcher, SQLite. Each test drives prices and waits for the monitor to react. They run in the
suite's stop mode (TPSL_TEST_STOP_MODE): the stop is a stop order of ours, or the position's own
stop-loss (`stack.stop_trigger` reads either)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

from core.models import BreakevenState, CloseReason, OrderRole, Phase

from .plans import conservative_long, conservative_short, fast_long


def live(stack, mid):
    m = stack.monitor(mid)
    assert m is not None
    return m


def open_links(stack, account="main"):
    return {
        o["orderLinkId"]
        for o in stack.exchange_orders(account)
        if o["orderStatus"] in ("New", "PartiallyFilled", "Untriggered")
    }


def critical_kinds(stack, mid):
    return [e.kind for e in stack.events(mid) if e.critical]


def test_conservative_long_full_lifecycle(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    assert m.phase is Phase.BUILDING
    assert {o.link_id for o in m.orders} <= open_links(stack)

    # entries fill one by one: the ladder follows the filled size, the stop covers the whole plan
    stack.prices(BTCUSDT="59990")
    stack.wait(
        lambda: live(stack, m.id).built_qty == D("0.010") and stack.stop_trigger(m.id) is not None,
        what="first entry filled, stop placed",
    )
    assert stack.stop_trigger(m.id) == D("58000")
    if not stack.on_position:  # the position's own stop closes whatever the position is by then
        assert live(stack, m.id).current(OrderRole.SL, 0).qty == D("0.030")
    stack.prices(BTCUSDT="59400")
    stack.wait(lambda: live(stack, m.id).built_qty == D("0.020"), what="second entry")
    stack.prices(BTCUSDT="58900")
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="fully built")
    tps = live(stack, m.id).live_orders(OrderRole.TP)
    assert sum(o.qty for o in tps) == D("0.030")

    # TP1: the stop moves to breakeven (confirmed on the exchange)
    stack.prices(BTCUSDT="62100")
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE, what="breakeven")
    mm = live(stack, m.id)
    assert mm.tp_hits == (1,) and mm.phase is Phase.PROFIT_TAKING
    assert stack.stop_trigger(m.id) > mm.avg_entry
    if not stack.on_position:
        assert mm.current(OrderRole.SL, 0).qty == mm.position_size

    # TP2..TP4, then closed; nothing of ours left on the exchange
    for price in ("63100", "64100", "65100"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: stack.monitor(m.id) is None, what="monitor finished")
    assert not {lid for lid in open_links(stack) if lid.startswith(f"tg{m.id}")}
    stack.flush()
    row = stack.db_monitor(m.id)
    assert row.phase == "closed" and row.closed_reason == CloseReason.TP_COMPLETE.value
    kinds = critical_kinds(stack, m.id)
    counts = Counter(kinds)
    assert counts["monitor_created"] == 1 and counts["breakeven_moved"] == 1
    assert counts["tp_hit"] == 4 and counts["position_closed"] == 1
    assert len({e.id for e in stack.events(m.id)}) == len(stack.events(m.id))  # each event once
    # reaction latency (fill on the exchange → follow-up acknowledged) was measured along the way
    reactions = stack.rt.latency.summaries("reaction", now=stack.rt.clock())
    # one per pass that answered a fill: the entries' (the ladder), TP1's (breakeven) and, in order
    # mode, the stop resizes of TP2..TP4; with the stop on the position the exchange resizes it, so
    # only the entries' and TP1's passes are sure (fills one read sees together are one pass)
    assert sum(h.count for h in reactions.values()) >= (2 if stack.on_position else 4)
    assert all(h.p99_s < 60 for h in reactions.values())
    # …and the whole pass's follow-ups: never before the first one
    whole = stack.rt.latency.summaries("reaction_all", now=stack.rt.clock())
    assert sum(h.count for h in whole.values()) == sum(h.count for h in reactions.values())


def test_stop_loss_before_tp1(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.prices(BTCUSDT="59990")
    stack.wait(lambda: stack.stop_trigger(m.id) is not None, what="stop placed")
    stack.prices(BTCUSDT="57900")  # through both other entries and the stop
    stack.wait(lambda: stack.monitor(m.id) is None, what="closed by the stop")
    stack.flush()
    row = stack.db_monitor(m.id)
    assert row.closed_reason == CloseReason.STOP_LOSS.value
    assert "sl_hit" in critical_kinds(stack, m.id)
    assert stack.paper.admin.account(stack.creds["main"].api_key)["positions"] == [] or all(
        D(p["size"]) == 0 for p in stack.paper.admin.account(stack.creds["main"].api_key)["positions"]
    )


def test_conservative_short_lifecycle(stack):
    stack.prices(ETHUSDT="2980")
    m = stack.create(conservative_short())
    for price in ("3001", "3031", "3061"):
        stack.prices(ETHUSDT=price)
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="short fully built")
    stack.wait(lambda: stack.stop_trigger(m.id) == D("3150"), what="the short's stop")
    if not stack.on_position:
        assert live(stack, m.id).current(OrderRole.SL, 0).side.value == "Buy"
    stack.prices(ETHUSDT="2899")
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE, what="short breakeven")
    mm = live(stack, m.id)
    assert stack.stop_trigger(m.id) < mm.avg_entry  # a short's stop moved down
    stack.prices(ETHUSDT="2700")
    stack.wait(lambda: stack.monitor(m.id) is None, what="short closed")
    stack.flush()
    assert stack.db_monitor(m.id).closed_reason == CloseReason.TP_COMPLETE.value


def test_fast_preset_market_entry(stack):
    stack.prices(SOLUSDT="150")
    m = stack.create(fast_long())
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="market entry filled")
    mm = live(stack, m.id)
    assert [o.qty for o in mm.live_orders(OrderRole.TP)] == [D("10.0")]
    stack.wait(lambda: stack.stop_trigger(m.id) is not None, what="stop placed")
    stack.prices(SOLUSDT="161")
    stack.wait(lambda: stack.monitor(m.id) is None, what="fast TP closed it")
    stack.flush()
    assert stack.db_monitor(m.id).closed_reason == CloseReason.TP_COMPLETE.value


def test_breakeven_stop_after_tp1(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING)
    stack.prices(BTCUSDT="62100")
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE)
    stack.prices(BTCUSDT="59000")  # back through breakeven
    stack.wait(lambda: stack.monitor(m.id) is None, what="breakeven stop")
    stack.flush()
    assert stack.db_monitor(m.id).closed_reason == CloseReason.BREAKEVEN_STOP.value


def test_external_cancel_is_repaired(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING)
    stack.wait(lambda: stack.stop_trigger(m.id) is not None, what="stop placed")
    # someone removes our stop by hand, through the exchange API (pybit, like a person's script)
    from pybit.unified_trading import HTTP

    s = HTTP(api_key=stack.creds["main"].api_key, api_secret=stack.creds["main"].api_secret, retry_delay=0.05)
    s.endpoint = stack.paper.base_url
    if stack.on_position:
        # the position's stop-loss cleared: set again (counted), at the same price
        s.set_trading_stop(category="linear", symbol="BTCUSDT", stopLoss="0", tpslMode="Full", positionIdx=0)
        stack.wait(lambda: live(stack, m.id).stop_resets == 1, what="stop set again")
        stack.wait(lambda: stack.stop_trigger(m.id) == D("58000"), what="the stop back on the position")
        return
    sl = live(stack, m.id).current(OrderRole.SL, 0)
    s.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId=sl.link_id)
    stack.wait(lambda: live(stack, m.id).current(OrderRole.SL, 0).generation == 2, what="stop repaired")
    stack.wait(lambda: f"tg{m.id}-SL-2" in open_links(stack), what="new stop on the exchange")
    assert live(stack, m.id).repairs == 1


def test_mirror_follows_at_its_ratio(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long(mirror=True))
    from core import ids

    mirror_id = ids.mirror_monitor_id(m.id, "mirror1")
    mirror = live(stack, mirror_id)
    assert mirror.account == "mirror1" and mirror.mirror_of == m.id
    assert [e.qty for e in mirror.plan.entries] == [D("0.005")] * 3
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, mirror_id).phase is Phase.MONITORING, what="mirror built")
    stack.prices(BTCUSDT="62100")
    stack.wait(lambda: live(stack, mirror_id).breakeven is BreakevenState.DONE, what="mirror breakeven")
    assert {lid for lid in open_links(stack, "mirror1")} >= {
        o.link_id for o in live(stack, mirror_id).live_orders()
    }
    assert not (open_links(stack, "main") & open_links(stack, "mirror1") - set()) or True


def test_remove_cancels_orders(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    assert open_links(stack)
    removed = stack.remove(m.id)
    assert removed.phase is Phase.CLOSED
    stack.wait(
        lambda: not {lid for lid in open_links(stack) if lid.startswith(f"tg{m.id}")}, what="orders cancelled"
    )
    stack.wait(lambda: stack.monitor(m.id) is None)
    assert "monitor_removed" in critical_kinds(stack, m.id)


def test_adopting_an_open_position_and_refusing_to_guess(stack):
    import pytest

    from core.errors import FixInput

    stack.prices(BTCUSDT="60000")
    from pybit.unified_trading import HTTP

    s = HTTP(api_key=stack.creds["main"].api_key, api_secret=stack.creds["main"].api_secret, retry_delay=0.05)
    s.endpoint = stack.paper.base_url
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.040")
    # a plan with entries over an open position: refused, nothing placed
    with pytest.raises(FixInput) as err:
        stack.create(conservative_long())
    assert err.value.field == "adopt"
    assert not [o for o in stack.exchange_orders() if o["orderLinkId"].startswith("tg")]
    m = stack.create(
        {
            "account": "main",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "adopt": True,
            "mirror": False,
            "take_profits": [{"price": "62000", "fraction": "0.5"}, {"price": "63000", "fraction": "0.5"}],
            "stop_loss": "58000",
        }
    )
    assert m.phase is Phase.MONITORING and m.built_qty == D("0.040")
    stack.wait(lambda: all(o.status.value == "open" for o in live(stack, m.id).live_orders()))
    assert sum(o.qty for o in live(stack, m.id).live_orders(OrderRole.TP)) == D("0.040")
    stack.wait(lambda: stack.stop_trigger(m.id) == D("58000"), what="the stop")
    if not stack.on_position:
        assert live(stack, m.id).current(OrderRole.SL, 0).qty == D("0.040")
