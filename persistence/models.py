"""The tables: accounts, monitors, events (SQLAlchemy 2 typed declarative, portable SQLite/PostgreSQL).

The initial Alembic revision (persistence/migrations/versions/0001_initial.py) creates exactly these;
a test checks that the migrated schema and this metadata do not differ. Change both together.

No table holds an API key or secret. Times are epoch seconds (double precision).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import JSON, Boolean, Double, Index, Integer, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LEN = 64  # monitor ids, event ids, account ids


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DbAccount(Base):
    """An exchange account as configured (never its credentials)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # main | mirror
    mirror_of: Mapped[str | None] = mapped_column(String(ID_LEN))
    ratio: Mapped[str] = mapped_column(String(40))  # decimal as a string: no float rounding
    base_url: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Double)


class DbMonitor(Base):
    """The latest persisted version of a monitor; `state` is the full JSON state (opaque here)."""

    __tablename__ = "monitors"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    account: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    position_idx: Mapped[int] = mapped_column(Integer)
    side: Mapped[str] = mapped_column(String(8))
    phase: Mapped[str] = mapped_column(String(16), index=True)
    tier: Mapped[str] = mapped_column(String(16))
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType)
    mirror_of: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    closed_at: Mapped[float | None] = mapped_column(Double, index=True)


class DbEvent(Base):
    """One event, written once (the id is its idempotency key)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_monitor_id_at", "monitor_id", "at"),)

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    monitor_id: Mapped[str] = mapped_column(String(ID_LEN))
    account: Mapped[str] = mapped_column(String(ID_LEN))
    kind: Mapped[str] = mapped_column(String(32))
    critical: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[float] = mapped_column(Double, index=True)
    monitor_version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


# a declarative class's __table__ is typed as any FromClause; here it is always its Table
accounts_table = cast(Table, DbAccount.__table__)
monitors_table = cast(Table, DbMonitor.__table__)
events_table = cast(Table, DbEvent.__table__)
