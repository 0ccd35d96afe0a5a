"""`tpsl monitor add`: flags laid over a plan file (pure)."""

from __future__ import annotations

import pytest

from cli.monitor import build_request
from core.errors import FixInput

NONE = dict(
    account=None, symbol=None, side=None, preset=None, entries=[], market_qty=None, tps=[], sl=None,
    breakeven_after=None, adopt=False, no_mirror=False,
)  # fmt: skip


def build(base=None, **flags):
    return build_request(base or {}, **{**NONE, **flags})


def test_flags_make_the_pinned_shape():
    data = build(
        account="main", symbol="BTCUSDT", side="Buy", preset="conservative",
        entries=["60000:0.01", "59500:0.01"], tps=["62000:0.85", "63000:0.15"], sl="58000", breakeven_after=1,
    )  # fmt: skip
    assert data == {
        "account": "main",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "preset": "conservative",
        "entries": [{"price": "60000", "qty": "0.01"}, {"price": "59500", "qty": "0.01"}],
        "take_profits": [{"price": "62000", "fraction": "0.85"}, {"price": "63000", "fraction": "0.15"}],
        "stop_loss": "58000",
        "breakeven_after": 1,
    }


def test_flags_override_the_file_and_leave_the_rest():
    base = {
        "account": "main",
        "symbol": "ETHUSDT",
        "entry_price": "3000",
        "qty": "3",
        "stop_loss": "2900",
        "mirror": True,
    }
    data = build(base, market_qty="2", sl="2800", no_mirror=True)
    assert (
        data["entries"] == {"type": "market", "qty": "2"} and "entry_price" not in data and "qty" not in data
    )
    assert data["stop_loss"] == "2800" and data["mirror"] is False and data["symbol"] == "ETHUSDT"
    assert base["stop_loss"] == "2900"  # the file's dict is not changed
    adopted = build({"entries": [{"price": "1", "qty": "1"}]}, adopt=True)
    assert adopted["adopt"] is True and "entries" not in adopted


def test_take_profits_without_fractions_leave_them_to_the_preset():
    assert build(tps=["62000", "63000"])["take_profits"] == [{"price": "62000"}, {"price": "63000"}]


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        ({"entries": ["60000"]}, "entries[0]"),
        ({"entries": ["60000:0.01", ":0.01"]}, "entries[1]"),
        ({"entries": ["60000:"]}, "entries[0]"),
        ({"tps": ["1:2:3"]}, "take_profits[0]"),
        ({"tps": ["62000:"]}, "take_profits[0]"),
        ({"entries": ["1:1"], "market_qty": "1"}, "entries"),
    ],
)
def test_malformed_flags_name_the_field(flags, field):
    with pytest.raises(FixInput) as exc:
        build(**flags)
    assert exc.value.field == field
