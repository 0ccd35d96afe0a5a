"""Scenario walks: a monitor along a price path over the paper engine, with asserts after every step
(freqtrade's test_adjust_stop_loss style). Pure: no network, no Redis, no clock but the walk's. They
run in the suite's stop mode (TPSL_TEST_STOP_MODE): the stop is read with `w.stop_trigger` and
`w.stop_covers`, which mean the same in both modes."""

from __future__ import annotations

from decimal import Decimal as D

from core.models import BreakevenState, CloseReason, OrderRole, Phase, Side

from .walk import Walk

BTC = "BTCUSDT"
ETH = "ETHUSDT"


def long_plan(**over):
    plan = {
        "account": "main",
        "symbol": BTC,
        "side": "Buy",
        "preset": "conservative",
        "entries": [
            {"price": "60000", "qty": "0.010"},
            {"price": "59500", "qty": "0.010"},
            {"price": "59000", "qty": "0.010"},
        ],
        "take_profits": [
            {"price": "62000", "fraction": "0.85"},
            {"price": "63000", "fraction": "0.05"},
            {"price": "64000", "fraction": "0.05"},
            {"price": "65000", "fraction": "0.05"},
        ],
        "stop_loss": "58000",
        "breakeven_after": 1,
    }
    plan.update(over)
    return plan


def short_plan(**over):
    plan = {
        "account": "main",
        "symbol": ETH,
        "side": "Sell",
        "preset": "conservative",
        "entries": [
            {"price": "3000", "qty": "1.00"},
            {"price": "3030", "qty": "1.00"},
            {"price": "3060", "qty": "1.00"},
        ],
        "take_profits": [
            {"price": "2900", "fraction": "0.85"},
            {"price": "2850", "fraction": "0.05"},
            {"price": "2800", "fraction": "0.05"},
            {"price": "2750", "fraction": "0.05"},
        ],
        "stop_loss": "3150",
        "breakeven_after": 1,
    }
    plan.update(over)
    return plan


def test_conservative_long_walk():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    m = w.open(long_plan(), "longwalk01")
    assert m.phase is Phase.BUILDING and len(w.exchange_orders(BTC)) == 3
    assert w.stop_trigger(BTC) is None  # no position, no stop yet (a reduce-only stop would be refused)

    w.price(BTC, "59990")  # E1 fills
    assert w.position(BTC) == D("0.010")
    assert w.stop_covers(BTC, D("0.030"))  # the stop covers the whole plan from the first fill
    assert w.stop_trigger(BTC) == D("58000")
    assert sum(q for _, q in w.ladder_on_exchange(BTC)) == D("0.010")  # the ladder follows the filled size

    w.price(BTC, "59450")  # E2 fills
    assert w.position(BTC) == D("0.020")
    assert sum(q for _, q in w.ladder_on_exchange(BTC)) == D("0.020")
    assert w.stop_covers(BTC, D("0.030"))
    assert w.m(m.id).phase is Phase.BUILDING

    w.price(BTC, "62050")  # TP1 fills before E3: entries are cancelled, the stop moves to breakeven
    w.check()  # the next read confirms the stop at breakeven
    mm = w.m(m.id)
    assert mm.tp_hits == (1,) and mm.phase is Phase.PROFIT_TAKING
    assert not mm.live_orders(OrderRole.ENTRY) and mm.entries_closed
    assert f"tg{m.id}-E3-1" not in w.exchange_orders(BTC)
    assert mm.breakeven is BreakevenState.DONE
    be = D("59750") * D("1.0008")  # avg entry × (1 + fee buffer), up to the tick
    assert w.stop_trigger(BTC) == D("59797.8") > be - D("0.1")
    remaining = w.position(BTC)
    assert w.stop_covers(BTC, remaining)  # the stop shrank to what is left
    assert sum(q for _, q in w.ladder_on_exchange(BTC)) == remaining

    for price, hits in (("63050", (1, 2)), ("64050", (1, 2, 3))):
        w.price(BTC, price)
        assert w.m(m.id).tp_hits == hits
        assert w.stop_covers(BTC, w.position(BTC))
        assert w.stop_trigger(BTC) == D("59797.8")  # never moves down

    w.price(BTC, "65050")
    w.settle()
    mm = w.m(m.id)
    assert mm.phase is Phase.CLOSED and mm.closed_reason is CloseReason.TP_COMPLETE
    assert w.position(BTC) == 0 and w.exchange_orders(BTC) == {}
    assert w.events(m.id).count("tp_hit") == 4 and w.events(m.id).count("position_closed") == 1


