"""The TP/SL state machine: `step(monitor, snapshot, now) -> Decision`.

It works like a controller: observe what the exchange shows (fills by each owned order's cumExecQty,
orders gone, the position size), update the monitor, compute the orders the monitor *should* have
(entries still to work, a take-profit ladder summing exactly to the position, one stop covering the
position plus the entries still working), and emit the intents that turn what is into what should be.
Applying the same snapshot twice yields nothing new: an intent is only re-sent once a snapshot read
*after* it was sent shows it did not take (`OwnedOrder.changed_at` vs `Snapshot.taken_at`).

Rules that cost the original bot money, kept here on purpose:
- a stop is changed with an amend (qty, trigger), never cancel-then-place; a lost stop is re-placed at
  once; a position is never left without its stop on purpose;
- a failed read never reaches `step` (no Snapshot, no decision); an order missing from the open list
  counts as gone only once it was looked up (`Snapshot.looked_up`) in a read started after our last
  intent for it;
- fills come from each order's cumExecQty, not from size drops, so a fill missed once is found later;
  a size change our fills do not explain is acted on only when a second read confirms it;
- a long's stop only moves up, a short's only down; after the first take-profit fill no intent adds
  exposure (working entries are cancelled);
- breakeven is recorded done only when the stop is seen on the exchange at that price;
- re-placements are bounded (`Policy.max_repairs`): a rejected order never becomes a loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from core import ids
from core.models import (
    ONE,
    ZERO,
    AmendOrder,
    BreakevenState,
    CancelOrder,
    CloseReason,
    Decision,
    ErrorKind,
    Event,
    EventKind,
    ExchangeOrderStatus,
    Instrument,
    Intent,
    IntentResult,
    Monitor,
    OrderRole,
    OrderStatus,
    OwnedOrder,
    Phase,
    PlaceOrder,
    Plan,
    Side,
    Snapshot,
)
from core.policy import DEFAULT_POLICY, Policy
from core.sizing import allocate, breakeven_price, stop_improves
from core.urgency import classify

_TRANSIENT = frozenset(
    {ErrorKind.RETRY_LATER, ErrorKind.EXCHANGE_DOWN, ErrorKind.BACK_OFF, ErrorKind.STOP_AND_ALERT}
)


# ------------------------------------------------------------------------------------ public entry


def open_monitor(
    monitor_id: str,
    account: str,
    plan: Plan,
    snapshot: Snapshot,
    now: float,
    policy: Policy = DEFAULT_POLICY,
    *,
    mirror_of: str | None = None,
    ratio: Decimal = ONE,
    leader: Monitor | None = None,
) -> Decision:
    """A new monitor for a validated plan: monitor_created, then the first step (entries placed, or
    for an adopted position its take-profits and stop)."""
    m = Monitor(
        id=monitor_id,
        account=account,
        plan=plan,
        phase=Phase.PENDING,
        stop_price=plan.stop_loss,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
        version=1,
        mirror_of=mirror_of,
        ratio=ratio,
    )
    created = Event(
        id=ids.event_id(monitor_id, EventKind.MONITOR_CREATED.value),
        monitor_id=monitor_id,
        account=account,
        kind=EventKind.MONITOR_CREATED,
        at=now,
        monitor_version=1,
        payload={
            "symbol": plan.symbol,
            "side": plan.side.value,
            "position_idx": plan.position_idx,
            "preset": plan.preset,
            "adopt": plan.adopt,
            "planned_qty": str(plan.planned_qty),
            "stop_loss": str(plan.stop_loss),
            "take_profits": [str(tp.price) for tp in plan.take_profits],
            "mirror_of": mirror_of,
            "ratio": str(ratio),
        },
    )
    d = step(m, snapshot, now, policy, leader=leader)
    return Decision(d.monitor, d.intents, (created, *d.events))


def remove_monitor(m: Monitor, now: float, *, cancel_orders: bool = True) -> Decision:
    """The trader ends the guard: monitor_removed; its live orders are cancelled unless told not to
    (then they stay on the exchange, no longer ours to manage)."""
    w = _Work(m, now)
    if cancel_orders:
        _cancel_all(w)
    else:
        for i, o in enumerate(w.orders):
            if o.status.live:
                w.orders[i] = replace(o, status=OrderStatus.CANCELLED, changed_at=now)
    w.set(phase=Phase.CLOSED)
    if m.closed_reason is None:
        w.set(closed_reason=CloseReason.MANUAL)
    w.event(
        EventKind.MONITOR_REMOVED,
        {"cancel_orders": cancel_orders, "position_size": str(m.position_size)},
        discriminator=None,
    )
    return w.finish(None, DEFAULT_POLICY, tiered=False)


def is_finished(m: Monitor) -> bool:
    """Closed and nothing of ours left on the exchange: the monitor can leave the schedule."""
    return m.phase is Phase.CLOSED and not any(o.status.live for o in m.orders)


def links_to_look_up(m: Monitor, snapshot: Snapshot) -> set[str]:
    """Owned orders missing from the open list whose final state the next step needs."""
    return {o.link_id for o in m.orders if o.status.live and o.link_id not in snapshot.open_orders}


def acknowledge(m: Monitor, outcomes: Sequence[tuple[Intent, IntentResult]], now: float) -> Decision:
    """Fold the exchange's answers to a step's intents back into the monitor.

    - place ok: the exchange holds it (OPEN until a read says otherwise);
    - place failed for a passing reason: RETRY, re-sent next pass with the same orderLinkId;
    - place rejected: LOST; re-placing it is counted against the repair budget (no loop);
    - amend of a vanished order: LOST (the next step re-places it); amend rejected: our view is
      resynced from the next read; a rejected breakeven amend is retried when the price allows;
    - cancel ok: stays CANCELLING until a read shows its final fills (a fill racing the cancel counts).
    """
    w = _Work(m, now)
    by_link = {o.link_id: i for i, o in enumerate(w.orders)}
    for intent, result in outcomes:
        i = by_link.get(intent.link_id)
        if i is None:
            continue
        o = w.orders[i]
        if isinstance(intent, PlaceOrder):
            if result.ok:
                if o.status is OrderStatus.PLACING:
                    w.orders[i] = replace(o, status=OrderStatus.OPEN)
            elif result.error in _TRANSIENT:
                w.orders[i] = replace(o, status=OrderStatus.RETRY, changed_at=0.0)
            else:
                w.orders[i] = replace(o, status=OrderStatus.LOST)  # its re-placement is counted
                w.event(
                    EventKind.ORDER_ADJUSTMENT,
                    {"action": "rejected", "link_id": o.link_id, "error": _err(result)},
                )
        elif isinstance(intent, AmendOrder):
            if result.ok:
                continue
            if result.error is ErrorKind.NOT_FOUND:
                w.orders[i] = replace(o, status=OrderStatus.LOST, changed_at=0.0)
            else:
                w.orders[i] = replace(o, changed_at=0.0)
                if o.role is OrderRole.SL and w.get("breakeven") is BreakevenState.PENDING:
                    w.set(breakeven=BreakevenState.NONE, breakeven_price=None)
            w.event(
                EventKind.ORDER_ADJUSTMENT,
                {"action": "amend_failed", "link_id": o.link_id, "error": _err(result)},
            )
        elif isinstance(intent, CancelOrder) and not result.ok:
            w.orders[i] = replace(o, changed_at=0.0)  # re-sent if a fresh read still shows it open
    return w.finish(None, DEFAULT_POLICY, tiered=False)


def _err(result: IntentResult) -> str:
    return f"{result.error.value if result.error else 'error'}: {result.message}"[:300]


# ---------------------------------------------------------------------------------------- the step


def step(
    m: Monitor,
    s: Snapshot,
    now: float,
    policy: Policy = DEFAULT_POLICY,
    *,
    leader: Monitor | None = None,
) -> Decision:
    """One pass of a monitor over a successful read of its account. `leader` is the main monitor
    when `m` is a mirror (the mirror follows its breakeven move)."""
    if s.account != m.account:
        raise ValueError(f"snapshot of account {s.account!r} given for a monitor of {m.account!r}")
    inst = s.instruments.get(m.plan.symbol)
    w = _Work(m, now)
    _observe(w, s)
    if m.phase is Phase.CLOSED:
        _resend_cancels(w, s)
        return w.finish(s, policy, inst=inst)
    if inst is None:
        # no filters for the symbol: nothing can be sized; keep observing fills, act next time
        return w.finish(s, policy, inst=None)

    deltas = _fills(w)
    size = _position(w, s, deltas)
    if w.get("phase") is Phase.CLOSED:
        return w.finish(s, policy, inst=inst)

    _entries(w, s, inst)
    if w.get("phase") is Phase.CLOSED:
        return w.finish(s, policy, inst=inst)
    if size > 0:
        _breakeven(w, s, inst, leader)
        _stop(w, s, inst, size, policy)  # the stop first: its intent leads the batch
        _take_profits(w, inst, size, policy)
    _phase(w)
    return w.finish(s, policy, inst=inst)


# ------------------------------------------------------------------------------------ working copy


class _Work:
    """A mutable draft of the next monitor state plus what to send and record."""

    def __init__(self, m: Monitor, now: float) -> None:
        self.m = m
        self.now = now
        self.orders: list[OwnedOrder] = list(m.orders)
        self.changes: dict[str, Any] = {}
        self.events: list[tuple[EventKind, dict[str, Any], object]] = []
        self.places: list[PlaceOrder] = []
        self.amends: list[AmendOrder] = []
        self.cancels: list[CancelOrder] = []
        self.activity = False
        self.seen_ms: dict[str, int] = {}  # exchange update time of each order this read showed

    def get(self, name: str) -> Any:
        return self.changes.get(name, getattr(self.m, name))

    def set(self, **kw: Any) -> None:
        self.changes.update(kw)

    def event(self, kind: EventKind, payload: dict[str, Any], discriminator: object = "version") -> None:
        """Record an event. Its id is derived from `discriminator` (None: one per monitor and kind;
        "version": one per monitor version; anything else: one per that value)."""
        self.events.append((kind, payload, discriminator))

    def slot(self, role: OrderRole, level: int) -> tuple[int, OwnedOrder] | tuple[None, None]:
        best: tuple[int, OwnedOrder] | tuple[None, None] = (None, None)
        for i, o in enumerate(self.orders):
            if o.role is role and o.level == level and (best[1] is None or o.generation > best[1].generation):
                best = (i, o)
        return best

    def filled_of(self, role: OrderRole, level: int | None = None) -> Decimal:
        return sum(
            (o.filled for o in self.orders if o.role is role and (level is None or o.level == level)),
            ZERO,
        )

    # -- intents
    def place(self, order: OwnedOrder, intent: PlaceOrder, index: int | None) -> None:
        if index is None:
            self.orders.append(order)
        else:
            self.orders[index] = order
        self.places.append(intent)
        self.activity = True

    def new_order(
        self,
        role: OrderRole,
        level: int,
        generation: int,
        side: Side,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        trigger: Decimal | None = None,
        order_type: str = "Limit",
        reduce_only: bool = False,
        close_on_trigger: bool = False,
        trigger_by: str = "LastPrice",
        time_in_force: str = "GTC",
        replace_index: int | None = None,
    ) -> None:
        m = self.m
        lid = ids.link_id(m.id, role, level, generation)
        order = OwnedOrder(
            role=role,
            level=level,
            generation=generation,
            link_id=lid,
            side=side,
            qty=qty,
            price=price,
            trigger_price=trigger,
            status=OrderStatus.PLACING,
            changed_at=self.now,
        )
        direction = 0
        if trigger is not None:
            # a long's stop fires when the price falls to it, a short's when it rises to it
            direction = 2 if m.plan.side is Side.BUY else 1
        intent = PlaceOrder(
            account=m.account,
            monitor_id=m.id,
            link_id=lid,
            symbol=m.plan.symbol,
            side=side,
            qty=qty,
            order_type=order_type,
            price=price,
            trigger_price=trigger,
            trigger_direction=direction,
            trigger_by=trigger_by,
            reduce_only=reduce_only,
            close_on_trigger=close_on_trigger,
            position_idx=m.plan.position_idx,
            time_in_force=time_in_force,
        )
        self.place(order, intent, replace_index)

    def amend(self, i: int, *, qty: Decimal | None = None, trigger: Decimal | None = None) -> None:
        o = self.orders[i]
        self.orders[i] = replace(
            o,
            qty=qty if qty is not None else o.qty,
            trigger_price=trigger if trigger is not None else o.trigger_price,
            changed_at=self.now,
        )
        self.amends.append(
            AmendOrder(
                account=self.m.account,
                monitor_id=self.m.id,
                link_id=o.link_id,
                symbol=self.m.plan.symbol,
                qty=qty,
                trigger_price=trigger,
                conditional=o.role is OrderRole.SL and o.trigger_price is not None,
            )
        )
        self.activity = True

    def cancel(self, i: int) -> None:
        o = self.orders[i]
        self.orders[i] = replace(o, status=OrderStatus.CANCELLING, changed_at=self.now)
        self.cancels.append(
            CancelOrder(
                account=self.m.account, monitor_id=self.m.id, link_id=o.link_id, symbol=self.m.plan.symbol
            )
        )
        self.activity = True

    # -- result
    def finish(
        self, s: Snapshot | None, policy: Policy, *, inst: Instrument | None = None, tiered: bool = True
    ) -> Decision:
        m = self.m
        orders = tuple(self.orders)
        changes = dict(self.changes)
        if orders != m.orders:
            changes["orders"] = orders
        if self.activity or self.events:
            changes["last_activity_at"] = self.now
        draft = replace(m, **changes) if changes else m
        if tiered and s is not None:
            tier = classify(draft, s, self.now, policy, inst=inst)
            if tier is not draft.tier:
                draft = replace(draft, tier=tier)
        if draft == m:
            return Decision(m)
        version = m.version + 1
        new = replace(draft, version=version, updated_at=self.now)
        events = tuple(self._build_events(new))
        intents: tuple[Intent, ...] = (*self.places, *self.amends, *self.cancels)
        return Decision(new, intents, events)

    def _build_events(self, new: Monitor) -> list[Event]:
        out = []
        seen: set[str] = set()
        for kind, payload, disc in self.events:
            if disc is None:
                eid = ids.event_id(new.id, kind.value)
            elif disc == "version":
                eid = ids.event_id(new.id, kind.value, new.version, len(out))
            else:
                eid = ids.event_id(new.id, kind.value, disc)
            if eid in seen:
                continue
            seen.add(eid)
            out.append(
                Event(
                    id=eid,
                    monitor_id=new.id,
                    account=new.account,
                    kind=kind,
                    at=self.now,
                    monitor_version=new.version,
                    payload={"symbol": new.plan.symbol, **payload},
                )
            )
        return out


# ---------------------------------------------------------------------------------------- observe


def _observe(w: _Work, s: Snapshot) -> None:
    """Bring every live owned order up to what this read shows."""
    for i, o in enumerate(w.orders):
        if not o.status.live:
            continue
        fresh = s.taken_at >= o.changed_at
        ex = s.open_orders.get(o.link_id) or s.closed_orders.get(o.link_id)
        if ex is not None and ex.updated_ms:
            w.seen_ms[o.link_id] = ex.updated_ms
        ex = s.open_orders.get(o.link_id)
        if ex is not None:
            upd: dict[str, Any] = {}
            if ex.filled > o.filled:
                upd["filled"] = ex.filled
            if o.status is OrderStatus.PLACING:
                upd["status"] = OrderStatus.OPEN
            if fresh:
                # what the exchange holds wins over what we last asked for
                if ex.qty != o.qty:
                    upd["qty"] = ex.qty
                if o.trigger_price is not None and ex.trigger_price and ex.trigger_price != o.trigger_price:
                    upd["trigger_price"] = ex.trigger_price
            if upd:
                w.orders[i] = replace(o, **upd)
            continue
        closed = s.closed_orders.get(o.link_id)
        if closed is not None:
            filled = max(o.filled, closed.filled)
            if closed.status is ExchangeOrderStatus.FILLED or (o.qty > 0 and filled >= o.qty):
                status = OrderStatus.FILLED
            elif o.status is OrderStatus.CANCELLING:
                status = OrderStatus.CANCELLED
            elif closed.status.is_open:
                continue  # an open order seen by the look-up only: next read shows it
            else:
                status = OrderStatus.LOST
            w.orders[i] = replace(o, filled=filled, status=status)
            continue
        if fresh and o.link_id in s.looked_up:
            status = OrderStatus.CANCELLED if o.status is OrderStatus.CANCELLING else OrderStatus.LOST
            w.orders[i] = replace(o, status=status)
        # else: not seen, not looked up (or the read predates our intent): unknown, wait


def _resend_cancels(w: _Work, s: Snapshot) -> None:
    """A closed monitor keeps cancelling what a read started after the cancel still shows open."""
    for i, o in enumerate(w.orders):
        if o.status is OrderStatus.CANCELLING and o.link_id in s.open_orders and s.taken_at >= o.changed_at:
            w.cancel(i)


# ------------------------------------------------------------------------------------------ fills


class _Deltas:
    __slots__ = ("entry", "sl", "tp", "tp_levels")

    def __init__(self) -> None:
        self.entry = ZERO
        self.sl = ZERO
        self.tp = ZERO
        self.tp_levels: dict[int, Decimal] = {}


def _fills(w: _Work) -> _Deltas:
    """Fills since the last pass, from each order's cumExecQty; their events."""
    m = w.m
    d = _Deltas()
    before = {o.link_id: o for o in m.orders}
    for o in w.orders:
        old = before.get(o.link_id)
        delta = o.filled - (old.filled if old is not None else ZERO)
        if delta <= 0:
            continue
        if o.role is OrderRole.ENTRY:
            d.entry += delta
            w.event(
                EventKind.PARTIAL_FILL,
                {
                    "role": "entry",
                    "level": o.level,
                    "qty": str(delta),
                    "filled": str(o.filled),
                    "link_id": o.link_id,
                    "exchange_ms": w.seen_ms.get(o.link_id),
                },
                discriminator=(o.link_id, o.filled),
            )
        elif o.role is OrderRole.TP:
            d.tp += delta
            d.tp_levels[o.level] = d.tp_levels.get(o.level, ZERO) + delta
        else:
            d.sl += delta
    if d.entry:
        w.set(built_qty=w.get("built_qty") + d.entry)
    hits = list(w.get("tp_hits"))
    for level, delta in sorted(d.tp_levels.items()):
        _, cur = w.slot(OrderRole.TP, level)
        assert cur is not None
        price = str(m.plan.take_profits[level - 1].price) if level <= len(m.plan.take_profits) else None
        if cur.status is OrderStatus.FILLED and level not in hits:
            hits.append(level)
            w.event(
                EventKind.TP_HIT,
                {
                    "level": level,
                    "qty": str(w.filled_of(OrderRole.TP, level)),
                    "price": price,
                    "link_id": cur.link_id,
                    "exchange_ms": w.seen_ms.get(cur.link_id),
                },
                discriminator=level,
            )
        else:
            w.event(
                EventKind.PARTIAL_FILL,
                {
                    "role": "tp",
                    "level": level,
                    "qty": str(delta),
                    "filled": str(cur.filled),
                    "price": price,
                    "link_id": cur.link_id,
                    "exchange_ms": w.seen_ms.get(cur.link_id),
                },
                discriminator=(cur.link_id, cur.filled),
            )
    if hits != list(m.tp_hits):
        w.set(tp_hits=tuple(sorted(hits)))
    if d.tp > 0 and not w.get("entries_closed"):
        _close_entries(w, "take_profit_filled")
    if d.sl > 0:
        _, sl = w.slot(OrderRole.SL, 0)
        w.event(
            EventKind.SL_HIT,
            {
                "qty": str(d.sl),
                "trigger_price": str(sl.trigger_price) if sl and sl.trigger_price else None,
                "breakeven": w.get("breakeven") is BreakevenState.DONE,
                "exchange_ms": w.seen_ms.get(sl.link_id) if sl is not None else None,
            },
            discriminator=None,
        )
    return d


