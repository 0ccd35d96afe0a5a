"""The page's template filters."""

from __future__ import annotations

from dashboard.page import ago, kind_label, num, payload_text, pct, secs, signed, until


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