def test_conservative_short_walk():
    w = Walk()
    w.engine.set_prices({ETH: D("2980")})
    m = w.open(short_plan(), "shortwalk1")
    for price, size in (("3001", "1.00"), ("3031", "2.00"), ("3061", "3.00")):
        w.price(ETH, price)
        assert w.position(ETH) == D(size)
        assert w.stop_trigger(ETH) == D("3150") and w.stop_covers(ETH, D("3.00"))
        if not w.on_position:
            assert w.stop_on_exchange(ETH).side is Side.BUY
    assert w.m(m.id).phase is Phase.MONITORING
    w.price(ETH, "2899")
    w.check()
    mm = w.m(m.id)
    assert mm.breakeven is BreakevenState.DONE
    assert w.stop_trigger(ETH) == D("3027.57")  # 3030 × (1 − 0.0008), down to the tick
    for price in ("2849", "2799"):
        w.price(ETH, price)
        assert w.stop_trigger(ETH) == D("3027.57")  # a short's stop never moves up
    w.price(ETH, "2749")
    w.settle()
    assert w.m(m.id).closed_reason is CloseReason.TP_COMPLETE and w.position(ETH) == 0


def test_fast_long_walk():
    w = Walk()
    w.engine.set_prices({"SOLUSDT": D("150")})
    m = w.open(
        {
            "account": "main",
            "symbol": "SOLUSDT",
            "side": "Buy",
            "preset": "fast",
            "entries": {"type": "market", "qty": "10"},
            "take_profits": [{"price": "160"}],
            "stop_loss": "140",
        },
        "fastwalk01",
    )
    assert w.position("SOLUSDT") == D("10")  # the market entry filled at once
    w.check()
    assert w.m(m.id).phase is Phase.MONITORING
    assert w.stop_covers("SOLUSDT", D("10"))
    assert w.ladder_on_exchange("SOLUSDT") == [(D("160.000"), D("10.0"))]
    w.price("SOLUSDT", "161")
    w.settle()
    assert w.m(m.id).closed_reason is CloseReason.TP_COMPLETE
    assert w.exchange_orders("SOLUSDT") == {}


def test_stop_loss_before_tp1():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    m = w.open(long_plan(), "slwalk0001")
    w.price(BTC, "59990")
    w.price(BTC, "57900")  # through E2, E3 and the stop in one move: entries first, then the stop
    w.settle()
    mm = w.m(m.id)
    assert mm.phase is Phase.CLOSED and mm.closed_reason is CloseReason.STOP_LOSS
    assert "sl_hit" in w.events(m.id)
    assert w.position(BTC) == 0 and w.exchange_orders(BTC) == {}


def test_stop_after_breakeven_is_a_breakeven_stop():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    m = w.open(long_plan(), "bewalk0001")
    for price in ("59990", "59450", "58950", "62050"):
        w.price(BTC, price)
    w.check()
    assert w.m(m.id).breakeven is BreakevenState.DONE
    w.price(BTC, "59000")
    w.settle()
    assert w.m(m.id).closed_reason is CloseReason.BREAKEVEN_STOP
    assert w.position(BTC) == 0


def test_partial_fill_of_a_take_profit_is_a_fill():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    m = w.open(long_plan(), "pfwalk0001")
    for price in ("59990", "59450", "58950"):
        w.price(BTC, price)
    assert w.position(BTC) == D("0.030")
    w.price(BTC, "62000", max_fill="0.010")  # TP1 (0.025) fills only 0.010
    mm = w.m(m.id)
    tp1 = mm.current(OrderRole.TP, 1)
    # the price reached TP1: the level is hit at its first fill, partial or full
    assert tp1.filled == D("0.010") and mm.tp_hits == (1,)
    assert w.events(m.id).count("tp_hit") == 1
    assert not mm.live_orders(OrderRole.ENTRY)  # any TP fill closes the entries
    assert w.stop_covers(BTC, D("0.020"))  # the stop follows the partial fill
    # the rest of TP1's share stays at TP1 (it is not handed to the later levels)
    assert (D("62000.0"), D("0.015")) in w.ladder_on_exchange(BTC)
    assert sum(q for _, q in w.ladder_on_exchange(BTC)) == D("0.020")
    w.check()
    assert w.m(m.id).breakeven is BreakevenState.DONE  # breakeven follows TP1's first fill
    w.price(BTC, "62010")
    w.check()
    assert w.events(m.id).count("tp_hit") == 1  # later fills of TP1 are partial fills
    assert "partial_fill" in w.events(m.id)


def test_manual_close_needs_two_reads_then_cancels_everything():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    m = w.open(long_plan(), "manwalk001")
    for price in ("59990", "59450", "58950"):
        w.price(BTC, price)
    # the trader closes the position by hand (a market order of their own)
    from exchange.paper.commands import OrderRequest

    w.engine.place_order(
        w.paper_account,
        OrderRequest(symbol=BTC, side=Side.SELL, order_type="Market", qty=D("0.030"), reduce_only=True),
    )
    assert w.position(BTC) == 0
    w.check()
    w.settle()
    mm = w.m(m.id)
    assert mm.phase is Phase.CLOSED and mm.closed_reason is CloseReason.MANUAL
    assert w.exchange_orders(BTC) == {}


