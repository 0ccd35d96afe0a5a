"""The page's template filters."""

from __future__ import annotations

import pytest

from dashboard.page import (
    ago,
    figure,
    kind_label,
    make_templates,
    money,
    num,
    payload_text,
    pct,
    secs,
    signed,
    signed_money,
    until,
)


def test_relative_times():
    assert ago(100.0, now=130.0) == "30 s ago"
    assert ago(100.0, now=100.0 + 600) == "10 min ago"
    assert ago(None) == "—" and ago(0) == "—"
    assert until(105.0, now=100.0) == "in 5.0 s"
    assert until(99.0, now=100.0) == "due now"


def test_numbers():
    assert num("62000.0") == "62000" and num("0.0100") == "0.01" and num("10") == "10" and num(None) == "—"
    assert signed("13.5") == "+13.5" and signed("-2") == "-2" and signed("0") == "0"
    assert pct(0.9312) == "93.1 %" and pct(None) == "—"
    assert secs(0.047) == "47 ms" and secs(2.5) == "2.50 s"


def test_payload_line_and_kind_labels():
    line = payload_text(
        {"symbol": "BTCUSDT", "level": 1, "price": "62000.0", "qty": "0.025", "links": ["a"], "ok": True}
    )
    assert line == "level 1 · price 62000 · qty 0.025 · ok yes"
    assert payload_text(None) == ""
    assert kind_label("tp_hit") == "TP hit" and kind_label("breakeven_moved") == "Breakeven moved"


@pytest.mark.parametrize(
    ("raw", "shown", "with_sign"),
    [
        ("1000352.837515", "1,000,352.84", "+1,000,352.84"),  # an account card's equity, as Bybit sends it
        ("500000", "500,000.00", "+500,000.00"),
        ("-1234.5", "-1,234.50", "-1,234.50"),
        ("0.005", "0.00", "0.00"),  # half to even
        ("0.015", "0.02", "+0.02"),
        ("-0.001", "0.00", "0.00"),  # no "-0.00"
        ("0", "0.00", "0.00"),
        (1234567, "1,234,567.00", "+1,234,567.00"),
        ("1e3", "1,000.00", "+1,000.00"),
        (None, "—", "—"),
        ("", "—", "—"),
        ("n/a", "n/a", "n/a"),  # not a number: as given
        ("NaN", "NaN", "NaN"),
    ],
)
def test_money_for_people(raw, shown, with_sign):
    assert money(raw) == shown
    assert signed_money(raw) == with_sign


@pytest.mark.parametrize(
    ("raw", "max_places", "shown"),
    [
        ("12500.0", 8, "12,500"),
        ("0.0250", 8, "0.025"),
        ("1.5", 8, "1.5"),
        ("64012.123456789", 8, "64,012.12345679"),
        ("64012.123456789", 6, "64,012.123457"),
        ("1000000", 8, "1,000,000"),
        ("-0.5", 8, "-0.5"),
        ("0.00000001", 8, "0.00000001"),
        ("1E+3", 8, "1,000"),
        (None, 8, "—"),
        ("abc", 8, "abc"),
    ],
)
def test_sizes_and_prices_for_people(raw, max_places, shown):
    assert figure(raw, max_places) == shown


def test_the_account_card_shows_grouped_figures():
    card = {
        "id": "main",
        "role": "main",
        "mirror_of": None,
        "error": None,
        "equity": "1000352.837515",
        "wallet_balance": "1000000",
        "available": "987654.321",
        "unrealised_pnl": "352.837515",
        "orders": 3,
        "positions": [
            {
                "symbol": "BTCUSDT",
                "side": "Buy",
                "size": "1.250",
                "avg_price": "64012.50",
                "mark_price": "64294.7702",
                "unrealised_pnl": "352.837515",
            }
        ],
    }
    html = make_templates().get_template("_accounts.html").render(cards=[card])
    for shown in ("1,000,352.84", "1,000,000.00", "987,654.32", "+352.84", "1.25", "64,012.5", "64,294.7702"):
        assert shown in html
    assert "1000352.837515" not in html
