"""Monitor state: creation, compare-and-set saves, batch reads/writes, total removal, indexes."""

from __future__ import annotations

import json

import pytest

from core.models import Tier
from workers.registry import NewMonitor, Registry, SaveItem, StoredState


def state(version: int, **extra) -> str:
    return json.dumps({"version": version, **extra})


def test_add_creates_state_indexes_and_due_entry(registry: Registry) -> None:
    assert registry.add("m1", "main", state(1), Tier.STANDARD, 100.0) is True
    assert registry.get("m1") == StoredState(state(1), 1, "main", Tier.STANDARD)
    assert registry.ids() == ["m1"]
    assert registry.ids("main") == ["m1"]
    assert registry.accounts() == ["main"]
    assert registry.count() == 1
    assert registry.next_due("m1") == (Tier.STANDARD, 100.0)


def test_add_is_idempotent_and_never_overwrites(registry: Registry) -> None:
    assert registry.add("m1", "main", state(1, a=1), "critical", 100.0) is True
    assert registry.add("m1", "mirror1", state(1, a=2), "idle", 500.0) is False
    assert registry.get("m1") == StoredState(state(1, a=1), 1, "main", Tier.CRITICAL)
    assert registry.accounts() == ["main"]
    assert registry.next_due("m1") == (Tier.CRITICAL, 100.0)


def test_add_takes_an_explicit_version(registry: Registry) -> None:
    registry.add("m1", "main", state(7), Tier.ACTIVE, 1.0, version=7)
    got = registry.get("m1")
    assert got is not None and got.version == 7


def test_get_unknown_is_none(registry: Registry) -> None:
    assert registry.get("nope") is None
    assert registry.next_due("nope") is None


def test_stale_writer_loses_then_retries_from_fresh_state_and_wins(registry: Registry) -> None:
    registry.add("m1", "main", state(1, n=0), Tier.STANDARD, 10.0)
    first = registry.get("m1")
    second = registry.get("m1")
    assert first is not None and second is not None

    # writer A saves first
    assert registry.save("m1", state(2, n=1), expected_version=first.version) is True
    # writer B read the same version: stale, loses, nothing written
    assert registry.save("m1", state(2, n=99), expected_version=second.version) is False
    assert registry.get("m1") == StoredState(state(2, n=1), 2, "main", Tier.STANDARD)

    # B re-reads and retries from the fresh state: wins
    fresh = registry.get("m1")
    assert fresh is not None and fresh.version == 2
    n = json.loads(fresh.state_json)["n"] + 1
    assert registry.save("m1", state(3, n=n), expected_version=fresh.version) is True
    assert registry.get("m1") == StoredState(state(3, n=2), 3, "main", Tier.STANDARD)


def test_save_of_a_removed_monitor_is_refused_and_does_not_resurrect_it(registry: Registry) -> None:
    registry.add("m1", "main", state(1), Tier.STANDARD, 10.0)
    registry.remove("m1")
    assert registry.save("m1", state(2), expected_version=1) is False
    assert registry.get("m1") is None
    assert registry.redis.exists(registry.monitor_key("m1")) == 0


def test_get_many_and_save_many_each_one_round_trip(registry: Registry) -> None:
    for i in range(5):
        registry.add(f"m{i}", "main" if i % 2 else "mirror1", state(1, i=i), Tier.ACTIVE, 10.0 + i)
    got = registry.get_many(["m0", "m3", "missing", "m4"])
    assert set(got) == {"m0", "m3", "m4"}
    assert got["m3"] == StoredState(state(1, i=3), 1, "main", Tier.ACTIVE)
    assert registry.get_many([]) == {}

    result = registry.save_many(
        [
            SaveItem("m0", state(2, i=0), 1),
            ("m3", state(2, i=3), 5),  # stale
            ("missing", state(2), 1),  # unknown
            ("m4", state(2, i=4), 1),
        ]
    )
    assert result == {"m0": True, "m3": False, "missing": False, "m4": True}
    versions = {k: v.version for k, v in registry.get_many(["m0", "m3", "m4"]).items()}
    assert versions == {"m0": 2, "m3": 1, "m4": 2}
    assert registry.save_many([]) == {}


