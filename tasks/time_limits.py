"""Soft time limits for tasks that run on a thread of their own (the threads pool).

Celery enforces a task's time limits with signals and by killing the process that runs it: the prefork
pool raises `SoftTimeLimitExceeded` in the child at the soft limit and kills the child at the hard
limit. Neither works for a task running on a thread (`--pool threads`): Celery ignores both limits
there. This watchdog gives such tasks the soft limit back: at a task's soft limit it raises
`SoftTimeLimitExceeded` in the task's own thread (`PyThreadState_SetAsyncExc`), as the prefork pool
raises it in its child — at the next Python instruction the thread runs, so a thread blocked in one
socket read gets it when that read returns or times out (every exchange and Redis call has a
timeout). The task fails as under prefork, and its `finally` blocks run: an account lock is released.

The hard limit has no equivalent: a thread cannot be killed. A task still running at its hard limit
is logged as an error once; its account lock stays renewed while the thread lives (docs/benchmarks.md,
Worker pools).

Tasks on the main thread of their process (prefork children, the solo pool) are left to Celery.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

log = logging.getLogger(__name__)

__all__ = ["ThreadTimeLimits", "limits_of"]


@dataclass(slots=True)
class _Running:
    task_id: str
    name: str
    soft_at: float | None  # time.monotonic() deadlines
    hard_at: float | None
    fired: bool = False
    reported: bool = False


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> int:
    """Make `thread_id` raise `exc` at its next instruction (None: withdraw a pending one); how many
    threads were told (0: the thread is gone)."""
    return int(
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else ctypes.c_void_p(0)
        )
    )


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
    same thread after it (Celery's task_prerun / task_postrun). One watchdog thread per process,
    started on first use."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[int, _Running] = {}  # thread id → its task (one per thread at a time)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self, task_id: str, name: str, soft_s: float | None, hard_s: float | None) -> None:
        if threading.current_thread() is threading.main_thread() or (soft_s is None and hard_s is None):
            return  # Celery's own limits apply (or there are none)
        now = self._clock()
        entry = _Running(
            task_id,
            name,
            now + soft_s if soft_s else None,
            now + hard_s if hard_s else None,
        )
        with self._wake:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="task-time-limits", daemon=True)
                self._thread.start()
            self._running[threading.get_ident()] = entry
            self._wake.notify()

    def finish(self) -> None:
        tid = threading.get_ident()
        while True:
            try:
                with self._wake:
                    entry = self._running.pop(tid, None)
                    if entry is not None and entry.fired:
                        _raise_in(tid, None)  # the task ended before the exception landed: withdrawn
                return
            except SoftTimeLimitExceeded:
                continue  # it landed here, after the task: taken, nothing is pending any more

    def running(self) -> int:
        with self._wake:
            return len(self._running)

    def _next_deadline(self, entry: _Running) -> float | None:
        if not entry.fired and entry.soft_at is not None:
            return entry.soft_at
        if not entry.reported and entry.hard_at is not None:
            return entry.hard_at
        return None

    def _run(self) -> None:
        while True:
            with self._wake:
                now = self._clock()
                for tid, entry in list(self._running.items()):
                    if not entry.fired and entry.soft_at is not None and entry.soft_at <= now:
                        entry.fired = True
                        told = _raise_in(tid, SoftTimeLimitExceeded)
                        log.warning(
                            "task %s[%s]: soft time limit exceeded; raising it in its thread%s",
                            entry.name,
                            entry.task_id,
                            "" if told else " (the thread is gone)",
                        )
                        if not told:
                            del self._running[tid]
                            continue
                    if not entry.reported and entry.hard_at is not None and entry.hard_at <= now:
                        entry.reported = True
                        log.error(
                            "task %s[%s]: still running at its hard time limit; a thread cannot be "
                            "killed (threads pool), it goes on until it returns",
                            entry.name,
                            entry.task_id,
                        )
                deadlines = [d for e in self._running.values() if (d := self._next_deadline(e)) is not None]
                wait = (min(deadlines) - now) if deadlines else 60.0
                self._wake.wait(max(0.001, wait))
