"""The demo's seeded plans and the price scripts that drive them (used by `tpsl demo`).

Each scenario is one monitor on the main account (mirrored onto the mirror account at its ratio), a
start price, a script of price steps, and the close reason it must end with:

| scenario               | plan                         | script                            | end |
|------------------------|------------------------------|-----------------------------------|-----|
| BTC conservative long  | 3 limit entries, TP 85/5/5/5 | entries, TP1 → breakeven, TP2..4  | tp_complete |
| ETH conservative short | 3 limit entries, TP 85/5/5/5 | entries, TP1 → breakeven, back up | breakeven_stop |
| SOL fast long          | market entry, one 100 % TP   | up through the TP                 | tp_complete |
| XRP fast short         | market entry, one 100 % TP   | down through the TP               | tp_complete |
| LINK conservative long | entry_price + qty (preset)   | entries, down through the stop    | stop_loss |

Prices sit around the paper exchange's start prices (exchange/paper/instruments.py).

A step sets one price, holds it for at least `dwell_s / speed`, and, when it names a condition,
waits until that condition holds for the main monitor *and* its mirror before the next step — the
script follows the system rather than a stopwatch, so a slow machine only makes it slower. A `soft`
condition (e.g. "the monitor went critical") is waited for at most `SOFT_WAIT_S`, then the script
moves on. `ScriptRunner` is the state machine; it does no I/O itself (prices go out through a
callable, monitors come in as a mapping, `now` is a parameter).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from core.models import BreakevenState, CloseReason, Monitor, OrderRole, OrderStatus, Phase, Tier

log = logging.getLogger(__name__)

SOFT_WAIT_S = 15.0  # longest wait for a soft condition, seconds (not scaled by --speed)
MIRROR_RATIO = Decimal("0.5")


# ------------------------------------------------------------------------------------ conditions


@dataclass(frozen=True, slots=True)
class Condition:
    """A predicate on one monitor, with what it means in words (shown while the script waits)."""

    what: str
    test: Callable[[Monitor], bool]

    def __call__(self, m: Monitor) -> bool:
        return self.test(m)

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"{self.what}, {other.what}", lambda m: self.test(m) and other.test(m))


def entries_filled(k: int) -> Condition:
    """The first `k` entries of the monitor's own plan have filled (a mirror's plan is scaled)."""

    def test(m: Monitor) -> bool:
        return m.built_qty > 0 and m.built_qty >= sum((e.qty for e in m.plan.entries[:k]), Decimal(0))

    return Condition(f"entry {k} filled" if k == 1 else f"entries 1-{k} filled", test)


def _open(m: Monitor, role: OrderRole, level: int) -> bool:
    o = m.current(role, level)
    return o is not None and o.status is OrderStatus.OPEN


def _stop_in_place(m: Monitor) -> bool:
    """Our stop order is open, or (TPSL_STOP_MODE=position) a read showed the position's own stop-loss."""
    return _open(m, OrderRole.SL, 0) or m.stop_seen is not None


STOP_ON_EXCHANGE = Condition("stop on the exchange", _stop_in_place)

GUARDED = Condition(
    "fully built, stop and take-profits on the exchange",
    lambda m: (
        m.phase is Phase.MONITORING
        and _stop_in_place(m)
        and bool(m.live_orders(OrderRole.TP))
        and all(o.status is OrderStatus.OPEN for o in m.live_orders(OrderRole.TP))
    ),
)

CRITICAL = Condition("checked in the critical tier", lambda m: m.tier is Tier.CRITICAL)

BREAKEVEN = Condition("stop at breakeven", lambda m: m.breakeven is BreakevenState.DONE)


def tp_hit(k: int) -> Condition:
    """TP `k` (or a later one) has filled."""
    return Condition(f"TP{k} filled", lambda m: max(m.tp_hits, default=0) >= k)


CLOSED = Condition("closed", lambda m: m.phase is Phase.CLOSED)


# ------------------------------------------------------------------------------------- scenarios


