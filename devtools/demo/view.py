"""The demo's terminal output: the live view (rich) and the plain progress lines of `--no-live`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.models import BreakevenState, Monitor, OrderRole, Phase
from devtools.demo.scenarios import Run, State

EVENTS_SHOWN = 12  # the live view's newest events (fewer when the terminal is short)
EVENTS_PLAIN = 100  # --no-live prints every new event: read enough per tick not to skip any


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def tp_text(m: Monitor) -> str:
    n = len(m.plan.take_profits)
    return "".join("●" if k in m.tp_hits else "○" for k in range(1, n + 1)) + f" {len(m.tp_hits)}/{n}"


def stop_text(m: Monitor) -> str:
    """The stop's trigger as last set on the exchange (else the one wanted), BE once at breakeven."""
    sl = m.current(OrderRole.SL, 0)
    trigger = sl.trigger_price if sl is not None and sl.trigger_price else m.stop_price
    if m.breakeven is BreakevenState.PENDING and m.breakeven_price is not None:
        return f"{trigger} →BE {m.breakeven_price}"
    mark = " BE" if m.breakeven is BreakevenState.DONE else ""
    return f"{trigger}{mark}" if trigger else "-"


def event_detail(payload: Mapping[str, Any]) -> str:
    keys = ("level", "reason", "price", "trigger_price", "qty", "size", "phase", "action", "symbol")
    parts = [f"{k}={payload[k]}" for k in keys if payload.get(k) not in (None, "")]
    return " ".join(parts[:4])


@dataclass
class Urls:
    dashboard: str | None
    flower: str | None
    paper: str
    logs: Path


def render(
    runs: Sequence[Run],
    monitors: Mapping[str, Monitor | None],
    events: Sequence[Any],
    urls: Urls,
    footer: str,
    height: int | None = None,
    walk: Sequence[tuple[str, Sequence[str]]] = (),
) -> Any:
    """The live view: monitors (the scenarios', then the random walk's: `walk` is (label, monitor
    ids) per symbol), scenario progress, newest events (as many as `height` leaves room for), URLs."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def table(title: str, *cols: str) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, title_style="bold")
        for col in cols:
            t.add_column(col, no_wrap=True)
        return t

    mt = table(
        "monitors",
        "scenario",
        "monitor",
        "account",
        "symbol",
        "side",
        "price",
        "phase",
        "tier",
        "TP hits",
        "stop",
        "size",
        "closed",
    )
    groups = [(run.scenario.key, run.scenario.symbol, run.monitor_ids) for run in runs]
    groups += [(label, "", ids) for label, ids in walk if ids]
    for label, symbol, ids in groups:
        for i, mid in enumerate(ids):
            m = monitors.get(mid)
            name = label if i == 0 else "  mirror"
            if m is None:
                mt.add_row(name, mid, "", symbol, "", "", "…", "", "", "", "", "")
                continue
            mt.add_row(
                name,
                mid,
                m.account,
                m.plan.symbol,
                m.plan.side.value,
                f"{m.last_price}" if m.last_price is not None else "",
                Text(m.phase.value, style="green" if m.phase is Phase.CLOSED else ""),
                Text(m.tier.value, style="yellow" if m.tier.value == "critical" else ""),
                tp_text(m),
                stop_text(m),
                f"{m.position_size}",
                m.closed_reason.value if m.closed_reason else "",
            )
    st = table("scenarios", "scenario", "state", "step", "now")
    for run in runs:
        style = {State.DONE: "green", State.FAILED: "red"}.get(run.state, "")
        step = f"{run.step + 1}/{len(run.scenario.steps)}" if run.step >= 0 else "-"
        st.add_row(run.scenario.title, Text(run.state.value, style=style), step, run.detail)
    rows = sum(len(ids) for _, _, ids in groups) + len(runs)
    room = len(events) if height is None else max(3, height - rows - 17)
    et = table("newest events", "time", "monitor", "account", "event", "detail")
    for e in list(events)[:room]:
        kind = Text(e.kind, style="bold" if e.critical else "")
        et.add_row(_clock(e.at), e.monitor_id, e.account, kind, event_detail(e.payload))
    lines = [
        f"dashboard {urls.dashboard or 'not running'}   flower {urls.flower or 'not running'}   "
        f"paper exchange {urls.paper}   logs {urls.logs}/",
        footer,
    ]
    return Group(mt, st, et, Text("\n".join(lines)))


class PlainReporter:
    """`--no-live`: one line per change (script steps, monitor phase/tier/TP/breakeven, events)."""

    def __init__(self) -> None:
        self._seen_events: set[str] = set()
        self._last: dict[str, tuple[Any, ...]] = {}

    @staticmethod
    def say(text: str) -> None:
        print(f"[{_clock(time.time())}] {text}", flush=True)

    def update(
        self, changed: Sequence[Run], monitors: Mapping[str, Monitor | None], events: Sequence[Any]
    ) -> None:
        for run in changed:
            step = f"step {run.step + 1}/{len(run.scenario.steps)}" if run.step >= 0 else "seeded"
            self.say(f"scenario {run.scenario.key}: {run.state.value}, {step}: {run.detail}")
        for mid, m in monitors.items():
            if m is None:
                continue
            key = (m.phase, m.tier, m.tp_hits, m.breakeven, m.position_size, m.closed_reason)
            if self._last.get(mid) != key:
                self._last[mid] = key
                self.say(
                    f"monitor {mid} {m.account} {m.plan.symbol} {m.plan.side.value}: {m.phase.value}, "
                    f"tier {m.tier.value}, TP {tp_text(m)}, stop {stop_text(m)}, size {m.position_size}"
                    + (f", closed {m.closed_reason.value}" if m.closed_reason else "")
                )
        for e in reversed(events):
            if e.id not in self._seen_events:
                self._seen_events.add(e.id)
                self.say(f"event {e.kind} {e.monitor_id} {e.account} {event_detail(e.payload)}")
