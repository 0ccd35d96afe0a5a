"""Quick measurement of the claim at scale (not a test: run it by hand).

    .venv/bin/python -m tests.integration.registry.bench_claim [--monitors 10000] [--accounts 4]

Uses REDIS_URL when set (its database is flushed!), else a private embedded redis-server.
Reports milliseconds per `Registry.claim` call (one round trip, one Lua script) for:
  steady  — monitors spread over the tiers with random phases, 0.5 s ticks for 10 simulated minutes;
  burst   — every monitor due at once (after an outage), claimed `claim_cap` at a time.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import redis

from config.settings import Settings
from core.models import Tier
from devtools.embedded_redis import EmbeddedRedis
from workers.registry import NewMonitor, Registry

TIER_MIX = {Tier.CRITICAL: 0.05, Tier.ACTIVE: 0.15, Tier.STANDARD: 0.4, Tier.INACTIVE: 0.2, Tier.IDLE: 0.2}


def fill(registry: Registry, monitors: int, accounts: int, rng: random.Random, start: float) -> float:
    tiers = rng.choices(list(TIER_MIX), weights=list(TIER_MIX.values()), k=monitors)
    items = [
        NewMonitor(f"m{i}", f"acct{i % accounts}", '{"v":1}', t, start + rng.uniform(0, registry.interval(t)))
        for i, t in enumerate(tiers)
    ]
    t0 = time.perf_counter()
    for k in range(0, len(items), 2000):
        registry.add_many(items[k : k + 2000])
    return time.perf_counter() - t0


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(url: str, monitors: int, accounts: int) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    settings = Settings()
    registry = Registry(client, settings)
    rng = random.Random(1)
    t0 = 1_700_000_000.0
    fill_s = fill(registry, monitors, accounts, rng, t0)
    print(f"add_many of {monitors} monitors over {accounts} accounts: {fill_s * 1000:.0f} ms")

    registry.claim(t0 - 1)  # load the script once
    times: list[float] = []
    claimed: list[int] = []
    rides = 0
    now = t0
    for _ in range(1200):  # 10 simulated minutes of 0.5 s ticks
        now += settings.dispatch_tick_s
        a = time.perf_counter()
        got = registry.claim(now)
        times.append((time.perf_counter() - a) * 1000)
        claimed.append(len(got))
        rides += sum(c.ride_along for c in got)
    print(
        f"steady: {len(times)} claims, {statistics.mean(claimed):.0f} monitors per claim "
        f"({rides / max(1, sum(claimed)):.0%} ride-alongs), ms per claim: "
        f"mean {statistics.mean(times):.2f}  p50 {pct(times, 0.5):.2f}  p99 {pct(times, 0.99):.2f}  "
        f"max {max(times):.2f}"
    )
    busy = [n for n in claimed if n]
    print(
        f"steady: {len(busy)} of {len(claimed)} ticks claimed something; monitors per claim: "
        f"p50 {pct(claimed, 0.5)}  max {max(claimed)}"
    )
    per_monitor_us = sum(times) / max(1, sum(claimed)) * 1000
    print(f"steady: {per_monitor_us:.1f} µs per claimed monitor (script + reply parsing)")

    # an empty tick: nothing due
    client.flushdb()
    fill(registry, monitors, accounts, rng, now + 1000)
    a = time.perf_counter()
    for _ in range(200):
        registry.claim(now)
    print(f"idle tick (nothing due, {monitors} monitors): {(time.perf_counter() - a) / 200 * 1000:.3f} ms")

    # burst: everything overdue at once
    client.flushdb()
    fill(registry, monitors, accounts, rng, now - 120)
    burst: list[tuple[float, int]] = []
    while True:
        a = time.perf_counter()
        got = registry.claim(now + 0.5)
        burst.append(((time.perf_counter() - a) * 1000, len(got)))
        if not got:
            break
    print(
        f"burst (all due, cap {settings.claim_cap}): " + ", ".join(f"{n} in {ms:.1f} ms" for ms, n in burst)
    )
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=4)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    if url:
        run(url, args.monitors, args.accounts)
        return
    with EmbeddedRedis() as server:
        run(server.url, args.monitors, args.accounts)


if __name__ == "__main__":
    main()
