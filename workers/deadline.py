"""The running task's soft deadline, checked by the task's own code at safe points.

On the threads pool Celery enforces no time limit, and an exception raised into a running thread
from outside lands wherever that thread happens to be: inside an HTTP exchange (a connection handed
back to its pool in the middle of a response), inside redis-py or kombu holding a pool's lock. So
the soft limit of a task on a thread is cooperative: tasks/time_limits.py puts the task's deadline
here when the task starts (Celery's task_prerun) and takes it away when it ends (task_postrun),
and the task's code calls `check()` where stopping is safe. `check()` raises Celery's own
`SoftTimeLimitExceeded`, the exception prefork raises at the soft limit, so a task fails the same
way on either pool. Without a deadline (a prefork child or the solo pool, whose tasks keep Celery's
own limits; the CLI, the dashboard, a test) every function here is a no-op.

A safe point holds no lock in the middle of an operation and no connection in the middle of an
exchange: between exchange calls, between the passes of a check, between the rounds of a pushed
check, between the accounts of a sweep, between the pages and rows of a reconcile. An account lock
is held across them; raising there leaves it to the `finally` of `workers.locks.hold_account`,
which releases it.

What a check that stops leaves behind:
- stopped before its pass sent anything (after the read, between the steps, before the executor):
  only the read is lost; nothing was decided on the exchange, the monitors stay scheduled and
  their next check reads again;
- the deadline passed while the executor was sending: the executor does not raise. It sends no
  further call, and answers every intent it did not send "not sent" (`IntentResult.sent` False),
  exactly as after a failed cancel: the core sends those again next pass (a create keeps its
  orderLinkId). Every call that was sent has its real answer, and a call cut short by its own
  timeout is "unknown" (in flight, looked up by orderLinkId), never "failed". The pass then folds
  the answers back, commits its critical events and saves its monitors as always, and the task
  stops at the next safe point. A stop is the exception: the stop calls of a pass are sent even
  past the deadline (a decided stop left unsent is an unprotected position until the next pass;
  each call is bounded by its own timeout, and a failed stop call never holds back another either).
Nothing is lost between calls: the orderLinkIds are deterministic, so a pass cut short and run
again never places an order twice.

Clocks are passed in (`Deadline.clock`; tasks/app.py gives the watchdog `time.monotonic`): nothing
here reads a clock of its own. The deadline lives in a context variable: each thread of the pool
sees only its own task's, and a thread the task starts (the exchange client's side-by-side calls)
sees none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

__all__ = [
    "Deadline",
    "bound",
    "check",
    "clear",
    "current",
    "enter",
    "leave",
    "passed",
    "remaining",
    "running",
]


@dataclass(frozen=True, slots=True)
class Deadline:
    """A task's soft deadline: `at` on `clock`'s scale."""

    at: float
    clock: Callable[[], float]
    task: str = ""  # the task's name and id, for the exception's message
    task_id: str = ""

    @classmethod
    def after(
        cls, seconds: float, clock: Callable[[], float], *, task: str = "", task_id: str = ""
    ) -> Deadline:
        return cls(clock() + seconds, clock, task, task_id)

    def remaining(self) -> float:
        """Seconds left (0.0 once passed)."""
        return max(0.0, self.at - self.clock())

    def passed(self) -> bool:
        return self.clock() >= self.at

    def check(self) -> None:
        """Raise `SoftTimeLimitExceeded` once the deadline has passed."""
        if self.passed():
            # Celery's own exception, imported when raised: a process that never runs a task (the
            # dashboard, which sends intents through the executor) does not load Celery for it
            from celery.exceptions import SoftTimeLimitExceeded

            name = f"{self.task}[{self.task_id}]" if self.task_id else (self.task or "task")
            late = self.clock() - self.at
            raise SoftTimeLimitExceeded(
                f"{name}: soft time limit passed {late:.1f} s ago; stopped at a safe point"
            )


_current: ContextVar[Deadline | None] = ContextVar("tpsl_task_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the task running in this context (thread), if it has one."""
    return _current.get()


def enter(deadline: Deadline | None) -> Token[Deadline | None]:
    """Make `deadline` this context's (None: none); `leave(token)` puts back what was there."""
    return _current.set(deadline)


def leave(token: Token[Deadline | None]) -> None:
    _current.reset(token)


def clear() -> None:
    """This context has no deadline any more (its task ended)."""
    _current.set(None)


@contextmanager
def running(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """`with running(d): …`: `d` is this context's deadline inside the block."""
    token = enter(deadline)
    try:
        yield deadline
    finally:
        leave(token)


def check() -> None:
    """At a safe point: raise `SoftTimeLimitExceeded` if this task's soft deadline has passed."""
    d = _current.get()
    if d is not None:
        d.check()


def passed() -> bool:
    """Whether this task's soft deadline has passed (False without one), for code that stops by
    itself instead of raising (the executor, a loop that hands its remaining work on)."""
    d = _current.get()
    return d is not None and d.passed()


def remaining() -> float | None:
    """Seconds left before this task's soft deadline (0.0 once passed); None without one."""
    d = _current.get()
    return None if d is None else d.remaining()


def bound(wait_s: float) -> float:
    """A wait of `wait_s`, cut to what is left before this task's soft deadline."""
    left = remaining()
    return wait_s if left is None else min(wait_s, left)
