"""The workers' app: the configured app of tasks/base.py with the tasks and the worker signals."""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery, signals

from config.settings import Settings, get_settings
from tasks import checks, housekeeping, persist
from tasks.base import configured_app
from tasks.publisher import CeleryPublisher
from tasks.time_limits import ThreadTimeLimits, limits_of
from workers.runtime import Runtime, build_runtime, get_runtime, set_runtime

log = logging.getLogger(__name__)

_default: Celery | None = None
# the time limits of tasks run on threads (--pool threads): a deadline their code checks at safe
# points, and a watchdog that logs; on the monotonic clock (a wall clock that jumps moves no deadline)
_thread_limits = ThreadTimeLimits(clock=time.monotonic)
_default_lock = threading.Lock()


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = configured_app(settings)
    checks.register(app)
    persist.register(app)
    housekeeping.register(app)
    _connect_signals(app, settings)
    return app


def default_app() -> Celery:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = create_app()
    return _default


def runtime(app: Celery) -> Runtime:
    """This process's runtime, publishing through `app`."""
    rt = get_runtime()
    if rt.publisher is None:
        with rt._lock:  # the threads pool: one publisher, whichever thread comes first
            if rt.publisher is None:
                rt.publisher = CeleryPublisher(app)
    return rt


def _connect_signals(app: Celery, settings: Settings) -> None:
    @signals.worker_process_init.connect(weak=False, dispatch_uid="tpsl.process_init")
    def _process_init(**_: object) -> None:
        # a fresh child: its own redis connections and HTTP pools (never inherited across fork)
        set_runtime(build_runtime(settings))
        runtime(app)

    @signals.worker_ready.connect(weak=False, dispatch_uid="tpsl.worker_ready")
    def _ready(sender: object = None, **_: object) -> None:
        try:
            from workers.reconcile import reconcile

            reconcile(runtime(app))
        except Exception:
            log.exception("reconcile at worker start failed; the maintenance run will retry")

    @signals.task_prerun.connect(weak=False, dispatch_uid="tpsl.task_prerun")
    def _task_start(task_id: str = "", task: object = None, **_: object) -> None:
        soft, hard = limits_of(task, app.conf.task_soft_time_limit, app.conf.task_time_limit)
        _thread_limits.start(task_id, getattr(task, "name", "?"), soft, hard)

    @signals.task_postrun.connect(weak=False, dispatch_uid="tpsl.task_postrun")
    def _task_end(**_: object) -> None:
        _thread_limits.finish()

    @signals.worker_process_shutdown.connect(weak=False, dispatch_uid="tpsl.process_shutdown")
    def _process_shutdown(**_: object) -> None:
        _flush_quietly(app)

    @signals.worker_shutdown.connect(weak=False, dispatch_uid="tpsl.worker_shutdown")
    def _shutdown(**_: object) -> None:
        _flush_quietly(app)


def _flush_quietly(app: Celery) -> None:
    """Write what is coalesced before the process goes (the next flush would, but sooner is better)."""
    try:
        runtime(app).writer.flush()
    except Exception:
        log.exception("flush at shutdown failed; the entries stay pending for the next flush")
