"""What must hold after every pass of the simulator, and at the end of a run.

Each check names the guard's promise it protects; a violation carries the invariant's name (for the
soak's counts) and a sentence for the trace. In position stop mode the stop is the position's own
stop-loss: covered means the position's stopLoss is set (a Full-mode stop closes the whole position,
entries that fill included), one stop means no stop order of ours at all, the stop only tightens on
the stopLoss values the exchange accepted, and breakeven is judged on the stopLoss that rested there.
The exchange's side is read from the engine itself (the truth), the guard's side from the monitors
it saved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core import ids
from core.models import (
    ZERO,
    BreakevenState,
    EventKind,
    Monitor,
    OrderRole,
    OrderStatus,
    PlaceOrder,
    Side,
)
from core.sizing import stop_improves
from core.step import is_finished

FINAL = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.LOST)
UNCOVERED_PASSES = 2  # clean passes (no write of the account faulted) a position may stay uncovered


@dataclass(frozen=True)
class Violation:
    invariant: str
    monitor: str
    detail: str
    passno: int

    def __str__(self) -> str:
        return f"[{self.invariant}] pass {self.passno} monitor {self.monitor}: {self.detail}"


@dataclass
class Track:
    """The checker's memory of one monitor."""

    best_stop: Decimal | None = None
    uncovered: int = 0
    tp_seen: bool = False  # the guard has seen a take-profit fill
    be_seen: bool = False  # a stop of it rested at breakeven while the move was due or done
    emitted: Counter = field(default_factory=Counter)  # (kind, discriminator) → emissions
    order: list[str] = field(default_factory=list)  # kinds of critical events, in order


def engine_orders(acct: Any, mid: str) -> list[Any]:
    """Every order the exchange ever held under one monitor's orderLinkIds (indexed once per pass:
    `after_pass` clears the index)."""
    index = _INDEX.get(id(acct))
    if index is None or index[0] != len(acct.orders_by_link):
        by_mid: dict[str, list[Any]] = {}
        for lid, o in acct.orders_by_link.items():
            parsed = ids.parse_link_id(lid)
            if parsed is not None:
                by_mid.setdefault(parsed[0], []).append(o)
        index = (len(acct.orders_by_link), by_mid)
        _INDEX[id(acct)] = index
    return index[1].get(mid, [])


_INDEX: dict[int, tuple[int, dict[str, list[Any]]]] = {}  # (orders ever, by monitor) per account


def role_of(link_id: str) -> tuple[OrderRole, int]:
    parsed = ids.parse_link_id(link_id)
    assert parsed is not None
    return parsed[1], parsed[2]


