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
- fills come from each order's cumExecQty (listed or looked up), not from size drops, so a fill
  missed once is found later; the size they leave is a balance that does not care in which order
  they are seen (a close seen before the entries it closed is owed: `Monitor.closed_ahead`); a size
  change our fills do not explain is acted on only when a second read confirms it;
- a long's stop only moves up, a short's only down; after the first take-profit fill no intent adds
  exposure (working entries are cancelled);
- breakeven is recorded done only when the stop is seen on the exchange at that price (open, or in
  its final state once it closed);
- re-placements are bounded (`Policy.max_repairs`): a rejected order never becomes a loop.

Rules that races with the exchange taught (each has a regression test and a simulator invariant):
1. a monitor closes only once a read shows every owned order final and the position flat; until then
   it is CLOSING, keeps accounting fills of what it is cancelling, and guards again if one lands;
2. an amend or cancel answered "not found" leaves the order unknown, not lost: the next read looks
   it up (its final fills) before anything is re-placed; an order is only amended when this read
   shows it;
3. a create whose answer never came is in flight: looked up by orderLinkId every pass until found,
   or until a look-up made after the exchange's receive window proves it never landed; it is
   cancelled by orderLinkId when it must go, never dropped unsent;
4. a stop slot's market close is never amended as a stop: it is awaited;
5. a breach is judged on the stop's own trigger price (`Policy.stop_trigger_by`); a stop refused as
   already breached is replaced by a reduce-only market close at once, and so is a stop whose
   repair budget is spent (with a critical alert);
6. a take-profit level is hit at its first fill (tp_hit once, later fills are partial fills); a level
   merged into the next is hit when the order carrying its quantity fills;
7. the stop covers the position plus every entry not yet seen cancelled;
8. intents go out stop first, then cancels, then amends that lower, then places and raising amends
   (`core.models.Stage`);
9. a breakeven move still unconfirmed when the position goes flat is settled by the stop's final
   state: breakeven_moved is recorded before position_closed when the stop was there.

`Policy.stop_mode` "position" keeps the stop as the position's own Full-mode stop-loss (`SetPositionStop`,
trading-stop) instead of a stop order; the same rules hold for it (see "the position's own stop"
below and docs/protection.md, Stop modes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    ExchangeOrder,
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
    Position,
    SetPositionStop,
    Side,
    Snapshot,
    Stage,
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
    position_idx_inferred: bool = False,
) -> Decision:
    """A new monitor for a validated plan: monitor_created, then the first step (entries placed, or
    for an adopted position its take-profits and stop). `position_idx_inferred`: the plan named no
    positionIdx and the account is in hedge mode (core.plan.resolve_position_idx): said in the event."""
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
            "position_idx_inferred": position_idx_inferred,
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


def is_closing(m: Monitor) -> bool:
    return m.phase is Phase.CLOSING


def links_to_look_up(m: Monitor, snapshot: Snapshot) -> set[str]:
    """Owned orders missing from the open list whose final state the next step needs (and orders
    waiting to be sent again whose earlier create was never answered: they may be there)."""
    return {o.link_id for o in m.orders if _watched(o) and o.link_id not in snapshot.open_orders}


STOP_PUSH_GRACE_S = 2.0  # a pushed read looks the executions up only this long after the change


def stop_fills_to_look_up(m: Monitor, snapshot: Snapshot, policy: Policy) -> set[str]:
    """Position mode: the symbol whose executions the next step needs, to tell a close by the
    position's own stop from a change by hand: a flat or smaller position our fills do not explain
    (on the read that confirms what an earlier read saw), or the position open without the stop a
    read showed before. The position's stop is no order of ours: its fill is found in the account's
    executions (`stopOrderType` StopLoss), not by orderLinkId. Nothing to look up once the read
    holds such a fill (pushed) or has looked already. A read from the stream view waits for the
    pushes instead: a smaller or flat position is looked up only `STOP_PUSH_GRACE_S` after the first
    read that saw it, and a stop found gone not at all (its fill, if any, comes pushed)."""
    if (
        not _on_position(policy)
        or m.phase is Phase.CLOSED
        or position_stop_fill(m, snapshot) is not None  # pushed, or looked up already
    ):
        return set()
    never_set = m.stop_seen is None and m.stop_accepted is None and m.stop_sent_at <= 0
    if never_set and not _entry_stop_set(m.orders, policy):
        return set()  # no stop of the position's was ever set (nor attached to a filled entry)
    pos = snapshot.position(m.plan.symbol, m.plan.position_idx)
    open_ = pos is not None and pos.size > 0 and pos.side is m.plan.side
    if m.stop_fired > 0 and not (open_ and m.unexplained_at is not None):
        # it fired: only a smaller position an entry reopened may be another firing (the stop
        # attached to the entry, set again by its fill)
        return set()
    if open_ and pos is not None and pos.stop_loss is None and m.stop_seen is not None:
        # open without the stop a read showed: removed by hand, or it fired and the position was
        # opened again before a read saw it flat (entries, or a hand add)? A pushed read waits for
        # the push of its fill, if any (set again meanwhile, as removed by hand)
        return {m.plan.symbol} if snapshot.taken_at >= m.stop_sent_at and not snapshot.pushed else set()
    if m.unexplained_at is None:
        return set()  # no size change our fills do not explain
    if open_ and pos is not None and pos.size >= m.position_size:
        return set()  # not smaller: the stop did not fire
    if snapshot.pushed and snapshot.taken_at < m.unexplained_at + STOP_PUSH_GRACE_S:
        # the pushes of one fill come apart and late under load: the stop's own fill, or the
        # fill of ours that explains the change, is usually pushed within this
        return set()
    return {m.plan.symbol}


def _watched(o: OwnedOrder) -> bool:
    """Its state on the exchange matters: live, or a RETRY an earlier unanswered create may have put
    there."""
    return o.status.live or (o.status is OrderStatus.RETRY and o.unanswered_at > 0)