def test_order_cancelled_from_outside_is_repaired():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    m = w.open(long_plan(), "repwalk001")
    for price in ("59990", "59450", "58950"):
        w.price(BTC, price)
    w.remove_stop_by_hand(BTC)  # someone cancels our stop (or clears the position's stop-loss)
    assert w.stop_trigger(BTC) is None
    w.check()
    assert w.stop_trigger(BTC) == D("58000") and w.stop_covers(BTC, D("0.030"))
    if w.on_position:
        assert w.m(m.id).stop_resets == 1  # set again, counted
    else:
        assert w.stop_on_exchange(BTC).link_id == f"tg{m.id}-SL-2"
        assert w.m(m.id).repairs == 1
    tp2 = w.m(m.id).current(OrderRole.TP, 2)
    w.engine.cancel_order(w.paper_account, BTC, link_id=tp2.link_id)
    w.check()
    assert f"tg{m.id}-TP2-2" in w.exchange_orders(BTC)


def test_hedge_mode_guards_both_sides_independently():
    w = Walk(hedge=True)
    w.engine.set_prices({BTC: D("60500")})
    lng = w.open(long_plan(position_idx=1), "hedgelong1")
    sht = w.open(
        {
            "account": "main",
            "symbol": BTC,
            "side": "Sell",
            "position_idx": 2,
            "entries": [{"price": "61000", "qty": "0.010"}],
            "take_profits": [{"price": "59800", "fraction": "1"}],
            "stop_loss": "62500",
        },
        "hedgeshrt1",
    )
    w.price(BTC, "61050")  # the short's entry fills
    w.price(BTC, "59990")  # the long's E1 fills; the short's TP (59800) is not reached
    assert w.position(BTC, 1) == D("0.010") and w.position(BTC, 2) == D("0.010")
    assert w.stop_trigger(BTC, 1) == D("58000") and w.stop_trigger(BTC, 2) == D("62500")
    if not w.on_position:
        stops = {o.position_idx: o for o in w.exchange_orders(BTC).values() if o.trigger_price}
        assert stops[1].side is Side.SELL and stops[2].side is Side.BUY
    w.price(BTC, "59750")  # the short's TP fills: only the short closes
    w.settle()
    assert w.m(sht.id).phase is Phase.CLOSED and w.m(sht.id).closed_reason is CloseReason.TP_COMPLETE
    assert w.m(lng.id).phase is not Phase.CLOSED
    assert w.position(BTC, 1) > 0  # the long is untouched
    assert all(o.position_idx == 1 for o in w.exchange_orders(BTC).values())


def test_adopting_an_open_position():
    w = Walk()
    w.engine.set_prices({BTC: D("60000")})
    from exchange.paper.commands import OrderRequest

    w.engine.place_order(
        w.paper_account, OrderRequest(symbol=BTC, side=Side.BUY, order_type="Market", qty=D("0.040"))
    )
    m = w.open(
        {
            "account": "main",
            "symbol": BTC,
            "side": "Buy",
            "adopt": True,
            "take_profits": [{"price": "62000", "fraction": "0.5"}, {"price": "63000", "fraction": "0.5"}],
            "stop_loss": "58000",
        },
        "adoptwalk1",
    )
    assert m.phase is Phase.MONITORING and m.built_qty == D("0.040")
    assert w.stop_covers(BTC, D("0.040")) and w.stop_trigger(BTC) == D("58000")
    assert w.ladder_on_exchange(BTC) == [(D("62000.0"), D("0.020")), (D("63000.0"), D("0.020"))]
    # the trader adds to the position by hand: the ladder and the stop follow once a second read confirms
    w.engine.place_order(
        w.paper_account, OrderRequest(symbol=BTC, side=Side.BUY, order_type="Market", qty=D("0.020"))
    )
    w.check()
    w.check()
    assert w.stop_covers(BTC, D("0.060"))
    assert sum(q for _, q in w.ladder_on_exchange(BTC)) == D("0.060")


def test_a_mirror_follows_its_mains_breakeven():
    w = Walk()
    w.engine.set_prices({BTC: D("60500")})
    main = w.open(
        long_plan(
            take_profits=[{"price": "62000", "fraction": "0.5"}, {"price": "63000", "fraction": "0.5"}]
        ),
        "mainmon001",
    )
    for price in ("59990", "59450", "58950", "62050"):
        w.price(BTC, price)
    w.check()
    assert w.m(main.id).breakeven is BreakevenState.DONE
    # a mirror whose own TP1 did not fill (here: a monitor with a TP1 out of reach) follows the main
    from dataclasses import replace

    follower = replace(
        w.m(main.id),
        id="mirrmon001",
        mirror_of=main.id,
        breakeven=BreakevenState.NONE,
        breakeven_price=None,
        tp_hits=(),
    )
    from core.step import step

    snap = w.read([follower])
    d = step(follower, snap, w.t, leader=w.m(main.id))
    assert d.monitor.breakeven is BreakevenState.PENDING
    assert d.monitor.breakeven_price == w.m(main.id).breakeven_price
