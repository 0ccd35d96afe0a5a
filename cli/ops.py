"""`tpsl reconcile` and `tpsl dispatch` (operations), and the runtime plumbing every command of the
dashboard/monitor family shares: opening the process's Runtime, failing with one line, JSON out.

Exit codes: 0 done; 1 the system failed (Redis, the database or the exchange did not answer);
2 bad input or configuration (the message names the field), never a traceback.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, NoReturn

import orjson
import typer

from core.errors import FixInput, TpslError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ shared plumbing


def fail(field: str, problem: str, *, code: int = 2) -> NoReturn:
    """One line on stderr naming the field, then exit (2: bad input; 1: the system failed)."""
    typer.echo(f"error: {field}: {problem}", err=True)
    raise typer.Exit(code)


def fail_for(exc: BaseException) -> NoReturn:
    """The one-line failure of an exception raised by the system."""
    from dashboard.errors import ApiError

    if isinstance(exc, FixInput):
        fail(exc.field, exc.problem)
    if isinstance(exc, ApiError):
        fail(exc.field or exc.code, exc.message, code=2 if exc.status < 500 else 1)
    if isinstance(exc, TpslError):
        fail("exchange", f"{exc.message or type(exc).__name__} ({exc.kind.value}); try again", code=1)
    import redis
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, redis.RedisError):
        fail("redis", f"{type(exc).__name__}: is REDIS_URL right and Redis up?", code=1)
    if isinstance(exc, SQLAlchemyError):
        fail(
            "database",
            f"{type(exc).__name__}: is DATABASE_URL right (and migrated: tpsl db upgrade)?",
            code=1,
        )
    raise exc


def open_runtime(*, publisher: bool = True) -> Any:
    """This process's Runtime (REDIS_URL, DATABASE_URL, TPSL_ACCOUNTS). `publisher`: alerts go to the
    Celery alerts queue (the broker is the same Redis) unless the runtime already publishes."""
    from pydantic import ValidationError

    from workers.runtime import get_runtime

    try:
        rt = get_runtime()
    except FixInput as exc:
        fail(exc.field, exc.problem)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(".".join(str(x) for x in first.get("loc", ())) or "settings", str(first.get("msg")))
    except RuntimeError as exc:  # REDIS_URL is not set
        fail("REDIS_URL", str(exc))
    if publisher and rt.publisher is None:
        from tasks.app import default_app
        from tasks.publisher import CeleryPublisher

        rt.publisher = CeleryPublisher(default_app())
    return rt


def celery_app_of(rt: Any) -> Any:
    """The Celery app this process publishes through (the runtime's, else the default one)."""
    app = getattr(rt.publisher, "app", None)
    if app is not None:
        return app
    from tasks.app import default_app

    return default_app()


def echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def quiet_logging(verbose: bool) -> None:
    from config.logging import setup_logging

    setup_logging("INFO" if verbose else "WARNING")


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


def dispatch_cmd(
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop after this many seconds (default: until Ctrl-C)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every tick's failures and more."),
) -> None:
    """Run the dispatcher loop (instead of, or beside, beat's dispatch ticks) until Ctrl-C.

    Every TPSL_DISPATCH_TICK_S it claims the due monitors and publishes one check per account to
    the queue of its most urgent tier. Stops on Ctrl-C or SIGTERM (or after --duration).
    """
    from config.logging import setup_logging
    from tasks.checks import publish_checks
    from workers.dispatcher import run_loop

    rt = open_runtime()
    setup_logging("INFO" if verbose else rt.settings.log_level)
    app = celery_app_of(rt)
    stop = threading.Event()
    published = {"checks": 0, "monitors": 0}

    def publish(orders: list[Any]) -> None:
        publish_checks(app, orders)
        published["checks"] += len(orders)
        published["monitors"] += sum(len(o.monitor_ids) for o in orders)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    timer = threading.Timer(duration, stop.set) if duration else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    typer.echo(
        f"dispatching every {rt.settings.dispatch_tick_s:g} s"
        + (f" for {duration:g} s" if duration else "; Ctrl-C to stop"),
        err=True,
    )
    started = time.monotonic()
    try:
        run_loop(rt, publish, stop)
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo(
        f"dispatcher stopped after {time.monotonic() - started:.1f} s: "
        f"{published['checks']} checks published for {published['monitors']} monitors"
    )
