"""The claim: due vs not due, re-scoring, the jump rule, the cap, ride-alongs, fixed polling."""

from __future__ import annotations

import pytest

from config.settings import Settings
from core.models import Tier
from workers.registry import Claimed, Registry

# default intervals: critical 2, active 5, standard 12, inactive 30, idle 60


def add(registry: Registry, monitor_id: str, account: str, tier: Tier, due_at: float) -> None:
    assert registry.add(monitor_id, account, '{"v": 1}', tier, due_at)


def ids(claimed: list[Claimed]) -> list[str]:
    return [c.monitor_id for c in claimed]


def test_only_due_monitors_are_claimed(registry: Registry) -> None:
    add(registry, "due", "main", Tier.STANDARD, 100.0)
    add(registry, "later", "mirror1", Tier.STANDARD, 100.5)
    assert registry.claim(99.99) == []
    assert registry.claim(100.0) == [Claimed("due", "main", Tier.STANDARD, 100.0, 0.0)]
    assert registry.claim(100.0) == []  # re-scored: not due again until 112
    assert registry.next_due("due") == (Tier.STANDARD, 112.0)
    assert registry.next_due("later") == (Tier.STANDARD, 100.5)


def test_rescore_from_previous_score_keeps_the_schedule(registry: Registry) -> None:
    add(registry, "m", "main", Tier.STANDARD, 100.0)
    (c,) = registry.claim(103.0)
    assert (c.due_at, c.lag_s, c.ride_along) == (100.0, 3.0, False)
    assert registry.next_due("m") == (Tier.STANDARD, 112.0)  # not 115: no drift
    (c,) = registry.claim(112.25)
    assert (c.due_at, c.lag_s) == (112.0, 0.25)
    assert registry.next_due("m") == (Tier.STANDARD, 124.0)


@pytest.mark.parametrize(
    ("now", "next_due"),
    [
        (111.5, 112.0),  # less than one interval behind: previous score + interval
        (
            112.0,
            124.0,
        ),  # exactly one interval behind: previous + interval is not in the future → now + interval
        (150.0, 162.0),  # far behind: now + interval (no burst of catch-up checks)
    ],
)
def test_jump_when_more_than_one_interval_behind(registry: Registry, now: float, next_due: float) -> None:
    add(registry, "m", "main", Tier.STANDARD, 100.0)
    (c,) = registry.claim(now)
    assert c.lag_s == now - 100.0
    assert registry.next_due("m") == (Tier.STANDARD, next_due)


def test_each_tier_uses_its_interval(registry: Registry) -> None:
    intervals = {Tier.CRITICAL: 2, Tier.ACTIVE: 5, Tier.STANDARD: 12, Tier.INACTIVE: 30, Tier.IDLE: 60}
    for i, tier in enumerate(Tier):
        add(registry, f"m-{tier.value}", f"acct{i}", tier, 50.0)
    claimed = registry.claim(50.0)
    assert sorted(ids(claimed)) == sorted(f"m-{t.value}" for t in Tier)
    for tier, interval in intervals.items():
        assert registry.next_due(f"m-{tier.value}") == (tier, 50.0 + interval)


def test_fixed_polling_switch_makes_every_tier_five_seconds(redis_client) -> None:
    registry = Registry(redis_client, Settings(fixed_polling=True))
    for i, tier in enumerate(Tier):
        add(registry, f"m-{tier.value}", f"acct{i}", tier, 50.0)
    assert len(registry.claim(50.0)) == 5
    for tier in Tier:
        assert registry.next_due(f"m-{tier.value}") == (tier, 55.0)


def test_tier_interval_overrides_are_used(redis_client) -> None:
    registry = Registry(redis_client, Settings(tier_intervals={"critical": 1.5}))
    add(registry, "m", "main", Tier.CRITICAL, 10.0)
    registry.claim(10.0)
    assert registry.next_due("m") == (Tier.CRITICAL, 11.5)


def test_cap_takes_the_most_overdue_first_and_leaves_the_rest(registry: Registry) -> None:
    add(registry, "c1", "a", Tier.CRITICAL, 95.0)
    add(registry, "s1", "b", Tier.STANDARD, 90.0)
    add(registry, "i1", "c", Tier.IDLE, 97.0)
    add(registry, "a1", "d", Tier.ACTIVE, 99.0)
    add(registry, "a2", "e", Tier.ACTIVE, 92.0)
    first = registry.claim(100.0, cap=3)
    assert ids(first) == ["s1", "a2", "c1"]
    assert [c.lag_s for c in first] == [10.0, 8.0, 5.0]
    # the rest keep their scores, untouched, for the next tick
    assert registry.next_due("i1") == (Tier.IDLE, 97.0)
    assert registry.next_due("a1") == (Tier.ACTIVE, 99.0)
    assert ids(registry.claim(100.5, cap=3)) == ["i1", "a1"]


def test_cap_ties_go_to_the_more_urgent_tier(registry: Registry) -> None:
    add(registry, "idle", "a", Tier.IDLE, 90.0)
    add(registry, "crit", "b", Tier.CRITICAL, 90.0)
    assert ids(registry.claim(100.0, cap=1)) == ["crit"]