class Checker:
    def __init__(self, stop_mode: str = "order") -> None:
        self.tracks: dict[str, Track] = {}
        self.violations: list[Violation] = []
        self.passno = 0
        self._reported: set[tuple[str, str]] = set()
        self.on_position = stop_mode == "position"
        self.dt = 0.0  # simulated seconds of the current pass (for the figures)
        # figures: passes and simulated seconds with a live monitor's position open, and uncovered
        self.stats: Counter = Counter()

    def track(self, mid: str) -> Track:
        return self.tracks.setdefault(mid, Track())

    def fail(self, invariant: str, mid: str, detail: str) -> None:
        """Record a violation (the first of each invariant per monitor: the rest are its echoes)."""
        if (invariant, mid) in self._reported:
            return
        self._reported.add((invariant, mid))
        self.violations.append(Violation(invariant, mid, detail, self.passno))

    # ------------------------------------------------------------------------- on every intent

    def on_intents(self, m_before: Monitor, intents: Any) -> None:
        """Intents of one decision, before they are sent."""
        t = self.track(m_before.id)
        side = m_before.plan.side
        for intent in intents:
            role, _ = role_of(intent.link_id)
            if isinstance(intent, PlaceOrder) and not intent.reduce_only and t.tp_seen:
                self.fail("no_exposure_after_tp", m_before.id, f"adds exposure after a TP fill: {intent}")
            trigger = getattr(intent, "trigger_price", None)
            against = (
                t.best_stop is not None and trigger is not None and stop_improves(trigger, t.best_stop, side)
            )
            if role is OrderRole.SL and against:
                self.fail(
                    "stop_only_tightens",
                    m_before.id,
                    f"stop moved against the trade: {t.best_stop} → {trigger}",
                )

    def on_outcomes(self, m: Monitor, outcomes: Any) -> None:
        """The stop triggers the exchange accepted: the best one is the floor for every later one."""
        t = self.track(m.id)
        for intent, res in outcomes:
            trigger = getattr(intent, "trigger_price", None)
            if not res.ok or trigger is None or role_of(intent.link_id)[0] is not OrderRole.SL:
                continue
            if t.best_stop is None or stop_improves(t.best_stop, trigger, m.plan.side):
                t.best_stop = trigger

    def on_events(self, events: Any) -> None:
        for e in events:
            t = self.track(e.monitor_id)
            key: tuple[str, Any] = (
                e.kind.value,
                e.payload.get("level") if e.kind is EventKind.TP_HIT else None,
            )
            t.emitted[key] += 1
            if e.kind.critical:
                t.order.append(e.kind.value)

    def on_hand_changes(self, events: Any, by_person: bool) -> None:
        """`only_hands_change_by_hand`: a size change is taken for one made by hand
        (`changed_outside`) only on a position a person traded. Elsewhere the guard misread its own
        fills: a close counted before the entries it closed, an open order's fills left uncounted,
        a stop's close left in the balance (docs/protection.md); the stops may stay right, the record
        of the position (`built_qty`, the events) does not."""
        if by_person:
            return
        for e in events:
            if e.kind is EventKind.POSITION_UPDATE and e.payload.get("reason") == "changed_outside":
                self.fail(
                    "only_hands_change_by_hand",
                    e.monitor_id,
                    f"size {e.payload.get('size')} against {e.payload.get('expected')} taken as a change "
                    "by hand on a position nobody traded",
                )

    def on_saved(self, m: Monitor) -> None:
        if m.filled_of(OrderRole.TP) > 0:
            self.track(m.id).tp_seen = True

    # ---------------------------------------------------------------------------- after a pass

    def after_pass(self, world: Any, faulted: set[str]) -> None:
        _INDEX.clear()
        for m in world.recent_monitors():
            acct = world.paper(m.account)
            self._orders_agree(m, acct)
            if m.account not in faulted:
                self._ladder_within_position(m, acct, world)
            if is_finished(m):
                self._finished_clean(m, acct, owns_position=world.owner.get(m.key) == m.id)
            else:
                self._covered(m, acct, m.account in faulted)

    def _position(self, m: Monitor, acct: Any) -> Decimal:
        p = acct.positions.get((m.plan.symbol, m.plan.position_idx))
        if p is None or p.size <= 0 or p.side is not m.plan.side:
            return ZERO
        return p.size

    def _orders_agree(self, m: Monitor, acct: Any) -> None:
        mine = {o.link_id: o for o in m.orders}
        for eo in engine_orders(acct, m.id):
            mo = mine.get(eo.link_id)
            if mo is None:
                self.fail(
                    "no_unknown_order", m.id, f"the exchange holds {eo.link_id}, unknown to the monitor"
                )
                continue
            if mo.status in FINAL and eo.is_open:
                self.fail(
                    "final_means_gone",
                    m.id,
                    f"{eo.link_id} is {mo.status.value} for us, open on the exchange",
                )
            if mo.status in FINAL and eo.cum_qty > mo.filled:
                self.fail(
                    "no_fill_lost",
                    m.id,
                    f"{eo.link_id} filled {eo.cum_qty} on the exchange, "
                    f"{mo.filled} accounted ({mo.status.value})",
                )

    def _ladder_within_position(self, m: Monitor, acct: Any, world: Any) -> None:
        """Reduce-only take-profits never exceed position + working entries (checked when nothing on
        the exchange moved since the guard's read and no write of the account failed: the guard knew
        everything and the exchange did what it was asked)."""
        if not world.quiet.get(m.account, False):
            return
        pos = self._position(m, acct)
        entries = tps = ZERO
        for eo in engine_orders(acct, m.id):
            if not eo.is_open:
                continue
            role, _ = role_of(eo.link_id)
            if role is OrderRole.ENTRY:
                entries += eo.qty - eo.cum_qty
            elif role is OrderRole.TP:
                tps += eo.qty - eo.cum_qty
        if tps > pos + entries:
            self.fail(
                "ladder_within_position", m.id, f"take-profits {tps} > position {pos} + entries {entries}"
            )

    def _covered(self, m: Monitor, acct: Any, faulted: bool) -> None:
        if self.on_position:
            self._covered_on_position(m, acct, faulted)
            return
        t = self.track(m.id)
        pos = self._position(m, acct)
        mine = {o.link_id: o for o in m.orders}
        stops = []
        entries = ZERO
        for eo in engine_orders(acct, m.id):
            if not eo.is_open:
                continue
            role, _ = role_of(eo.link_id)
            if role is OrderRole.SL and eo.trigger_price:
                mo = mine.get(eo.link_id)
                if mo is None or mo.status is not OrderStatus.CANCELLING:
                    stops.append(eo)  # (a stop the guard is cancelling is not counted as its one stop)
            elif role is OrderRole.ENTRY:
                entries += eo.qty - eo.cum_qty
        if len(stops) > 1:
            self.fail("one_stop", m.id, f"{len(stops)} stops live: {[s.link_id for s in stops]}")
        be = m.breakeven_price
        if (
            be is not None
            and m.breakeven is not BreakevenState.NONE
            and any(not stop_improves(s.trigger_price, be, m.plan.side) for s in stops)
        ):
            t.be_seen = True
        if pos <= 0:
            t.uncovered = 0
            return
        need = pos + entries
        have = sum((s.qty - s.cum_qty for s in stops), ZERO)
        self._time(covered=have >= need)
        if have >= need:
            t.uncovered = 0
            return
        if faulted:
            return  # the exchange refused or failed our writes this pass: not counted
        t.uncovered += 1
        if t.uncovered > UNCOVERED_PASSES:
            self.fail(
                "always_covered",
                m.id,
                f"position {pos} + entries {entries} covered by stops of {have} for {t.uncovered} passes",
            )
            t.uncovered = 0

    def _time(self, *, covered: bool) -> None:
        self.stats["open_passes"] += 1
        self.stats["open_s"] += self.dt
        if not covered:
            self.stats["uncovered_passes"] += 1
            self.stats["uncovered_s"] += self.dt

    def _covered_on_position(self, m: Monitor, acct: Any, faulted: bool) -> None:
        """Position stop mode: no stop order of ours is live (one stop: the position's), and an open
        position has its stopLoss set within the same grace as order mode."""
        t = self.track(m.id)
        mine = {o.link_id: o for o in m.orders}
        for eo in engine_orders(acct, m.id):
            if eo.is_open and eo.trigger_price and role_of(eo.link_id)[0] is OrderRole.SL:
                mo = mine.get(eo.link_id)
                if mo is None or mo.status is not OrderStatus.CANCELLING:
                    self.fail("one_stop", m.id, f"a stop order {eo.link_id} live in position stop mode")
        p = acct.positions.get((m.plan.symbol, m.plan.position_idx))
        pos = self._position(m, acct)
        held = p.stop_loss if p is not None and pos > 0 and p.stop_loss else None
        be = m.breakeven_price
        if (
            be is not None
            and held is not None
            and m.breakeven is not BreakevenState.NONE
            and not stop_improves(held, be, m.plan.side)
        ):
            t.be_seen = True
        if pos <= 0:
            t.uncovered = 0
            return
        self._time(covered=held is not None)
        if held is not None:
            t.uncovered = 0
            return
        if faulted:
            return  # the exchange refused or failed our writes this pass: not counted
        t.uncovered += 1
        if t.uncovered > UNCOVERED_PASSES:
            self.fail(
                "always_covered",
                m.id,
                f"position {pos} without its stopLoss for {t.uncovered} passes",
            )
            t.uncovered = 0

    def _finished_clean(self, m: Monitor, acct: Any, *, owns_position: bool) -> None:
        live = [eo.link_id for eo in engine_orders(acct, m.id) if eo.is_open]
        if live:
            self.fail("finished_leaves_nothing", m.id, f"finished, but live on the exchange: {live}")
        pos = self._position(m, acct) if owns_position else ZERO
        if pos > 0:
            self.fail("finished_leaves_nothing", m.id, f"finished ({m.closed_reason}), position {pos} open")

    # ---------------------------------------------------------------------------------- at end

    def at_end(self, world: Any) -> None:
        _INDEX.clear()
        owners: dict[str, dict[str, str]] = {}  # account → its position stops' owners
        for mid, m in world.all_monitors.items():
            acct = world.paper(m.account)
            t = self.track(mid)
            mine = {o.link_id: o for o in m.orders}
            tp_levels_filled: set[int] = set()
            tp_levels_ordered: set[int] = set()
            sl_filled = False
            be = m.breakeven_price
            for eo in engine_orders(acct, mid):
                mo = mine.get(eo.link_id)
                if mo is not None and mo.filled != eo.cum_qty:
                    self.fail(
                        "no_fill_lost",
                        mid,
                        f"at the end {eo.link_id} filled {eo.cum_qty} on the exchange, {mo.filled} accounted",
                    )
                role, level = role_of(eo.link_id)
                if role is OrderRole.TP:
                    tp_levels_ordered.add(level)
                    if eo.cum_qty > 0:
                        tp_levels_filled.add(level)
                elif role is OrderRole.SL and eo.cum_qty > 0:
                    sl_filled = True
            for level in tp_levels_filled:
                n = t.emitted[("tp_hit", level)]
                if n != 1:
                    self.fail("tp_hit_once", mid, f"TP{level} filled on the exchange: {n} tp_hit events")
                for lower in range(1, level):
                    if lower not in tp_levels_ordered and lower not in m.tp_hits:
                        self.fail(
                            "merged_level_done", mid, f"TP{lower} (merged) not done when TP{level} filled"
                        )
            for (kind, level), n in t.emitted.items():
                if kind == "tp_hit" and n > 1:
                    self.fail("tp_hit_once", mid, f"TP{level}: {n} tp_hit events")
            n_sl = t.emitted[("sl_hit", None)]
            position_stop_fired = self.on_position and any(
                owner == mid and (o := acct.orders_by_id.get(order_id)) is not None and o.cum_qty > 0
                for order_id, owner in owners.setdefault(
                    m.account, world.port.position_stop_owners(acct)
                ).items()
            )
            if position_stop_fired or (self.on_position and n_sl):
                # the position's own stop has no order of ours: the guard judges a close it did not
                # make by that stop's fill in the executions, looked up; a stop found gone while the
                # look-up fails is set again as removed by hand (docs/protection.md, Stop modes):
                # counted, not an invariant
                self.stats["position_stop_closes"] += position_stop_fired
                self.stats["sl_hit_judged_wrong"] += (n_sl > 0) != (sl_filled or position_stop_fired)
                if n_sl > 1:
                    self.fail("sl_hit_once", mid, f"{n_sl} sl_hit events")
            elif n_sl != (1 if sl_filled else 0):
                self.fail("sl_hit_once", mid, f"stop filled={sl_filled}: {n_sl} sl_hit events")
            n_closed = t.emitted[("position_closed", None)]
            if n_closed > 1:
                self.fail("closed_once", mid, f"{n_closed} position_closed events")
            if is_finished(m) and n_closed != 1 and m.closed_reason is not None:
                self.fail(
                    "closed_once", mid, f"finished ({m.closed_reason}) with {n_closed} position_closed events"
                )
            n_be = t.emitted[("breakeven_moved", None)]
            done = m.breakeven is BreakevenState.DONE
            # recorded iff done; and done whenever the exchange held the stop there while it was due
            # (position mode: a move whose call went unanswered and whose position closed before any
            # read showed it leaves no trace the guard can read: counted, see docs/protection.md)
            if self.on_position and t.be_seen and not done and n_be == 0:
                self.stats["breakeven_unseen"] += 1
            elif n_be != (1 if done else 0) or (t.be_seen and not done):
                self.fail(
                    "breakeven_recorded",
                    mid,
                    f"breakeven {m.breakeven.value} at {be}, a stop rested there: {t.be_seen}; "
                    f"{n_be} breakeven_moved events",
                )
            order = t.order
            if (
                "breakeven_moved" in order
                and "position_closed" in order
                and order.index("breakeven_moved") > order.index("position_closed")
            ):
                self.fail("breakeven_recorded", mid, "breakeven_moved recorded after position_closed")


def side_of(m: Monitor) -> Side:
    return m.plan.side
