"""What every `tpsl` command shares: opening the process's Runtime, failing with one line naming
the field, JSON out, quiet logging.

Exit codes: 0 done; 1 the system failed (Redis, the database or the exchange did not answer);
2 bad input or configuration (the message names the field), never a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import orjson
import typer

from core.errors import FixInput, TpslError

if TYPE_CHECKING:
    from workers.runtime import Runtime


def fail(field: str, problem: str, *, code: int = 2) -> NoReturn:
    """One line on stderr naming the field, then exit (2: bad input; 1: the system failed)."""
    typer.echo(f"error: {field}: {problem}", err=True)
    raise typer.Exit(code)


def fail_for(exc: BaseException) -> NoReturn:
    """The one-line failure of an exception raised by the system."""
    from readmodel.errors import ApiError

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
        fail_for_settings(exc)
    except RuntimeError as exc:  # REDIS_URL is not set
        fail("REDIS_URL", str(exc))
    if publisher and rt.publisher is None:
        from tasks.app import default_app
        from tasks.publisher import CeleryPublisher

        rt.publisher = CeleryPublisher(default_app())
    return rt


def open_settings() -> Any:
    """This process's Settings (the environment), for a process that needs no Runtime."""
    from pydantic import ValidationError

    from config.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        fail_for_settings(exc)


def fail_for_settings(exc: Any) -> NoReturn:
    """The one-line failure of a setting that does not validate (a pydantic ValidationError)."""
    first = exc.errors()[0]
    fail(".".join(str(x) for x in first.get("loc", ())) or "settings", str(first.get("msg")))


def celery_app_of(rt: Runtime) -> Any:
    """The Celery app this process publishes through (the runtime's, else the default one)."""
    app = getattr(rt.publisher, "app", None)
    if app is not None:
        return app
    from tasks.app import default_app

    return default_app()


def require_devtools(command: str) -> None:
    """`tpsl demo` and `tpsl bench` run development tooling (the `devtools` package of a checkout,
    installed by `make install`), not part of the product's wheel: say so if it is missing."""
    try:
        import devtools  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "devtools":
            raise
        fail(
            "devtools",
            f"`tpsl {command}` needs the development tooling, which a product install does not ship: "
            "run it from a checkout of the repository after `make install` "
            "(or `pip install -e ./devtools` there)",
        )


def echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def quiet_logging(verbose: bool) -> None:
    from config.logging import setup_logging

    setup_logging("INFO" if verbose else "WARNING")