def acknowledge(m: Monitor, outcomes: Sequence[tuple[Intent, IntentResult]], now: float) -> Decision:
    """Fold the exchange's answers to a step's intents back into the monitor.

    - place ok: the exchange holds it (OPEN until a read says otherwise);
    - place without an answer (timeout, 5xx): in flight (PLACING, unconfirmed): looked up by
      orderLinkId until found or proven never landed;
    - place refused before it was carried out (rate limit, not sent): RETRY, same orderLinkId;
    - stop refused as already breached: a reduce-only market close, sent at once (the intents of the
      returned Decision are a follow-up the caller sends in the same pass); a re-sent stop whose first
      create may still land is also cancelled by its orderLinkId in that follow-up;
    - place rejected: LOST; re-placing it is counted against the repair budget (no loop); but a
      re-send whose earlier create was never answered and never proven absent stays watched (the
      refusal says nothing of the first create, which may have landed and filled);
    - amend or cancel answered "not found": unknown, not lost: the next read looks it up;
    - amend rejected: our view is resynced from the next read; a rejected breakeven amend is retried
      when the price allows, unless the exchange answered an earlier one ok (the move was made);
    - cancel ok: stays CANCELLING until a read shows its final fills (a fill racing the cancel counts).
    """
    w = _Work(m, now)
    by_link = {o.link_id: i for i, o in enumerate(w.orders)}
    for intent, result in outcomes:
        if isinstance(intent, SetPositionStop):
            _acknowledge_position_stop(w, intent, result)
            continue
        i = by_link.get(intent.link_id)
        if i is None:
            continue
        o = w.orders[i]
        if (
            result.ok
            and o.role is OrderRole.SL
            and isinstance(intent, PlaceOrder | AmendOrder)
            and intent.trigger_price is not None
        ):
            w.set(stop_accepted=intent.trigger_price)  # a stop order's create or amend of its trigger
        if isinstance(intent, PlaceOrder):
            if result.ok:
                if o.status is OrderStatus.PLACING:
                    w.orders[i] = replace(o, status=OrderStatus.OPEN, confirmed=True)
            elif result.unknown:
                # stays PLACING, unconfirmed: in flight until a read finds it or proves it absent
                w.orders[i] = replace(o, unanswered_at=o.changed_at)
                w.event(
                    EventKind.ORDER_ADJUSTMENT,
                    {"action": "create_unanswered", "link_id": o.link_id, "error": _err(result)},
                )
            elif result.error in _TRANSIENT or not result.sent:
                w.orders[i] = replace(o, status=OrderStatus.RETRY, changed_at=0.0)
            elif _may_be_there(o):
                # this send was refused, but an earlier one that was never answered may have landed
                # (or may still land, within the receive window): it stays watched until a read
                # finds it or a look-up made after the window proves it absent; a refusal of the
                # re-send proves nothing about the first create
                w.event(
                    EventKind.ORDER_ADJUSTMENT,
                    {"action": "rejected_while_unanswered", "link_id": o.link_id, "error": _err(result)},
                )
                if _breached_stop(o, result) and w.get("position_size") > 0:
                    # the price is through the stop and its first create may never land: close at
                    # market now, and cancel that create by its orderLinkId so that, should it land
                    # after all, it never rests beside whatever guards the position next
                    w.cancel(i)
                    _market_close(w, w.get("position_size"), why="stop_refused_as_breached")
            else:
                w.orders[i] = replace(o, status=OrderStatus.LOST)  # its re-placement is counted
                w.event(
                    EventKind.ORDER_ADJUSTMENT,
                    {"action": "rejected", "link_id": o.link_id, "error": _err(result)},
                )
                if _breached_stop(o, result) and w.get("position_size") > 0:
                    _market_close(w, w.get("position_size"), why="stop_refused_as_breached")
        elif isinstance(intent, AmendOrder):
            if result.ok:
                continue
            if result.error is ErrorKind.NOT_FOUND or result.unknown:
                # filled, cancelled or triggered meanwhile (or no answer): the next read looks it up
                w.orders[i] = replace(o, changed_at=0.0)
            else:
                w.orders[i] = replace(o, changed_at=0.0)
                if o.role is OrderRole.SL and intent.trigger_price is not None:
                    # the move itself was refused: due again. A refused amend of the quantity alone
                    # leaves the trigger an earlier amend set (the move, answered ok, unread yet);
                    # so does a refused amend that sent the trigger again after an earlier one
                    # answered ok (a read older than that amend made it look unmoved)
                    _breakeven_refused(w)
            w.event(
                EventKind.ORDER_ADJUSTMENT,
                {"action": "amend_failed", "link_id": o.link_id, "error": _err(result)},
            )
        elif isinstance(intent, CancelOrder) and not result.ok:
            w.orders[i] = replace(o, changed_at=0.0)  # re-sent if a fresh read still shows it open
    return w.finish(None, DEFAULT_POLICY, tiered=False)


def _breached_stop(o: OwnedOrder, result: IntentResult) -> bool:
    """A stop refused because the price is already through its trigger."""
    return o.role is OrderRole.SL and not o.market_close and result.error is ErrorKind.TRIGGER_PASSED


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
    w = _Work(m, now, policy)
    _observe(w, s, policy)
    if m.phase is Phase.CLOSED:
        _resend_cancels(w, s)
        return w.finish(s, policy, inst=inst)
    if _on_position(policy):
        _observe_position_stop(w, s)
    _confirm_breakeven(w, s, leader)
    if inst is None:
        # no filters for the symbol: nothing can be sized; keep observing fills, act next time
        return w.finish(s, policy, inst=None)

    deltas = _fills(w)
    size, ladder, settled = _position(w, s, deltas)
    if w.get("phase") is Phase.CLOSING:
        if size <= 0:
            _keep_closing(w, s)
            return w.finish(s, policy, inst=inst)
        _reopen(w, size)  # an order we were cancelling filled: guard what it opened

    _entries(w, s, inst)
    if w.get("phase") is Phase.CLOSING:
        _keep_closing(w, s)
        return w.finish(s, policy, inst=inst)
    _resend_cancels(w, s)
    if size > 0:
        _breakeven(w, s, inst, leader, policy)
        if _on_position(policy):
            _position_stop(w, s, size, policy)
        else:
            _stop(w, s, inst, size, policy)
        # while a take-profit's quantity may be on the book without this read showing it (a cancel
        # unconfirmed, an order the read does not list), nothing of the ladder is raised
        unseen = any(
            o.role is OrderRole.TP
            and (o.status is OrderStatus.CANCELLING or (o.status.live and o.link_id not in s.open_orders))
            for o in w.orders
        )
        _take_profits(w, s, inst, ladder, policy, lower_only=not settled or unseen)
    _phase(w)
    return w.finish(s, policy, inst=inst)


# ------------------------------------------------------------------------------------ working copy


class _Work:
    """A mutable draft of the next monitor state plus what to send and record."""

    def __init__(self, m: Monitor, now: float, policy: Policy = DEFAULT_POLICY) -> None:
        self.m = m
        self.now = now
        self.policy = policy
        self.orders: list[OwnedOrder] = list(m.orders)
        self.changes: dict[str, Any] = {}
        self.events: list[tuple[EventKind, dict[str, Any], object]] = []
        self.places: list[PlaceOrder] = []
        self.amends: list[AmendOrder] = []
        self.cancels: list[CancelOrder] = []
        self.position_stops: list[SetPositionStop] = []
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
        stop_loss: Decimal | None = None,
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
            # a re-sent create keeps the time of an earlier one that was never answered
            unanswered_at=self.orders[replace_index].unanswered_at if replace_index is not None else 0.0,
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
            stage=Stage.STOP if role is OrderRole.SL else Stage.RAISE,
            stop_loss=stop_loss,
            stop_loss_by=self.policy.stop_trigger_by,
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
                stage=Stage.STOP
                if o.role is OrderRole.SL
                else (Stage.LOWER if qty is not None and qty < o.qty else Stage.RAISE),
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
        if changes.get("unexplained_at", m.unexplained_at) is None and changes.get(
            "confirm_by_rest", m.confirm_by_rest
        ):
            changes["confirm_by_rest"] = False  # it says something only while a change is unexplained
        if orders != m.orders:
            changes["orders"] = orders
        if self.activity or self.events:
            changes["last_activity_at"] = self.now
        draft = replace(m, **changes) if changes else m
        if tiered and s is not None:
            tier = classify(draft, s, self.now, policy, inst=inst)
            if tier is not draft.tier:
                draft = replace(draft, tier=tier)
        # a step that acts (an event, an intent) is never dropped, even when the monitor's state
        # comes out equal (a call sent again at the same instant as the last one)
        acts = bool(self.events or self.position_stops or self.places or self.amends or self.cancels)
        if not acts and (
            draft == m
            or (
                draft.last_price != m.last_price
                and self.now - m.updated_at < policy.price_note_s
                and replace(draft, last_price=m.last_price) == m
            )
        ):
            return Decision(m)  # nothing changed, or only the shown price, noted lately
        version = m.version + 1
        new = replace(draft, version=version, updated_at=self.now)
        events = tuple(self._build_events(new))
        pending: list[Intent] = [*self.position_stops, *self.places, *self.amends, *self.cancels]
        intents = tuple(sorted(pending, key=lambda i: i.stage))
        return Decision(new, intents, events)

    def _build_events(self, new: Monitor) -> list[Event]:
        out: list[Event] = []
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


