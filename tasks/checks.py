"""dispatch and check: thin tasks (ids in, re-read state, call the core, hand off)."""

from __future__ import annotations

import logging

from celery import Celery

from config.queues import TIERS
from workers.checker import run_check
from workers.dispatcher import CheckOrder, dispatch_once

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    from tasks.app import runtime

    @app.task(shared=False, name="tpsl.dispatch", acks_late=False, soft_time_limit=5, time_limit=10)
    def dispatch() -> int:
        return len(dispatch_once(runtime(app), lambda orders: publish_checks(app, orders)))

    @app.task(shared=False, name="tpsl.check", soft_time_limit=40, time_limit=60)
    def check(account: str, monitor_ids: list[str]) -> None:
        result = run_check(runtime(app), account, monitor_ids)
        if result.skipped:
            log.info("check %s: %d monitors skipped (%s)", account, len(monitor_ids), result.skipped)


def publish_checks(app: Celery, orders: list[CheckOrder]) -> None:
    """One message per account, to its most urgent tier's queue, in one producer batch; each expires
    after its tier's interval (a newer check is due by then) and carries that tier's time limits."""
    from tasks.app import runtime

    task = app.tasks["tpsl.check"]
    settings = runtime(app).settings
    with app.producer_or_acquire() as producer:
        for order in orders:
            spec = TIERS[order.tier]
            task.apply_async(
                args=(order.account, list(order.monitor_ids)),
                queue=spec.queue,
                routing_key=spec.queue,
                expires=settings.interval(order.tier),
                soft_time_limit=spec.soft_time_limit_s,
                time_limit=spec.time_limit_s,
                producer=producer,
            )
