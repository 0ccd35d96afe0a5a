"""BybitClient over real loopback HTTP against the recorded Bybit server (documented answers):
request shapes, call counts, pagination, look-ups, caching, batch semantics, errors, logs, secrets."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal

import pytest

from config.settings import Settings
from core.errors import BackOff, ExchangeDown, FixInput, RetryLater, StopAndAlert, TpslError
from core.models import Account, AmendOrder, CancelOrder, ErrorKind, PlaceOrder, Secret, Side, Stage
from exchange.bybit import BybitClient, build_client
from exchange.bybit.client import patience
from exchange.bybit.errors import ClockSkew
from exchange.bybit.parse import MalformedResponse
from exchange.bybit.session import SessionPool
from tests.plugins.recorded_bybit import TEST_KEY, TEST_SECRET, RecordedBybit

D = Decimal
FAST = {"rate_read_per_s": 1e5, "rate_trade_per_s": 1e5, "rate_batch_orders_per_s": 1e5}


class StepClock:
    """Real time plus an offset the test moves; records every reading."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.readings: list[float] = []

    def __call__(self) -> float:
        t = time.time() + self.offset
        self.readings.append(t)
        return t


def account(
    server: RecordedBybit, key: str = TEST_KEY, secret: str = TEST_SECRET, id: str = "main"
) -> Account:
    return Account(id=id, base_url=server.base_url, api_key=Secret(key), api_secret=Secret(secret))


def client(server: RecordedBybit, clock=time.time, **settings) -> BybitClient:
    s = Settings(**{**FAST, **settings})
    return build_client(server.base_url, s, clock=clock, pool=SessionPool(s))


def place(link: str, **kw) -> PlaceOrder:
    args = {"account": "main", "monitor_id": "m1", "link_id": link, "symbol": "BTCUSDT", "side": Side.SELL}
    args.update(qty=D("0.010"), price=D("65000.1"), reduce_only=True)
    args.update(kw)
    return PlaceOrder(**args)


def bodies(server: RecordedBybit, path: str) -> list:
    return [b for m, p, _, b in server.requests if p == path]


def queries(server: RecordedBybit, path: str) -> list[str]:
    return [q for m, p, q, _ in server.requests if p == path]


# ------------------------------------------------------------------------------------ reads


def test_it_is_an_exchange_port(recorded_bybit: RecordedBybit) -> None:
    from core.ports import ExchangePort

    assert isinstance(client(recorded_bybit), ExchangePort)


