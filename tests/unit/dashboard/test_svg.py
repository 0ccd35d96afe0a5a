"""Server-side plots: pure functions, well-formed SVG, every text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from dashboard.svg import price_chart, sparkline, tier_chart

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def view(**over):
    v = {
        "symbol": "BTCUSDT",
        "side": "Buy",
        "entries": [
            {"level": 1, "price": "60000.0", "qty": "0.01"},
            {"level": 2, "price": "59500", "qty": "0.01"},
        ],
        "take_profits": [
            {"level": 1, "price": "62000", "status": "hit"},
            {"level": 2, "price": "63000", "status": "pending"},
        ],
        "stop": {"price": "60048.1", "at_breakeven": True},
        "breakeven_price": "60048.1",
        "avg_entry": "59750",
        "last_price": "62100",
    }
    v.update(over)
    return v


def texts(root):
    return [t.text for t in root.iter(f"{NS}text")]


def test_price_chart_draws_every_level_and_the_price():
    root = parse(price_chart(view(), [(0.0, 61000.0), (60.0, 61500.0), (120.0, 62100.0)]))
    labels = texts(root)
    assert "E1 60000" in labels and "E2 59500" in labels
    assert "TP1 62000 ✓" in labels and "TP2 63000" in labels
    assert "SL at breakeven 60048.1" in labels and "avg 59750" in labels
    assert not any(label.startswith("BE ") for label in labels)  # the stop line already is breakeven
    assert len(list(root.iter(f"{NS}polyline"))) == 1
    assert root.find(f"{NS}circle") is not None  # the last price


def test_price_chart_without_any_price_says_so():
    root = parse(price_chart({"symbol": "X", "side": "Buy"}, []))
    assert texts(root) == ["no price yet"]


def test_text_is_escaped():
    svg = price_chart(view(symbol='<script>alert("x")</script>', entries=[{"level": 1, "price": "1&2"}]))
    assert "<script>" not in svg
    parse(svg)


def test_tier_chart_lines_and_legend():
    series = [
        {"at": 0.0, "critical": 1, "active": 2, "standard": 5, "inactive": 0, "idle": 0},
        {"at": 10.0, "critical": 0, "active": 3, "standard": 5, "inactive": 1, "idle": 0},
    ]
    root = parse(tier_chart(series))
    assert len(list(root.iter(f"{NS}polyline"))) == 5
    assert "active 3" in texts(root) and "inactive 1" in texts(root)
    assert texts(parse(tier_chart([]))) == ["no samples yet"]


def test_sparkline():
    root = parse(sparkline([0, 5, 3, 9]))
    assert len(root.find(f"{NS}polyline").get("points").split()) == 4
    parse(sparkline([]))