# --------------------------------------------------------------------------------------- position


def _position(w: _Work, s: Snapshot, d: _Deltas) -> Decimal:
    """Reconcile the position size with our fills; close the monitor when it is flat. Returns the
    size the ladder and the stop are sized for."""
    m = w.m
    plan = m.plan
    pos = s.position(plan.symbol, plan.position_idx)
    flipped = pos is not None and pos.size > 0 and pos.side is not None and pos.side is not plan.side
    actual = pos.size if pos is not None and pos.size > 0 and not flipped else ZERO
    if pos is not None and actual > 0 and pos.avg_price and pos.avg_price != m.avg_entry:
        w.set(avg_entry=pos.avg_price)
    price = s.price(plan.symbol)
    if price is not None and price != m.last_price:
        w.set(last_price=price)

    if m.phase is Phase.PENDING and plan.adopt:
        # adoption: the open position is the built size
        if actual > 0:
            w.set(built_qty=actual, position_size=actual, entries_closed=True, unexplained_at=None)
            w.event(EventKind.POSITION_UPDATE, {"size": str(actual), "reason": "adopted"})
        return actual

    expected = max(m.position_size + d.entry - d.tp - d.sl, ZERO)
    exposure = m.built_qty > 0 or d.entry > 0 or m.position_size > 0
    if actual == expected:
        if expected != m.position_size:
            w.set(position_size=expected)
            w.event(EventKind.POSITION_UPDATE, {"size": str(expected)})
        if m.unexplained_at is not None:
            w.set(unexplained_at=None)
        if actual == 0 and exposure:
            _close(w, _close_reason(w, flipped=False))
        return actual

    # the size disagrees with our fills: act on it only when a later read confirms it, and never
    # while one of our orders is unaccounted for in this read (missing from the open list and not
    # looked up yet: its fills may be what explains the size, and would be counted twice)
    since = m.unexplained_at
    if since is None or s.taken_at <= since or _unresolved(w, s):
        if since is None:
            w.set(unexplained_at=s.taken_at)
        if expected != m.position_size:
            w.set(position_size=expected)
        return expected
    w.set(unexplained_at=None, position_size=actual)
    diff = actual - expected
    if actual == 0:
        if exposure or flipped:
            _close(w, _close_reason(w, flipped=flipped, unexplained=True))
        return ZERO
    if diff > 0:
        # grown by hand: adopt the growth; the ladder and the stop follow the new size
        w.set(built_qty=w.get("built_qty") + diff)
    w.event(
        EventKind.POSITION_UPDATE,
        {"size": str(actual), "expected": str(expected), "reason": "changed_outside"},
    )
    return actual


