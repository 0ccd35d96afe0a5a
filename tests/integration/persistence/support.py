"""Helpers of the persistence tests: record/event builders, database readers, a commit counter."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy import event as sa_event

from core.ids import event_id
from core.models import Event, EventKind
from persistence.db import session_factory
from persistence.models import DbEvent, DbMonitor
from persistence.records import MonitorRecord


def record(
    mid: str = "m1",
    version: int = 1,
    *,
    account: str = "main",
    phase: str = "monitoring",
    tier: str = "standard",
    closed_reason: str | None = None,
    created_at: float = 1000.0,
    updated_at: float | None = None,
    symbol: str = "BTCUSDT",
    mirror_of: str | None = None,
    state: dict[str, Any] | None = None,
) -> MonitorRecord:
    return MonitorRecord(
        id=mid,
        account=account,
        symbol=symbol,
        position_idx=0,
        side="Buy",
        phase=phase,
        tier=tier,
        closed_reason=closed_reason,
        version=version,
        state=state if state is not None else {"version": version},
        mirror_of=mirror_of,
        created_at=created_at,
        updated_at=updated_at if updated_at is not None else created_at + version,
    )


def event(
    mid: str = "m1",
    kind: EventKind = EventKind.POSITION_UPDATE,
    version: int = 1,
    at: float | None = None,
    *,
    account: str = "main",
    payload: dict[str, Any] | None = None,
) -> Event:
    at = at if at is not None else 1000.0 + version
    return Event(
        id=event_id(mid, kind.value, version, at),
        monitor_id=mid,
        account=account,
        kind=kind,
        at=at,
        monitor_version=version,
        payload=payload if payload is not None else {"v": version},
    )


def monitor_rows(engine: Engine) -> dict[str, DbMonitor]:
    with session_factory(engine)() as s:
        return {m.id: m for m in s.scalars(select(DbMonitor))}


def event_ids(engine: Engine) -> set[str]:
    with session_factory(engine)() as s:
        return set(s.scalars(select(DbEvent.id)))


class CommitCounter:
    """Counts committed transactions on an engine (a real engine event, nothing patched)."""

    def __init__(self, engine: Engine) -> None:
        self.n = 0
        sa_event.listen(engine, "commit", self._on_commit)

    def _on_commit(self, _conn: Any) -> None:
        self.n += 1