def _observe(w: _Work, s: Snapshot, policy: Policy) -> None:
    """Bring every live owned order up to what this read shows."""
    for i, o in enumerate(w.orders):
        if o.status is OrderStatus.RETRY and o.unanswered_at > 0:
            if o.link_id in s.open_orders or o.link_id in s.closed_orders:
                o = w.orders[i] = replace(o, status=OrderStatus.PLACING)  # it landed after all
            else:
                _proven_absent(w, s, policy, i, o)
                continue
        if not o.status.live:
            continue
        fresh = s.taken_at >= o.changed_at
        ex = s.open_orders.get(o.link_id) or s.closed_orders.get(o.link_id)
        if ex is not None and ex.updated_ms:
            w.seen_ms[o.link_id] = ex.updated_ms
        ex = s.open_orders.get(o.link_id)
        closed = s.closed_orders.get(o.link_id)
        listed = ex is not None
        if ex is None and closed is not None and closed.status.is_open:
            # open, but missing from the open list (a list served stale) and found by its look-up:
            # its fills count now (cumExecQty only grows); what it stands at, the next list shows
            ex = closed
        if ex is not None:
            upd: dict[str, Any] = {}
            if ex.filled > o.filled:
                upd["filled"] = ex.filled
            if o.status is OrderStatus.PLACING:
                upd["status"] = OrderStatus.OPEN
            if not o.confirmed:
                upd["confirmed"] = True
            if fresh and listed and _row_after_last_intent(s, o, ex):
                # what the exchange holds wins over what we last asked for
                if ex.qty != o.qty:
                    upd["qty"] = ex.qty
                if o.trigger_price is not None and ex.trigger_price and ex.trigger_price != o.trigger_price:
                    upd["trigger_price"] = ex.trigger_price
            if upd:
                w.orders[i] = replace(o, **upd)
            continue
        if closed is not None:
            filled = max(o.filled, closed.filled)
            if closed.status is ExchangeOrderStatus.FILLED or (o.qty > 0 and filled >= o.qty):
                status = OrderStatus.FILLED
            elif o.status is OrderStatus.CANCELLING:
                status = OrderStatus.CANCELLED
            else:
                status = OrderStatus.LOST
            trigger = o.trigger_price
            if o.trigger_price is not None and closed.trigger_price:
                trigger = closed.trigger_price  # its final state: where it really stood
            w.orders[i] = replace(o, filled=filled, status=status, trigger_price=trigger, confirmed=True)
            continue
        if fresh and o.status is OrderStatus.PLACING and not o.confirmed:
            # a create without an answer, not in this read: send the same create again — the same
            # orderLinkId cannot land twice, and the answer (ok, or "duplicate") settles it
            w.orders[i] = replace(o, status=OrderStatus.RETRY)
            continue
        if not (fresh and o.link_id in s.looked_up):
            continue  # not seen, not looked up (or the read predates our intent): unknown, wait
        if o.status is OrderStatus.CANCELLING:
            if not o.confirmed and s.taken_at < o.unanswered_at + policy.create_window_s:
                continue  # its create may still land after our cancel: gone only once the window passed
            w.orders[i] = replace(o, status=OrderStatus.CANCELLED)
        else:
            w.orders[i] = replace(o, status=OrderStatus.LOST)


def _row_after_last_intent(s: Snapshot, o: OwnedOrder, ex: ExchangeOrder) -> bool:
    """Whether the row shows the order as of after our last intent for it. A REST read lists it as
    it stands. A read from the stream view holds each order as its last push brought it (its
    `updated_ms`, the exchange's clock): when the push of our amend was lost, the row still holds
    the trigger and quantity from before it, and taking them would undo the amend in our record (a
    breakeven move among them). Such a row waits for the push, or for the view's reconciliation."""
    return not s.pushed or not ex.updated_ms or ex.updated_ms >= o.changed_at * 1000


def _proven_absent(w: _Work, s: Snapshot, policy: Policy, i: int, o: OwnedOrder) -> None:
    """A RETRY whose earlier create was never answered and that a look-up made after the receive
    window did not find: it never will land (a plain RETRY from now on)."""
    if o.link_id in s.looked_up and s.taken_at >= o.unanswered_at + policy.create_window_s:
        w.orders[i] = replace(o, unanswered_at=0.0)


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
        if level not in hits:
            # the price reached the level: hit at its first fill, partial or full
            for lower in range(1, level):
                if lower not in hits and not _carries(w, lower):
                    _merged(w, hits, lower, level)  # passed, its share carried by a later level
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
    # a level passed while its order was in flight (a create not answered yet, which may land) is
    # not merged when the next level hits; once that order is gone (it never landed: the ladder
    # gives its share to a later level), it is done the same way
    for lower in range(1, max(hits, default=0)):
        if lower not in hits and not _carries(w, lower):
            _merged(w, hits, lower, min(h for h in hits if h > lower))
    if hits != list(m.tp_hits):
        w.set(tp_hits=tuple(sorted(hits)))
    if d.tp > 0 and not w.get("entries_closed"):
        _close_entries(w, "take_profit_filled")
    if d.sl > 0 and (w.filled_of(OrderRole.SL) > d.sl or w.get("stop_fired") > 0):
        _, sl = w.slot(OrderRole.SL, 0)
        w.event(
            EventKind.PARTIAL_FILL,
            {"role": "sl", "qty": str(d.sl), "filled": str(w.filled_of(OrderRole.SL))},
            discriminator=("sl", w.filled_of(OrderRole.SL)),
        )
    elif d.sl > 0:
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


def _merged(w: _Work, hits: list[int], lower: int, into: int) -> None:
    """A level done without a fill of its own: its share is carried by level `into`."""
    hits.append(lower)
    w.event(
        EventKind.TP_HIT,
        {"level": lower, "qty": "0", "merged_into": into, "price": _tp_price(w.m, lower)},
        discriminator=lower,
    )


def _carries(w: _Work, level: int) -> bool:
    """The level has an order of its own on the book, or had fills: it is hit by its own fills."""
    return any(
        o.role is OrderRole.TP and o.level == level and (o.status.live or o.filled > 0) for o in w.orders
    )


def _tp_price(m: Monitor, level: int) -> str | None:
    return str(m.plan.take_profits[level - 1].price) if level <= len(m.plan.take_profits) else None


# --------------------------------------------------------------------------------------- position


