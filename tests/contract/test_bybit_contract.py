"""One contract, two sources: every test runs against the recorded Bybit answers and the paper
exchange (see conftest.py). What holds for both is what the rest of the system may rely on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import BackOff, ExchangeDown, RetryLater, StopAndAlert, TpslError
from core.models import (
    AmendOrder,
    CancelOrder,
    ErrorKind,
    ExchangeOrderStatus,
    PlaceOrder,
    Side,
    Stage,
)
from exchange.bybit.errors import ClockSkew
from tests.contract.conftest import Venue

D = Decimal
SYM = "BTCUSDT"
MID = "tgcontract01"  # a monitor id's worth of prefix: link ids look like ours


def lid(slot: str, gen: int = 1) -> str:
    return f"tg{MID[2:]}-{slot}-{gen}"


def entry(link: str, price: str = "50000", qty: str = "0.001", **kw) -> PlaceOrder:
    args = dict(
        account="main", monitor_id=MID, link_id=link, symbol=SYM, side=Side.BUY, qty=D(qty), price=D(price)
    )
    args.update(kw)
    return PlaceOrder(**args)


# -------------------------------------------------------------------------------------- reads


def test_snapshot(venue: Venue) -> None:
    venue.open_position(SYM, "Buy", "0.030", "65000")
    venue.add_order(symbol=SYM, side="Sell", qty="0.010", price="70000", link_id=lid("TP1"), reduce_only=True)
    venue.add_order(
        symbol=SYM,
        side="Sell",
        qty="0.030",
        trigger_price="60000",
        trigger_direction=2,
        link_id=lid("SL"),
        reduce_only=True,
        close_on_trigger=True,
    )
    venue.add_order(symbol=SYM, side="Buy", qty="0.001", price="50000", link_id=None)  # by hand
    client = venue.client()
    snap = client.snapshot(venue.account)

    pos = snap.position(SYM, 0)
    assert pos is not None and pos.side is Side.BUY and pos.size == D("0.030")
    assert pos.avg_price == pytest.approx(D("65000"), rel=D("0.01"))
    assert set(snap.open_orders) == {lid("TP1"), lid("SL")}
    tp, sl = snap.open_orders[lid("TP1")], snap.open_orders[lid("SL")]
    assert (tp.side, tp.qty, tp.price, tp.trigger_price, tp.status) == (
        Side.SELL,
        D("0.010"),
        D("70000"),
        None,
        ExchangeOrderStatus.NEW,
    )
    assert tp.reduce_only and tp.order_id
    assert (sl.trigger_price, sl.status, sl.qty) == (D("60000"), ExchangeOrderStatus.UNTRIGGERED, D("0.030"))
    btc = snap.instruments[SYM]
    assert (btc.tick_size, btc.qty_step, btc.min_qty) == (D("0.10"), D("0.001"), D("0.001"))
    assert snap.taken_at <= venue.clock()
    assert venue.calls("/v5/position/list") == 1 and venue.calls("/v5/order/realtime") == 1

    everything = client.open_orders(venue.account)
    assert len(everything) == 3 and sum(1 for o in everything if not o.link_id) == 1


def test_symbol_snapshot(venue: Venue) -> None:
    venue.open_position(SYM, "Sell", "0.010", "65000")
    venue.open_position("ETHUSDT", "Buy", "0.50", "3500")
    snap = venue.client().snapshot(venue.account, symbol="ETHUSDT")
    assert list(snap.positions) == [("ETHUSDT", 0)]
    assert snap.positions[("ETHUSDT", 0)].side is Side.BUY


def test_every_page_of_open_orders(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    for i in range(60):
        venue.add_order(symbol=SYM, side="Buy", qty="0.001", price=str(40000 + 10 * i), link_id=f"page-{i}")
    orders = venue.client().open_orders(venue.account)
    assert sorted(o.link_id for o in orders) == sorted(f"page-{i}" for i in range(60))
    assert venue.calls("/v5/order/realtime") == 2  # 50 + 10


def test_lookup_orders(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    venue.add_order(symbol=SYM, side="Buy", qty="0.002", price="64000", link_id=lid("E1"))
    venue.add_order(symbol=SYM, side="Buy", qty="0.001", price="50000", link_id=lid("E2"))
    venue.finish_order(lid("E1"), SYM, "filled")
    venue.finish_order(lid("E2"), SYM, "cancelled")
    found = venue.client().lookup_orders(venue.account, [lid("E1"), lid("E2"), lid("E3")])
    assert set(found) == {lid("E1"), lid("E2")}
    assert found[lid("E1")].status is ExchangeOrderStatus.FILLED and found[lid("E1")].filled == D("0.002")
    assert found[lid("E2")].status is ExchangeOrderStatus.CANCELLED


def test_a_burst_of_closed_orders_is_looked_up_in_pages_not_one_by_one(venue: Venue) -> None:
    """An order placed long ago that fills now, and 55 newer ones cancelled just before it: all
    are found in the recent-closed pages (50 a page), whatever their age, none one by one."""
    venue.set_price(SYM, "65000")
    venue.add_order(symbol=SYM, side="Buy", qty="0.001", price="50000", link_id="old")
    for i in range(55):
        venue.add_order(symbol=SYM, side="Buy", qty="0.001", price=str(40000 + i), link_id=f"c-{i}")
    for i in range(55):
        venue.finish_order(f"c-{i}", SYM, "cancelled")
    venue.finish_order("old", SYM, "filled")
    before = venue.calls("/v5/order/realtime")
    found = venue.client().lookup_orders(venue.account, ["old", *(f"c-{i}" for i in range(55))])
    assert len(found) == 56
    assert found["old"].status is ExchangeOrderStatus.FILLED
    assert all(found[f"c-{i}"].status is ExchangeOrderStatus.CANCELLED for i in range(55))
    assert venue.calls("/v5/order/realtime") - before <= 2
    assert venue.calls("/v5/order/history") == 0


def test_tickers_and_wallet(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    client = venue.client()
    t = client.tickers()
    assert t[SYM].last_price == D("65000")
    assert venue.calls("/v5/market/tickers") == 1
    w = client.wallet_balance(venue.account)
    assert w.account == "main" and w.equity > 0 and w.available > 0


# ------------------------------------------------------------------------------------- writes


def test_45_intents_go_out_in_3_requests(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    # the recorded answers always say 9 of 10 remain, so the later requests wait for the window:
    # only a call carrying a stop may (exchange.bybit.client.patience), so these are sent as one
    intents = [entry(lid(f"E{i}"), price=str(50000 + i), stage=Stage.STOP) for i in range(1, 46)]
    client = venue.client()
    res = client.place(venue.account, intents)
    assert [r.link_id for r in res] == [i.link_id for i in intents]
    assert all(r.ok for r in res), [r for r in res if not r.ok][:3]
    assert venue.calls("/v5/order/create-batch") == 3
    snap = client.snapshot(venue.account)
    assert {i.link_id for i in intents} <= set(snap.open_orders)
    assert snap.open_orders[lid("E7")].price == D("50007")


def test_partial_batch_failure(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    venue.set_price("ETHUSDT", "3500")
    bad = PlaceOrder(
        account="main",
        monitor_id=MID,
        link_id=lid("TP1"),
        symbol="ETHUSDT",
        side=Side.SELL,
        qty=D("0.10"),
        price=D("3600"),
        reduce_only=True,  # no ETHUSDT position: nothing to reduce
    )
    venue.expect_rejection(lid("TP1"), 110017)
    res = venue.client().place(venue.account, [entry(lid("E1")), bad, entry(lid("E2"))])
    assert [r.ok for r in res] == [True, False, True]
    assert res[1].error is ErrorKind.INVALID_ORDER and res[1].message
    assert venue.calls("/v5/order/create-batch") == 1


def test_idempotent_outcomes(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    client = venue.client()
    acct = venue.account
    assert client.place(acct, [entry(lid("E1"))])[0].ok
    assert client.place(acct, [entry(lid("E1"))])[0].ok  # duplicate orderLinkId: already there
    unchanged = client.amend(acct, [AmendOrder("main", MID, lid("E1"), SYM, price=D("50000"))])
    assert unchanged[0].ok
    unknown = client.amend(acct, [AmendOrder("main", MID, lid("E9"), SYM, price=D("50000"))])
    assert unknown[0].error is ErrorKind.NOT_FOUND
    cancels = client.cancel(
        acct, [CancelOrder("main", MID, lid("E1"), SYM), CancelOrder("main", MID, lid("E8"), SYM)]
    )
    assert [r.ok for r in cancels] == [True, True]
    assert client.cancel(acct, [CancelOrder("main", MID, lid("E1"), SYM)])[0].ok  # already cancelled
    assert lid("E1") not in client.snapshot(acct).open_orders


def test_stop_is_amended_in_place(venue: Venue) -> None:
    venue.open_position(SYM, "Buy", "0.030", "65000")
    client = venue.client()
    acct = venue.account
    stop = PlaceOrder(
        account="main",
        monitor_id=MID,
        link_id=lid("SL"),
        symbol=SYM,
        side=Side.SELL,
        qty=D("0.030"),
        order_type="Market",
        trigger_price=D("60000"),
        trigger_direction=2,
        reduce_only=True,
        close_on_trigger=True,
    )
    tp = PlaceOrder(
        account="main", monitor_id=MID, link_id=lid("TP1"), symbol=SYM, side=Side.SELL, qty=D("0.010"),
        price=D("70000"), reduce_only=True,
    )  # fmt: skip
    assert all(r.ok for r in client.place(acct, [stop, tp]))
    res = client.amend(
        acct,
        [
            AmendOrder(
                "main", MID, lid("SL"), SYM, qty=D("0.020"), trigger_price=D("62000.5"), conditional=True
            ),
            AmendOrder("main", MID, lid("TP1"), SYM, price=D("71000")),
        ],
    )
    assert [r.ok for r in res] == [True, True]
    assert venue.calls("/v5/order/amend") == 1 and venue.calls("/v5/order/amend-batch") == 1
    snap = client.snapshot(acct)
    sl = snap.open_orders[lid("SL")]
    assert (sl.qty, sl.trigger_price) == (D("0.020"), D("62000.5"))
    assert snap.open_orders[lid("TP1")].price == D("71000")


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        ({"ret_code": 10003}, StopAndAlert),
        ({"ret_code": 10005}, StopAndAlert),
        ({"ret_code": 33004}, StopAndAlert),
        ({"ret_code": 10006}, BackOff),
        ({"ret_code": 10016}, RetryLater),
        ({"status": 401}, StopAndAlert),
        ({"status": 403}, BackOff),
        ({"status": 429}, BackOff),
        ({"status": 503, "times": 3}, ExchangeDown),
        ({"status": 502, "times": 3}, ExchangeDown),
        ({"drop": True, "times": 3}, RetryLater),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else v.__name__,
)
def test_every_error_class(venue: Venue, fault: dict, cls: type) -> None:
    venue.fault("/v5/position/list", **fault)
    with pytest.raises(TpslError) as info:
        venue.client().positions(venue.account)
    assert type(info.value) is cls


@pytest.mark.parametrize(("code", "kind"), [(110007, ErrorKind.INVALID_ORDER), (10006, ErrorKind.BACK_OFF)])
def test_whole_batch_refusals_become_per_item_results(venue: Venue, code: int, kind: ErrorKind) -> None:
    venue.set_price(SYM, "65000")
    venue.fault("/v5/order/create-batch", ret_code=code)
    res = venue.client().place(venue.account, [entry(lid("E1")), entry(lid("E2"))])
    assert [r.error for r in res] == [kind, kind]


def test_get_is_retried_post_is_not(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    client = venue.client()
    venue.fault("/v5/position/list", status=502)
    assert client.positions(venue.account) == []
    assert venue.calls("/v5/position/list") == 2
    venue.fault("/v5/order/create-batch", status=502)
    res = client.place(venue.account, [entry(lid("E1"))])
    assert res[0].error is ErrorKind.RETRY_LATER
    assert venue.calls("/v5/order/create-batch") == 1
    assert client.session.stats.attempts == 3


def test_session_is_recreated_after_repeated_failures(venue: Venue) -> None:
    venue.set_price(SYM, "65000")
    client = venue.client(session_recreate_after=3)
    assert client.positions(venue.account) == []
    venue.fault("/v5/order/create-batch", drop=True, times=3)
    for _ in range(3):
        assert client.place(venue.account, [entry(lid("E1"))])[0].error is ErrorKind.RETRY_LATER
    stats = client.session.stats.as_dict()
    assert stats["recreations"] == 1 and stats["errors"]["connection_error"] == 3
    assert client.place(venue.account, [entry(lid("E1"))])[0].ok  # the new session works


def test_connection_reuse_over_1000_calls(venue: Venue) -> None:
    client = venue.client()
    client.positions(venue.account)
    before = venue.connections()
    for _ in range(1000):
        client.positions(venue.account)
    stats = client.session.stats.as_dict()
    assert stats["attempts"] == 1001
    assert stats["reuse_rate"] >= 0.99
    assert venue.connections() - before <= 10  # the server saw (almost) no new connection


def test_rate_limit_back_off(venue: Venue) -> None:
    client = venue.client()
    acct = venue.account
    venue.fault("/v5/order/realtime", ret_code=10006, reset_ms=2000)
    t0 = venue.clock()
    with pytest.raises(BackOff) as info:
        client.open_orders(acct)
    assert t0 < info.value.until <= venue.clock() + 2.5  # the reset time the exchange announced
    client.limiter.max_wait_s = 0.0
    with pytest.raises(BackOff):
        client.open_orders(acct)  # every caller stops before the exchange until the reset
    assert venue.calls("/v5/order/realtime") == 1
    client.positions(acct)  # other endpoint groups go on
    venue.advance(2.6)  # the injected clock passes the reset: no sleeping
    assert client.open_orders(acct) == []
    assert venue.calls("/v5/order/realtime") == 2


def test_timestamp_refusal_is_re_signed_once(venue: Venue) -> None:
    client = venue.client()
    venue.fault("/v5/position/list", ret_code=10002)
    assert client.positions(venue.account) == []
    assert venue.calls("/v5/position/list") == 2
    behind = venue.client(clock=lambda: venue.clock() - 30.0)  # 30 s behind the exchange
    with pytest.raises(ClockSkew):
        behind.positions(venue.account)
    assert venue.calls("/v5/position/list") == 4
