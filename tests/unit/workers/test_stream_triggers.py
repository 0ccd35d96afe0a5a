"""Which pushes touch which monitors, and where each account's streams live: tables, no I/O."""

import pytest

from tasks.stream import stream_base
from workers.stream_triggers import Touched, touched

MID = "7kq2m9xa3f"
OTHER = "abcdefghjk"


@pytest.mark.parametrize(
    ("topic", "data", "want"),
    [
        # orders and executions name their monitor by orderLinkId; only ours count
        ("order", [{"orderLinkId": f"tg{MID}-SL-1"}], Touched(monitor_ids=frozenset({MID}))),
        ("execution", [{"orderLinkId": f"tg{MID}-TP2-3"}], Touched(monitor_ids=frozenset({MID}))),
        ("execution.fast", [{"orderLinkId": f"tg{MID}-E1-1"}], Touched(monitor_ids=frozenset({MID}))),
        ("order.linear", [{"orderLinkId": f"tg{MID}-E1-1"}], Touched(monitor_ids=frozenset({MID}))),
        (
            "order",
            [
                {"orderLinkId": f"tg{MID}-TP1-1"},
                {"orderLinkId": f"tg{OTHER}-SL-2"},
                {"orderLinkId": "manual-1"},
            ],
            Touched(monitor_ids=frozenset({MID, OTHER})),
        ),
        ("order", [{"orderLinkId": ""}, {"orderId": "x"}], Touched()),  # an order placed by hand
        ("order", [{"orderLinkId": f"tg{MID}-XX1-1"}], Touched()),  # not one of our shapes
        ("order", ["garbage", None, 3], Touched()),
        ("order", {"orderLinkId": f"tg{MID}-SL-1"}, Touched(monitor_ids=frozenset({MID}))),  # a bare row
        # positions name (symbol, positionIdx): the position index maps them to their monitor
        (
            "position",
            [{"symbol": "BTCUSDT", "positionIdx": 0}],
            Touched(positions=frozenset({("BTCUSDT", 0)})),
        ),
        (
            "position.linear",
            [{"symbol": "ETHUSDT", "positionIdx": "2"}, {"symbol": "BTCUSDT", "positionIdx": 1}],
            Touched(positions=frozenset({("ETHUSDT", 2), ("BTCUSDT", 1)})),
        ),
        ("position", [{"symbol": "", "positionIdx": 0}, {"positionIdx": 0}], Touched()),
        ("position", [{"symbol": "BTCUSDT", "positionIdx": "x"}], Touched()),
        # other topics touch nothing
        ("wallet", [{"coin": [{"coin": "USDT"}]}], Touched()),
        ("tickers.BTCUSDT", {"symbol": "BTCUSDT", "lastPrice": "1"}, Touched()),
    ],
)
def test_what_a_push_touches(topic, data, want):
    assert touched(topic, data) == want


def test_touched_is_falsy_when_empty():
    assert not Touched()
    assert Touched(monitor_ids=frozenset({MID}))
    assert Touched(positions=frozenset({("BTCUSDT", 0)}))


@pytest.mark.parametrize(
    ("rest", "ws"),
    [
        ("https://api.bybit.com", "wss://stream.bybit.com"),
        ("https://api.bytick.com/", "wss://stream.bybit.com"),
        ("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com"),
        ("https://api-demo.bybit.com", "wss://stream-demo.bybit.com"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765"),  # a paper exchange: streams on the REST port
        ("https://paper.example:9443/", "wss://paper.example:9443"),
        ("http://paper.local:80/prefix", "ws://paper.local:80/prefix"),
    ],
)
def test_the_stream_host_of_an_account(rest, ws):
    assert stream_base(rest) == ws