def test_active_account_monitors_ride_along_within_the_lookahead(registry: Registry) -> None:
    add(registry, "a-crit", "A", Tier.CRITICAL, 100.0)  # due: makes A active
    add(registry, "a-std", "A", Tier.STANDARD, 101.0)  # within 1.5 s: rides along
    add(registry, "a-idle", "A", Tier.IDLE, 101.5)  # at the lookahead edge: rides along
    add(registry, "a-act", "A", Tier.ACTIVE, 101.75)  # beyond the lookahead: stays
    add(registry, "b-std", "B", Tier.STANDARD, 100.5)  # within the lookahead, but B has nothing due

    claimed = registry.claim(100.0, lookahead=1.5)
    assert claimed == [
        Claimed("a-crit", "A", Tier.CRITICAL, 100.0, 0.0, ride_along=False),
        Claimed("a-std", "A", Tier.STANDARD, 101.0, 0.0, ride_along=True),
        Claimed("a-idle", "A", Tier.IDLE, 101.5, 0.0, ride_along=True),
    ]
    # ride-alongs are re-scored from their previous score too
    assert registry.next_due("a-std") == (Tier.STANDARD, 113.0)
    assert registry.next_due("a-idle") == (Tier.IDLE, 161.5)
    # scanned but not claimed: untouched
    assert registry.next_due("a-act") == (Tier.ACTIVE, 101.75)
    assert registry.next_due("b-std") == (Tier.STANDARD, 100.5)


def test_ride_along_lag_is_zero_and_due_lag_is_positive(registry: Registry) -> None:
    add(registry, "late", "A", Tier.ACTIVE, 98.0)
    add(registry, "early", "A", Tier.ACTIVE, 100.5)
    late, early = registry.claim(100.0)
    assert (late.lag_s, late.ride_along) == (2.0, False)
    assert (early.lag_s, early.ride_along) == (0.0, True)


def test_no_ride_along_without_a_due_monitor_or_with_zero_lookahead(registry: Registry) -> None:
    add(registry, "soon", "A", Tier.ACTIVE, 100.5)
    assert registry.claim(100.0) == []
    add(registry, "due", "A", Tier.ACTIVE, 100.0)
    assert ids(registry.claim(100.0, lookahead=0)) == ["due"]
    assert registry.next_due("soon") == (Tier.ACTIVE, 100.5)


def test_lookahead_defaults_to_settings(redis_client) -> None:
    registry = Registry(redis_client, Settings(claim_lookahead_s=3.0))
    add(registry, "due", "A", Tier.ACTIVE, 100.0)
    add(registry, "soon", "A", Tier.IDLE, 102.5)
    assert ids(registry.claim(100.0)) == ["due", "soon"]


def test_ride_alongs_fill_only_the_room_the_cap_leaves_soonest_first(registry: Registry) -> None:
    add(registry, "due", "A", Tier.ACTIVE, 100.0)
    add(registry, "r2", "A", Tier.STANDARD, 101.0)
    add(registry, "r1", "A", Tier.IDLE, 100.25)
    add(registry, "r3", "A", Tier.CRITICAL, 101.25)
    assert ids(registry.claim(100.0, cap=3)) == ["due", "r1", "r2"]
    assert registry.next_due("r3") == (Tier.CRITICAL, 101.25)


def test_due_members_beyond_the_cap_do_not_make_their_account_active(registry: Registry) -> None:
    add(registry, "a-due", "A", Tier.STANDARD, 90.0)
    add(registry, "b-due", "B", Tier.STANDARD, 95.0)
    add(registry, "b-soon", "B", Tier.STANDARD, 100.5)
    assert ids(registry.claim(100.0, cap=1)) == ["a-due"]
    assert registry.next_due("b-soon") == (Tier.STANDARD, 100.5)


def test_claim_rejects_bad_arguments(registry: Registry) -> None:
    with pytest.raises(ValueError, match="cap: must be an integer >= 1"):
        registry.claim(1.0, cap=0)
    with pytest.raises(ValueError, match="lookahead: must be a finite number"):
        registry.claim(1.0, lookahead=-1)
    with pytest.raises(ValueError, match="now: must be a finite number"):
        registry.claim(float("inf"))


def test_schedule_moves_the_due_entry_and_records_the_tier(registry: Registry) -> None:
    add(registry, "m", "main", Tier.STANDARD, 100.0)
    assert registry.schedule("m", "main", Tier.IDLE, 300.0) is True
    assert registry.next_due("m") == (Tier.IDLE, 300.0)
    stored = registry.get("m")
    assert stored is not None and stored.tier is Tier.IDLE
    assert registry.counts_by_tier() == {
        Tier.CRITICAL: 0,
        Tier.ACTIVE: 0,
        Tier.STANDARD: 0,
        Tier.INACTIVE: 0,
        Tier.IDLE: 1,
    }
    assert registry.claim(299.0) == []
    assert ids(registry.claim(300.0)) == ["m"]


def test_schedule_refuses_unknown_monitors_and_wrong_accounts(registry: Registry) -> None:
    assert registry.schedule("ghost", "main", Tier.ACTIVE, 1.0) is False
    assert registry.counts_by_tier()[Tier.ACTIVE] == 0
    add(registry, "m", "main", Tier.STANDARD, 100.0)
    with pytest.raises(ValueError, match="account: monitor 'm' does not belong to account 'mirror1'"):
        registry.schedule("m", "mirror1", Tier.ACTIVE, 1.0)
    assert registry.next_due("m") == (Tier.STANDARD, 100.0)


def test_counts_and_overdue_per_tier(registry: Registry) -> None:
    add(registry, "c1", "A", Tier.CRITICAL, 95.0)
    add(registry, "c2", "A", Tier.CRITICAL, 99.0)
    add(registry, "s1", "B", Tier.STANDARD, 104.0)
    add(registry, "i1", "B", Tier.IDLE, 70.0)
    counts = registry.counts_by_tier()
    assert counts[Tier.CRITICAL] == 2 and counts[Tier.STANDARD] == 1 and counts[Tier.IDLE] == 1
    assert registry.overdue(100.0) == {
        Tier.CRITICAL: 5.0,
        Tier.ACTIVE: 0.0,
        Tier.STANDARD: 0.0,
        Tier.INACTIVE: 0.0,
        Tier.IDLE: 30.0,
    }
