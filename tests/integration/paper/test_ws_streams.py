"""The paper exchange's WebSocket streams over real loopback: the private stream (auth, refusals,
subscribe/unsubscribe, topic styles, ping/pong, pushes for every engine change in engine order),
the public tickers stream (snapshot, then deltas of changed fields), the idle cut-off, and the
stream faults (drop, stall, lose, delay, refuse auth; seeded and counted)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from exchange.paper.runner import PaperAdminError, PaperCredentials, PaperServer
from tests.integration.paper.v5client import V5Client
from tests.integration.paper.wsclient import WsTestClient, auth_args
from tests.plugins.paper import PaperHandle

PRIVATE = "/v5/private"
PUBLIC = "/v5/public/linear"
ALL = ["order", "execution", "position", "wallet"]


@pytest.fixture
def creds(paper: PaperHandle) -> PaperCredentials:
    return paper.new_account()


@pytest.fixture
def v5(paper: PaperHandle, creds: PaperCredentials) -> V5Client:
    return V5Client(paper.base_url, creds)


@pytest.fixture
def private(paper: PaperHandle, creds: PaperCredentials) -> Iterator[WsTestClient]:
    with WsTestClient(paper.base_url, PRIVATE) as ws:
        assert ws.auth(creds.api_key, creds.api_secret)["success"] is True
        yield ws


def subscribed(ws: WsTestClient, topics: list[str], req_id: str = "sub-1") -> dict:
    ack = ws.request({"op": "subscribe", "req_id": req_id, "args": topics})
    assert ack["success"] is True, ack
    return ack


def place(v5: V5Client, **fields: str) -> str:
    body = {"category": "linear", "symbol": "BTCUSDT", **fields}
    answer = v5.post("/v5/order/create", **body)
    assert answer["retCode"] == 0, answer
    return answer["result"]["orderId"]


# ------------------------------------------------------------------------------------ auth


def test_auth_answers_like_bybit(paper: PaperHandle, creds: PaperCredentials) -> None:
    with WsTestClient(paper.base_url, PRIVATE) as ws:
        reply = ws.request({"op": "auth", "req_id": "a1", "args": auth_args(creds.api_key, creds.api_secret)})
        assert reply["success"] is True and reply["ret_msg"] == "" and reply["op"] == "auth"
        assert reply["req_id"] == "a1" and reply["conn_id"].endswith("-p")
        again = ws.auth(creds.api_key, creds.api_secret)
        assert (again["success"], again["ret_msg"]) == (False, "Request already authorized")


@pytest.mark.parametrize(
    "case, message",
    [
        ("expired", "Params Error"),
        ("bad-signature", "Request not authorized"),
        ("unknown-key", "Request not authorized"),
        ("malformed", "Params Error"),
    ],
)
def test_auth_refusals(paper: PaperHandle, creds: PaperCredentials, case: str, message: str) -> None:
    now = int(time.time() * 1000)
    args = {
        "expired": auth_args(creds.api_key, creds.api_secret, now - 1),
        "bad-signature": auth_args(creds.api_key, "not-the-secret"),
        "unknown-key": auth_args("nobody", creds.api_secret),
        "malformed": [creds.api_key, "soon"],
    }[case]
    with WsTestClient(paper.base_url, PRIVATE) as ws:
        reply = ws.request({"op": "auth", "args": args})
        assert (reply["success"], reply["ret_msg"], reply["op"]) == (False, message, "auth")
        # the connection stays usable: a private subscribe is refused until auth succeeds
        refused = ws.request({"op": "subscribe", "req_id": "x", "args": ["order"]})
        assert (refused["success"], refused["ret_msg"]) == (False, "Request not authorized")
        assert ws.auth(creds.api_key, creds.api_secret)["success"] is True


# ------------------------------------------------------------------------------ subscribe


def test_subscribe_topics_styles_and_refusals(private: WsTestClient) -> None:
    ack = subscribed(private, ["order", "execution.linear"], "req-42")
    assert ack == {
        "success": True,
        "ret_msg": "",
        "conn_id": ack["conn_id"],
        "req_id": "req-42",
        "op": "subscribe",
    }
    mixed = private.request({"op": "subscribe", "req_id": "m", "args": ["position.linear", "position"]})
    assert mixed["success"] is False and "cannot be subscribed together" in mixed["ret_msg"]
    twice = private.request({"op": "subscribe", "req_id": "t", "args": ["execution.linear"]})
    assert (twice["success"], twice["ret_msg"]) == (False, "error:already subscribed,topic:execution.linear")
    unknown = private.request({"op": "subscribe", "req_id": "u", "args": ["orders"]})
    assert (unknown["success"], unknown["ret_msg"]) == (False, "error:handler not found,topic:orders")
    bye = private.request({"op": "unsubscribe", "req_id": "b", "args": ["order"]})
    assert (bye["success"], bye["req_id"], bye["op"]) == (True, "b", "unsubscribe")
    gone = private.request({"op": "unsubscribe", "req_id": "g", "args": ["order"]})
    assert (gone["success"], gone["ret_msg"]) == (False, "error:not subscribed,topic:order")


def test_twin_topics_in_separate_requests_both_push(private: WsTestClient, v5: V5Client) -> None:
    """Bybit refuses an all-in-one topic and its categorised twin in one request only."""
    subscribed(private, ["order"], "a")
    subscribed(private, ["order.linear"], "b")
    order_id = place(v5, side="Buy", orderType="Limit", qty="0.010", price="60000")
    pushes = private.pushes(2)
    assert sorted(p["topic"] for p in pushes) == ["order", "order.linear"]
    assert all(p["data"][0]["orderId"] == order_id for p in pushes)


def test_ping_pong_private_and_public(paper: PaperHandle, private: WsTestClient) -> None:
    pong = private.request({"op": "ping", "req_id": "p1"})
    assert pong["op"] == "pong" and pong["req_id"] == "p1" and int(pong["args"][0]) > 1_600_000_000_000
    assert "req_id" not in private.request({"op": "ping"})
    with WsTestClient(paper.base_url, PUBLIC) as public:
        pong = public.request({"op": "ping"})
        assert pong == {
            "success": True,
            "ret_msg": "pong",
            "conn_id": pong["conn_id"],
            "req_id": "",
            "op": "ping",
        }


def test_fast_execution_topic(private: WsTestClient, v5: V5Client) -> None:
    subscribed(private, ["execution.fast", "execution"])
    order_id = place(v5, side="Buy", orderType="Market", qty="0.010", orderLinkId="fast-1")
    fast, full = private.pushes(2)
    assert (fast["topic"], full["topic"]) == ("execution.fast", "execution")  # the fast one first
    (row,) = fast["data"]
    fast_fields = "category symbol orderId orderLinkId execId execPrice execQty side execTime seq"
    assert sorted(row) == sorted(fast_fields.split())
    assert (row["orderId"], row["orderLinkId"], row["execQty"]) == (order_id, "fast-1", "0.010")
    assert "id" not in fast and row["execId"] == full["data"][0]["execId"]


# --------------------------------------------------------------------------------- pushes


def test_market_fill_pushes_execution_order_position_wallet(private: WsTestClient, v5: V5Client) -> None:
    subscribed(private, ALL)
    order_id = place(v5, side="Buy", orderType="Market", qty="0.010")
    pushes = private.pushes(4)
    assert [p["topic"] for p in pushes] == ["execution", "order", "position", "wallet"]
    for p in pushes:
        assert isinstance(p["id"], str) and isinstance(p["creationTime"], int)
    (fill,) = pushes[0]["data"]
    assert fill["category"] == "linear" and fill["orderId"] == order_id and fill["execQty"] == "0.010"
    assert fill["execPnl"] == "0" and fill["execType"] == "Trade" and fill["isMaker"] is False
    (order,) = pushes[1]["data"]
    assert (order["category"], order["orderStatus"], order["cumExecQty"]) == ("linear", "Filled", "0.010")
    (pos,) = pushes[2]["data"]
    assert (pos["side"], pos["size"], pos["entryPrice"], pos["category"]) == (
        "Buy",
        "0.010",
        "65000",
        "linear",
    )
    (wallet,) = pushes[3]["data"]
    assert wallet["accountType"] == "UNIFIED" and wallet["coin"][0]["coin"] == "USDT"
    # the REST rows say the same as the pushes
    (rest_order,) = v5.get("/v5/order/realtime", category="linear", symbol="BTCUSDT", openOnly=1)["result"][
        "list"
    ]
    assert {k: v for k, v in order.items() if k != "category"} == rest_order


def test_every_change_is_pushed_in_engine_order(
    paper: PaperHandle, private: WsTestClient, v5: V5Client
) -> None:
    subscribed(private, ["order.linear", "execution.linear"])
    order_id = place(v5, side="Buy", orderType="Limit", qty="0.010", price="64000", orderLinkId="w-1")
    assert private.recv()["data"][0]["orderStatus"] == "New"
    assert (
        v5.post("/v5/order/amend", category="linear", symbol="BTCUSDT", orderId=order_id, price="64100")[
            "retCode"
        ]
        == 0
    )
    amended = private.recv()
    assert amended["topic"] == "order.linear" and amended["data"][0]["price"] == "64100.00"
    paper.admin.set_prices({"BTCUSDT": "64100"}, max_fill_qty={"BTCUSDT": "0.004"})
    partial = private.pushes(2)
    assert [p["topic"] for p in partial] == ["execution.linear", "order.linear"]
    assert (
        partial[1]["data"][0]["orderStatus"] == "PartiallyFilled" and partial[0]["data"][0]["isMaker"] is True
    )
    paper.admin.set_prices({"BTCUSDT": "64000"})
    full = private.pushes(2)
    assert full[1]["data"][0]["orderStatus"] == "Filled" and full[0]["data"][0]["execQty"] == "0.006"
    stop_id = place(
        v5, side="Sell", orderType="Market", qty="0.010", triggerPrice="63000", triggerDirection="2",
        reduceOnly="true", closeOnTrigger="true",
    )  # fmt: skip
    assert private.recv()["data"][0]["orderStatus"] == "Untriggered"
    paper.admin.set_prices({"BTCUSDT": "62900"})
    fired = private.pushes(2)
    assert [p["topic"] for p in fired] == ["execution.linear", "order.linear"]
    triggered, stop = fired[1]["data"]  # the passing Triggered state, then the final one
    assert (triggered["orderId"], triggered["orderStatus"]) == (stop_id, "Triggered")
    assert (stop["orderId"], stop["orderStatus"]) == (stop_id, "Filled")
    assert fired[0]["data"][0]["execPnl"] == "-12"  # (62900 - 64100) x 0.010: closed at a loss
    cancel_id = place(v5, side="Buy", orderType="Limit", qty="0.010", price="60000")
    assert private.recv()["data"][0]["orderId"] == cancel_id
    v5.post("/v5/order/cancel", category="linear", symbol="BTCUSDT", orderId=cancel_id)
    cancelled = private.recv()["data"][0]
    assert (cancelled["orderStatus"], cancelled["cancelType"]) == ("Cancelled", "CancelByUser")
    assert private.nothing_within(0.2)


def test_other_accounts_see_nothing(paper: PaperHandle, private: WsTestClient) -> None:
    subscribed(private, ALL)
    other = V5Client(paper.base_url, paper.new_account())
    place(other, side="Buy", orderType="Market", qty="0.010")
    assert private.nothing_within(0.3)


# --------------------------------------------------------------------------------- public


def test_tickers_snapshot_then_deltas(paper: PaperHandle) -> None:
    with WsTestClient(paper.base_url, PUBLIC) as ws:
        bad = ws.request({"op": "subscribe", "req_id": "b", "args": ["tickers.NOPEUSDT"]})
        assert (bad["success"], bad["ret_msg"]) == (False, "Invalid symbol :[tickers.NOPEUSDT]")
        subscribed(ws, ["tickers.BTCUSDT", "tickers.ETHUSDT"])
        snaps = {m["data"]["symbol"]: m for m in ws.pushes(2)}
        btc = snaps["BTCUSDT"]
        assert btc["type"] == "snapshot" and btc["topic"] == "tickers.BTCUSDT"
        assert (
            btc["data"]["lastPrice"] == "65000.00"
            and isinstance(btc["ts"], int)
            and isinstance(btc["cs"], int)
        )
        paper.admin.set_prices({"BTCUSDT": "65100"})
        delta = ws.recv()
        assert delta["type"] == "delta" and delta["topic"] == "tickers.BTCUSDT"
        assert delta["data"]["lastPrice"] == "65100.00" and delta["data"]["markPrice"] == "65100.00"
        assert "prevPrice24h" not in delta["data"] and "fundingRate" not in delta["data"]
        paper.admin.set_prices({"BTCUSDT": "65100"}, mark_prices={"BTCUSDT": "65090"})
        only_mark = ws.recv()["data"]
        assert "lastPrice" not in only_mark and only_mark["markPrice"] == "65090.00"


def test_walk_prices_reach_the_public_stream(paper: PaperHandle) -> None:
    with WsTestClient(paper.base_url, PUBLIC) as ws:
        subscribed(ws, ["tickers.ETHUSDT"])
        ws.recv()  # snapshot
        paper.admin.start_walk(["ETHUSDT"], seed=3, volatility=0.01, interval_ms=20)
        try:
            deltas = ws.pushes(3)
        finally:
            paper.admin.stop_walk()
        assert all(d["type"] == "delta" and "lastPrice" in d["data"] for d in deltas)


# ---------------------------------------------------------------------------------- faults


def test_fault_drop_connection(paper: PaperHandle, private: WsTestClient, v5: V5Client) -> None:
    subscribed(private, ["order"])
    paper.admin.add_fault(endpoint=PRIVATE, drop_connection=True, count=1)
    place(v5, side="Buy", orderType="Limit", qty="0.010", price="60000")
    with pytest.raises(ConnectionClosed):
        private.recv()
    assert paper.admin.streams()["dropped"] == 1


def test_fault_stall_keeps_the_connection_silent(
    paper: PaperHandle, private: WsTestClient, v5: V5Client
) -> None:
    subscribed(private, ["order"])
    paper.admin.add_fault(endpoint=PRIVATE, stall=True, count=1)
    place(v5, side="Buy", orderType="Limit", qty="0.010", price="60000")
    private.send({"op": "ping"})
    assert private.nothing_within(0.5)  # neither the push nor the pong
    stats = paper.admin.streams()
    assert stats["stalled"] == 1 and stats["lost"] == 1 and stats["open"]["private"] == 1


def test_fault_stall_for_a_while_then_resumes(
    paper: PaperHandle, private: WsTestClient, v5: V5Client
) -> None:
    subscribed(private, ["order"])
    paper.admin.add_fault(endpoint=PRIVATE, stall=True, count=1, hold_ms=200)
    place(v5, side="Buy", orderType="Limit", qty="0.010", price="60000")
    time.sleep(0.3)
    assert private.request({"op": "ping"})["op"] == "pong"


def test_fault_lose_a_seeded_fraction(paper: PaperHandle, v5: V5Client, creds: PaperCredentials) -> None:
    paper.admin.set_rate_limits(enabled=False)
    paper.admin.add_fault(endpoint=PRIVATE, lose=True, error_rate=0.5, seed=7)
    with WsTestClient(paper.base_url, PRIVATE) as ws:
        ws.auth(creds.api_key, creds.api_secret)
        subscribed(ws, ["order"])
        for i in range(20):
            place(v5, side="Buy", orderType="Limit", qty="0.001", price=str(50000 + i))
        received = []
        try:
            while True:
                received.append(ws.recv(timeout=0.5)["data"][0]["price"])
        except TimeoutError:
            pass
    (fault,) = paper.admin.faults()
    assert fault["fired"] == 20 - len(received) and 0 < len(received) < 20
    assert paper.admin.streams()["lost"] == fault["fired"]
    # the same seed loses the same pushes
    first = received
    paper.admin.clear_faults()
    paper.admin.add_fault(endpoint=PRIVATE, lose=True, error_rate=0.5, seed=7)
    with WsTestClient(paper.base_url, PRIVATE) as ws:
        ws.auth(creds.api_key, creds.api_secret)
        subscribed(ws, ["order"])
        for i in range(20):
            place(v5, side="Buy", orderType="Limit", qty="0.001", price=str(51000 + i))
        again = []
        try:
            while True:
                again.append(ws.recv(timeout=0.5)["data"][0]["price"])
        except TimeoutError:
            pass
    assert [int(float(p)) - 1000 for p in again] == [int(float(p)) for p in first]


def test_fault_lose_one_topic_only(paper: PaperHandle, private: WsTestClient, v5: V5Client) -> None:
    """A lose fault limited to a topic loses that topic's pushes and no other: an order's push goes,
    its execution's comes (a lost message of a burst, without the rest of the burst)."""
    subscribed(private, ["order", "execution"])
    paper.admin.add_fault(endpoint=PRIVATE, lose=True, topic="order")
    place(v5, side="Buy", orderType="Market", qty="0.010")
    got = private.recv(timeout=2.0)
    assert got["topic"] == "execution" and got["data"][0]["execQty"] == "0.010"
    assert private.nothing_within(0.5)  # its order's push was lost
    (fault,) = paper.admin.faults()
    assert fault["topic"] == "order" and fault["fired"] >= 1
    with pytest.raises(PaperAdminError) as err:
        paper.admin.add_fault(endpoint=PRIVATE, lose=True, topic="tickers")  # a public topic
    assert err.value.field == "topic"
    with pytest.raises(PaperAdminError) as err:
        paper.admin.add_fault(endpoint="/v5/order/create", latency_ms=5, topic="order")  # not a stream
    assert err.value.field == "topic"