@dataclass(frozen=True, slots=True)
class Step:
    price: Decimal
    label: str  # what the move is meant to cause
    until: Condition | None = None  # must hold for the main monitor and its mirrors
    dwell_s: float = 6.0  # the price holds at least this long (at speed 1), seconds
    soft: bool = False  # wait for `until` at most SOFT_WAIT_S


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str  # short name: btc, eth, …
    title: str
    story: str
    symbol: str
    plan: Mapping[str, Any]  # a monitor request, in the shape of the README's "Plans" section
    start_price: Decimal
    steps: tuple[Step, ...]
    expected: CloseReason
    start_after_s: float = 0.0  # the first step waits this long after seeding (at speed 1), seconds


def _d(text: str) -> Decimal:
    return Decimal(text)


BTC = Scenario(
    key="btc",
    title="BTC conservative long",
    story="three limit entries fill, TP1 moves the stop to breakeven, TP2-TP4 close the position",
    symbol="BTCUSDT",
    plan={
        "account": "main",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "preset": "conservative",
        "entries": [
            {"price": "64500", "qty": "0.020"},
            {"price": "64000", "qty": "0.020"},
            {"price": "63500", "qty": "0.020"},
        ],
        "take_profits": [
            {"price": "66000", "fraction": "0.85"},
            {"price": "66500", "fraction": "0.05"},
            {"price": "67000", "fraction": "0.05"},
            {"price": "67500", "fraction": "0.05"},
        ],
        "stop_loss": "62500",
        "breakeven_after": 1,
        "mirror": True,
    },
    start_price=_d("65000"),
    steps=(
        Step(_d("64450"), "down through entry 1", entries_filled(1) & STOP_ON_EXCHANGE),
        Step(_d("63950"), "down through entry 2", entries_filled(2)),
        Step(_d("63450"), "down through entry 3", GUARDED),
        Step(_d("65800"), "up near TP1", CRITICAL, soft=True),
        Step(_d("66050"), "up through TP1", tp_hit(1) & BREAKEVEN),
        Step(_d("66550"), "up through TP2", tp_hit(2), dwell_s=4.0),
        Step(_d("67050"), "up through TP3", tp_hit(3), dwell_s=4.0),
        Step(_d("67550"), "up through TP4", CLOSED, dwell_s=4.0),
    ),
    expected=CloseReason.TP_COMPLETE,
)

ETH = Scenario(
    key="eth",
    title="ETH conservative short",
    story="three limit entries fill, TP1 moves the stop to breakeven, the price comes back through it",
    symbol="ETHUSDT",
    plan={
        "account": "main",
        "symbol": "ETHUSDT",
        "side": "Sell",
        "preset": "conservative",
        "entries": [
            {"price": "3520", "qty": "0.50"},
            {"price": "3540", "qty": "0.50"},
            {"price": "3560", "qty": "0.50"},
        ],
        "take_profits": [
            {"price": "3420", "fraction": "0.85"},
            {"price": "3400", "fraction": "0.05"},
            {"price": "3380", "fraction": "0.05"},
            {"price": "3360", "fraction": "0.05"},
        ],
        "stop_loss": "3650",
        "breakeven_after": 1,
        "mirror": True,
    },
    start_price=_d("3500"),
    steps=(
        Step(_d("3525"), "up through entry 1", entries_filled(1) & STOP_ON_EXCHANGE),
        Step(_d("3545"), "up through entry 2", entries_filled(2)),
        Step(_d("3565"), "up through entry 3", GUARDED),
        Step(_d("3436"), "down near TP1", CRITICAL, soft=True),
        Step(_d("3415"), "down through TP1", tp_hit(1) & BREAKEVEN),
        Step(_d("3480"), "bounces back up", None),
        Step(_d("3545"), "up through the breakeven stop", CLOSED),
    ),
    expected=CloseReason.BREAKEVEN_STOP,
    start_after_s=2.0,
)

