"""`tpsl reconcile`, `tpsl dispatch`, and the long-running processes of the Procfile that Celery's
command line would otherwise start: `tpsl worker`, `tpsl beat`, `tpsl stream`."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import typer

from cli.common import celery_app_of, echo_json, fail, fail_for, open_runtime, open_settings, quiet_logging

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- commands


def reconcile_cmd(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens (INFO)."),
) -> None:
    """Make the registry (Redis), the database and the exchange agree again.

    Open monitors Redis lost are restored from the database (due now, critical tier), stale
    registry copies are refreshed, registry monitors the database never saw are written to it.
    Idempotent; safe to run at any time.
    """
    from rich.console import Console

    from workers.reconcile import reconcile

    quiet_logging(verbose)
    rt = open_runtime()
    console = Console(stderr=True)
    started = time.monotonic()
    try:
        with console.status("reconciling registry, database and exchange…", spinner="dots"):
            report = reconcile(rt)
    except Exception as exc:
        fail_for(exc)
    elapsed = time.monotonic() - started
    out = {
        "restored": report.restored,
        "refreshed": report.refreshed,
        "persisted": report.persisted,
        "skipped": report.skipped,
        "seconds": round(elapsed, 3),
    }
    if json_out:
        echo_json(out)
        return
    if report.skipped:
        typer.echo("another reconcile is running; nothing done (try again in a moment)")
        return
    typer.echo(
        f"reconciled in {elapsed:.2f} s: {report.restored} restored from the database, "
        f"{report.refreshed} refreshed, {report.persisted} written to the database"
    )


@contextlib.contextmanager
def stop_on_signal(duration: float | None) -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM (in the main thread) or after `duration` seconds; the
    previous signal handlers are back when the block ends."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    timer = threading.Timer(duration, stop.set) if duration else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield stop
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def dispatch_cmd(
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop after this many seconds (default: until Ctrl-C)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every tick's failures and more."),
) -> None:
    """Run a dispatcher loop of its own (beside beat's, which `tpsl beat` runs) until Ctrl-C.

    Every TPSL_DISPATCH_TICK_S it claims the due monitors and publishes one check per account to
    the queue of its most urgent tier. Stops on Ctrl-C or SIGTERM (or after --duration).
    """
    from config.logging import setup_logging
    from tasks.dispatch import publish_checks
    from workers.dispatcher import run_loop

    rt = open_runtime()
    setup_logging("INFO" if verbose else rt.settings.log_level)
    app = celery_app_of(rt)
    published = {"checks": 0, "monitors": 0}

    def publish(orders: list[Any]) -> None:
        publish_checks(app, rt, orders)
        published["checks"] += len(orders)
        published["monitors"] += sum(len(o.monitor_ids) for o in orders)

    typer.echo(
        f"dispatching every {rt.settings.dispatch_tick_s:g} s"
        + (f" for {duration:g} s" if duration else "; Ctrl-C to stop"),
        err=True,
    )
    started = time.monotonic()
    with stop_on_signal(duration) as stop:
        run_loop(rt, publish, stop)
    typer.echo(
        f"dispatcher stopped after {time.monotonic() - started:.1f} s: "
        f"{published['checks']} checks published for {published['monitors']} monitors"
    )


def stream_cmd(
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop after this many seconds (default: until Ctrl-C)."
    ),
) -> None:
    """Run the stream process until Ctrl-C: each account's private stream (orders, executions,
    positions); a push that touches a monitor queues one coalesced check of its account on the
    critical tier at once. The tiers keep polling whatever the streams do (TPSL_STREAMS=false: idle).
    """
    # the process only publishes, by task name: the configured app, not the workers' (tasks/base.py)
    from config.logging import setup_logging
    from config.malloc import cap_arenas
    from tasks.base import configured_app
    from tasks.stream import run_stream_process

    cap_arenas(open_settings().malloc_arenas)  # before the streams' and the handler's threads start
    rt = open_runtime(publisher=False)
    setup_logging(rt.settings.log_level)
    app = configured_app(rt.settings)
    with stop_on_signal(duration) as stop:
        run_stream_process(app, rt, stop)


def beat_cmd(
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        "-s",
        help="The file beat keeps its last run times in (default: celerybeat-schedule).",
    ),
    loglevel: str = typer.Option("WARNING", "--loglevel", "-l", help="Celery's log level for beat."),
) -> None:
    """Run Celery beat until Ctrl-C: the periodic ticks of beat_schedule.py (flush, maintenance,
    stats, series, views), each sent by task name to its queue, and the dispatcher on a thread of
    its own: every TPSL_DISPATCH_TICK_S it claims the due monitors and publishes their checks to
    the tier queues (tasks/dispatch.py). What `celery -A tasks beat` runs, without importing the
    tasks (tasks/base.py): the workers run them."""
    from celery.utils.log import LOG_LEVELS

    from tasks.base import configured_app
    from tasks.dispatch import dispatching
    from tasks.publisher import CeleryPublisher

    if not isinstance(LOG_LEVELS.get(loglevel.upper()), int):
        fail("--loglevel", f"{loglevel!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    settings = open_settings()
    try:
        app = configured_app(settings)
    except RuntimeError as exc:  # REDIS_URL is not set
        fail("REDIS_URL", str(exc))
    rt = open_runtime(publisher=False)
    rt.publisher = CeleryPublisher(app)  # a rebuilt registry's alert, by name like the rest
    with dispatching(app, rt):
        app.Beat(schedule=schedule, loglevel=loglevel).run()


def worker_cmd(ctx: typer.Context) -> None:
    """Run a Celery worker: `celery -A tasks worker`'s options (see `tpsl worker --help`).

    The arguments go to Celery's own worker command, so the worker behaves as under `celery -A
    tasks worker`, without the rest of Celery's command line: it imports every other command and
    the installed plugins (Flower, tornado, a REPL: ~10 MB a process) at start and never uses them.
    """
    from celery import maybe_patch_concurrency
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker

    from config.malloc import cap_arenas
    from tasks.app import default_app

    settings = open_settings()  # a setting that does not validate fails with one line naming it
    cap_arenas(settings.malloc_arenas)  # before the pool's threads start
    try:
        app = default_app()
    except RuntimeError as exc:  # REDIS_URL is not set
        fail("REDIS_URL", str(exc))
    args = list(ctx.args)
    maybe_patch_concurrency(["tpsl", "worker", *args])  # an eventlet/gevent pool, as `celery` does
    obj = CLIContext(app=app, no_color=None, workdir=None, quiet=False)
    # CELERY_WORKER_<OPTION> variables are read as under `celery worker`
    worker.main(args=args, prog_name="tpsl worker", obj=obj, auto_envvar_prefix="CELERY_WORKER")
