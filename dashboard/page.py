"""The HTML page: a shell (`/`) that carries no data, and server-rendered fragments under `/ui/` that
the page's script fetches (with the bearer token when one is set) and refreshes in place.

    GET /                       the page (layout, create form, token prompt); open, carries no data
    GET /ui/accounts            account cards: equity, balance, unrealised PnL, positions, orders
    GET /ui/monitors            monitors table: phase, tier, next check, TP ladder, stop, orders
    GET /ui/monitors/{id}       one monitor: price chart (SVG), ladder, owned orders, events
    GET /ui/events              the live event timeline (every monitor)
    GET /ui/ops                 operations panel with the monitors-per-tier chart (SVG)
    GET /ui/symbols             <option>s of the symbols the create form offers
    GET /ui/account-options     <option>s of the main accounts the create form offers

Fragments read through `DashboardData` (the TTL cache); showing the monitors also feeds the
per-symbol price series the charts draw.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, Response

from core.errors import TpslError
from core.presets import PRESETS
from dashboard.state import DashboardState, state_of
from dashboard.svg import TIER_COLOURS, price_chart, sparkline, tier_chart
from workers import series

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
RECENT_CLOSED = 20
PAGE_ROWS = 500  # live monitors shown on the page (the most urgent); the API and CLI list them all
REFRESH_S = {"monitors": 3, "events": 4, "ops": 10, "accounts": 15, "detail": 4}


# ------------------------------------------------------------------------------------ filters


def ago(ts: Any, now: float | None = None) -> str:
    if not isinstance(ts, int | float) or ts <= 0:
        return "—"
    d = (time.time() if now is None else now) - ts
    if d < 0:
        return "just now"
    if d < 60:
        return f"{d:.0f} s ago"
    if d < 3600:
        return f"{d / 60:.0f} min ago"
    if d < 86400:
        return f"{d / 3600:.1f} h ago"
    return f"{d / 86400:.1f} d ago"


def until(ts: Any, now: float | None = None) -> str:
    if not isinstance(ts, int | float):
        return "—"
    d = ts - (time.time() if now is None else now)
    if d <= 0:
        return "due now"
    if d < 60:
        return f"in {d:.1f} s"
    return f"in {d / 60:.1f} min"


def clock(ts: Any) -> str:
    if not isinstance(ts, int | float) or ts <= 0:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")


def iso(ts: Any) -> str:
    if not isinstance(ts, int | float) or ts <= 0:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def pct(x: Any) -> str:
    if not isinstance(x, int | float):
        return "—"
    return f"{x * 100:.1f} %"


def secs(x: Any) -> str:
    if not isinstance(x, int | float):
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def num(x: Any) -> str:
    """A decimal string shown as given, without a trailing fraction of zeros ("0.0100" → "0.01")."""
    if x is None:
        return "—"
    s = str(x)
    if "." in s and "e" not in s.lower():
        s = s.rstrip("0").rstrip(".")
    return s


def signed(x: Any) -> str:
    s = num(x)
    return s if s.startswith("-") or s in ("—", "0") else f"+{s}"


def _decimal(x: Any) -> Decimal | None:
    """A finite Decimal of a figure (decimal string or number), None for anything else."""
    if x is None or isinstance(x, bool):
        return None
    try:
        d = Decimal(str(x).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def money(x: Any, places: int = 2) -> str:
    """An amount of USDT for people: thousands separators, `places` decimals
    ("1000352.837515" → "1,000,352.84"). Not a number: shown as given ("—" for none)."""
    d = _decimal(x)
    if d is None:
        return "—" if x is None or x == "" else str(x)
    d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{d + 0:,.{places}f}"  # + 0: no "-0.00"


def signed_money(x: Any, places: int = 2) -> str:
    """A profit or loss: money with its sign ("+12.50", "-3.10", "0.00")."""
    s = money(x, places)
    d = _decimal(s)
    return f"+{s}" if d is not None and d > 0 else s


def figure(x: Any, max_places: int = 8) -> str:
    """A size or price for people: thousands separators, the decimals it has (at most `max_places`,
    trailing zeros dropped): "12500.0" → "12,500", "0.0250" → "0.025", "64012.123456789" →
    "64,012.12345679"."""
    d = _decimal(x)
    if d is None:
        return "—" if x is None or x == "" else str(x)
    places = min(max(0, -int(d.normalize().as_tuple().exponent)), max_places)
    d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = f"{d + 0:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


PAYLOAD_ORDER = ("level", "action", "reason", "role", "price", "qty", "size", "phase", "from", "stop_loss")
PAYLOAD_SKIP = frozenset({"symbol", "alert", "exchange_ms", "link_id", "links"})
KIND_LABELS = {"tp_hit": "TP hit", "sl_hit": "SL hit"}


def kind_label(kind: Any) -> str:
    text = str(kind)
    return KIND_LABELS.get(text, text.replace("_", " ").capitalize())


def payload_text(payload: Any, limit: int = 6) -> str:
    """An event's payload in a line: its scalar values, the telling ones first."""
    if not isinstance(payload, dict):
        return ""
    keys = [k for k in PAYLOAD_ORDER if k in payload] + sorted(k for k in payload if k not in PAYLOAD_ORDER)
    parts = []
    for k in keys:
        v = payload[k]
        if k in PAYLOAD_SKIP or v is None or isinstance(v, list | dict):
            continue
        if isinstance(v, bool):
            v = "yes" if v else "no"
        parts.append(f"{k.replace('_', ' ')} {num(v) if isinstance(v, str) else v}")
        if len(parts) >= limit:
            break
    return " · ".join(parts)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters.update(
        ago=ago,
        until=until,
        clock=clock,
        iso=iso,
        pct=pct,
        secs=secs,
        num=num,
        signed=signed,
        money=money,
        signed_money=signed_money,
        figure=figure,
        payload_text=payload_text,
        kind_label=kind_label,
    )
    env.globals.update(tier_colours=TIER_COLOURS)
    return templates


