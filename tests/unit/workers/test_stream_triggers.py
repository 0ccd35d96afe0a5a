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


# ------------------------------------------------------------------ the price trigger (BandWatch)


def _band_monitors():
    from dataclasses import replace

    from tests.unit.core.test_urgency import monitoring

    a = monitoring()  # BTCUSDT: targets TP1 62000 and the stop 58000
    b = replace(monitoring(), id="m000000002", account="other")  # the same symbol, another account
    return a, b


BAND_WALK = [
    # (pushed mark, monitors whose band it enters: a call each)
    ("60500", set()),  # far from every target
    ("61750", {"m000000001", "m000000002"}),  # 0.40 % under TP1: both enter
    ("61800", set()),  # still inside: hovering calls nothing
    ("61900", set()),
    ("61500", set()),  # out (0.81 %)
    ("61700", {"m000000001", "m000000002"}),  # in again
    ("58100", {"m000000001", "m000000002"}),  # jumped into the stop's band: another target, entered
]


def test_band_watch_calls_on_entering_only():
    from decimal import Decimal as D

    from workers.stream_triggers import BandWatch

    a, b = _band_monitors()
    bands = BandWatch(D("0.005"))
    bands.update([a, b])
    assert bands.symbols() == {"BTCUSDT"}
    for mark, expected in BAND_WALK:
        got = bands.entered("BTCUSDT", D(mark))
        assert {mid for ids in got.values() for mid in ids} == expected, mark
        if expected:
            assert got == {"main": {"m000000001"}, "other": {"m000000002"}}
    assert bands.entered("ETHUSDT", D("58100")) == {}  # no monitor on that symbol


def test_band_watch_follows_the_registry():
    from dataclasses import replace
    from decimal import Decimal as D

    from core.models import Phase
    from workers.stream_triggers import BandWatch

    a, b = _band_monitors()
    bands = BandWatch(D("0.005"))
    bands.update([a, b])
    assert bands.entered("BTCUSDT", D("61750")) == {"main": {a.id}, "other": {b.id}}
    bands.update([replace(a, version=a.version + 1)])  # changed, same targets: still inside
    assert bands.entered("BTCUSDT", D("61760")) == {}
    bands.update([replace(a, tp_hits=(1,), phase=Phase.PROFIT_TAKING)])  # next TP 63000: new targets
    assert bands.entered("BTCUSDT", D("62800")) == {"main": {a.id}}  # its new band, entered
    bands.update([], gone=[b.id])
    bands.update([replace(a, phase=Phase.CLOSED)])  # closed: watches nothing, keeps its symbol
    assert bands.entered("BTCUSDT", D("58000")) == {}
    assert bands.symbols() == {"BTCUSDT"}
    bands.update([], gone=[a.id])
    assert bands.symbols() == set()
    # a gap in the prices: whether a monitor is inside is unknown, its next push decides
    bands.update([a])
    assert bands.entered("BTCUSDT", D("61750")) == {"main": {a.id}}
    bands.forget(["BTCUSDT"])
    assert bands.entered("BTCUSDT", D("61750")) == {"main": {a.id}}