def test_save_many_applies_items_in_order(registry: Registry) -> None:
    registry.add("m1", "main", state(1), Tier.ACTIVE, 10.0)
    result = registry.save_many([("m1", state(2), 1), ("m1", state(3), 2)])
    assert result == {"m1": True}
    stored = registry.get("m1")
    assert stored is not None and stored.version == 3 and stored.state_json == state(3)


def test_remove_is_total(registry: Registry) -> None:
    registry.add("m1", "main", state(1), Tier.CRITICAL, 10.0)
    registry.add("m2", "main", state(1), Tier.IDLE, 10.0)
    registry.add("x1", "mirror1", state(1), Tier.STANDARD, 10.0)
    registry.move_tier("m1", Tier.ACTIVE, 5.0)  # its due entry now lives in another tier

    assert registry.remove("m1") is True
    assert registry.get("m1") is None
    assert registry.next_due("m1") is None
    assert registry.ids("main") == ["m2"]
    assert registry.ids() == ["m2", "x1"]
    assert registry.count() == 2
    for tier in Tier:
        assert all("m1" not in m for m in registry.redis.zrange(registry.due_key(tier), 0, -1))

    # the last monitor of an account takes the account with it
    assert registry.remove("x1") is True
    assert registry.accounts() == ["main"]
    assert registry.redis.exists(registry.account_key("mirror1")) == 0
    assert registry.remove("x1") is False
    # nothing of the removed ones is ever claimed
    assert [c.monitor_id for c in registry.claim(1_000.0)] == ["m2"]

    assert registry.remove("m2") is True
    assert registry.count() == 0
    assert registry.accounts() == []
    assert registry.redis.keys(f"{registry.prefix}:*") == []


def test_prefix_separates_registries(redis_client, settings) -> None:
    a = Registry(redis_client, settings, prefix="a")
    b = Registry(redis_client, settings, prefix="b")
    a.add("m1", "main", state(1), Tier.ACTIVE, 1.0)
    assert b.get("m1") is None
    assert b.claim(100.0) == []
    assert [c.monitor_id for c in a.claim(100.0)] == ["m1"]