def _position(w: _Work, s: Snapshot, d: _Deltas) -> tuple[Decimal, Decimal, bool]:
    """Reconcile the position size with our fills; begin closing the monitor when it is flat.
    Returns (the size the stop must cover, the size the ladder may cover, settled): while a size
    change is unexplained, the stop covers the larger of the real and the expected size and the
    ladder may only shrink to the smaller."""
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
            w.set(
                built_qty=actual,
                position_size=actual,
                closed_ahead=ZERO,
                entries_closed=True,
                unexplained_at=None,
            )
            w.event(EventKind.POSITION_UPDATE, {"size": str(actual), "reason": "adopted"})
        return actual, actual, True

    # our fills, as this read holds them; counted in another order than they happened (a close's
    # fill seen before the entry fills it closed) the balance goes below zero for a while, and the
    # entry fills counted next settle it instead of looking like growth
    expected = _balance(w, m.position_size - m.closed_ahead + d.entry - d.tp - d.sl)
    exposure = m.built_qty > 0 or d.entry > 0 or m.position_size > 0
    if actual == expected:
        if expected != m.position_size:
            w.set(position_size=expected)
            w.event(EventKind.POSITION_UPDATE, {"size": str(expected)})
        if m.unexplained_at is not None:
            w.set(unexplained_at=None)
        if actual == 0 and exposure:
            _begin_close(w, _close_reason(w, flipped=False))
        return actual, actual, True

    # the size disagrees with our fills: act on it only when a later read confirms it, and never
    # while one of our orders is unaccounted for in this read (missing from the open list and not
    # looked up yet: its fills may be what explains the size, and would be counted twice)
    since = m.unexplained_at
    by_rest = _pushed_cannot_confirm(w, s)
    if (
        since is None
        or s.taken_at <= since
        or _unresolved(w, s)
        or _judgement_waits(w, s, actual, expected, since)
        or by_rest
    ):
        if since is None:
            w.set(unexplained_at=s.taken_at)
        if by_rest != m.confirm_by_rest:
            w.set(confirm_by_rest=by_rest)
        if expected != m.position_size:
            w.set(position_size=expected)
        # the stop covers what may be there; the ladder may shrink to a smaller real size, but a
        # flat read is acted on only once a second read confirms it (the close path)
        return max(actual, expected), (min(actual, expected) if actual > 0 else expected), False
    w.set(unexplained_at=None, position_size=actual, closed_ahead=ZERO)  # the read is the truth now
    diff = actual - expected
    if actual == 0 and not flipped and _on_position(w.policy):
        _position_stop_fill(w, s, expected)
    if actual == 0:
        if exposure or flipped:
            _begin_close(w, _close_reason(w, flipped=flipped, unexplained=True))
        return ZERO, ZERO, True
    reason = "changed_outside"
    if diff > 0:
        # grown by hand: adopt the growth; the ladder and the stop follow the new size
        w.set(built_qty=w.get("built_qty") + diff)
    elif not flipped and _on_position(w.policy) and w.get("stop_fired") == 0 and w.get("stop_crossed"):
        # smaller, and the position's own stop filled (its fill read, or else the price through it,
        # as for a flat read): it fired while entries were still working (one filled again since, so
        # no read showed the position flat). That is the stop's fill, not a change by hand; the stop
        # is set again on what the entries built since
        _position_stop_fill(w, s, -diff)
        reason = "stop_fired"
    elif (
        not flipped
        and _on_position(w.policy)
        and w.get("stop_fired") > 0
        and (again := _newer_stop_fill(w, s))
    ):
        # it fired again: an entry's partial fill reopened the position and set the stop attached
        # to it again, with the price already through it. Another close by the stop, not by hand
        # (its sl_hit was said at the first)
        w.set(stop_fired=w.get("stop_fired") - diff, stop_fired_ms=again)
        reason = "stop_fired"
    w.event(
        EventKind.POSITION_UPDATE,
        {"size": str(actual), "expected": str(expected), "reason": reason},
    )
    return actual, actual, True


def _newer_stop_fill(w: _Work, s: Snapshot) -> int | None:
    """The execTime of a fill of the position's stop the read holds, newer than the one counted
    (None: no such fill)."""
    ms = position_stop_fill(w.m, s)
    return ms if type(ms) is int and ms > w.get("stop_fired_ms") else None


def _balance(w: _Work, balance: Decimal) -> Decimal:
    """The size our fills leave (never below zero: what they counted beyond it is `closed_ahead`)."""
    if max(-balance, ZERO) != w.get("closed_ahead"):
        w.set(closed_ahead=max(-balance, ZERO))
    return max(balance, ZERO)


def _pushed_cannot_confirm(w: _Work, s: Snapshot) -> bool:
    """A read from the stream view does not confirm a size change our fills do not explain. The view
    holds our orders as their pushes brought them, and a lost order push (one message can carry a
    whole burst's fills) looks exactly like a change by hand: acting on it would shrink the ladder,
    adopt the size, and count the fills again when they show. A REST read, which lists every open
    order and looks up the rest, confirms it; the worker reads REST for a monitor whose change stays
    unexplained (`Monitor.confirm_by_rest`; `workers.checker`, `UNEXPLAINED_WAIT_S`). Position mode's
    own stop is the exception: its fill, pushed, explains a smaller or flat position."""
    return s.pushed and not (_on_position(w.policy) and position_stop_fill(w.m, s))


def _judgement_waits(w: _Work, s: Snapshot, actual: Decimal, expected: Decimal, since: float) -> bool:
    """Position mode: whether a flat or smaller read our fills do not explain must wait before it is
    judged (a close by the position's own stop, which has no order of ours, or by hand; smaller when
    an entry filled again after the stop fired). The stop's own fill judges it as soon as a read
    holds it (pushed), or holds the executions looked up. While they cannot be read, the judgement
    waits for a read that can, up to `stop_fill_wait_s` after the first such read; after that the
    price judges, and while no read's price was through the stop, a read whose price may be older
    than the first such read (a shared ticker cache) cannot: the stop may have fired at a price that
    read never saw. That waits for a read `price_max_age_s` later."""
    if actual >= expected or not _on_position(w.policy) or _known_position_stop(w) is None:
        return False
    if position_stop_fill(w.m, s) is not None:
        return False  # its fill pushed, or the executions looked up: they judge now
    if s.taken_at < since + w.policy.stop_fill_wait_s:
        return True
    return not w.get("stop_crossed") and s.taken_at < since + w.policy.price_max_age_s


def _unresolved(w: _Work, s: Snapshot) -> bool:
    """Some owned order's state on the exchange is unknown in this read."""
    return any(
        _watched(o) and o.link_id not in s.open_orders and o.link_id not in s.looked_up for o in w.orders
    )


def _close_reason(w: _Work, *, flipped: bool, unexplained: bool = False) -> CloseReason:
    if w.filled_of(OrderRole.SL) > 0 or w.get("stop_fired") > 0:
        # at breakeven only when the exchange showed the stop there (open, or in its final state:
        # `_confirm_breakeven` runs before any close)
        at_breakeven = w.get("breakeven") is BreakevenState.DONE
        return CloseReason.BREAKEVEN_STOP if at_breakeven else CloseReason.STOP_LOSS
    if flipped:
        return CloseReason.EXTERNAL
    if unexplained:
        return CloseReason.MANUAL
    return CloseReason.TP_COMPLETE


def _begin_close(w: _Work, reason: CloseReason) -> None:
    """The position is flat (or the entries expired unfilled): cancel everything of ours. The
    monitor is CLOSING until a read shows every owned order final and the position still flat."""
    if w.get("phase") is not Phase.CLOSING:
        w.set(phase=Phase.CLOSING, closed_reason=reason, unexplained_at=None)
    w.set(position_size=ZERO)
    _cancel_all(w)


def _keep_closing(w: _Work, s: Snapshot) -> None:
    """A closing monitor: re-send cancels a fresh read still shows open; close once nothing of ours
    is live (every fill of what we cancelled is accounted)."""
    _resend_cancels(w, s)
    _cancel_all(w)
    if any(o.status.live for o in w.orders) or not _flat(w, s):
        return  # (a position of our side the read shows is adopted by the next read, and guarded)
    tentative = w.get("closed_reason")
    if tentative is CloseReason.EXPIRED and w.get("built_qty") <= 0:
        reason = CloseReason.EXPIRED
    else:
        reason = _close_reason(
            w, flipped=tentative is CloseReason.EXTERNAL, unexplained=tentative is CloseReason.MANUAL
        )
    w.set(phase=Phase.CLOSED, closed_reason=reason, position_size=ZERO, unexplained_at=None)
    payload: dict[str, Any] = {"reason": reason.value}
    if reason is not CloseReason.EXPIRED:
        payload.update(
            {
                "tp_hits": list(w.get("tp_hits")),
                "tp_filled": str(w.filled_of(OrderRole.TP)),
                "sl_filled": str(w.filled_of(OrderRole.SL)),
                "built_qty": str(w.get("built_qty")),
                "avg_entry": str(w.get("avg_entry")) if w.get("avg_entry") is not None else None,
            }
        )
    w.event(EventKind.POSITION_CLOSED, payload, discriminator=None)


