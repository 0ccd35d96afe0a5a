"""Engine settings and migrations: SQLite pragmas, the migrated schema equals the models, `tpsl db`."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from cli.main import app as cli_app
from persistence.db import make_engine
from persistence.migrate import current, head, upgrade
from persistence.models import NAMING_CONVENTION, Base


def _diff(url: str, metadata: sa.MetaData) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()


def test_migration_creates_exactly_the_models(database_url):
    assert current(database_url) is None
    upgrade(database_url)
    assert current(database_url) == head() == "0001"
    assert _diff(database_url, Base.metadata) == []


def test_schema_comparison_would_see_a_difference(database_url):
    """The check above can fail: a model with one more column differs from the migrated schema."""
    upgrade(database_url)
    other = sa.MetaData(naming_convention=NAMING_CONVENTION)
    for table in Base.metadata.tables.values():
        table.to_metadata(other)
    other.tables["events"].append_column(sa.Column("extra", sa.Integer, nullable=True))
    diff = _diff(database_url, other)
    assert [d[0] for d in diff] == ["add_column"]
    assert diff[0][3].name == "extra"


def test_upgrade_twice_is_harmless(database_url):
    upgrade(database_url)
    upgrade(database_url)
    assert current(database_url) == "0001"


def test_accounts_table_has_no_place_for_credentials(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("accounts")}
    finally:
        engine.dispose()
    assert columns == {"id", "role", "mirror_of", "ratio", "base_url", "created_at"}


def test_sqlite_pragmas_are_active_on_every_connection(tmp_path):
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'tpsl.db'}"
    engine = make_engine(url)  # creates the directory
    try:
        for _ in range(3):  # several pooled connections, each configured
            with engine.connect() as a, engine.connect() as b:
                for conn in (a, b):
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                    assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                    assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (tmp_path / "nested" / "dir" / "tpsl.db").exists()
    finally:
        engine.dispose()


def test_sqlite_transactions_are_real(tmp_path):
    """SQLAlchemy, not the driver, begins transactions: DDL and a rollback behave transactionally."""
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    try:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert "t" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_cli_db_upgrade_and_current(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    result = runner.invoke(cli_app, ["db", "current", "--url", url])
    assert result.exit_code == 1 and "current: none" in result.output
    assert not (tmp_path / "cli.db").exists()  # asking does not create the database

    monkeypatch.setenv("DATABASE_URL", url)  # the default comes from the environment
    from config.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(cli_app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "at revision 0001" in result.output
    result = runner.invoke(cli_app, ["db", "current", "--url", url])
    assert result.exit_code == 0 and "current: 0001  head: 0001" in result.output


def test_cli_db_errors_name_the_problem_and_hide_the_password():
    runner = CliRunner()
    result = runner.invoke(cli_app, ["db", "upgrade", "--url", "mysql://u:pw@h/db"])
    assert result.exit_code == 2
    assert "database_url: unsupported database 'mysql'" in result.output

    from devtools.ports import free_port

    url = f"postgresql://tpsl:s3cr3t-pw@127.0.0.1:{free_port()}/x"  # nothing listens there
    result = runner.invoke(cli_app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 1
    assert "s3cr3t-pw" not in result.output
    assert "tpsl:***@127.0.0.1" in result.output


def test_sqlite_writers_of_one_process_take_turns(tmp_path):
    """Threads that write at once wait for each other's commit, not in SQLite's busy handler: with
    no busy timeout at all, none of them is refused (SQLite would answer "database is locked")."""
    from persistence.db import write_transaction
    from tests.threads import side_by_side

    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}", sqlite_busy_timeout_ms=0)
    try:
        with write_transaction(engine) as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")

        def write(n: int) -> None:
            for i in range(20):
                with write_transaction(engine) as conn:
                    conn.exec_driver_sql(f"INSERT INTO t VALUES ({n * 100 + i})")

        assert side_by_side(write, [(n,) for n in range(8)]) == []
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 160
    finally:
        engine.dispose()