def test_snapshot_reads_positions_and_open_orders_as_core_types(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.add_position(symbol="BTCUSDT", side="Buy", size="0.030", avgPrice="60000.5", positionIdx=0)
    srv.add_order(symbol="BTCUSDT", side="Sell", qty="0.010", price="62000", orderLinkId="tgaaaaaaaaaa-TP1-1")
    srv.add_order(
        symbol="BTCUSDT",
        side="Sell",
        orderType="Market",
        qty="0.030",
        price="0",
        orderLinkId="tgaaaaaaaaaa-SL-1",
        orderStatus="Untriggered",
        triggerPrice="58000",
        triggerDirection=2,
        reduceOnly=True,
    )
    srv.add_order(symbol="BTCUSDT", side="Buy", qty="0.001", price="50000")  # placed by hand: no link id
    clock = StepClock()
    c = client(srv, clock)
    snap = c.snapshot(account(srv))
    assert snap.account == "main"
    assert snap.taken_at == clock.readings[0]  # read before the first request was signed
    pos = snap.position("BTCUSDT", 0)
    assert pos is not None and (pos.side, pos.size, pos.avg_price) == (Side.BUY, D("0.030"), D("60000.5"))
    assert set(snap.open_orders) == {"tgaaaaaaaaaa-TP1-1", "tgaaaaaaaaaa-SL-1"}
    sl = snap.open_orders["tgaaaaaaaaaa-SL-1"]
    assert sl.trigger_price == D("58000") and sl.price is None and sl.reduce_only
    assert snap.open_orders["tgaaaaaaaaaa-TP1-1"].trigger_price is None  # "0.00" on a plain order
    assert {"BTCUSDT", "BIOUSDT"} <= set(snap.instruments)
    everything = c.open_orders(account(srv))
    assert len(everything) == 3 and any(o.link_id == "" for o in everything)
    assert queries(srv, "/v5/position/list")[0] == "category=linear&limit=200&settleCoin=USDT"
    assert queries(srv, "/v5/order/realtime")[0] == "category=linear&openOnly=0&limit=50&settleCoin=USDT"


def test_snapshot_costs_the_same_calls_whatever_the_number_of_positions(
    recorded_bybit: RecordedBybit,
) -> None:
    srv = recorded_bybit
    c = client(srv)
    acct = account(srv)
    srv.add_position(symbol="BTCUSDT", side="Buy", size="1", avgPrice="1")
    c.snapshot(acct)
    one = sum(srv.calls.values())
    for i in range(60):
        srv.add_position(symbol=f"S{i}USDT", side="Sell", size="2", avgPrice="3")
        srv.add_order(symbol=f"S{i}USDT", side="Buy", qty="1", price="2", orderLinkId=f"l{i}")
    srv.calls.clear()
    snap = c.snapshot(acct)
    assert len(snap.positions) == 61 and len(snap.open_orders) == 60
    # instruments were cached by the first snapshot: positions + orders (2 pages of 50) only
    assert dict(srv.calls) == {"/v5/position/list": 1, "/v5/order/realtime": 2}
    assert one == 3


def test_every_page_is_read_and_cursors_go_back_untouched(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.page_cap = 2
    for i in range(5):
        srv.add_position(symbol=f"S{i}USDT", side="Buy", size="1", avgPrice="1")
    c = client(srv)
    assert len(c.positions(account(srv))) == 5
    qs = queries(srv, "/v5/position/list")
    assert len(qs) == 3
    assert qs[1].endswith("&cursor=page_args%3D2%26") and qs[2].endswith("&cursor=page_args%3D4%26")


def test_a_large_account_is_read_to_its_last_page(recorded_bybit: RecordedBybit) -> None:
    # 8,000 open orders (2,500 positions at ~3 orders each) are 160 pages of 50: the page guard
    # must not mistake a large account for a cursor that never ends
    srv = recorded_bybit
    srv.page_cap = 2
    for i in range(300):
        srv.add_order(symbol=f"S{i}USDT", side="Buy", qty="1", price="2", orderLinkId=f"l{i}")
    assert len(client(srv).open_orders(account(srv))) == 300  # 150 pages
    assert len(queries(srv, "/v5/order/realtime")) == 150


def test_a_walk_past_the_page_guard_is_malformed(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.page_cap = 1
    for i in range(4):
        srv.add_order(symbol=f"S{i}USDT", side="Buy", qty="1", price="2", orderLinkId=f"l{i}")
    c = client(srv)
    c.max_pages = 3
    with pytest.raises(MalformedResponse, match="more than 3 pages"):
        c.open_orders(account(srv))


def test_symbol_read_uses_symbol_and_drops_flat_rows(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.add_position(symbol="ETHUSDT", side="", size="0", avgPrice="0", positionIdx=1)
    srv.add_position(symbol="ETHUSDT", side="Sell", size="0.5", avgPrice="3000", positionIdx=2)
    c = client(srv)
    snap = c.snapshot(account(srv), symbol="ETHUSDT")
    assert list(snap.positions) == [("ETHUSDT", 2)]
    assert "symbol=ETHUSDT" in queries(srv, "/v5/position/list")[0]
    assert "symbol=ETHUSDT" in queries(srv, "/v5/order/realtime")[0]


def test_lookup_reads_recent_closed_then_one_by_one(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.page_cap = 1
    srv.add_history(orderLinkId="old", orderStatus="Filled", cumExecQty="0.003", symbol="BTCUSDT")
    srv.add_history(orderLinkId="x2", orderStatus="Cancelled", symbol="BTCUSDT")
    srv.add_history(orderLinkId="x1", orderStatus="Filled", cumExecQty="0.003", symbol="BTCUSDT")
    c = client(srv)
    c.closed_pages = 2
    found = c.lookup_orders(account(srv), ["x1", "old", "never"])
    assert set(found) == {"x1", "old"}
    assert found["x1"].filled == D("0.003") and found["old"].status.value == "Filled"
    pages = [q for q in queries(srv, "/v5/order/realtime") if "openOnly=1" in q]
    assert len(pages) == 2 and "/v5/order/history" not in srv.calls
    singles = [q for q in queries(srv, "/v5/order/realtime") if "orderLinkId=" in q]
    assert sorted(singles) == sorted(
        [
            "category=linear&settleCoin=USDT&orderLinkId=never",
            "category=linear&settleCoin=USDT&orderLinkId=old",
        ]
    )


def test_lookup_some_bounds_the_single_lookups(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    c = client(srv)
    found, looked_up = c.lookup_some(account(srv), ["a", "b", "c"], max_single=1)
    assert found == {} and looked_up == {"a"}
    assert srv.calls["/v5/order/realtime"] == 2  # one page of recent closed orders, one single
    assert c.lookup_orders(account(srv), []) == {}


def test_instruments_are_cached_for_the_configured_time(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    clock = StepClock()
    c = client(srv, clock, instruments_cache_s=3600)
    first = c.instruments()
    c.instruments()
    assert srv.calls["/v5/market/instruments-info"] == 1
    clock.offset += 3601  # (public call: no signature window to respect)
    srv.add_instrument("ETHUSDT", tick="0.01", step="0.01", min_qty="0.01", max_qty="1000")
    assert "ETHUSDT" in c.instruments() and "ETHUSDT" not in first
    assert srv.calls["/v5/market/instruments-info"] == 2
    clock.offset += 3601
    srv.fail("/v5/market/instruments-info", "error_10016")
    assert "ETHUSDT" in c.instruments()  # a failed refresh serves the cached filters


def test_instrument_pages(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.page_cap = 1
    c = client(srv)
    assert set(c.instruments()) == {"BIOUSDT", "BTCUSDT"}
    assert srv.calls["/v5/market/instruments-info"] == 2


def test_tickers_one_call(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.set_ticker("BTCUSDT", "65000.5", "65001")
    t = client(srv).tickers()
    assert t["BTCUSDT"].last_price == D("65000.5") and t["BTCUSDT"].mark_price == D("65001")
    assert "BTCUSD" in t and srv.calls["/v5/market/tickers"] == 1
    assert queries(srv, "/v5/market/tickers") == ["category=linear"]


def test_wallet_balance(recorded_bybit: RecordedBybit) -> None:
    w = client(recorded_bybit).wallet_balance(account(recorded_bybit))
    assert w.account == "main" and w.equity == D("3.31216591")
    assert queries(recorded_bybit, "/v5/account/wallet-balance") == ["accountType=UNIFIED"]


def test_executions_are_read_week_by_week(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    now_ms = int(time.time() * 1000)
    day = 24 * 3600 * 1000
    srv.add_execution(execTime=str(now_ms - 9 * day), orderLinkId="a", symbol="BTCUSDT")
    srv.add_execution(execTime=str(now_ms - 1 * day), orderLinkId="b", symbol="BTCUSDT")
    srv.add_execution(execTime=str(now_ms - 20 * day), orderLinkId="too-old", symbol="BTCUSDT")
    got = client(srv).executions(account(srv), since_ms=now_ms - 10 * day)
    assert [e.link_id for e in got] == ["a", "b"]
    assert srv.calls["/v5/execution/list"] == 2


# ----------------------------------------------------------------------------------- writes


def test_place_builds_bodies_from_the_intents(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    c = client(srv)
    stop = place(
        "tgaaaaaaaaaa-SL-1",
        order_type="Market",
        price=None,
        qty=D("0.030"),
        trigger_price=D("58000.0"),
        trigger_direction=2,
        trigger_by="MarkPrice",
        close_on_trigger=True,
        position_idx=1,
    )
    tp = place("tgaaaaaaaaaa-TP1-1", qty=D("0.00001"), time_in_force="PostOnly")
    res = c.place(account(srv), [stop, tp])
    assert [r.ok for r in res] == [True, True] and all(r.order_id for r in res)
    (body,) = bodies(srv, "/v5/order/create-batch")
    assert body["category"] == "linear"
    assert body["request"][0] == {
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Market",
        "qty": "0.030",
        "positionIdx": 1,
        "orderLinkId": "tgaaaaaaaaaa-SL-1",
        "reduceOnly": True,
        "closeOnTrigger": True,
        "triggerPrice": "58000.0",
        "triggerDirection": 2,
        "triggerBy": "MarkPrice",
    }
    assert body["request"][1]["qty"] == "0.00001" and body["request"][1]["price"] == "65000.1"
    assert body["request"][1]["timeInForce"] == "PostOnly" and "triggerPrice" not in body["request"][1]
    snap = c.snapshot(account(srv))  # the echo of what was sent, in Bybit's row format
    assert snap.open_orders["tgaaaaaaaaaa-SL-1"].trigger_price == D("58000.0")


def test_45_intents_are_sent_in_3_chunks_with_results_in_input_order(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    # the recorded answers say few units remain, so the later chunks wait for the window: only a
    # stop's call may (`patience`), so these ride in one
    intents = [place(f"tgaaaaaaaaaa-TP{i}-1", stage=Stage.STOP) for i in range(1, 46)]
    res = client(srv).place(account(srv), intents)
    assert [r.link_id for r in res] == [i.link_id for i in intents]
    assert all(r.ok for r in res)
    assert [len(b["request"]) for b in bodies(srv, "/v5/order/create-batch")] == [20, 20, 5]


def test_partial_batch_failure(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.reject_item("tgaaaaaaaaaa-TP2-1", "error_110094")
    res = client(srv).place(account(srv), [place(f"tgaaaaaaaaaa-TP{i}-1") for i in (1, 2, 3)])
    assert [r.ok for r in res] == [True, False, True]
    assert res[1].error is ErrorKind.INVALID_ORDER and "110094" in res[1].message


def test_idempotent_outcomes_are_successes(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    c = client(srv)
    acct = account(srv)
    assert c.place(acct, [place("tgaaaaaaaaaa-TP1-1")])[0].ok
    again = c.place(acct, [place("tgaaaaaaaaaa-TP1-1")])  # a retried check: 110072
    assert again[0].ok and again[0].error is None
    cancel = c.cancel(
        acct,
        [
            CancelOrder("main", "m1", "tgaaaaaaaaaa-TP1-1", "BTCUSDT"),
            CancelOrder("main", "m1", "gone", "BTCUSDT"),
        ],
    )
    assert [r.ok for r in cancel] == [True, True]  # the second: 170213 Order does not exist
    assert c.cancel(acct, [CancelOrder("main", "m1", "tgaaaaaaaaaa-TP1-1", "BTCUSDT")])[0].ok


def test_amend_plain_in_batch_conditional_one_by_one(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    c = client(srv)
    acct = account(srv)
    c.place(acct, [place("tgaaaaaaaaaa-TP1-1"), place("tgaaaaaaaaaa-TP2-1")])
    c.place(
        acct,
        [
            place(
                "tgaaaaaaaaaa-SL-1",
                order_type="Market",
                price=None,
                trigger_price=D("58000"),
                trigger_direction=2,
            )
        ],
    )
    res = c.amend(
        acct,
        [
            AmendOrder("main", "m1", "tgaaaaaaaaaa-TP1-1", "BTCUSDT", qty=D("0.020")),
            AmendOrder(
                "main",
                "m1",
                "tgaaaaaaaaaa-SL-1",
                "BTCUSDT",
                qty=D("0.020"),
                trigger_price=D("60100"),
                conditional=True,
            ),
            AmendOrder("main", "m1", "tgaaaaaaaaaa-TP2-1", "BTCUSDT", price=D("65000.1")),  # unchanged
            AmendOrder("main", "m1", "tgaaaaaaaaaa-TP9-1", "BTCUSDT", price=D("1")),  # unknown
        ],
    )
    assert [r.link_id for r in res] == [
        "tgaaaaaaaaaa-TP1-1",
        "tgaaaaaaaaaa-SL-1",
        "tgaaaaaaaaaa-TP2-1",
        "tgaaaaaaaaaa-TP9-1",
    ]
    assert [r.ok for r in res] == [True, True, True, False]
    assert res[3].error is ErrorKind.NOT_FOUND
    assert bodies(srv, "/v5/order/amend") == [
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "orderLinkId": "tgaaaaaaaaaa-SL-1",
            "qty": "0.020",
            "triggerPrice": "60100",
        }
    ]
    (batch,) = bodies(srv, "/v5/order/amend-batch")
    assert [i["orderLinkId"] for i in batch["request"]] == [
        "tgaaaaaaaaaa-TP1-1",
        "tgaaaaaaaaaa-TP2-1",
        "tgaaaaaaaaaa-TP9-1",
    ]
    sl = c.snapshot(acct).open_orders["tgaaaaaaaaaa-SL-1"]
    assert (sl.qty, sl.trigger_price) == (D("0.020"), D("60100"))


def test_stop_calls_without_a_batch_form_are_sent_side_by_side(recorded_bybit: RecordedBybit) -> None:
    """Three stop amends of one pass are in flight together: the server answers none until all
    three arrived (sent one after another, the first would wait alone and fail)."""
    srv = recorded_bybit
    c = client(srv)
    acct = account(srv)
    links = [f"tgaaaaaaaaa{n}-SL-1" for n in "abc"]
    for link in links:
        c.place(
            acct,
            [place(link, order_type="Market", price=None, trigger_price=D("58000"), trigger_direction=2)],
        )
    together = threading.Barrier(3)
    srv.before_answer = lambda path: together.wait(timeout=10) if path == "/v5/order/amend" else None
    res = c.amend(
        acct,
        [
            AmendOrder("main", "m1", link, "BTCUSDT", trigger_price=D("58100"), conditional=True)
            for link in links
        ],
    )
    assert [(r.link_id, r.ok) for r in res] == [(link, True) for link in links]
    assert all(r.answered_at is not None for r in res)  # each stamped when its own call returned
    assert not together.broken


@pytest.mark.parametrize(
    ("intent", "field"),
    [
        (place("tgaaaaaaaaaa-TP1-1", price=None), "price"),
        (place("tgaaaaaaaaaa-TP1-1", qty=D("0")), "qty"),
        (place("tgaaaaaaaaaa-TP1-1", qty=D("-1")), "qty"),
        (place("tgaaaaaaaaaa-TP1-1", account="mirror1"), "account"),
        (place("bad id with spaces"), "link_id"),
        (place("x" * 37), "link_id"),
        (place("tgaaaaaaaaaa-TP1-1", order_type="StopLimit"), "order_type"),
        (place("tgaaaaaaaaaa-TP1-1", trigger_price=D("1"), trigger_direction=0), "trigger_direction"),
        (place("tgaaaaaaaaaa-TP1-1", position_idx=3), "position_idx"),
    ],
)
def test_bad_intents_are_refused_without_a_call(
    recorded_bybit: RecordedBybit, intent: PlaceOrder, field: str
) -> None:
    res = client(recorded_bybit).place(account(recorded_bybit), [intent])
    assert res[0].ok is False and res[0].error is ErrorKind.FIX_INPUT
    assert res[0].message.startswith(f"{field}: ")
    assert recorded_bybit.calls == {}


def test_amend_with_nothing_to_change_is_refused(recorded_bybit: RecordedBybit) -> None:
    res = client(recorded_bybit).amend(
        account(recorded_bybit), [AmendOrder("main", "m1", "tgaaaaaaaaaa-TP1-1", "BTCUSDT")]
    )
    assert res[0].error is ErrorKind.FIX_INPUT and recorded_bybit.calls == {}


def test_close_position_idiom_qty_zero_is_allowed() -> None:
    from exchange.bybit.client import _create_item

    item = _create_item(
        place("tgaaaaaaaaaa-SL-1", qty=D("0"), order_type="Market", price=None, close_on_trigger=True)
    )
    assert item["qty"] == "0"
    with pytest.raises(FixInput, match="qty"):
        _create_item(place("tgaaaaaaaaaa-SL-1", qty=D("0"), reduce_only=False))


def test_a_failed_chunk_stops_the_later_ones(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.fail("/v5/order/create-batch", "error_10006", reset_in_ms=60_000)
    c = client(srv)
    res = c.place(account(srv), [place(f"tgaaaaaaaaaa-TP{i}-1") for i in range(1, 31)])
    assert all(r.error is ErrorKind.BACK_OFF for r in res)
    assert all(r.message.startswith("not sent") for r in res[20:])
    assert srv.calls["/v5/order/create-batch"] == 1
    # the back-off is recorded: the next attempt does not reach the exchange
    again = c.place(account(srv), [place("tgaaaaaaaaaa-TP1-1")])
    assert again[0].error is ErrorKind.BACK_OFF and srv.calls["/v5/order/create-batch"] == 1
    assert c.snapshot(account(srv)).account == "main"  # reads are another group


def test_only_a_stop_waits_for_the_rate_window(recorded_bybit: RecordedBybit) -> None:
    """A full window: a take-profit create is answered "back off" at once (the next pass sends it),
    a stop's create waits for the window (bounded) and is sent."""
    srv = recorded_bybit
    c = client(srv, rate_batch_orders_per_s=10, rate_headroom=0.8)  # 8 items per rolling second
    slept: list[float] = []
    c.limiter._sleep = lambda s: (slept.append(s), time.sleep(s))  # type: ignore[attr-defined]
    acct = account(srv)
    assert all(r.ok for r in c.place(acct, [place(f"tgaaaaaaaaaa-TP{i}-1") for i in range(1, 9)]))
    tp = c.place(acct, [place("tgaaaaaaaaaa-TP9-1")])
    assert tp[0].error is ErrorKind.BACK_OFF and slept == []
    assert srv.calls["/v5/order/create-batch"] == 1
    stop = place(
        "tgaaaaaaaaaa-SL-1",
        price=None,
        order_type="Market",
        trigger_price=D("59000"),
        trigger_direction=2,
        stage=Stage.STOP,
    )
    assert c.place(acct, [stop])[0].ok
    assert slept and srv.calls["/v5/order/create-batch"] == 2


@pytest.mark.parametrize(
    ("stages", "want"),
    [
        ((Stage.STOP,), None),
        ((Stage.RAISE,), 0.0),
        ((Stage.CANCEL, Stage.LOWER), 0.0),
        ((Stage.RAISE, Stage.STOP), None),
    ],
)
def test_patience_of_a_call(stages, want) -> None:
    assert patience([place(f"tgaaaaaaaaaa-TP{n}-1", stage=st) for n, st in enumerate(stages, 1)]) == want


def test_post_502_is_not_retried_and_reported_per_item(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.fail("/v5/order/create-batch", status=502)
    res = client(srv).place(account(srv), [place("tgaaaaaaaaaa-TP1-1")])
    assert res[0].error is ErrorKind.RETRY_LATER and srv.calls["/v5/order/create-batch"] == 1


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "cls"),
    [
        ({"fixture": "error_10003"}, StopAndAlert),
        ({"fixture": "error_10005"}, StopAndAlert),
        ({"fixture": "error_33004"}, StopAndAlert),
        ({"fixture": "error_10006", "reset_in_ms": 500}, BackOff),
        ({"fixture": "error_10016"}, RetryLater),
        ({"status": 401}, StopAndAlert),
        ({"status": 403, "body": b"access too frequent"}, BackOff),
        ({"status": 429}, BackOff),
        ({"status": 503, "times": 3}, ExchangeDown),
        ({"status": 502, "times": 3}, ExchangeDown),
        ({"status": 200, "body": b"<html>oops</html>"}, RetryLater),
        ({"kind": "drop", "times": 3}, RetryLater),
    ],
)
def test_read_failures_raise_the_mapped_error(recorded_bybit: RecordedBybit, fault: dict, cls: type) -> None:
    recorded_bybit.fail("/v5/position/list", **fault)
    with pytest.raises(TpslError) as info:
        client(recorded_bybit).positions(account(recorded_bybit))
    assert type(info.value) is cls


def test_10006_back_off_holds_until_the_reset(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    clock = StepClock()
    srv.clock = clock
    srv.fail("/v5/position/list", "error_10006", reset_in_ms=300)
    c = client(srv, clock)
    acct = account(srv)
    with pytest.raises(BackOff) as first:
        c.positions(acct)
    assert first.value.until == pytest.approx(clock.readings[-1] + 0.3, abs=0.1)
    c.limiter.max_wait_s = 0.0
    with pytest.raises(BackOff):
        c.positions(acct)  # stopped before the exchange
    assert srv.calls["/v5/position/list"] == 1
    clock.offset += 0.35  # no sleeping: the clock moves
    assert c.positions(acct) == []
    assert srv.calls["/v5/position/list"] == 2


def test_10002_is_re_signed_and_sent_once_more(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    srv.fail("/v5/position/list", "error_10002_window")
    assert client(srv).positions(account(srv)) == []
    assert srv.calls["/v5/position/list"] == 2
    ts = [r for r in srv.requests if r[1] == "/v5/position/list"]
    assert len(ts) == 2


def test_a_skewed_clock_gives_clock_skew_after_one_re_sign(recorded_bybit: RecordedBybit) -> None:
    srv = recorded_bybit
    skewed = lambda: time.time() - 30  # noqa: E731
    with pytest.raises(ClockSkew):
        client(srv, skewed).positions(account(srv))
    assert srv.calls["/v5/position/list"] == 2


# ------------------------------------------------------------------------------ logs, secrets


def test_one_info_line_per_exchange_call(recorded_bybit: RecordedBybit, caplog) -> None:
    srv = recorded_bybit
    c = client(srv)
    with caplog.at_level(logging.INFO, logger="exchange.bybit.client"):
        c.positions(account(srv))
        srv.fail("/v5/order/realtime", "error_10016")
        with pytest.raises(RetryLater):
            c.open_orders(account(srv))
    lines = [r.getMessage() for r in caplog.records if r.name == "exchange.bybit.client"]
    assert len(lines) == 2
    assert lines[0].startswith("GET /v5/position/list account=main status=200 retCode=0 ms=")
    assert lines[1].startswith("GET /v5/order/realtime account=main status=200 retCode=10016 ms=")
    assert "error=retry_later" in lines[1]


def _texts(exc: BaseException) -> list[str]:
    out = []
    while exc is not None:
        out += [str(exc), repr(exc), *map(str, getattr(exc, "args", ()))]
        exc = exc.__cause__ or exc.__context__
    return out


def test_keys_and_secrets_never_show(recorded_bybit: RecordedBybit, caplog) -> None:
    """Every log record (any logger, DEBUG up), every exception text, stats and reprs, across
    successes and failures — including Bybit's 10004 answer, which echoes the signed text."""
    srv = recorded_bybit
    texts: list[str] = []
    pool = SessionPool(Settings(**FAST, session_recreate_after=2))
    c = build_client(srv.base_url, pool.settings, pool=pool)
    good = account(srv)
    wrong_secret = account(srv, secret="WrOnGsEcReT-0000000000")
    wrong_key = account(srv, key="WrOnGkEy-1111111111")
    with caplog.at_level(logging.DEBUG):
        c.snapshot(good)
        c.place(good, [place("tgaaaaaaaaaa-TP1-1")])
        c.amend(
            good, [AmendOrder("main", "m1", "tgaaaaaaaaaa-TP1-1", "BTCUSDT", price=D("1"), conditional=True)]
        )
        c.cancel(good, [CancelOrder("main", "m1", "tgaaaaaaaaaa-TP1-1", "BTCUSDT")])
        for acct in (wrong_secret, wrong_key):
            with pytest.raises(StopAndAlert) as info:
                c.positions(acct)
            texts += _texts(info.value)
            texts += [r.message for r in c.place(acct, [place("tgaaaaaaaaaa-TP2-1")])]
        for fault in ({"kind": "drop", "times": 3}, {"status": 502, "times": 3}, {"fixture": "error_10006"}):
            srv.fail("/v5/position/list", **fault)
            with pytest.raises(TpslError) as info:
                c.positions(good)
            texts += _texts(info.value)
        srv.fail("/v5/order/create-batch", kind="drop")
        texts += [r.message for r in c.place(good, [place("tgaaaaaaaaaa-TP3-1")])]
    # the wrong-secret call really got the echo back from the server, key included
    assert any("origin_string" in t for t in texts)
    texts += [caplog.text, *(r.getMessage() for r in caplog.records), json.dumps(pool.stats())]
    texts += [repr(c), repr(good), str(good), repr(pool.session(srv.base_url).stats.as_dict())]
    blob = "\n".join(texts)
    for secret in (TEST_KEY, TEST_SECRET, "WrOnGsEcReT-0000000000", "WrOnGkEy-1111111111"):
        assert secret not in blob
    assert len(caplog.records) > 10