def _flat(w: _Work, s: Snapshot) -> bool:
    """The read shows no position of the monitor's side (one flipped to the other side is not ours)."""
    plan = w.m.plan
    pos = s.position(plan.symbol, plan.position_idx)
    return pos is None or pos.size <= 0 or (pos.side is not None and pos.side is not plan.side)


def _reopen(w: _Work, size: Decimal) -> None:
    """An order we were cancelling on the way to closing filled: the position is open again and is
    guarded as before (the stop is placed again this very pass)."""
    w.set(phase=Phase.MONITORING, closed_reason=None, stop_seen=None, stop_crossed=False)
    w.event(EventKind.ORDER_ADJUSTMENT, {"action": "reguarded", "size": str(size)})


_DROPPABLE = (OrderStatus.PLACING, OrderStatus.OPEN, OrderStatus.RETRY)


def _cancel_all(w: _Work) -> None:
    for i, o in enumerate(w.orders):
        if o.status in _DROPPABLE:
            _drop(w, i)


def _drop(w: _Work, i: int) -> None:
    """The order must go. A RETRY that is known not to be on the exchange is simply forgotten; any
    other is cancelled by its orderLinkId (a create without an answer may have landed)."""
    o = w.orders[i]
    if o.status is OrderStatus.RETRY and o.unanswered_at <= 0:
        w.orders[i] = replace(o, status=OrderStatus.CANCELLED)
    else:
        w.cancel(i)


def _may_be_there(o: OwnedOrder) -> bool:
    """A create of it was sent without an answer and no look-up has yet proven it absent (one made
    after the receive window clears `unanswered_at`): it may have landed, or may still land."""
    return not o.confirmed and o.unanswered_at > 0


# ---------------------------------------------------------------------------------------- entries


def _close_entries(w: _Work, why: str) -> None:
    """No more entries: cancel the working ones (nothing adds exposure any more)."""
    w.set(entries_closed=True)
    cancelled = []
    for i, o in enumerate(w.orders):
        if o.role is OrderRole.ENTRY and o.status in _DROPPABLE:
            _drop(w, i)
            if w.orders[i].status is OrderStatus.CANCELLING:
                cancelled.append(o.link_id)
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
                # position mode: the exchange sets the stop with the entry's first fill, so the
                # position is never open without it, and no trading-stop call follows the fill
                stop_loss=w.get("stop_price") if _on_position(w.policy) else None,
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
    """Entries are over and nothing filled: there is nothing to guard once their cancels are
    confirmed (an entry that fills meanwhile is guarded)."""
    if w.get("built_qty") <= 0 and w.get("position_size") <= 0:
        _begin_close(w, CloseReason.EXPIRED)


# ------------------------------------------------------------------------------------ take-profits


def _take_profits(
    w: _Work, s: Snapshot, inst: Instrument, size: Decimal, policy: Policy, *, lower_only: bool = False
) -> None:
    """The ladder: remaining weight per level, split of the position, diff against the live orders.
    A level merged away (hit with no fill of its own) weighs nothing; any other level weighs what is
    left of its share, so a partly filled level keeps the rest of its quantity. `lower_only` (the
    size is not settled): only cancels and amends that lower a quantity."""
    plan = w.m.plan
    built = w.get("built_qty")
    hits = set(w.get("tp_hits"))
    weights = []
    for level, tp in enumerate(plan.take_profits, start=1):
        filled = w.filled_of(OrderRole.TP, level)
        if level in hits and filled <= 0:
            weights.append(ZERO)
        else:
            weights.append(max(built * tp.fraction - filled, ZERO))
    wanted = allocate(size, weights, inst)
    for level, (tp, qty) in enumerate(zip(plan.take_profits, wanted, strict=True), start=1):
        i, cur = w.slot(OrderRole.TP, level)
        if cur is not None and cur.status in (OrderStatus.PLACING, OrderStatus.OPEN):
            assert i is not None
            if cur.link_id not in s.open_orders:
                continue  # this read does not show it (in flight, or gone and not looked up): wait
            if qty <= 0:
                w.cancel(i)
            elif cur.remaining > qty or (cur.remaining < qty and not lower_only):
                w.amend(i, qty=cur.filled + qty)
            continue
        if cur is not None and cur.status is OrderStatus.CANCELLING:
            continue
        if qty <= 0 or lower_only:
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
    trigger: Decimal = w.get("stop_price")
    be = w.get("breakeven_price")
    if be is not None and w.get("breakeven") is not BreakevenState.NONE and stop_improves(trigger, be, side):
        trigger = be
    return trigger


def _through(price: Decimal | None, trigger: Decimal, side: Side) -> bool:
    """The price is at or beyond a long's (short's) stop trigger: a stop there would be refused."""
    if price is None:
        return False
    return price <= trigger if side is Side.BUY else price >= trigger


def _confirm_breakeven(w: _Work, s: Snapshot, leader: Monitor | None) -> None:
    """A pending breakeven move is done once the exchange shows the stop there: open in a read made
    after the amend, or in its final state (a stop that fired or was cancelled keeps its trigger)."""
    if w.get("breakeven") is not BreakevenState.PENDING:
        return
    be = w.get("breakeven_price")
    if be is None:
        return
    side = w.m.plan.side
    if _on_position(w.policy):
        _confirm_position_breakeven(w, s, leader, be)
        return
    for o in reversed(w.orders):
        if o.role is not OrderRole.SL or o.market_close:
            continue
        ex = s.open_orders.get(o.link_id)
        if ex is not None and s.taken_at < o.changed_at:
            ex = None  # a read from before our amend cannot confirm it
        if ex is None:
            ex = s.closed_orders.get(o.link_id)
        if ex is None or ex.trigger_price is None or stop_improves(ex.trigger_price, be, side):
            continue
        m = w.m
        w.set(breakeven=BreakevenState.DONE)
        w.event(
            EventKind.BREAKEVEN_MOVED,
            {
                "price": str(ex.trigger_price),
                "avg_entry": str(w.get("avg_entry")),
                "link_id": o.link_id,
                "followed_main": bool(
                    m.mirror_of and leader is not None and leader.breakeven is BreakevenState.DONE
                ),
            },
            discriminator=None,
        )
        return


def _breakeven(w: _Work, s: Snapshot, inst: Instrument, leader: Monitor | None, policy: Policy) -> None:
    m = w.m
    plan = m.plan
    if w.get("breakeven") is not BreakevenState.NONE:
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
    elif _through(s.trigger_price(plan.symbol, policy.stop_trigger_by), be, plan.side):
        return  # the price is already beyond breakeven: such a stop would be refused; wait
    if not w.get("entries_closed"):
        _close_entries(w, "breakeven")
    w.set(breakeven=BreakevenState.PENDING, breakeven_price=be)
    w.activity = True


