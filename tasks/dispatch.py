"""Beat's dispatcher: due monitors claimed and their checks published from beat's own process.

`tpsl beat` runs the dispatcher loop (workers/dispatcher.py decides what is due; this module sends)
on a thread beside Celery's scheduler, every `dispatch_tick_s` (0.5 s): beat schedules each
monitored position into its tier's queue itself. The checks go by task name through the configured
app (tasks/base.py), so beat still loads neither the task bodies nor the database's layer. A lost
registry (its epoch key gone: Redis flushed or replaced, and at a new Redis's first start) is
rebuilt before the tick claims, as ever, by `tpsl reconcile` in a child process (`ChildRebuild`):
SQLAlchemy and the codec would stay in beat's memory for good (+24 MB, measured) for a rebuild that
comes once in a Redis's life. The child inherits beat's environment; nothing of it is an argument.

It used to be an entry of beat's schedule that sent `tpsl.dispatch` to a worker twice a second.
Celery's scheduler spent about 9 ms of CPU on each of those ticks (time-zone-aware due times, the
schedule compared with its stored copy) and the worker a task's round trip, for a claim that is one
script call; two thirds of beat's CPU in the streams benchmark. `tpsl dispatch` runs the same loop
as a process of its own (a second dispatcher does no harm: claims are atomic).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from celery import Celery

from config.queues import TIERS
from workers.dispatcher import CheckOrder, run_loop

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_TASK = "tpsl.check"
REBUILD_EVERY_S = 5.0  # a child at most this often while the epoch stays missing (another one's lock)
REBUILD_TIMEOUT_S = 300.0  # the reconcile task's own hard limit (tasks/housekeeping.py)


class ChildRebuild:
    """The registry rebuilt from the database by `tpsl reconcile` in a child process, waited for.

    While another reconcile holds the lock (a worker's, at its start) the child does nothing and
    the epoch stays missing: the next child is not started before `every_s` has passed."""

    def __init__(
        self,
        *,
        every_s: float = REBUILD_EVERY_S,
        timeout_s: float = REBUILD_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        argv: tuple[str, ...] = (sys.executable, "-m", "cli.main", "reconcile", "--json"),
    ) -> None:
        self.every_s, self.timeout_s, self.clock, self.argv = every_s, timeout_s, clock, argv
        self._last: float | None = None
        self.runs = 0

    def __call__(self, rt: Runtime) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        self.runs += 1
        try:
            out = subprocess.run(
                self.argv, stdout=subprocess.PIPE, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            log.error(
                "registry lost: `tpsl reconcile` ran past %.0f s and was stopped; again later", self.timeout_s
            )
            return
        if out.returncode != 0:
            log.error(
                "registry lost: `tpsl reconcile` failed (exit %d); again in %.0f s",
                out.returncode,
                self.every_s,
            )
            return
        log.warning(
            "registry lost: `tpsl reconcile` ran in %.1f s: %s",
            self.clock() - now,
            " ".join(out.stdout.split()),
        )


def publish_checks(app: Celery, rt: Runtime, orders: list[CheckOrder]) -> None:
    """One message per account, to its most urgent tier's queue, in one producer batch; a check
    claimed ahead of its due time waits for it (countdown); each expires one interval after it is
    due (a newer check is due by then) and carries its tier's time limits."""
    now = rt.clock()
    with app.producer_or_acquire() as producer:
        for order in orders:
            spec = TIERS[order.tier]
            wait = max(0.0, order.due_at - now)  # claimed ahead: start when due
            app.send_task(
                CHECK_TASK,
                args=(order.account, list(order.monitor_ids), order.due_at, order.tier.value),
                queue=spec.queue,
                routing_key=spec.queue,
                countdown=wait or None,
                expires=wait + rt.settings.interval(order.tier),
                soft_time_limit=spec.soft_time_limit_s,
                time_limit=spec.time_limit_s,
                producer=producer,
            )


@contextmanager
def dispatching(app: Celery, rt: Runtime) -> Iterator[threading.Thread]:
    """The dispatcher loop on a daemon thread while the block runs (beat's scheduler, in beat)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_loop,
        args=(rt, lambda orders: publish_checks(app, rt, orders), stop, ChildRebuild()),
        name="dispatcher",
        daemon=True,
    )
    thread.start()
    log.info("dispatcher: claiming due monitors every %g s", rt.settings.dispatch_tick_s)
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout=max(1.0, 2 * rt.settings.dispatch_tick_s))
