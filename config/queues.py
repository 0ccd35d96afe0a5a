"""The one tier table. Beat, task routing, the Procfile, the README and the dashboard all read it.

| tier     | queue          | interval | when (classifier: core.urgency)                                  |
|----------|----------------|----------|--------------------------------------------------------------------|
| critical | tier.critical  |  2 s     | breakeven due/unconfirmed; repair; price near the next TP or the   |
|          |                |          | SL (polled reads only)                                             |
| active   | tier.active    |  5 s     | PROFIT_TAKING with TPs pending, or BUILDING with entries working   |
|          |                |          | (polled reads only: under streams their fills are pushed)          |
| standard | tier.standard  | 12 s     | default                                                            |
| inactive | tier.inactive  | 30 s     | ≥ 90 % of the planned TP quantity filled                           |
| idle     | tier.idle      | 60 s     | nothing happened for ≥ 10 minutes                                  |

Intervals here are the defaults; `Settings.tier_intervals` overrides them (env TPSL_TIER_INTERVALS).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.models import Tier


@dataclass(frozen=True, slots=True)
class TierSpec:
    tier: Tier
    queue: str
    interval_s: float  # how often a monitor in this tier is checked
    # a check running longer stops (SoftTimeLimitExceeded): under prefork where Celery raises it,
    # on the threads pool at its next safe point (workers/deadline.py)
    soft_time_limit_s: float
    time_limit_s: float  # …and is killed after this (prefork; a thread is only logged)

    @property
    def expires_s(self) -> float:
        """A check message older than one interval is stale: the next one is already due."""
        return self.interval_s


TIERS: dict[Tier, TierSpec] = {
    Tier.CRITICAL: TierSpec(Tier.CRITICAL, "tier.critical", 2.0, 20.0, 30.0),
    Tier.ACTIVE: TierSpec(Tier.ACTIVE, "tier.active", 5.0, 20.0, 30.0),
    Tier.STANDARD: TierSpec(Tier.STANDARD, "tier.standard", 12.0, 40.0, 60.0),
    Tier.INACTIVE: TierSpec(Tier.INACTIVE, "tier.inactive", 30.0, 40.0, 60.0),
    Tier.IDLE: TierSpec(Tier.IDLE, "tier.idle", 60.0, 40.0, 60.0),
}

# The other queues, by what they carry.
PERSIST_QUEUE = "persist"
ALERTS_QUEUE = "alerts"
MAINTENANCE_QUEUE = "maintenance"

TIER_QUEUES: tuple[str, ...] = tuple(spec.queue for spec in TIERS.values())
ALL_QUEUES: tuple[str, ...] = (
    *TIER_QUEUES,
    PERSIST_QUEUE,
    ALERTS_QUEUE,
    MAINTENANCE_QUEUE,
)

# Worker pools (Procfile process types) and the queues each reads, in priority order.
# A pool that reads several tiers uses queue_order_strategy='priority': earlier queues first.
POOLS: dict[str, tuple[str, ...]] = {
    "worker_fast": (TIERS[Tier.CRITICAL].queue, TIERS[Tier.ACTIVE].queue),
    "worker_bulk": (
        TIERS[Tier.STANDARD].queue,
        TIERS[Tier.INACTIVE].queue,
        TIERS[Tier.IDLE].queue,
        MAINTENANCE_QUEUE,
    ),
    "worker_persist": (PERSIST_QUEUE, ALERTS_QUEUE),
}

# The one-process layout (the Procfile's `worker`): every queue above, in the pools' order, with all
# their slots. A small fleet runs it instead of the three pools: one process's memory instead of
# three (docs/benchmarks.md, Worker layouts); the pools scale each kind of work on its own.
ONE_WORKER = "worker"
ONE_WORKER_QUEUES: tuple[str, ...] = tuple(q for queues in POOLS.values() for q in queues)