# -------------------------------------------------------------------------------------- series


def read_prices(rt: Runtime, symbol: str) -> list[tuple[float, float]]:
    return series.read_prices(rt.redis, rt.prefix, symbol)  # collected by beat (tpsl.series)


# -------------------------------------------------------------------------------------- routes


def build_page(app_state: DashboardState, templates: Jinja2Templates) -> tuple[APIRouter, APIRouter]:
    """(open router: the shell, protected router: the fragments)."""
    shell = APIRouter(include_in_schema=False)
    ui = APIRouter(include_in_schema=False, dependencies=[Depends(app_state.require_token)])

    def render(request: Request, name: str, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"now": time.time(), **context})

    @shell.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        st = state_of(request)
        return render(
            request,
            "index.html",
            refresh=REFRESH_S,
            presets=list(PRESETS.values()),
            cache_enabled=st.cache.enabled,
        )

    @ui.get("/ui/accounts", response_class=HTMLResponse)
    def accounts(request: Request) -> Response:
        return render(request, "_accounts.html", cards=state_of(request).data.account_cards())

    @ui.get("/ui/monitors", response_class=HTMLResponse)
    def monitors(request: Request) -> Response:
        st = state_of(request)
        live = st.data.live_monitors(limit=PAGE_ROWS)
        total = st.data.live_count() if len(live) >= PAGE_ROWS else len(live)
        try:
            closed = st.data.closed_monitors(limit=RECENT_CLOSED)
        except Exception as exc:
            log.warning("closed monitors unavailable: %s", type(exc).__name__)
            closed = []
        order = {t: i for i, t in enumerate(TIER_COLOURS)}
        live.sort(key=lambda v: (order.get(v["tier"], 9), v["symbol"], v["account"]))
        return render(request, "_monitors.html", live=live, closed=closed, total=total)

    @ui.get("/ui/monitors/{monitor_id}", response_class=HTMLResponse)
    def monitor(request: Request, monitor_id: str = PathParam(..., max_length=200)) -> Response:
        st = state_of(request)
        view = st.data.monitor(monitor_id)
        try:
            events = st.data.events(monitor_id, limit=50)
        except Exception as exc:
            log.warning("events of %s unavailable: %s", monitor_id, type(exc).__name__)
            events = []
        chart = price_chart(view, read_prices(st.rt, view["symbol"]))
        return render(request, "_monitor.html", m=view, events=events, chart=chart)

    @ui.get("/ui/events", response_class=HTMLResponse)
    def events(request: Request) -> Response:
        return render(request, "_events.html", events=state_of(request).data.recent_events(60))

    @ui.get("/ui/ops", response_class=HTMLResponse)
    def ops(request: Request) -> Response:
        st = state_of(request)
        figures = st.ops.snapshot()
        calls = [p["calls"] for p in figures["exchange_calls"]["per_minute"]]
        return render(
            request,
            "_ops.html",
            s=figures,
            tiers_svg=tier_chart(st.ops.tier_series()),
            calls_svg=sparkline(calls, title="exchange calls per minute"),
        )

    @ui.get("/ui/account-options", response_class=HTMLResponse)
    def account_options(request: Request) -> Response:
        mains = [a for a in state_of(request).data.accounts() if a["role"] == "main"]
        return render(request, "_account_options.html", accounts=mains)

    @ui.get("/ui/symbols", response_class=HTMLResponse)
    def symbols(request: Request) -> Response:
        try:
            names = state_of(request).data.symbols()
        except TpslError as exc:
            log.warning("symbols unavailable: %s", exc.kind.value)
            names = []
        return render(request, "_symbols.html", symbols=names)

    return shell, ui