def _unresolved(w: _Work, s: Snapshot) -> bool:
    """Some live owned order's state is unknown in this read."""
    return any(
        o.status.live and o.link_id not in s.open_orders and o.link_id not in s.looked_up for o in w.orders
    )


def _close_reason(w: _Work, *, flipped: bool, unexplained: bool = False) -> CloseReason:
    if w.filled_of(OrderRole.SL) > 0:
        at_breakeven = w.get("breakeven") is BreakevenState.DONE
        if not at_breakeven:
            _, sl = w.slot(OrderRole.SL, 0)
            be = w.get("breakeven_price")
            at_breakeven = be is not None and sl is not None and sl.trigger_price == be
        return CloseReason.BREAKEVEN_STOP if at_breakeven else CloseReason.STOP_LOSS
    if flipped:
        return CloseReason.EXTERNAL
    if unexplained:
        return CloseReason.MANUAL
    return CloseReason.TP_COMPLETE


def _close(w: _Work, reason: CloseReason) -> None:
    w.set(phase=Phase.CLOSED, closed_reason=reason, position_size=ZERO, unexplained_at=None)
    _cancel_all(w)
    w.event(
        EventKind.POSITION_CLOSED,
        {
            "reason": reason.value,
            "tp_hits": list(w.get("tp_hits")),
            "tp_filled": str(w.filled_of(OrderRole.TP)),
            "sl_filled": str(w.filled_of(OrderRole.SL)),
            "built_qty": str(w.get("built_qty")),
            "avg_entry": str(w.get("avg_entry")) if w.get("avg_entry") is not None else None,
        },
        discriminator=None,
    )


