"""Plots as inline SVG, drawn on the server (no JavaScript, no build step). Pure functions: data in,
markup out; every text is escaped.

- `price_chart(view, series)`: a monitor's price over time with its entry, take-profit, stop,
  breakeven and average-entry levels as horizontal lines;
- `tier_chart(series)`: live monitors per tier over time;
- `sparkline(values)`: a small line (exchange calls per minute).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any

TIER_COLOURS = {
    "critical": "#d64545",
    "active": "#e08a1e",
    "standard": "#3b7dd8",
    "inactive": "#7a8a99",
    "idle": "#b4bec8",
}
COLOURS = {
    "price": "#1f2d3d",
    "tp": "#1f9d55",
    "tp_hit": "#9fd8b5",
    "sl": "#d64545",
    "breakeven": "#e08a1e",
    "entry": "#3b7dd8",
    "avg": "#6b7785",
    "grid": "#e6eaee",
    "text": "#52606d",
}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _price_text(value: Any) -> str:
    return escape(_trim(value))


def _trim(value: Any) -> str:
    """A decimal string without a trailing fraction of zeros ("62000.0" → "62000")."""
    s = str(value)
    if "." in s and "e" not in s.lower():
        s = s.rstrip("0").rstrip(".")
    return s


def price_chart(
    view: Mapping[str, Any],
    series: Sequence[tuple[float, float]] = (),
    *,
    width: int = 620,
    height: int = 240,
) -> str:
    """The monitor's levels and its price (series of (epoch s, price), oldest first)."""
    levels: list[tuple[str, float, str, str]] = []  # (label, price, colour, dash)
    for e in view.get("entries") or ():
        p = _num(e.get("price"))
        if p is not None:
            levels.append((f"E{e['level']} {_trim(e['price'])}", p, COLOURS["entry"], "2 3"))
    for tp in view.get("take_profits") or ():
        p = _num(tp.get("price"))
        if p is not None:
            hit = tp.get("status") == "hit"
            label = f"TP{tp['level']} {_trim(tp['price'])}" + (" ✓" if hit else "")
            levels.append((label, p, COLOURS["tp_hit"] if hit else COLOURS["tp"], "" if hit else "5 3"))
    stop = view.get("stop") or {}
    sl = _num(stop.get("price"))
    if sl is not None and sl > 0:
        label = ("SL at breakeven " if stop.get("at_breakeven") else "SL ") + _trim(stop.get("price"))
        levels.append((label, sl, COLOURS["breakeven"] if stop.get("at_breakeven") else COLOURS["sl"], ""))
    be = _num(view.get("breakeven_price"))
    if be is not None and not (sl is not None and abs(be - sl) < 1e-12):
        levels.append((f"BE {_trim(view['breakeven_price'])}", be, COLOURS["breakeven"], "1 3"))
    avg = _num(view.get("avg_entry"))
    if avg is not None and avg > 0:
        levels.append((f"avg {_trim(view['avg_entry'])}", avg, COLOURS["avg"], "4 2 1 2"))

    points = [(t, p) for t, p in series if math.isfinite(t) and math.isfinite(p)]
    last = _num(view.get("last_price"))
    values = [lv[1] for lv in levels] + [p for _, p in points] + ([last] if last is not None else [])
    title = f"{view.get('symbol', '')} {view.get('side', '')} price and levels"
    if not values:
        return _empty(width, height, title, "no price yet")
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.01, 1.0)
    lo, hi = lo - pad, hi + pad
    left, right, top, bottom = 8, 150, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    parts = [_open(width, height, title)]
    for i in range(5):  # horizontal grid
        gy = top + plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="{COLOURS["grid"]}"/>'
        )
    used: list[float] = []
    for label, price, colour, dash in sorted(levels, key=lambda lv: -lv[1]):
        ly = y(price)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{ly:.1f}" y2="{ly:.1f}" '
            f'stroke="{colour}" stroke-width="1.5"{dash_attr}/>'
        )
        ty = ly + 4
        while any(abs(ty - u) < 12 for u in used):  # keep labels from overlapping
            ty += 12
        used.append(ty)
        parts.append(
            f'<text x="{left + plot_w + 6}" y="{ty:.1f}" fill="{colour}" font-size="11">'
            f"{escape(label)}</text>"
        )
    if len(points) >= 2:
        t0, t1 = points[0][0], points[-1][0]
        span = (t1 - t0) or 1.0
        coords = " ".join(f"{left + (t - t0) / span * plot_w:.1f},{y(p):.1f}" for t, p in points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{COLOURS["price"]}" stroke-width="2"/>'
        )
        minutes = span / 60
        parts.append(
            f'<text x="{left}" y="{height - 6}" fill="{COLOURS["text"]}" font-size="11">'
            f"last {minutes:.0f} min</text>"
        )
    if last is not None:
        parts.append(
            f'<circle cx="{left + plot_w:.1f}" cy="{y(last):.1f}" r="4" fill="{COLOURS["price"]}">'
            f"<title>last {_price_text(view.get('last_price'))}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def tier_chart(series: Sequence[Mapping[str, Any]], *, width: int = 620, height: int = 180) -> str:
    """Live monitors per tier over time (points {"at": epoch s, "<tier>": n, …}, oldest first)."""
    title = "Monitors per tier over time"
    points = [p for p in series if isinstance(p.get("at"), int | float)]
    if not points:
        return _empty(width, height, title, "no samples yet")
    tiers = list(TIER_COLOURS)
    top_v = max(max((int(p.get(t, 0) or 0) for t in tiers), default=0) for p in points) or 1
    left, right, top, bottom = 34, 90, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = points[0]["at"], points[-1]["at"]
    span = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return left + (t - t0) / span * plot_w

    def y(v: float) -> float:
        return top + plot_h - v / top_v * plot_h

    parts = [_open(width, height, title)]
    for i in range(3):
        v = top_v * i / 2
        gy = y(v)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="{COLOURS["grid"]}"/>'
        )
        parts.append(
            f'<text x="{left - 4}" y="{gy + 4:.1f}" fill="{COLOURS["text"]}" font-size="10" '
            f'text-anchor="end">{_fmt(v)}</text>'
        )
    for i, tier in enumerate(tiers):
        colour = TIER_COLOURS[tier]
        if len(points) == 1:
            v = int(points[0].get(tier, 0) or 0)
            parts.append(f'<circle cx="{left + plot_w:.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
        else:
            coords = " ".join(f"{x(p['at']):.1f},{y(int(p.get(tier, 0) or 0)):.1f}" for p in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        last_v = int(points[-1].get(tier, 0) or 0)
        parts.append(
            f'<text x="{left + plot_w + 8}" y="{top + 12 + i * 15}" fill="{colour}" font-size="11">'
            f"{escape(tier)} {last_v}</text>"
        )
    if len(points) >= 2:
        parts.append(
            f'<text x="{left}" y="{height - 6}" fill="{COLOURS["text"]}" font-size="11">'
            f"last {span / 60:.0f} min</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 28, title: str = "") -> str:
    vals = [float(v) for v in values if math.isfinite(float(v))]
    if not vals:
        return _empty(width, height, title, "")
    hi = max(vals) or 1.0
    step = width / max(len(vals) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - v / hi * (height - 4):.1f}" for i, v in enumerate(vals))
    return (
        f'{_open(width, height, title)}<polyline points="{coords}" fill="none" '
        f'stroke="{TIER_COLOURS["standard"]}" stroke-width="1.5"/></svg>'
    )


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )


def _empty(width: int, height: int, title: str, text: str) -> str:
    return (
        f'{_open(width, height, title)}<text x="{width / 2:.0f}" y="{height / 2:.0f}" '
        f'fill="{COLOURS["text"]}" font-size="12" text-anchor="middle">{escape(text)}</text></svg>'
    )
