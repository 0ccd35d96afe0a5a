"""Engines and sessions: SQLite (WAL, synchronous=FULL) by default, PostgreSQL through psycopg 3.

`make_engine(url)` is called once per process (a Celery worker child builds its own after the fork).
The URL is never logged with its password (`safe_url`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import FixInput
from persistence import jsonable

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///var/tpsl.db"
SQLITE_BUSY_TIMEOUT_MS = 15_000  # a writer waits this long for another writer's lock, milliseconds
PG_CONNECT_TIMEOUT_S = 10  # psycopg connect timeout, seconds
WRITE_OPTION = "tpsl_write"  # execution option: this connection's transactions will write


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; `postgresql://` / `postgres://` become `postgresql+psycopg://`."""
    if isinstance(url, str):
        text = url.strip()
        if not text:
            raise FixInput("database_url", "is empty")
        if text.startswith("postgres://"):  # the spelling Heroku and others hand out
            text = "postgresql://" + text[len("postgres://") :]
        try:
            parsed = make_url(text)
        except ArgumentError as exc:
            raise FixInput("database_url", "is not a SQLAlchemy URL (e.g. sqlite:///var/tpsl.db)") from exc
    else:
        parsed = url
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise FixInput("database_url", f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and errors."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except FixInput:
        return "<invalid database url>"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database (or another backend)."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(db)


def _install_sqlite_listeners(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 driver, decides where a transaction begins (see "begin"):
        # the driver's legacy mode would leave SELECTs and DDL outside of any transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes the write lock up front (waiting up to busy_timeout for it):
        # a deferred one that read first could fail at once when it tries to write.
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(
    url: str | URL = DEFAULT_URL,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_recycle_s: int = 1800,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    echo: bool = False,
) -> Engine:
    """An engine for `url`.

    SQLite: the file's directory is created; every connection gets WAL, synchronous=FULL (a
    committed transaction survives a power cut), busy_timeout and foreign keys; SQLAlchemy emits
    BEGIN itself so every statement of a transaction is inside it. PostgreSQL: psycopg 3, a
    pre-pinged pool (a connection the server dropped is replaced, not handed out) with a connect
    timeout. JSON columns are (de)serialised with orjson.
    """
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {
        "echo": echo,
        "json_serializer": jsonable.dumps,
        "json_deserializer": jsonable.loads,
    }
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False)
        engine = create_engine(parsed, **kwargs)
        _install_sqlite_listeners(engine, sqlite_busy_timeout_ms)
    else:
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=pool_recycle_s,
            connect_args=connect_args,
            **kwargs,
        )
    log.debug("database engine for %s", parsed.render_as_string(hide_password=True))
    return engine


# SQLite takes one writer at a time. Threads of one process that write at once would each wait in
# SQLite's busy handler, which sleeps (1, 2, 5 … 100 ms) and polls, so a commit of 2 ms can cost a
# waiting thread 100 ms; they take turns on a lock instead, woken the moment the writer before
# them commits. Writers in other processes still meet at SQLite's lock (busy_timeout).
_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_sqlite_writers_lock = threading.Lock()


def _writer_turn(engine: Engine) -> threading.RLock | None:
    """The lock this process's writers of a SQLite engine take turns on; None for PostgreSQL."""
    if not is_sqlite(engine):
        return None
    with _sqlite_writers_lock:
        turn = _sqlite_writers.get(engine)
        if turn is None:
            turn = _sqlite_writers[engine] = threading.RLock()
        return turn


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """`with write_transaction(engine) as conn:` one transaction that writes, committed on exit
    (rolled back on an exception). On SQLite it begins IMMEDIATE, after this process's other
    writers of the engine (one at a time, as SQLite takes them anyway)."""
    turn = _writer_turn(engine)
    with (
        turn if turn is not None else nullcontext(),
        engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
        conn.begin(),
    ):
        yield conn


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (the read side returns plain data anyway)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
