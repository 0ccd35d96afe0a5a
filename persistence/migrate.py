"""Run the Alembic migrations programmatically (no alembic.ini, no dependence on the working directory).

`upgrade(url)` brings a database to the newest schema (an empty one included); `current(url)` says
which revision it is at (None: never migrated). On PostgreSQL the upgrade holds an advisory lock,
so two processes starting at once (release phase, workers) migrate one after the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from persistence.db import make_engine, normalize_url, safe_url, sqlite_file, write_transaction

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
_PG_LOCK_KEY = 0x7470_736C  # "tpsl": pg_advisory_xact_lock key of the migration


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: the newest), in one transaction."""
    engine = make_engine(url)
    try:
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            before = MigrationContext.configure(conn).get_current_revision()
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            after = MigrationContext.configure(conn).get_current_revision()
        if before != after:
            log.info("database %s migrated from %s to %s", safe_url(url), before or "empty", after)
        else:
            log.info("database %s already at %s", safe_url(url), after)
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None when it was never migrated (a SQLite file that
    does not exist is not created)."""
    path = sqlite_file(normalize_url(url))
    if path is not None and not path.exists():
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
