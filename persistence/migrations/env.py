"""Alembic environment of tpsl-guard.

Run programmatically by `persistence.migrate` (which hands over an open connection in
`config.attributes["connection"]`), or by the alembic command with `-c persistence/alembic.ini`
(the URL then comes from `sqlalchemy.url`, else DATABASE_URL, else the settings' default).
Logging is left to the caller: this file configures none.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from persistence.db import DEFAULT_URL, make_engine, write_transaction
from persistence.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
        or os.environ.get("TPSL_DATABASE_URL")
        or DEFAULT_URL
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through batch mode
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(_url())
    try:
        with write_transaction(engine) as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
