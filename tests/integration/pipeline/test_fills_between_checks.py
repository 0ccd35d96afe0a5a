"""A fill is acted on within one read of its account, whatever its monitor's tier: every read lists
every position, and monitors whose position changed join the pass even when they are not due."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.models import BreakevenState, OrderRole, Phase, Tier

from .plans import conservative_long, fast_long


def live(stack, mid):
    m = stack.monitor(mid)
    assert m is not None
    return m


@pytest.fixture
def stack_overrides():
    # only the critical tier is fast; anything else would wait a minute for its own check
    return {
        "tier_intervals": {
            Tier.CRITICAL: 0.3,
            Tier.ACTIVE: 60,
            Tier.STANDARD: 60,
            Tier.INACTIVE: 60,
            Tier.IDLE: 60,
        }
    }


def no_check_pending(stack) -> bool:
    """No check queued, reserved (a check claimed ahead waits for its due time) or running."""
    from celery.worker import state

    from config.queues import TIER_QUEUES

    queued = sum(stack.rt.redis.llen(q) for q in TIER_QUEUES)
    return queued == 0 and not state.active_requests and not state.reserved_requests


def test_a_fill_on_a_slow_tier_monitor_is_seen_by_its_accounts_next_read(stack):
    stack.prices(BTCUSDT="60500", SOLUSDT="150")
    slow = stack.create(fast_long())  # SOL: market entry; far from its TP and stop: a slow tier
    stack.wait(
        lambda: (
            live(stack, slow.id).phase is Phase.MONITORING
            and all(o.status.value == "open" for o in live(stack, slow.id).live_orders())
        ),
        what="SOL built",
    )
    stack.wait(
        lambda: stack.rt.registry.next_due(slow.id)[1] > stack.rt.clock() + 20,
        what="SOL's own next check a minute away",
    )
    stack.wait(lambda: no_check_pending(stack), what="no check of SOL left in flight")
    busy = stack.create(conservative_long())  # BTC entries near the price: critical, read often
    stack.wait(
        lambda: (
            all(o.status.value == "open" for o in live(stack, busy.id).live_orders())
            and live(stack, busy.id).version > 3
        ),
        what="BTC checked",
    )
    checked = live(stack, slow.id).version
    stack.prices(SOLUSDT="161")  # SOL's take-profit fills
    stack.wait(
        lambda: stack.monitor(slow.id) is None,
        timeout=15,
        what="SOL's TP acted on by BTC's reads, long before SOL's own due time",
    )
    assert stack.rt.registry.get(slow.id) is None and checked > 0
    stack.flush()
    assert stack.db_monitor(slow.id).closed_reason == "tp_complete"


def test_position_index_tracks_changes_only(stack):
    from workers.position_index import PositionIndex, key_of

    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    index = PositionIndex(stack.rt.redis, prefix="tpsl")
    stack.quiesce()
    account = stack.rt.account("main")
    snap = stack.rt.client_for(account).snapshot(account)
    assert index.changed(snap) == []  # no position yet, none remembered
    stack.prices(BTCUSDT="59990")  # E1 fills
    snap = stack.rt.client_for(account).snapshot(account)
    assert index.changed(snap) == [m.id]
    assert index.changed(snap, skip=[m.id]) == []
    index.remember("main", {key_of("BTCUSDT", 0): D("0.010")})
    assert index.changed(snap) == []
    assert (
        live(stack, m.id).current(OrderRole.SL, 0) is None
        or live(stack, m.id).breakeven is BreakevenState.NONE
    )