def _cancel_all(w: _Work) -> None:
    for i, o in enumerate(w.orders):
        if o.status in (OrderStatus.PLACING, OrderStatus.OPEN):
            w.cancel(i)
        elif o.status is OrderStatus.RETRY:
            w.orders[i] = replace(o, status=OrderStatus.CANCELLED)


# ---------------------------------------------------------------------------------------- entries


def _close_entries(w: _Work, why: str) -> None:
    """No more entries: cancel the working ones (nothing adds exposure any more)."""
    w.set(entries_closed=True)
    cancelled = []
    for i, o in enumerate(w.orders):
        if o.role is OrderRole.ENTRY and o.status in (OrderStatus.PLACING, OrderStatus.OPEN):
            w.cancel(i)
            cancelled.append(o.link_id)
        elif o.role is OrderRole.ENTRY and o.status is OrderStatus.RETRY:
            w.orders[i] = replace(o, status=OrderStatus.CANCELLED)
    if cancelled:
        w.event(EventKind.ORDER_ADJUSTMENT, {"action": "entries_cancelled", "why": why, "links": cancelled})


def _entries(w: _Work, s: Snapshot, inst: Instrument) -> None:
    m = w.m
    plan = m.plan
    if w.get("entries_closed") or plan.adopt:
        return
    limit = plan.entry_time_limit_s
    if limit is not None and w.now - m.created_at >= limit:
        _close_entries(w, "time_limit")
        _expire_if_empty(w)
        return
    all_done = True
    for level, entry in enumerate(plan.entries, start=1):
        i, cur = w.slot(OrderRole.ENTRY, level)
        if cur is None or cur.status is OrderStatus.RETRY:
            all_done = False
            market = entry.is_market
            w.new_order(
                OrderRole.ENTRY,
                level,
                cur.generation if cur is not None else 1,
                plan.side,
                entry.qty,
                price=entry.price,
                order_type="Market" if market else "Limit",
                time_in_force="IOC" if market else "GTC",
                replace_index=i,
            )
        elif cur.status.live:
            all_done = False
        elif cur.status is OrderStatus.LOST and cur.filled < cur.qty:
            # cancelled from outside: the trader's call; the plan shrinks, it is not re-placed
            w.event(
                EventKind.ORDER_ADJUSTMENT,
                {"action": "entry_lost", "level": level, "link_id": cur.link_id},
                discriminator=("entry_lost", cur.link_id),
            )
    if all_done:
        w.set(entries_closed=True)
        _expire_if_empty(w)


