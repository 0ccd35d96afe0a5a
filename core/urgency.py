"""Which urgency tier a monitor belongs in: `classify(monitor, snapshot, now) -> Tier`.

The table (intervals in config/queues.py), first matching row wins:

| tier     | when                                                                                   |
|----------|----------------------------------------------------------------------------------------|
| critical | something is in flight (an order placed/cancelled but not yet confirmed, a repair, a    |
|          | close waiting for its confirming read,                                                   |
|          | breakeven move due or unconfirmed, a size change waiting for its confirming read), or   |
|          | the mark is within `proximity_band` of the next TP, of the stop, or of the next working  |
|          | entry (a fill there needs its stop resized at once) and the read was a poll: a read of   |
|          | the stream view (`Snapshot.pushed`) does not count the price, since the exchange pushes  |
|          | the fill and the push calls a check (a tier check would read the same view)              |
| idle     | no fill, order change or price approach for `idle_after_s`                               |
| inactive | ≥ `inactive_filled_fraction` of the TP quantity already filled                           |
| active   | PROFIT_TAKING with TPs pending, or BUILDING with entries working, and the read was a     |
|          | poll: read from the stream view, the fills these wait for are pushed and call a check,   |
|          | so the monitor is `standard`                                                             |
| standard | everything else                                                                          |

A closed monitor is `active` while cancels are unconfirmed, `idle` after. Pure; `now` is a parameter.

Under streams the tiers are the safety net, not the way fills are seen: a tier check of a monitor
read from the view reads the same view the pushes wrote. What it still does is what time alone
brings (the waits and confirmations of `in_flight`, critical), and a lost push is found by the
view's REST reconciliation, which calls a check of the monitors it corrects. When the stream stays
down, the stream process calls a check of every monitor of the account, and that check polls REST
and classifies by the polled rows again.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from core.models import (
    ZERO,
    BreakevenState,
    Instrument,
    Monitor,
    OrderRole,
    OrderStatus,
    Phase,
    Snapshot,
    Tier,
)
from core.policy import DEFAULT_POLICY, Policy
from core.sizing import stop_improves

_IN_FLIGHT = (OrderStatus.PLACING, OrderStatus.CANCELLING, OrderStatus.RETRY)


def classify(
    m: Monitor,
    s: Snapshot,
    now: float,
    policy: Policy = DEFAULT_POLICY,
    *,
    inst: Instrument | None = None,
) -> Tier:
    if m.phase is Phase.CLOSED:
        return Tier.ACTIVE if any(o.status.live for o in m.orders) else Tier.IDLE
    if in_flight(m):
        return Tier.CRITICAL
    if not s.pushed and near(s.price(m.plan.symbol), watched_prices(m), policy.proximity_band):
        return Tier.CRITICAL  # polled: the fill a price near a trigger brings is seen by reading
    if now - m.last_activity_at >= policy.idle_after_s:
        return Tier.IDLE
    if m.built_qty > 0 and tp_filled_fraction(m) >= policy.inactive_filled_fraction:
        return Tier.INACTIVE
    if s.pushed:
        return Tier.STANDARD  # the fills an active monitor waits for are pushed and call a check
    if m.phase is Phase.PROFIT_TAKING and pending_tp_levels(m):
        return Tier.ACTIVE
    if m.phase in (Phase.BUILDING, Phase.PENDING) and m.live_orders(OrderRole.ENTRY):
        return Tier.ACTIVE
    return Tier.STANDARD


def near(price: Decimal | None, targets: Iterable[Decimal], band: Decimal) -> bool:
    """The proximity rule: the price is within `band` (a fraction of the price) of one of the
    targets. No price, or none above zero, is near nothing. `classify` uses it on the mark of a
    read; the stream process (tasks/stream.py) on each pushed mark, with `proximity_targets`."""
    return price is not None and price > 0 and any(abs(price - t) <= price * band for t in targets)


def proximity_targets(m: Monitor) -> tuple[Decimal, ...]:
    """The targets whose approach makes the monitor critical by price (`near`): none for a closed
    monitor, else `watched_prices`."""
    if m.phase is Phase.CLOSED:
        return ()
    return tuple(watched_prices(m))


def in_flight(m: Monitor) -> bool:
    """Something this monitor did is not confirmed yet, or something it must do is due."""
    if m.phase in (Phase.PENDING, Phase.CLOSING):
        return True
    if any(o.status in _IN_FLIGHT for o in m.orders):
        return True
    if m.breakeven is BreakevenState.PENDING:
        return True
    be_level = m.plan.breakeven_after
    if m.breakeven is BreakevenState.NONE and be_level is not None and be_level in m.tp_hits:
        return True  # due but deferred (the price was through it)
    if m.position_size > 0 and m.stop_sent_at > 0 and _position_stop_unsettled(m):
        return True
    return m.unexplained_at is not None


def _position_stop_unsettled(m: Monitor) -> bool:
    """Position stop mode: the stop we set on the position is not yet seen there by a read (unset,
    or looser than what the exchange accepted)."""
    if m.stop_seen is None:
        return True
    return m.stop_accepted is not None and stop_improves(m.stop_seen, m.stop_accepted, m.plan.side)


def watched_prices(m: Monitor) -> list[Decimal]:
    """The prices whose approach makes a monitor critical."""
    out: list[Decimal] = []
    if m.position_size > 0:
        pending = pending_tp_levels(m)
        if pending:
            out.append(m.plan.take_profits[pending[0] - 1].price)
        sl = m.current(OrderRole.SL, 0)
        trigger = sl.trigger_price if sl is not None and sl.trigger_price else m.stop_price
        if trigger:
            out.append(trigger)
    for o in m.live_orders(OrderRole.ENTRY):
        if o.price is not None:
            out.append(o.price)
    return out


def pending_tp_levels(m: Monitor) -> list[int]:
    hit = set(m.tp_hits)
    return [k for k in range(1, len(m.plan.take_profits) + 1) if k not in hit]


def tp_filled_fraction(m: Monitor) -> Decimal:
    if m.built_qty <= 0:
        return ZERO
    return m.filled_of(OrderRole.TP) / m.built_qty
