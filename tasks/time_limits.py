"""Time limits of tasks that run on a thread of their own (the threads pool).

Celery enforces a task's time limits with signals and by killing the process that runs it: the
prefork pool raises `SoftTimeLimitExceeded` in the child at the soft limit and kills the child at the
hard limit. Neither works for a task running on a thread (`--pool threads`): Celery ignores both
limits there. An exception raised into the thread from outside (`PyThreadState_SetAsyncExc`) is no
substitute: it lands at whatever instruction the thread runs next, inside an HTTP exchange or while
redis-py or kombu hold a pool's lock, and a worker wedged that way at 10,000 monitors
(docs/benchmarks.md).

So the soft limit is cooperative. `start` gives the task its deadline (workers/deadline.py), which
the task's own code checks at safe points: it stops at the first one past the deadline with
`SoftTimeLimitExceeded`, as under prefork, and its `finally` blocks run (an account lock is
released). A task blocked in one call stops when that call returns or times out (every exchange
call has a budget, every Redis call a socket timeout).

The watchdog thread only logs: a warning when a task passes its soft limit (it stops at its next
safe point), an error when it passes its hard limit. The hard limit has no equivalent: a thread
cannot be killed; its account lock stays renewed while the thread lives (docs/benchmarks.md, Time
limits on the threads pool).

Tasks on the main thread of their process (prefork children, the solo pool) are left to Celery:
they get no deadline, and `workers.deadline.check()` does nothing there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers import deadline

log = logging.getLogger(__name__)

__all__ = ["ThreadTimeLimits", "limits_of"]


@dataclass(slots=True)
class _Running:
    task_id: str
    name: str
    soft_at: float | None  # on the watchdog's clock
    hard_at: float | None
    warned: bool = False
    reported: bool = False


def limits_of(
    task: Any, default_soft: float | None, default_hard: float | None
) -> tuple[float | None, float | None]:
    """(soft, hard) seconds of a running task: the message's limits, else the task's, else the app's."""
    hard, soft = None, None
    given = getattr(getattr(task, "request", None), "timelimit", None)
    if given:
        hard, soft = given
    soft = soft or getattr(task, "soft_time_limit", None) or default_soft
    hard = hard or getattr(task, "time_limit", None) or default_hard
    return (float(soft) if soft else None, float(hard) if hard else None)


class ThreadTimeLimits:
    """`start(task_id, name, soft_s, hard_s)` on the task's thread before it runs, `finish()` on the
    same thread after it (Celery's task_prerun / task_postrun); one task per thread at a time. One
    watchdog thread per process, started on first use, logs the tasks past their limits.

    `clock` is the one clock of the deadlines and of the watchdog (tasks/app.py passes
    `time.monotonic`); `sweep()` is one look of the watchdog, for tests that move the clock."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._running: dict[int, _Running] = {}  # thread id → its task
        self._wake = threading.Condition(threading.RLock())
        self._thread: threading.Thread | None = None

    def start(self, task_id: str, name: str, soft_s: float | None, hard_s: float | None) -> None:
        if threading.current_thread() is threading.main_thread() or (soft_s is None and hard_s is None):
            return  # Celery's own limits apply (or there are none)
        now = self._clock()
        soft_at = now + soft_s if soft_s else None
        # set whatever the thread's last task left (nothing, unless its task_postrun never came)
        deadline.enter(deadline.Deadline(soft_at, self._clock, name, task_id) if soft_at else None)
        entry = _Running(task_id, name, soft_at, now + hard_s if hard_s else None)
        with self._wake:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="task-time-limits", daemon=True)
                self._thread.start()
            self._running[threading.get_ident()] = entry
            self._wake.notify()

    def finish(self) -> None:
        with self._wake:
            entry = self._running.pop(threading.get_ident(), None)
        if entry is not None:
            deadline.clear()  # the thread's next task starts without this one's deadline

    def running(self) -> int:
        with self._wake:
            return len(self._running)

    def sweep(self) -> float | None:
        """Log every task newly past its soft or hard limit; the next limit to watch (None: none)."""
        with self._wake:  # a re-entrant lock: the watchdog holds it already
            now = self._clock()
            for entry in self._running.values():
                if not entry.warned and entry.soft_at is not None and entry.soft_at <= now:
                    entry.warned = True
                    log.warning(
                        "task %s[%s]: soft time limit exceeded; it stops at its next safe point",
                        entry.name,
                        entry.task_id,
                    )
                if not entry.reported and entry.hard_at is not None and entry.hard_at <= now:
                    entry.reported = True
                    log.error(
                        "task %s[%s]: still running at its hard time limit; a thread cannot be "
                        "killed (threads pool), it goes on until it returns",
                        entry.name,
                        entry.task_id,
                    )
            deadlines = [d for e in self._running.values() if (d := _next_limit(e)) is not None]
            return min(deadlines) if deadlines else None

    def _run(self) -> None:
        with self._wake:  # released while it waits; `start` wakes it for a nearer limit
            while True:
                nearest = self.sweep()
                wait = 60.0 if nearest is None else nearest - self._clock()
                self._wake.wait(max(0.001, wait))


def _next_limit(entry: _Running) -> float | None:
    if not entry.warned and entry.soft_at is not None:
        return entry.soft_at
    if not entry.reported and entry.hard_at is not None:
        return entry.hard_at
    return None