def _expire_if_empty(w: _Work) -> None:
    """Entries are over and nothing filled: there is nothing to guard."""
    if w.get("built_qty") <= 0 and w.get("position_size") <= 0:
        w.set(phase=Phase.CLOSED, closed_reason=CloseReason.EXPIRED)
        w.event(EventKind.POSITION_CLOSED, {"reason": CloseReason.EXPIRED.value}, discriminator=None)


# ------------------------------------------------------------------------------------ take-profits


def _take_profits(w: _Work, inst: Instrument, size: Decimal, policy: Policy) -> None:
    """The ladder: remaining weight per level, split of the position, diff against the live orders."""
    plan = w.m.plan
    built = w.get("built_qty")
    hits = set(w.get("tp_hits"))
    weights = []
    for level, tp in enumerate(plan.take_profits, start=1):
        if level in hits:
            weights.append(ZERO)
        else:
            weights.append(max(built * tp.fraction - w.filled_of(OrderRole.TP, level), ZERO))
    wanted = allocate(size, weights, inst)
    for level, (tp, qty) in enumerate(zip(plan.take_profits, wanted, strict=True), start=1):
        i, cur = w.slot(OrderRole.TP, level)
        if cur is not None and cur.status in (OrderStatus.PLACING, OrderStatus.OPEN):
            assert i is not None
            if qty <= 0:
                w.cancel(i)
            elif cur.remaining != qty:
                w.amend(i, qty=cur.filled + qty)
            continue
        if cur is not None and cur.status is OrderStatus.CANCELLING:
            continue
        if qty <= 0:
            continue
        generation = 1
        if cur is not None:
            generation = cur.generation if cur.status is OrderStatus.RETRY else cur.generation + 1
            if cur.status is OrderStatus.LOST and not _may_repair(w, policy, cur):
                continue
        w.new_order(
            OrderRole.TP,
            level,
            generation,
            plan.side.opposite,
            qty,
            price=tp.price,
            reduce_only=True,
            replace_index=i if cur is not None and cur.status is OrderStatus.RETRY else None,
        )