SOL = Scenario(
    key="sol",
    title="SOL fast long",
    story="market entry, then up through its single take-profit",
    symbol="SOLUSDT",
    plan={
        "account": "main",
        "symbol": "SOLUSDT",
        "side": "Buy",
        "preset": "fast",
        "entries": {"type": "market", "qty": "10"},
        "take_profits": [{"price": "156", "fraction": "1"}],
        "stop_loss": "144",
        "mirror": True,
    },
    start_price=_d("150"),
    steps=(
        Step(_d("151.5"), "drifts up", GUARDED),
        Step(_d("155.4"), "up near the TP", CRITICAL, soft=True),
        Step(_d("156.2"), "up through the TP", CLOSED),
    ),
    expected=CloseReason.TP_COMPLETE,
    start_after_s=4.0,
)

XRP = Scenario(
    key="xrp",
    title="XRP fast short",
    story="market entry, then down through its single take-profit",
    symbol="XRPUSDT",
    plan={
        "account": "main",
        "symbol": "XRPUSDT",
        "side": "Sell",
        "preset": "fast",
        "qty": "1000",
        "take_profits": ["0.5300"],
        "stop_loss": "0.5700",
        "mirror": True,
    },
    start_price=_d("0.5500"),
    steps=(
        Step(_d("0.5480"), "drifts down", GUARDED),
        Step(_d("0.5320"), "down near the TP", CRITICAL, soft=True),
        Step(_d("0.5290"), "down through the TP", CLOSED),
    ),
    expected=CloseReason.TP_COMPLETE,
    start_after_s=6.0,
)

LINK = Scenario(
    key="link",
    title="LINK conservative long",
    story="the preset lays out three entries; they fill, then the price falls through the stop",
    symbol="LINKUSDT",
    plan={
        "account": "main",
        "symbol": "LINKUSDT",
        "side": "Buy",
        "preset": "conservative",
        "entry_price": "13.950",
        "qty": "30",
        "take_profits": ["14.500", "14.700", "14.900", "15.100"],
        "stop_loss": "13.500",
        "mirror": True,
    },
    start_price=_d("14.000"),
    steps=(
        Step(_d("13.940"), "down through entry 1", entries_filled(1) & STOP_ON_EXCHANGE),
        Step(_d("13.800"), "down through entries 2 and 3", GUARDED),
        Step(_d("13.560"), "down near the stop", CRITICAL, soft=True),
        Step(_d("13.450"), "down through the stop", CLOSED),
    ),
    expected=CloseReason.STOP_LOSS,
    start_after_s=8.0,
)

SCENARIOS: tuple[Scenario, ...] = (BTC, ETH, SOL, XRP, LINK)


def start_prices(scenarios: Sequence[Scenario] = SCENARIOS) -> dict[str, Decimal]:
    return {s.symbol: s.start_price for s in scenarios}


# ------------------------------------------------------------------------------------------ runner


class State(StrEnum):
    SEEDED = "seeded"  # monitors created, script not started
    RUNNING = "running"
    DONE = "done"  # every monitor closed with the expected reason
    FAILED = "failed"


@dataclass
class Run:
    """One scenario's progress."""

    scenario: Scenario
    monitor_ids: tuple[str, ...]  # the main monitor first, then its mirrors
    seeded_at: float
    state: State = State.SEEDED
    step: int = -1  # index of the step whose price is set; -1: none yet
    step_at: float = 0.0  # when that price was set
    detail: str = ""  # what it waits for, or why it failed
    ended_at: float | None = None
    reasons: dict[str, str | None] = field(default_factory=dict)  # monitor id -> closed reason

    @property
    def finished(self) -> bool:
        return self.state in (State.DONE, State.FAILED)

    def summary(self) -> str:
        """One line: the scenario, its outcome and (when not done) where it stands."""
        want = self.scenario.expected.value
        ends = ", ".join(f"{mid}={r or 'open'}" for mid, r in self.reasons.items()) or "no monitor"
        if self.state is State.DONE:
            return f"{self.scenario.title}: ok, closed {want} ({ends})"
        where = f"step {self.step + 1}/{len(self.scenario.steps)}" if self.step >= 0 else "not started"
        state = self.state.value.upper()
        return f"{self.scenario.title}: {state} at {where}: {self.detail} (want {want}; {ends})"