def _stop(w: _Work, s: Snapshot, inst: Instrument, size: Decimal, policy: Policy) -> None:
    """One stop covering the position plus every entry not yet seen cancelled, amended in place."""
    plan = w.m.plan
    working = sum(
        (o.remaining for o in w.orders if o.role is OrderRole.ENTRY and o.status.live),
        ZERO,
    )
    qty = size + working
    trigger = _stop_trigger(w)
    price = s.trigger_price(plan.symbol, policy.stop_trigger_by)
    i, cur = w.slot(OrderRole.SL, 0)
    # (a stop being cancelled belongs to a close that did not happen: an order we were cancelling
    # filled and the monitor guards again; a new stop goes in at once, below)
    if cur is not None and cur.status in (OrderStatus.PLACING, OrderStatus.OPEN):
        assert i is not None
        shown = cur.link_id in s.open_orders
        if cur.market_close:
            if shown or not cur.confirmed or s.taken_at < cur.changed_at:
                return  # a market close under way: its fate comes with a later read
            # an accepted market close (IOC) gone from a fresh read while the position is still
            # open: what it closed is settled by its look-up; what is left is guarded now (a
            # reduce-only close or stop larger than what is left cannot do more than close it)
            _guard_again(w, size, qty, trigger, price, cur, policy, why="position_left_after_market_close")
            return
        if cur.filled > 0:
            return  # the stop has fired: the close is under way
        if not shown:
            if cur.status is OrderStatus.PLACING and not cur.confirmed:
                if _through(price, trigger, plan.side):
                    # a stop whose create was never answered, and the price is through it: do not
                    # wait for its fate, close (reduce-only: if the stop landed too, nothing doubles)
                    _market_close(w, size, why="stop_unanswered_and_breached", trigger=trigger, last=price)
                return
            if s.taken_at < cur.changed_at:
                return  # a read from before our last intent: it cannot tell
            looked = s.closed_orders.get(cur.link_id)
            if cur.link_id not in s.looked_up or (looked is not None and looked.status.is_open):
                return  # not looked up yet (stops are looked up first), or the list lagged behind it
            # a stop we saw, gone from a fresh open list: it fired or was cancelled, and its final
            # state is not known yet; it protects nothing any more, so a new stop goes in now (its
            # look-up settles the old one's fills later). Never amended in an unknown state.
            if not _through(price, trigger, plan.side) and not _may_repair(w, policy, cur):
                _market_close(w, size, why="stop_repair_budget_spent", alert=True)
                return
            _guard_again(w, size, qty, trigger, price, cur, policy, why="stop_gone_and_breached")
            w.event(EventKind.ORDER_ADJUSTMENT, {"action": "stop_gone_replaced", "link_id": cur.link_id})
            return
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
    if cur is not None and cur.status is OrderStatus.RETRY and cur.market_close:
        assert i is not None
        w.new_order(  # the same market close again, under its own orderLinkId
            OrderRole.SL,
            0,
            cur.generation,
            plan.side.opposite,
            cur.qty,
            order_type="Market",
            reduce_only=True,
            time_in_force="IOC",
            replace_index=i,
        )
        return
    if _through(price, trigger, plan.side):
        # the price is already through the stop: a stop there would be refused; close now instead
        _market_close(w, size, why="stop_breached_market_close", trigger=trigger, last=price)
        return
    generation = 1
    if cur is not None:
        generation = cur.generation if cur.status is OrderStatus.RETRY else cur.generation + 1
        if cur.status is OrderStatus.LOST and not _may_repair(w, policy, cur):
            # the slot's repair budget is spent: never leave the position without protection
            _market_close(w, size, why="stop_repair_budget_spent", alert=True)
            return
    retry = i if cur is not None and cur.status is OrderStatus.RETRY else None
    _place_stop(w, generation, qty, trigger, policy, replace_index=retry)


def _place_stop(
    w: _Work, generation: int, qty: Decimal, trigger: Decimal, policy: Policy, *, replace_index: int | None
) -> None:
    """A conditional stop-market, reduce-only and close-on-trigger, on the stop's trigger price."""
    w.new_order(
        OrderRole.SL,
        0,
        generation,
        w.m.plan.side.opposite,
        qty,
        trigger=trigger,
        order_type="Market",
        reduce_only=True,
        close_on_trigger=True,
        trigger_by=policy.stop_trigger_by,
        replace_index=replace_index,
    )


def _guard_again(
    w: _Work,
    size: Decimal,
    qty: Decimal,
    trigger: Decimal,
    price: Decimal | None,
    cur: OwnedOrder,
    policy: Policy,
    *,
    why: str,
) -> None:
    """The stop slot's last order no longer protects (gone, or a finished market close) while a
    position is open: a market close if the price is through the stop, else a new stop."""
    if _through(price, trigger, w.m.plan.side):
        _market_close(w, size, why=why, trigger=trigger, last=price)
    else:
        _place_stop(w, cur.generation + 1, qty, trigger, policy, replace_index=None)


MAX_MARKET_CLOSES = 5  # market-close attempts of one stop slot (a loop of refusals ends; alerted)


def _market_close(
    w: _Work,
    size: Decimal,
    *,
    why: str,
    trigger: Decimal | None = None,
    last: Decimal | None = None,
    alert: bool = False,
) -> None:
    """Close the position at market, reduce-only, in the stop's slot under a new orderLinkId (never
    the id of an order that may exist). A slot whose create was refused before it was carried out
    (RETRY) is dropped for it. Bounded: after `MAX_MARKET_CLOSES` refusals the operator is alerted."""
    if size <= 0:
        return
    i, cur = w.slot(OrderRole.SL, 0)
    closes = sum(1 for o in w.orders if o.market_close)
    if closes >= MAX_MARKET_CLOSES:
        if not w.get("halted"):
            w.set(halted=True)
            w.event(
                EventKind.ORDER_ADJUSTMENT,
                {"action": "market_close_refused", "closes": closes, "alert": True},
                discriminator=None,
            )
        return
    if cur is not None and cur.status is OrderStatus.RETRY:
        assert i is not None
        _drop(w, i)
    generation = cur.generation + 1 if cur is not None else 1
    payload: dict[str, Any] = {"action": why, "qty": str(size)}
    if trigger is not None:
        payload["trigger"] = str(trigger)
    if last is not None:
        payload["last"] = str(last)
    if alert:
        payload["alert"] = True
    w.event(EventKind.ORDER_ADJUSTMENT, payload)
    w.new_order(
        OrderRole.SL,
        0,
        generation,
        w.m.plan.side.opposite,
        size,
        order_type="Market",
        reduce_only=True,
        time_in_force="IOC",
    )


# ------------------------------------------------------------------------ the position's own stop
# Policy.stop_mode "position": the stop is the position's Full-mode stop-loss (trading-stop), which
# the exchange resizes as the position changes. The same rules as a stop order: it only tightens; a
# read showing the position open without it sets it again (counted, then a market close with an
# alert); a breach judged on its own trigger price closes at market; a call without an answer is
# settled by the next read (setting the same value again is harmless: "not modified").


def _on_position(policy: Policy) -> bool:
    return policy.stop_mode == "position"


def _open_position(w: _Work, s: Snapshot) -> Position | None:
    plan = w.m.plan
    pos = s.position(plan.symbol, plan.position_idx)
    if pos is None or pos.size <= 0 or pos.side is not plan.side:
        return None
    return pos


def _observe_position_stop(w: _Work, s: Snapshot) -> None:
    """What a read made after our last trading-stop call shows on the open position. A flat read
    keeps the last value seen (it tells what the stop was when the position closed). Whether this
    read's price is through the stop is remembered (it tells a stop that fired from a hand close)."""
    stop = _known_position_stop(w)
    fired = position_stop_fill(w.m, s)
    if fired is not None:
        # a fill of it (pushed or looked up), or none in the executions looked up: that, not the
        # price, tells whether it fired
        w.set(stop_crossed=bool(fired))
    elif stop is not None and not w.get("stop_crossed"):
        price = s.trigger_price(w.m.plan.symbol, w.policy.stop_trigger_by)
        if _through(price, stop, w.m.plan.side):
            w.set(stop_crossed=True)
    pos = _open_position(w, s)
    if pos is None or not _row_after_last_call(w, s, pos):
        return
    if pos.stop_loss != w.get("stop_seen"):
        w.set(stop_seen=pos.stop_loss)
    if pos.stop_loss is not None and pos.stop_loss != w.get("stop_price"):
        # a stop of ours (or one moved by hand) there: a later entry fill may replace it
        w.set(stop_entries_filled=w.filled_of(OrderRole.ENTRY))


