"""The checks: thin tasks (ids in, re-read state, call the core, hand off). Beat publishes the tier
checks (tasks/dispatch.py); the stream process the pushed ones (tasks/stream.py)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from config.queues import TIERS
from core.models import Tier
from workers import deadline
from workers.checker import run_check
from workers.lag import CHECK_START_LAG
from workers.stream_triggers import CheckCoalescer
from workers.stream_view import BEHIND_WAIT_S

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


def register(app: Celery) -> None:
    from tasks.app import runtime

    @app.task(bind=True, shared=False, name="tpsl.check", soft_time_limit=40, time_limit=60)
    def check(
        self: Task,
        account: str,
        monitor_ids: list[str],
        due_at: float | None = None,
        tier: str | None = None,
    ) -> None:
        rt = runtime(app)
        started = rt.clock()
        if joined_queued_check(rt, account, monitor_ids):
            return
        # never wait for the account's lock: a worker blocked on it is one the other accounts'
        # checks lack; a busy account gets this same check again a moment later (until it expires,
        # one interval after it was due: the next one is claimed by then)
        result = run_check(rt, account, monitor_ids, lock_wait_s=0.0)
        if result.skipped == "account busy":
            if not run_again_later(self, BUSY_RETRY_S, busy_retries(rt, tier)):
                log.info("check %s: its account stayed busy for one interval; the next check is due", account)
            return
        check_behind_later(app, account, result.behind)
        if due_at is not None and tier is not None:
            # due time → the check starts (holding its account): what a monitor really waits
            rt.latency.record(CHECK_START_LAG, tier, max(0.0, started - due_at), now=started)
        if result.skipped:
            log.info("check %s: %d monitors skipped (%s)", account, len(monitor_ids), result.skipped)
        if rt.settings.streams:
            # monitors pushed while this check held the account (their check found it busy, and
            # waits for its retry): to a check of their own now, not inline (a tier check stays as
            # short as its own work: its time limits are set for that)
            hand_on_pushed(app, CheckCoalescer(rt.redis, prefix=rt.prefix), account)

    @app.task(shared=False, name="tpsl.stream_check", soft_time_limit=5, time_limit=10)
    def stream_check(account: str) -> None:
        """A check of the monitors pushes touched (queued by the stream process, coalesced: the
        ids come from Redis, so a duplicate delivery finds nothing left and does nothing)."""
        check_pushed(app, runtime(app), account)


BUSY_RETRY_S = 0.25  # a tier check that found its account busy runs again this much later
PUSHED_BUSY_RETRY_S = 0.1  # the same for a check of pushed monitors (a tier holder hands them on first)
PUSHED_ROUNDS = 4  # rounds of pushed monitors one task runs at most before it hands the rest on
PUSHED_BUDGET_S = 1.0  # …and no round starts after this long (a task far inside its time limits)


def check_pushed(app: Celery, rt: Runtime, account: str) -> int:
    """Check the monitors pushes touched (the coalescer's pending set), again while pushes keep
    coming during the check, up to PUSHED_ROUNDS rounds and PUSHED_BUDGET_S; returns the rounds
    run. Never waits for the account's lock: a worker blocked on it is one the critical queue
    lacks, so a busy account gets its pushed monitors back in the pending set and a check a moment
    later (a tier check that held the account hands them on as it ends). The ids come from Redis:
    a duplicate delivery finds nothing left and does nothing.

    Past the task's soft deadline (workers/deadline.py) no round starts: what is pending goes to a
    check of its own, as after the last round. A round the deadline stops midway gives its monitors
    back the same way before the task fails: nothing noted is dropped."""
    coalescer = CheckCoalescer(rt.redis, prefix=rt.prefix)
    started = rt.clock()
    for rounds in range(PUSHED_ROUNDS):
        if rounds and (rt.clock() - started > PUSHED_BUDGET_S or deadline.passed()):
            break
        ids = coalescer.take(account)
        if not ids:
            return rounds
        try:
            result = run_check(rt, account, ids, lock_wait_s=0.0)
        except SoftTimeLimitExceeded:
            queue_pushed_check(app, coalescer, account, ids)
            raise
        if result.skipped == "account busy":
            queue_pushed_check(app, coalescer, account, ids, PUSHED_BUSY_RETRY_S)
            return rounds
        check_behind_later(app, account, result.behind)
        if result.skipped:
            log.info("stream check %s: %d monitors skipped (%s)", account, len(ids), result.skipped)
    else:
        rounds = PUSHED_ROUNDS
    hand_on_pushed(app, coalescer, account)  # pushes keep coming: the rest in a task of its own
    return rounds


def hand_on_pushed(app: Celery, coalescer: CheckCoalescer, account: str) -> None:
    """The monitors pushed meanwhile, if any, to a check of their own now (behind what else is
    queued), rather than after the busy retry of the check that could not run them."""
    ids = coalescer.take(account)
    if ids:
        queue_pushed_check(app, coalescer, account, ids)


def check_behind_later(app: Celery, account: str, monitor_ids: list[str]) -> None:
    """The monitors a check left because the view had their symbol's fill but not its position
    push yet: checked again once the wait for that push is over (`BEHIND_WAIT_S`). The push itself
    calls a check of them sooner; this one covers a push that never comes (that check then finds
    the fill old and reads the account by REST)."""
    if not monitor_ids:
        return
    spec = TIERS[Tier.CRITICAL]
    app.tasks["tpsl.check"].apply_async(
        args=(account, monitor_ids),
        queue=spec.queue,
        routing_key=spec.queue,
        countdown=BEHIND_WAIT_S,
        expires=BEHIND_WAIT_S + spec.interval_s,
        soft_time_limit=spec.soft_time_limit_s,
        time_limit=spec.time_limit_s,
    )


JOIN_MAX = 100  # a tier check of more monitors keeps its own pass (a push check stays short)


def joined_queued_check(rt: Runtime, account: str, monitor_ids: list[str]) -> bool:
    """With streams, a tier check whose account has a pushed monitors' check queued (a fill's
    pushes called it, and it has not started) leaves its monitors to that check: one pass of the
    account for both, and the fill's check does not wait behind this one holding the account. Up
    to JOIN_MAX monitors. True when they joined it (this task has nothing left to do)."""
    if not rt.settings.streams or not monitor_ids or len(monitor_ids) > JOIN_MAX:
        return False
    return CheckCoalescer(rt.redis, prefix=rt.prefix).join_queued(account, monitor_ids)


def run_again_later(task: Task, countdown: float, max_retries: int) -> bool:
    """The running task once more, `countdown` seconds from now, with its own options (queue,
    expiry, time limits): Celery's retry without raising. A raised `Retry` has Celery build the
    task's traceback and log it, and a busy account's checks retry every `BUSY_RETRY_S`: in the
    bursts of the streams benchmark that was 4 % of the worker's interpreter time. False when the
    `max_retries` are spent (nothing sent)."""
    retries = task.request.retries + 1
    if retries > max_retries:
        return False
    task.signature_from_request(countdown=countdown, retries=retries).apply_async()
    return True


def busy_retries(rt: Runtime, tier: str | None) -> int:
    """How often a tier check retries a busy account: for one interval of its tier (its message
    expires then anyway; the dispatcher has claimed the next check of those monitors by then)."""
    interval = (
        rt.settings.interval(Tier(tier))
        if tier in {t.value for t in Tier}
        else max(rt.settings.interval(t) for t in Tier)
    )
    return max(1, math.ceil(interval / BUSY_RETRY_S))


def queue_pushed_check(
    app: Celery, coalescer: CheckCoalescer, account: str, ids: list[str], countdown: float | None = None
) -> None:
    """These monitors into the account's pending set, and a check of them queued unless one is
    queued already (it takes them too), as a push would."""
    from tasks.stream import publish_stream_check

    if coalescer.note(account, ids):
        publish_stream_check(app, account, countdown=countdown)
