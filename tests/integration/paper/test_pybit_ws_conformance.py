"""Conformance of the streams with the official pybit 5.17 `WebSocket`, unmodified, redirected to the
paper exchange through `pybit.unified_trading.PRIVATE_WSS` / `PUBLIC_WSS`: auth, subscribe, the
order/execution/position/wallet pushes of orders placed through pybit's own HTTP client, ticker
snapshots and deltas (pybit merges them), and `set_trading_stop`."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from pybit import unified_trading
from pybit.unified_trading import HTTP, WebSocket

from tests.plugins.paper import PaperHandle

TIMEOUT_S = 10.0


@pytest.fixture
def redirected(paper: PaperHandle, monkeypatch: pytest.MonkeyPatch) -> PaperHandle:
    ws_base = paper.base_url.replace("http://", "ws://", 1)
    monkeypatch.setattr(unified_trading, "PRIVATE_WSS", f"{ws_base}/v5/private")
    monkeypatch.setattr(unified_trading, "PUBLIC_WSS", f"{ws_base}/v5/public/{{CHANNEL_TYPE}}")
    return paper


class Inbox:
    """pybit callbacks run on its thread: collect their messages for the test thread."""

    def __init__(self) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.put(message)

    def next(self) -> dict[str, Any]:
        return self.messages.get(timeout=TIMEOUT_S)

    def until(self, predicate) -> dict[str, Any]:
        while True:
            message = self.next()
            if predicate(message):
                return message


@pytest.fixture
def sockets() -> Iterator[list[WebSocket]]:
    opened: list[WebSocket] = []
    yield opened
    for ws in opened:
        ws.exit()


def test_private_stream_with_pybit(redirected: PaperHandle, sockets: list[WebSocket]) -> None:
    creds = redirected.new_account()
    http = HTTP(api_key=creds.api_key, api_secret=creds.api_secret, retry_delay=0.05)
    http.endpoint = redirected.base_url
    ws = WebSocket(testnet=False, channel_type="private", api_key=creds.api_key, api_secret=creds.api_secret)
    sockets.append(ws)
    orders, executions, positions, wallets = Inbox(), Inbox(), Inbox(), Inbox()
    ws.order_stream(callback=orders)
    ws.execution_stream(callback=executions)
    ws.position_stream(callback=positions)
    ws.wallet_stream(callback=wallets)
    _wait_subscribed(redirected, 4)

    placed = http.place_order(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.010"
    )
    order_id = placed["result"]["orderId"]
    filled = orders.until(lambda m: m["data"][0]["orderId"] == order_id)
    assert filled["topic"] == "order" and filled["data"][0]["orderStatus"] == "Filled"
    fill = executions.next()
    assert fill["topic"] == "execution" and fill["data"][0]["orderId"] == order_id
    assert fill["data"][0]["execQty"] == "0.010" and fill["data"][0]["category"] == "linear"
    pos = positions.next()["data"][0]
    assert (pos["symbol"], pos["side"], pos["size"]) == ("BTCUSDT", "Buy", "0.010")
    assert wallets.next()["data"][0]["accountType"] == "UNIFIED"

    # pybit's set_trading_stop: the position push carries the stop, and a repeat is 34040
    http.set_trading_stop(
        category="linear", symbol="BTCUSDT", stopLoss="60000", tpslMode="Full", positionIdx=0
    )
    stopped = positions.until(lambda m: m["data"][0]["stopLoss"] != "")
    assert stopped["data"][0]["stopLoss"] == "60000.00"
    stop_order = orders.until(lambda m: m["data"][0]["stopOrderType"] == "StopLoss")["data"][0]
    assert stop_order["orderStatus"] == "Untriggered" and stop_order["triggerPrice"] == "60000.00"
    from pybit.exceptions import InvalidRequestError

    with pytest.raises(InvalidRequestError) as err:
        http.set_trading_stop(
            category="linear", symbol="BTCUSDT", stopLoss="60000", tpslMode="Full", positionIdx=0
        )
    assert err.value.status_code == 34040

    # the stop fires on a price drop: the position closes at market and the pushes say so
    redirected.admin.set_prices({"BTCUSDT": "59900"})
    closed = positions.until(lambda m: m["data"][0]["size"] == "0.000")["data"][0]
    assert closed["side"] == "" and closed["stopLoss"] == ""
    rows = orders.until(lambda m: m["data"][0]["orderId"] == stop_order["orderId"])["data"]
    assert [r["orderStatus"] for r in rows] == ["Triggered", "Filled"]


def test_public_tickers_with_pybit(redirected: PaperHandle, sockets: list[WebSocket]) -> None:
    ws = WebSocket(testnet=False, channel_type="linear")
    sockets.append(ws)
    tickers = Inbox()
    ws.ticker_stream(symbol="BTCUSDT", callback=tickers)
    snapshot = tickers.next()
    assert snapshot["topic"] == "tickers.BTCUSDT" and snapshot["type"] == "snapshot"
    assert snapshot["data"]["lastPrice"] == "65000.00"
    redirected.admin.set_prices({"BTCUSDT": "65432.1"})
    merged = tickers.next()  # pybit merges the delta into its snapshot and hands over the whole
    assert merged["data"]["lastPrice"] == "65432.10" and merged["data"]["symbol"] == "BTCUSDT"
    assert merged["data"]["fundingRate"] == snapshot["data"]["fundingRate"]


def _wait_subscribed(paper: PaperHandle, topics: int) -> None:
    """pybit sends its subscriptions without waiting; the server counts what it accepted."""
    import time

    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if paper.admin.streams()["subscriptions"] >= topics:
            return
        time.sleep(0.02)
    raise AssertionError("pybit's subscriptions did not arrive")
