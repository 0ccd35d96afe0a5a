"""`tpsl db …`: the database schema (Alembic migrations, run programmatically)."""

from __future__ import annotations

import logging

import typer

from config.logging import setup_logging
from config.settings import get_settings
from core.errors import FixInput

log = logging.getLogger(__name__)

app = typer.Typer(
    name="db",
    help="Database schema: migrate (upgrade) and show the current revision.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

URL_HELP = "SQLAlchemy URL of the database; default: DATABASE_URL (settings.database_url)."


def _target(url: str | None) -> str:
    return url if url else get_settings().database_dsn


def _password(target: str) -> str | None:
    from persistence.db import normalize_url

    try:
        return normalize_url(target).password
    except FixInput:
        return None


def _fail(exc: Exception, target: str) -> typer.Exit:
    from persistence.db import safe_url

    if isinstance(exc, FixInput):
        typer.echo(f"error: {exc}", err=True)
        return typer.Exit(2)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    message = detail[0] if detail else type(exc).__name__
    password = _password(target)
    if password:  # the driver's message could quote the URL
        message = message.replace(password, "***")
    typer.echo(f"error: database {safe_url(target)}: {message}", err=True)
    log.debug("database error", exc_info=exc)
    return typer.Exit(1)


@app.command("upgrade")
def upgrade_cmd(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    revision: str = typer.Option("head", "--revision", help="Target revision."),
) -> None:
    """Create or migrate the schema to the newest revision (safe to run at every start)."""
    from sqlalchemy.exc import SQLAlchemyError

    from persistence import migrate
    from persistence.db import safe_url

    setup_logging(get_settings().log_level)
    target = _target(url)
    try:
        migrate.upgrade(target, revision)
        now = migrate.current(target)
    except (FixInput, SQLAlchemyError) as exc:
        raise _fail(exc, target) from None
    typer.echo(f"database {safe_url(target)} at revision {now}")


@app.command("current")
def current_cmd(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """Print the database's revision and the newest one; exit 1 when it is behind."""
    from sqlalchemy.exc import SQLAlchemyError

    from persistence import migrate

    target = _target(url)
    try:
        now = migrate.current(target)
    except (FixInput, SQLAlchemyError) as exc:
        raise _fail(exc, target) from None
    head = migrate.head()
    typer.echo(f"current: {now or 'none'}  head: {head}")
    if now != head:
        raise typer.Exit(1)