def _row_after_last_call(w: _Work, s: Snapshot, pos: Position) -> bool:
    """Whether the read's row of the position can show what our last trading-stop call did: a read
    that started after the call and, from the stream view, a row received after it (a position push
    can be lost: the row keeps what the last push that came delivered, `Snapshot.position_seen_at`)."""
    sent: float = w.get("stop_sent_at")
    if s.taken_at < sent:
        return False
    seen = s.position_seen_at.get((pos.symbol, pos.position_idx))
    return seen is None or seen > sent


def _set_by_last_call(w: _Work, trigger: Decimal) -> bool:
    """The exchange answered our last trading-stop call "set", for the trigger we want now (a
    trading-stop is carried out before it is answered)."""
    sent: float = w.get("stop_sent_at")
    accepted_at: float = w.get("stop_accepted_at")
    return sent > 0 and accepted_at >= sent and w.get("stop_accepted") == trigger


def position_stop_fill(m: Monitor, s: Snapshot) -> int | bool | None:
    """The execTime (ms) of the latest fill of the monitor's position's own stop-loss since the
    monitor was created (the execution that closes its side: a Sell for a long), as the read holds
    it (`Snapshot.stop_fills`: pushed, or looked up); False when the executions of the symbol were
    looked up and hold none; None when the read cannot tell (nothing pushed, nothing looked up)."""
    plan = m.plan
    ms = s.stop_fills.get((plan.symbol, plan.side.opposite))
    if ms is not None and ms >= int(m.created_at * 1000):
        return ms
    return False if plan.symbol in s.stop_fills_read else None


def _confirm_position_breakeven(w: _Work, s: Snapshot, leader: Monitor | None, be: Decimal) -> None:
    """A pending breakeven move is done once a read made after the call shows the position's stop
    there; or, when the position went flat before any read showed it, once the exchange answered the
    call "set" (a trading-stop is carried out at once; no order of ours keeps its final state)."""
    side = w.m.plan.side
    pos = _open_position(w, s)
    at: Decimal | None = None
    how = "read"
    if pos is not None:
        if _row_after_last_call(w, s, pos) and pos.stop_loss is not None:
            at = pos.stop_loss
    elif w.get("stop_accepted") is not None:
        at, how = w.get("stop_accepted"), "accepted"
    if at is None or stop_improves(at, be, side):
        return
    m = w.m
    w.set(breakeven=BreakevenState.DONE)
    w.event(
        EventKind.BREAKEVEN_MOVED,
        {
            "price": str(at),
            "avg_entry": str(w.get("avg_entry")),
            "link_id": ids.position_stop_id(m.id),
            "on_position": True,
            "confirmed_by": how,
            "followed_main": bool(
                m.mirror_of and leader is not None and leader.breakeven is BreakevenState.DONE
            ),
        },
        discriminator=None,
    )


def _position_stop_fill(w: _Work, s: Snapshot, expected: Decimal) -> None:
    """A confirmed flat read our orders' fills do not explain, while the position had its own stop:
    the stop fired, or the position was closed by hand. The account's executions, looked up by the
    confirming read (`stop_fills_to_look_up`), tell which exactly: a fill of the position's stop-loss
    since the monitor was created. Without them (the look-up failed) the price decides: through the
    tightest value the stop may have had (seen, accepted, or last sent) at any read since it was
    set (`_observe_position_stop`)."""
    stop = _known_position_stop(w)
    if stop is None or expected <= 0 or w.get("stop_fired") > 0 or not w.get("stop_crossed"):
        return
    w.set(stop_fired=expected, stop_fired_ms=position_stop_fill(w.m, s) or int(s.taken_at * 1000))
    be = w.get("breakeven_price")
    if (
        w.get("breakeven") is BreakevenState.PENDING
        and be is not None
        and not stop_improves(stop, be, w.m.plan.side)
    ):
        # a pending breakeven move is settled by the stop that fired: it was there (rule 9)
        w.set(breakeven=BreakevenState.DONE)
        w.event(
            EventKind.BREAKEVEN_MOVED,
            {
                "price": str(stop),
                "avg_entry": str(w.get("avg_entry")),
                "link_id": ids.position_stop_id(w.m.id),
                "on_position": True,
                "confirmed_by": "stop_fired",
                "followed_main": False,
            },
            discriminator=None,
        )
    if w.filled_of(OrderRole.SL) > 0:  # a market close of the stop slot filled before: sl_hit was said
        w.event(
            EventKind.PARTIAL_FILL,
            {"role": "sl", "qty": str(expected), "trigger_price": str(stop), "on_position": True},
            discriminator=("sl_position", str(expected)),
        )
        return
    w.event(
        EventKind.SL_HIT,
        {
            "qty": str(expected),
            "trigger_price": str(stop),
            "breakeven": w.get("breakeven") is BreakevenState.DONE,
            "on_position": True,
            "exchange_ms": fired if (fired := position_stop_fill(w.m, s)) else None,
        },
        discriminator=None,
    )


def _replaced_by_entry(w: _Work, held: Decimal) -> Decimal | None:
    """Each fill of an entry sets the stop attached to it (the plan's) on the position, replacing
    what it held. The tighter stop of ours it replaced (seen there, or accepted) when the position
    now holds the plan's and an entry filled since ours was seen or accepted; else None."""
    m = w.m
    side = m.plan.side
    if held != w.get("stop_price") or w.filled_of(OrderRole.ENTRY) <= m.stop_entries_filled:
        return None
    ours: Decimal | None = None
    for v in (m.stop_seen, m.stop_accepted):
        if v is not None and stop_improves(held, v, side) and (ours is None or stop_improves(ours, v, side)):
            ours = v
    return ours


def _entry_stop_set(orders: Iterable[OwnedOrder], policy: Policy) -> bool:
    """Position mode: an entry of ours filled, so the exchange set the stop-loss attached to it
    (the plan's) on the position, whether or not a read saw it there before the position closed."""
    return _on_position(policy) and any(o.role is OrderRole.ENTRY and o.filled > 0 for o in orders)


def _known_position_stop(w: _Work) -> Decimal | None:
    """The tightest value the position's stop may have: seen by a read, accepted, last sent, or
    attached to an entry that filled."""
    side = w.m.plan.side
    known = [w.get("stop_seen"), w.get("stop_accepted")]
    if w.get("stop_sent_at") > 0:
        known.append(_stop_trigger(w))
    if _entry_stop_set(w.orders, w.policy):
        known.append(w.get("stop_price"))
    stop: Decimal | None = None
    for v in known:
        if v is not None and (stop is None or stop_improves(stop, v, side)):
            stop = v
    return stop


