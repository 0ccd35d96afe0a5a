"""Tier moves: escalation is due at once, de-escalation keeps the next natural due time."""

from __future__ import annotations

from core.models import Tier
from workers.registry import Registry


def add(registry: Registry, monitor_id: str, tier: Tier, due_at: float) -> None:
    assert registry.add(monitor_id, "main", '{"v": 1}', tier, due_at)


def tier_of(registry: Registry, monitor_id: str) -> Tier:
    stored = registry.get(monitor_id)
    assert stored is not None
    return stored.tier


def test_escalation_is_due_now_in_the_new_tier(registry: Registry) -> None:
    add(registry, "m", Tier.STANDARD, 112.0)
    assert registry.move_tier("m", Tier.CRITICAL, 103.0) is True
    assert registry.next_due("m") == (Tier.CRITICAL, 103.0)
    assert tier_of(registry, "m") is Tier.CRITICAL
    (c,) = registry.claim(103.0)
    assert (c.monitor_id, c.tier) == ("m", Tier.CRITICAL)
    assert registry.next_due("m") == (Tier.CRITICAL, 105.0)
    assert registry.counts_by_tier()[Tier.STANDARD] == 0


def test_escalation_of_an_overdue_monitor_keeps_its_earlier_due_time(registry: Registry) -> None:
    add(registry, "m", Tier.IDLE, 90.0)
    assert registry.move_tier("m", Tier.ACTIVE, 100.0) is True
    assert registry.next_due("m") == (Tier.ACTIVE, 90.0)


def test_de_escalation_keeps_the_next_natural_due_time(registry: Registry) -> None:
    add(registry, "m", Tier.CRITICAL, 102.0)
    assert registry.move_tier("m", Tier.IDLE, 101.0) is True
    assert registry.next_due("m") == (Tier.IDLE, 102.0)
    assert tier_of(registry, "m") is Tier.IDLE
    (c,) = registry.claim(102.0)
    assert c.tier is Tier.IDLE
    assert registry.next_due("m") == (Tier.IDLE, 162.0)  # from then on, the new tier's interval


def test_same_tier_changes_nothing(registry: Registry) -> None:
    add(registry, "m", Tier.ACTIVE, 107.0)
    assert registry.move_tier("m", Tier.ACTIVE, 100.0) is False
    assert registry.next_due("m") == (Tier.ACTIVE, 107.0)


def test_unknown_monitor_is_not_moved_and_leaves_no_entry(registry: Registry) -> None:
    assert registry.move_tier("ghost", Tier.CRITICAL, 100.0) is False
    assert sum(registry.counts_by_tier().values()) == 0


def test_move_tiers_batch(registry: Registry) -> None:
    add(registry, "up", Tier.STANDARD, 112.0)
    add(registry, "down", Tier.CRITICAL, 102.0)
    add(registry, "same", Tier.ACTIVE, 105.0)
    result = registry.move_tiers({"up": "critical", "down": Tier.INACTIVE, "same": Tier.ACTIVE}, 100.0)
    assert result == {"up": True, "down": True, "same": False}
    assert registry.next_due("up") == (Tier.CRITICAL, 100.0)
    assert registry.next_due("down") == (Tier.INACTIVE, 102.0)
    assert registry.next_due("same") == (Tier.ACTIVE, 105.0)
    assert registry.move_tiers({}, 100.0) == {}