def _may_repair(w: _Work, policy: Policy, lost: OwnedOrder) -> bool:
    """Count a re-placement against its slot's budget (`max_repairs` per order slot, so one slot's
    trouble never starves the stop); past it, that slot is not re-placed and an operator is alerted."""
    if lost.generation > policy.max_repairs:
        if w.get("halted"):
            return False  # the operator was alerted already
        w.set(halted=True)
        w.event(
            EventKind.ORDER_ADJUSTMENT,
            {
                "action": "repair_limit_reached",
                "link_id": lost.link_id,
                "repairs": w.get("repairs"),
                "alert": True,
            },
            discriminator=None,
        )
        return False
    w.set(repairs=w.get("repairs") + 1)
    w.event(
        EventKind.ORDER_ADJUSTMENT,
        {"action": "repaired", "role": lost.role.value, "level": lost.level, "link_id": lost.link_id},
        discriminator=("repair", lost.link_id),
    )
    return True


# ------------------------------------------------------------------------------------------- stop


def _stop_trigger(w: _Work) -> Decimal:
    """The stop we want: the plan's, or breakeven once it is due — whichever protects more."""
    side = w.m.plan.side
    trigger = w.get("stop_price")
    be = w.get("breakeven_price")
    if be is not None and w.get("breakeven") is not BreakevenState.NONE and stop_improves(trigger, be, side):
        trigger = be
    return trigger


