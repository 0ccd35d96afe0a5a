"""A migrated database (SQLite always, PostgreSQL with TPSL_TEST_DATABASE_URL) and a writer on the
emptied test Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from persistence.db import make_engine, session_factory
from persistence.migrate import upgrade
from persistence.writer import EventWriter
from tests.integration.persistence.support import CommitCounter


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine, redis_client) -> EventWriter:
    return EventWriter(engine, redis_client)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as s:
        yield s


@pytest.fixture
def commits(engine: Engine) -> CommitCounter:
    return CommitCounter(engine)
