"""Several dispatchers claiming at once (threads, separate connections): every due time of every
monitor is claimed exactly once, none twice and none lost."""

from __future__ import annotations

import random
import threading
from collections import defaultdict

import pytest
import redis

from config.settings import Settings
from core.models import Tier
from workers.registry import NewMonitor, Registry

INTERVALS = {Tier.CRITICAL: 2.0, Tier.ACTIVE: 5.0, Tier.STANDARD: 12.0, Tier.INACTIVE: 30.0, Tier.IDLE: 60.0}


@pytest.mark.parametrize("dispatchers", [2, 4])
def test_concurrent_dispatchers_claim_each_due_time_exactly_once(
    redis_url: str, redis_client, dispatchers: int
) -> None:
    settings = Settings(claim_lookahead_s=1.5, claim_cap=5000)
    setup = Registry(redis_client, settings)
    rng = random.Random(7)
    monitors: dict[str, tuple[Tier, float]] = {}
    for i in range(2000):
        tier = rng.choice(list(Tier))
        start = rng.randrange(0, 240) * 0.25  # exact binary fractions: sums compare exactly
        monitors[f"m{i}"] = (tier, start)
    created = setup.add_many(
        NewMonitor(m, f"acct{i % 4}", '{"v": 1}', tier, start)
        for i, (m, (tier, start)) in enumerate(monitors.items())
    )
    assert all(created.values()) and len(created) == len(monitors)

    ticks = [t * 0.5 for t in range(0, 241)]  # 0 … 120 s, the beat's 0.5 s ticks
    claims: list[list[tuple[str, float, bool]]] = [[] for _ in range(dispatchers)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(dispatchers)

    def dispatcher(n: int) -> None:
        # its own connection, as another process would have
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            registry = Registry(client, settings)
            barrier.wait()
            for now in ticks:  # every dispatcher runs every tick: they race for the same members
                claims[n].extend((c.monitor_id, c.due_at, c.ride_along) for c in registry.claim(now))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in range(dispatchers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    everything = [c for per in claims for c in per]
    keys = [(m, due) for m, due, _ in everything]
    assert len(keys) == len(set(keys)), "a due time was claimed twice"

    by_monitor: dict[str, list[float]] = defaultdict(list)
    for monitor_id, due_at, _ in everything:
        by_monitor[monitor_id].append(due_at)
    # every monitor is in exactly one due set, the one of its tier
    next_due: dict[str, tuple[Tier, float]] = {}
    for tier in Tier:
        for member, score in redis_client.zrange(setup.due_key(tier), 0, -1, withscores=True):
            _, monitor_id = setup.split_member(member)
            assert monitor_id not in next_due, monitor_id
            next_due[monitor_id] = (tier, score)
    assert set(next_due) == set(monitors)

    last = ticks[-1]
    for monitor_id, (tier, start) in monitors.items():
        interval = INTERVALS[tier]
        dues = sorted(by_monitor[monitor_id])
        # the claimed due times are the monitor's schedule, with no gap and no drift …
        assert dues == [start + k * interval for k in range(len(dues))], monitor_id
        # … and everything due by the last tick was claimed: none lost
        assert next_due[monitor_id] == (tier, start + len(dues) * interval), monitor_id
        assert next_due[monitor_id][1] > last, monitor_id