def test_fault_delay_keeps_order(paper: PaperHandle, private: WsTestClient, v5: V5Client) -> None:
    subscribed(private, ["order"])
    paper.admin.add_fault(endpoint=PRIVATE, latency_ms=300, count=1)
    started = time.monotonic()
    first = place(v5, side="Buy", orderType="Limit", qty="0.010", price="60000")
    second = place(v5, side="Buy", orderType="Limit", qty="0.010", price="60001")
    got = [p["data"][0]["orderId"] for p in private.pushes(2)]
    assert got == [first, second] and time.monotonic() - started >= 0.3
    assert paper.admin.streams()["delayed"] == 1


def test_fault_refuse_auth(paper: PaperHandle, creds: PaperCredentials) -> None:
    paper.admin.add_fault(endpoint=PRIVATE, refuse_auth=True, count=1)
    with WsTestClient(paper.base_url, PRIVATE) as ws:
        refused = ws.auth(creds.api_key, creds.api_secret)
        assert (refused["success"], refused["ret_msg"]) == (False, "Request not authorized")
        assert ws.auth(creds.api_key, creds.api_secret)["success"] is True
    assert paper.admin.streams()["auth_refused"] == 1


def test_stream_fault_fields_are_checked(paper: PaperHandle) -> None:
    from exchange.paper.runner import PaperAdminError

    with pytest.raises(PaperAdminError) as err:
        paper.admin.add_fault(endpoint="/v5/order/create", stall=True)
    assert err.value.field == "endpoint"
    with pytest.raises(PaperAdminError) as err:
        paper.admin.add_fault(endpoint=PRIVATE, http_status=500)
    assert err.value.field == "http_status"