def _position_stop(w: _Work, s: Snapshot, size: Decimal, policy: Policy) -> None:
    """The position's own stop at the trigger we want, set with trading-stop; a market close of the
    stop slot is awaited (or sent again) as in order mode."""
    plan = w.m.plan
    side = plan.side
    trigger = _stop_trigger(w)
    price = s.trigger_price(plan.symbol, policy.stop_trigger_by)
    i, cur = w.slot(OrderRole.SL, 0)
    if cur is not None and cur.market_close:
        if cur.status in (OrderStatus.PLACING, OrderStatus.OPEN):
            if cur.link_id in s.open_orders or not cur.confirmed or s.taken_at < cur.changed_at:
                return  # a market close under way: its fate comes with a later read
            # an accepted market close gone from a fresh read while the position is still open:
            # what is left is guarded below
        elif cur.status is OrderStatus.RETRY:
            assert i is not None
            w.new_order(  # the same market close again, under its own orderLinkId
                OrderRole.SL,
                0,
                cur.generation,
                side.opposite,
                cur.qty,
                order_type="Market",
                reduce_only=True,
                time_in_force="IOC",
                replace_index=i,
            )
            return
    pos = _open_position(w, s)
    if pos is None:
        return  # this read shows no position of ours (a size change awaiting its confirming read)
    if s.taken_at < w.get("stop_sent_at"):
        return  # a read from before our last call cannot tell
    if not _row_after_last_call(w, s, pos) and _set_by_last_call(w, trigger):
        # a pushed row from before the call the exchange answered "set": its push is late or was
        # lost. Sending it again would only be answered "not modified"; the push, or the view's
        # reconciliation by REST, shows it (a removal by hand since then comes pushed, newer)
        return
    held = pos.stop_loss
    if held is not None:
        ours = _replaced_by_entry(w, held)
        if ours is not None:
            # an entry of ours filled and its attached stop (the plan's) replaced a tighter one of
            # ours: put that back, or close at market if the price is through it already (as when
            # an entry reopens a position whose stop fired)
            trigger = ours if stop_improves(trigger, ours, side) else trigger
            if _through(price, trigger, side):
                _market_close(w, size, why="stop_replaced_by_entry_breached", trigger=trigger, last=price)
                return
            w.event(
                EventKind.ORDER_ADJUSTMENT,
                {"action": "position_stop_put_back", "trigger": str(trigger), "was": str(held)},
            )
            _set_position_stop(w, trigger, policy)
            return
        if not stop_improves(held, trigger, side):
            return  # there, or tighter (set by hand): a stop is never loosened
        if _through(price, trigger, side):
            # the tighter stop would be refused; the one the position holds still protects. A
            # breakeven move waits until the price allows it (due again then), unless the exchange
            # accepted it once: then it stays the stop wanted, pending
            if trigger == w.get("breakeven_price"):
                _breakeven_refused(w)
            return
        _set_position_stop(w, trigger, policy)
        return
    if _through(price, trigger, side):
        # the position is open without its stop and the price is through it: close now
        _market_close(w, size, why="stop_breached_market_close", trigger=trigger, last=price)
        return
    if w.m.stop_seen is not None and w.get("stop_fired") == 0 and position_stop_fill(w.m, s):
        # gone because it fired, and the position was opened again (entries, or a hand add) before
        # any read saw it flat or smaller: the stop's close is recorded, and it is set again as a
        # new stop, not as a repair
        _position_stop_fill(w, s, w.m.position_size)
        if w.get("unexplained_at") is not None and w.get("stop_fired") > 0:
            # the size this read holds, awaiting its judgement, was opened after the stop's close:
            # that close leaves the balance our fills keep, or the entries that opened it again
            # would look, once counted, like a change by hand
            left = w.get("position_size") - w.get("closed_ahead") - w.m.position_size
            w.set(position_size=_balance(w, left))
    fired_now = w.get("stop_fired") > w.m.stop_fired  # it fired this step: gone with its fill
    if (w.m.stop_seen is not None or w.get("stop_resets") > 0) and not fired_now:
        # a read showed it before (removed by hand), or the exchange refused it: set it again,
        # bounded; when the budget is spent, never leave the position bare: close at market
        if w.get("stop_resets") >= policy.max_repairs:
            _market_close(w, size, why="stop_repair_budget_spent", alert=True)
            return
        if w.m.stop_seen is not None:
            w.set(stop_resets=w.get("stop_resets") + 1, repairs=w.get("repairs") + 1)
            w.event(
                EventKind.ORDER_ADJUSTMENT,
                {
                    "action": "position_stop_gone_set_again",
                    "trigger": str(trigger),
                    "was": str(w.m.stop_seen),
                },
            )
    _set_position_stop(w, trigger, policy)


def _set_position_stop(w: _Work, trigger: Decimal, policy: Policy) -> None:
    m = w.m
    # a new stop starts with no price through it, except while a size change awaits its judgement:
    # a price through the stop that was there is what judges it (`_judgement_waits`), and a stop
    # set again meanwhile (gone from a position opened again, its fill not read) must not erase that
    w.set(stop_sent_at=w.now, stop_crossed=w.get("unexplained_at") is not None and w.get("stop_crossed"))
    w.position_stops.append(
        SetPositionStop(
            account=m.account,
            monitor_id=m.id,
            link_id=ids.position_stop_id(m.id),
            symbol=m.plan.symbol,
            trigger_price=trigger,
            trigger_by=policy.stop_trigger_by,
            position_idx=m.plan.position_idx,
            stage=Stage.STOP,
        )
    )
    w.activity = True


def _acknowledge_position_stop(w: _Work, intent: SetPositionStop, result: IntentResult) -> None:
    """ok: the position holds it. No answer (or not sent): the next read settles it. Refused as
    breached: a market close now, unless the position still holds a (looser) stop of ours — then,
    as for a refused stop amend, a pending breakeven move waits for the price to allow it."""
    if result.ok:
        w.set(
            stop_accepted=intent.trigger_price,
            stop_accepted_at=w.get("stop_sent_at"),
            stop_entries_filled=w.filled_of(OrderRole.ENTRY),
        )
        return
    # the last call was not answered "set": an earlier call's acceptance no longer tells what
    # the position holds (`_set_by_last_call`), even when both were sent at the same instant
    w.set(stop_accepted_at=0.0)
    if result.unknown or result.error in _TRANSIENT or not result.sent:
        return
    w.event(
        EventKind.ORDER_ADJUSTMENT,
        {"action": "position_stop_refused", "trigger": str(intent.trigger_price), "error": _err(result)},
    )
    if result.error is ErrorKind.NO_POSITION:
        return  # flat: the next read settles what closed it
    if result.error is ErrorKind.TRIGGER_PASSED:
        if w.get("stop_seen") is None and w.get("position_size") > 0:
            _market_close(
                w, w.get("position_size"), why="stop_refused_as_breached", trigger=intent.trigger_price
            )
        else:
            _breakeven_refused(w)
        return
    w.set(stop_resets=w.get("stop_resets") + 1)  # refused as sent: counted like a re-placement


def _breakeven_refused(w: _Work) -> None:
    """A pending breakeven move the exchange refused is due again (recomputed when the price allows
    it), unless an earlier call of it was answered "set" (`_breakeven_accepted`)."""
    if w.get("breakeven") is BreakevenState.PENDING and not _breakeven_accepted(w):
        w.set(breakeven=BreakevenState.NONE, breakeven_price=None)


def _breakeven_accepted(w: _Work) -> bool:
    """The exchange answered "set" for the pending breakeven move (or a tighter stop) once: a
    trading-stop, or the stop order's create or amend. The move was made: whatever took it off
    since (a hand, an entry's attached stop) or made it look unmade (a read older than it), it is
    not undone when the price or the exchange refuses it again; the stop is never looser again."""
    be, accepted = w.get("breakeven_price"), w.get("stop_accepted")
    return be is not None and accepted is not None and not stop_improves(accepted, be, w.m.plan.side)


# ------------------------------------------------------------------------------------------ phase


def _phase(w: _Work) -> None:
    phase = w.get("phase")
    if phase in (Phase.CLOSED, Phase.CLOSING):
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