def test_ids_may_contain_the_separator_accounts_may_not(registry: Registry) -> None:
    registry.add("odd|id", "main", state(1), Tier.ACTIVE, 1.0)
    (claimed,) = registry.claim(2.0)
    assert (claimed.account, claimed.monitor_id) == ("main", "odd|id")
    with pytest.raises(ValueError, match="account: must not contain '\\|'"):
        registry.add("m2", "ma|in", state(1), Tier.ACTIVE, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"monitor_id": ""}, "monitor_id: must be a non-empty string"),
        ({"account": ""}, "account: must be a non-empty string"),
        ({"state_json": ""}, "state_json: must be a non-empty JSON string"),
        ({"tier": "urgent"}, "tier: 'urgent' is not one of critical, active, standard, inactive, idle"),
        ({"due_at": float("nan")}, "due_at: must be a finite number"),
        ({"due_at": "10"}, "due_at: must be a finite number"),
        ({"version": 0}, "version: must be an integer >= 1"),
    ],
)
def test_bad_input_names_the_field(registry: Registry, kwargs: dict, message: str) -> None:
    args = {"monitor_id": "m1", "account": "main", "state_json": state(1), "tier": "active", "due_at": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        registry.add(**args)
    assert registry.count() == 0


def test_bad_expected_version_names_the_field(registry: Registry) -> None:
    with pytest.raises(ValueError, match="expected_version: must be an integer >= 1"):
        registry.save("m1", state(1), expected_version=0)


def test_add_many_creates_each_once_in_one_round_trip(registry: Registry) -> None:
    registry.add("old", "main", state(1), Tier.ACTIVE, 1.0)
    result = registry.add_many(
        [
            NewMonitor("a", "main", state(1), Tier.CRITICAL, 5.0),
            ("b", "mirror1", state(3), "idle", 6.0, 3),
            ("old", "main", state(9), Tier.IDLE, 9.0),
            ("a", "main", state(2), Tier.IDLE, 9.0),
        ]
    )
    assert result == {"a": True, "b": True, "old": False}
    assert registry.get("a") == StoredState(state(1), 1, "main", Tier.CRITICAL)
    assert registry.get("b") == StoredState(state(3), 3, "mirror1", Tier.IDLE)
    assert registry.next_due("old") == (Tier.ACTIVE, 1.0)
    assert registry.ids() == ["a", "b", "old"]
    assert registry.add_many([]) == {}
    with pytest.raises(ValueError, match="tier: 'soon' is not one of"):
        registry.add_many([("c", "main", state(1), "soon", 1.0)])
    assert registry.get("c") is None


def test_states_and_due_entries_are_the_readers_view(registry: Registry) -> None:
    """What the dashboard lists through: (version, state) by id, and slices of the due sets."""
    registry.add("m1", "main", state(1), Tier.CRITICAL, 10.0)
    registry.add("m2", "mirror1", state(3), Tier.CRITICAL, 5.0, version=3)
    registry.add("m3", "main", state(1), Tier.IDLE, 1.0)
    assert registry.states(["m1", "m2", "gone"]) == {"m1": (1, state(1)), "m2": (3, state(3))}
    assert registry.states([]) == {}
    slices = [(Tier.CRITICAL, 0, -1), (Tier.CRITICAL, 1, 1), (Tier.IDLE, 0, 0), (Tier.ACTIVE, 0, -1)]
    assert registry.due_entries(slices) == [
        [("mirror1", "m2", 5.0), ("main", "m1", 10.0)],
        [("main", "m1", 10.0)],
        [("main", "m3", 1.0)],
        [],
    ]


def test_remove_many_is_remove_for_each_in_one_round_trip(registry: Registry) -> None:
    registry.add("m1", "main", state(1), Tier.CRITICAL, 10.0)
    registry.add("m2", "main", state(1), Tier.IDLE, 10.0)
    registry.add("x1", "mirror1", state(1), Tier.STANDARD, 10.0)
    assert registry.remove_many([]) == {}
    assert registry.remove_many(["m1", "x1", "gone1"]) == {"m1": True, "x1": True, "gone1": False}
    assert registry.get("m1") is None and registry.get("x1") is None
    assert registry.ids() == ["m2"] and registry.accounts() == ["main"]
    assert [c.monitor_id for c in registry.claim(1_000.0)] == ["m2"]


def test_finished_monitors_leave_the_position_index_only_while_it_still_names_them(
    registry: Registry,
) -> None:
    from dataclasses import replace
    from decimal import Decimal as D

    from core.models import Monitor
    from tests.unit.core import builders
    from workers.position_index import PositionIndex

    def monitor(mid: str, symbol: str) -> Monitor:
        plan = replace(builders.conservative_long(mirror=False), symbol=symbol)
        return Monitor(id=mid, account="main", plan=plan, position_size=D("0.01"))

    index = PositionIndex(registry.redis, prefix=registry.prefix)
    a, b, c = monitor("a1", "BTCUSDT"), monitor("b1", "ETHUSDT"), monitor("c1", "SOLUSDT")
    index.bind([a, b, c])
    index.bind([monitor("b2", "ETHUSDT")])  # a new monitor took ETHUSDT's position
    index.unbind([a, b])
    assert index.owner("main", "BTCUSDT", 0) is None
    assert index.owner("main", "ETHUSDT", 0) == "b2"  # not b1's to forget
    assert index.owner("main", "SOLUSDT", 0) == "c1"
    index.unbind([])