def _breakeven(w: _Work, s: Snapshot, inst: Instrument, leader: Monitor | None) -> None:
    m = w.m
    plan = m.plan
    state = w.get("breakeven")
    if state is BreakevenState.PENDING:
        _, sl = w.slot(OrderRole.SL, 0)
        ex = s.open_orders.get(sl.link_id) if sl is not None else None
        be = w.get("breakeven_price")
        if (
            sl is not None
            and ex is not None
            and s.taken_at >= sl.changed_at
            and ex.trigger_price is not None
            and be is not None
            and not stop_improves(ex.trigger_price, be, plan.side)
        ):
            w.set(breakeven=BreakevenState.DONE)
            w.event(
                EventKind.BREAKEVEN_MOVED,
                {
                    "price": str(ex.trigger_price),
                    "avg_entry": str(w.get("avg_entry")),
                    "link_id": sl.link_id,
                    "followed_main": bool(
                        m.mirror_of and leader is not None and leader.breakeven is BreakevenState.DONE
                    ),
                },
                discriminator=None,
            )
        return
    if state is not BreakevenState.NONE:
        return
    due = plan.breakeven_after is not None and plan.breakeven_after in w.get("tp_hits")
    if leader is not None and leader.breakeven is BreakevenState.DONE:
        due = True  # a mirror follows its main's breakeven move
    avg = w.get("avg_entry")
    if not due or avg is None:
        return
    be = breakeven_price(avg, plan.side, plan.fee_buffer, inst)
    current = w.get("stop_price")
    if not stop_improves(current, be, plan.side):
        be = current  # the stop already protects at least breakeven: confirm it as such
    else:
        last = s.last_price(plan.symbol)
        through = last is not None and (last <= be if plan.side is Side.BUY else last >= be)
        if through:
            return  # the price is already beyond breakeven: such a stop would be refused; wait
    if not w.get("entries_closed"):
        _close_entries(w, "breakeven")
    w.set(breakeven=BreakevenState.PENDING, breakeven_price=be)
    w.activity = True