def test_rest_faults_leave_streams_alone(paper: PaperHandle, private: WsTestClient) -> None:
    paper.admin.add_fault(endpoint="*", drop_connection=True)
    assert private.request({"op": "ping"})["op"] == "pong"


def test_full_reset_closes_stream_connections(paper: PaperHandle, private: WsTestClient) -> None:
    paper.admin.reset(all=True)
    with pytest.raises(ConnectionClosed):
        private.recv(timeout=5)


def test_idle_connections_are_cut() -> None:
    with PaperServer(stream_idle_s=0.3) as server, WsTestClient(server.base_url, PUBLIC) as ws:
        assert ws.request({"op": "ping"})["ret_msg"] == "pong"
        time.sleep(0.1)
        assert ws.request({"op": "ping"})["ret_msg"] == "pong"  # a message resets the idle clock
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert server.admin.streams()["idle_closed"] == 1


def test_changes_made_in_another_thread_are_pushed_in_order(
    paper: PaperHandle, paper_server: PaperServer
) -> None:
    """PaperServer's engine is also driven in-process (not through HTTP): pushes keep engine order."""
    from decimal import Decimal

    engine = paper_server.app.engine
    with WsTestClient(paper.base_url, PUBLIC) as ws:
        subscribed(ws, ["tickers.BTCUSDT"])
        ws.recv()  # snapshot
        for price in ("65001", "65002", "65003"):
            engine.set_price("BTCUSDT", Decimal(price))
        assert [d["data"]["lastPrice"] for d in ws.pushes(3)] == ["65001.00", "65002.00", "65003.00"]


def test_private_max_active_time_sets_the_idle_cut_off(paper: PaperHandle) -> None:
    """`?max_active_time=` (30 s to 10 min): below the floor it is 30 s, so the connection lives."""
    with WsTestClient(paper.base_url, PRIVATE + "?max_active_time=1s") as ws:
        assert ws.nothing_within(1.5)  # not cut at 1 s: clamped to 30 s
        assert ws.request({"op": "ping"})["op"] == "pong"