class ScriptRunner:
    """Advances every scenario's script from what the monitors show.

    `set_price(symbol, price)` moves a price; `advance(monitors, now)` takes each known monitor by id
    (None or missing: not readable right now) and returns the runs whose state or step changed."""

    def __init__(self, set_price: Callable[[str, Decimal], object], *, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed: must be > 0, got {speed}")
        self.set_price = set_price
        self.speed = speed
        self.runs: list[Run] = []

    def add(self, scenario: Scenario, monitor_ids: Sequence[str], now: float) -> Run:
        run = Run(scenario, tuple(monitor_ids), seeded_at=now, detail="waiting to start")
        run.reasons = dict.fromkeys(run.monitor_ids)
        self.runs.append(run)
        return run

    def fail(self, run: Run, why: str, now: float) -> None:
        run.state = State.FAILED
        run.detail = why
        run.ended_at = now

    @property
    def all_finished(self) -> bool:
        return all(r.finished for r in self.runs)

    @property
    def all_done(self) -> bool:
        return bool(self.runs) and all(r.state is State.DONE for r in self.runs)

    def advance(self, monitors: Mapping[str, Monitor | None], now: float) -> list[Run]:
        changed: list[Run] = []
        for run in self.runs:
            before = (run.state, run.step, run.detail)
            if not run.finished:
                self._advance(run, monitors, now)
            if (run.state, run.step, run.detail) != before:
                changed.append(run)
        return changed

    def _advance(self, run: Run, monitors: Mapping[str, Monitor | None], now: float) -> None:
        sc = run.scenario
        seen = [monitors.get(mid) for mid in run.monitor_ids]
        for mid, m in zip(run.monitor_ids, seen, strict=True):
            if m is not None and m.phase is Phase.CLOSED:
                run.reasons[mid] = m.closed_reason.value if m.closed_reason else None
        wrong = {mid: r for mid, r in run.reasons.items() if r is not None and r != sc.expected.value}
        if wrong:
            mid, reason = next(iter(wrong.items()))
            self.fail(run, f"monitor {mid} closed {reason}", now)
            return
        if all(r == sc.expected.value for r in run.reasons.values()):
            run.state = State.DONE
            run.detail = f"closed {sc.expected.value}"
            run.ended_at = now
            return
        if run.step < 0:
            if now - run.seeded_at >= sc.start_after_s / self.speed:
                self._next(run, now)
            return
        step = sc.steps[run.step]
        held = now - run.step_at >= step.dwell_s / self.speed
        if step.until is None:
            met = True
        else:
            met = all(m is not None and step.until(m) for m in seen)
            if not met and step.soft and now - run.step_at >= SOFT_WAIT_S:
                met = True
        if held and met and run.step + 1 < len(sc.steps):
            self._next(run, now)
        elif not met and step.until is not None:
            lagging = [
                mid for mid, m in zip(run.monitor_ids, seen, strict=True) if m is None or not step.until(m)
            ]
            run.detail = f"{step.label}: waiting for {step.until.what} ({', '.join(lagging)})"
        elif run.step + 1 >= len(sc.steps):
            run.detail = f"{step.label}: waiting for the close"

    def _next(self, run: Run, now: float) -> None:
        step = run.scenario.steps[run.step + 1]
        self.set_price(run.scenario.symbol, step.price)  # first: if it raises, the step is tried again
        run.step += 1
        run.state = State.RUNNING
        run.step_at = now
        run.detail = f"{step.label} ({step.price})"
        log.info("%s: step %d/%d: %s", run.scenario.key, run.step + 1, len(run.scenario.steps), run.detail)


__all__ = [
    "SCENARIOS",
    "Condition",
    "Run",
    "Scenario",
    "ScriptRunner",
    "State",
    "Step",
    "start_prices",
]