def _stop(w: _Work, s: Snapshot, inst: Instrument, size: Decimal, policy: Policy) -> None:
    """One stop covering the position plus the entries still working, amended in place."""
    plan = w.m.plan
    working = sum(
        (
            o.remaining
            for o in w.orders
            if o.role is OrderRole.ENTRY and o.status in (OrderStatus.PLACING, OrderStatus.OPEN)
        ),
        ZERO,
    )
    qty = size + working
    trigger = _stop_trigger(w)
    i, cur = w.slot(OrderRole.SL, 0)
    if cur is not None and cur.status in (OrderStatus.PLACING, OrderStatus.OPEN):
        assert i is not None
        if cur.filled > 0:
            return  # the stop has fired: the close is under way
        new_qty = qty if cur.qty != qty else None
        new_trigger = trigger if cur.trigger_price != trigger else None
        if (
            new_trigger is not None
            and cur.trigger_price is not None
            and not stop_improves(cur.trigger_price, new_trigger, plan.side)
        ):
            new_trigger = None  # never move a stop against the position
        if new_qty is not None or new_trigger is not None:
            w.amend(i, qty=new_qty, trigger=new_trigger)
        return
    if cur is not None and cur.status is OrderStatus.CANCELLING:
        return
    generation = 1
    if cur is not None:
        generation = cur.generation if cur.status is OrderStatus.RETRY else cur.generation + 1
        if cur.status is OrderStatus.LOST and not _may_repair(w, policy, cur):
            return
    last = s.last_price(plan.symbol)
    breached = last is not None and (last <= trigger if plan.side is Side.BUY else last >= trigger)
    index = i if cur is not None and cur.status is OrderStatus.RETRY else None
    if breached:
        # the price is already through the stop: a stop there would be refused; close now instead
        w.event(
            EventKind.ORDER_ADJUSTMENT,
            {"action": "stop_breached_market_close", "trigger": str(trigger), "last": str(last)},
        )
        w.new_order(
            OrderRole.SL,
            0,
            generation,
            plan.side.opposite,
            size,
            order_type="Market",
            reduce_only=True,
            time_in_force="IOC",
            replace_index=index,
        )
        return
    w.new_order(
        OrderRole.SL,
        0,
        generation,
        plan.side.opposite,
        qty,
        trigger=trigger,
        order_type="Market",
        reduce_only=True,
        close_on_trigger=True,
        trigger_by=policy.stop_trigger_by,
        replace_index=index,
    )


# ------------------------------------------------------------------------------------------ phase


def _phase(w: _Work) -> None:
    phase = w.get("phase")
    if phase is Phase.CLOSED:
        return
    if w.get("tp_hits") or w.filled_of(OrderRole.TP) > 0:
        new = Phase.PROFIT_TAKING
    elif w.get("entries_closed") and (w.get("built_qty") > 0 or w.get("position_size") > 0):
        new = Phase.MONITORING
    elif any(o.role is OrderRole.ENTRY for o in w.orders):
        new = Phase.BUILDING
    else:
        new = phase
    if new is not phase:
        w.set(phase=new)
        w.event(EventKind.MONITORING_UPDATE, {"phase": new.value, "from": phase.value})
