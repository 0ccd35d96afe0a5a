"""The read side for the dashboard and the CLI (plus `prune`, the maintenance delete).

Every public function takes a Session and returns plain frozen dataclasses or dicts, never ORM
objects. Bad arguments raise FixInput naming the argument (the dashboard turns that into a 4xx).

TP hit rates read the level of a `tp_hit` event from its payload, key `level` (an int, 1-based).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.errors import FixInput
from core.models import CloseReason, EventKind, Phase, Tier
from persistence.models import DbAccount, DbEvent, DbMonitor

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
TP_LEVEL_KEY = "level"  # payload key of a tp_hit event that holds the take-profit level
CLOSED = Phase.CLOSED.value


# ------------------------------------------------------------------------------------ result types


@dataclass(frozen=True, slots=True)
class StoredMonitor:
    id: str
    account: str
    symbol: str
    position_idx: int
    side: str
    phase: str
    tier: str
    closed_reason: str | None
    version: int
    state: dict[str, Any]
    mirror_of: str | None
    created_at: float
    updated_at: float
    closed_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    monitor_id: str
    account: str
    kind: str
    critical: bool
    at: float
    monitor_version: int
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StoredAccount:
    id: str
    role: str
    mirror_of: str | None
    ratio: str
    base_url: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _monitor(m: DbMonitor) -> StoredMonitor:
    return StoredMonitor(
        id=m.id,
        account=m.account,
        symbol=m.symbol,
        position_idx=m.position_idx,
        side=m.side,
        phase=m.phase,
        tier=m.tier,
        closed_reason=m.closed_reason,
        version=m.version,
        state=dict(m.state),
        mirror_of=m.mirror_of,
        created_at=m.created_at,
        updated_at=m.updated_at,
        closed_at=m.closed_at,
    )


def _event(e: DbEvent) -> StoredEvent:
    return StoredEvent(
        id=e.id,
        monitor_id=e.monitor_id,
        account=e.account,
        kind=e.kind,
        critical=bool(e.critical),
        at=e.at,
        monitor_version=e.monitor_version,
        payload=dict(e.payload),
    )


# ------------------------------------------------------------------------------------- arguments


def _limit(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise FixInput(name, f"must be an integer from 1 to {MAX_LIMIT}, got {value!r}")
    return value


def _offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FixInput("offset", f"must be an integer ≥ 0, got {value!r}")
    return value


def _time(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FixInput(name, f"must be epoch seconds (a finite number), got {value!r}")
    return float(value)


def _phase(value: Any) -> str:
    try:
        return Phase(value).value
    except ValueError:
        allowed = ", ".join(p.value for p in Phase)
        raise FixInput("phase", f"{value!r} is not one of {allowed}") from None


# ---------------------------------------------------------------------------------------- monitors


def list_monitors(
    session: Session,
    *,
    account: str | None = None,
    phase: str | Phase | None = None,
    open_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[StoredMonitor]:
    """Monitors, newest first (by creation), filtered by account, phase and/or still open."""
    stmt = select(DbMonitor)
    if account is not None:
        stmt = stmt.where(DbMonitor.account == account)
    if phase is not None:
        stmt = stmt.where(DbMonitor.phase == _phase(phase))
    if open_only:
        stmt = stmt.where(DbMonitor.phase != CLOSED)
    stmt = (
        stmt.order_by(DbMonitor.created_at.desc(), DbMonitor.id)
        .limit(_limit("limit", limit))
        .offset(_offset(offset))
    )
    return [_monitor(m) for m in session.scalars(stmt)]


def get_monitor(session: Session, monitor_id: str) -> StoredMonitor | None:
    m = session.get(DbMonitor, monitor_id)
    return None if m is None else _monitor(m)


def list_accounts(session: Session) -> list[StoredAccount]:
    rows = session.scalars(select(DbAccount).order_by(DbAccount.id))
    return [StoredAccount(a.id, a.role, a.mirror_of, a.ratio, a.base_url, a.created_at) for a in rows]


# ------------------------------------------------------------------------------------------ events


def events_for(
    session: Session, monitor_id: str, *, limit: int = 200, before: float | None = None
) -> list[StoredEvent]:
    """A monitor's events, newest first; `before` (epoch s) pages back: only events earlier than it."""
    stmt = select(DbEvent).where(DbEvent.monitor_id == monitor_id)
    if before is not None:
        stmt = stmt.where(DbEvent.at < _time("before", before))
    stmt = stmt.order_by(DbEvent.at.desc(), DbEvent.id.desc()).limit(_limit("limit", limit))
    return [_event(e) for e in session.scalars(stmt)]


def recent_events(session: Session, limit: int = 50) -> list[StoredEvent]:
    """The latest events of every monitor, newest first."""
    stmt = select(DbEvent).order_by(DbEvent.at.desc(), DbEvent.id.desc()).limit(_limit("limit", limit))
    return [_event(e) for e in session.scalars(stmt)]


# ---------------------------------------------------------------------------------------- figures


def _grouped(session: Session, column: Any, *where: Any) -> dict[str, int]:
    stmt = select(column, func.count()).group_by(column)
    for clause in where:
        stmt = stmt.where(clause)
    return {str(key): int(n) for key, n in session.execute(stmt)}


def counts(session: Session) -> dict[str, Any]:
    """`monitors_by_phase` (every phase, 0 included), `monitors_by_tier` and `monitors_by_account`
    (open monitors: a closed monitor has no tier that matters), `events_by_kind` (every kind),
    and the totals `monitors_total`, `monitors_open`, `events_total`."""
    by_phase = dict.fromkeys((p.value for p in Phase), 0) | _grouped(session, DbMonitor.phase)
    open_ = DbMonitor.phase != CLOSED
    by_tier = dict.fromkeys((t.value for t in Tier), 0) | _grouped(session, DbMonitor.tier, open_)
    by_account = _grouped(session, DbMonitor.account, open_)
    by_kind = dict.fromkeys((k.value for k in EventKind), 0) | _grouped(session, DbEvent.kind)
    return {
        "monitors_total": sum(by_phase.values()),
        "monitors_open": sum(n for p, n in by_phase.items() if p != CLOSED),
        "monitors_by_phase": by_phase,
        "monitors_by_tier": by_tier,
        "monitors_by_account": dict(sorted(by_account.items())),
        "events_total": sum(by_kind.values()),
        "events_by_kind": by_kind,
    }


def _tp_level(payload: Any) -> int | None:
    if not isinstance(payload, dict):
        return None
    raw = payload.get(TP_LEVEL_KEY)
    if raw is None or isinstance(raw, bool):
        return None
    try:
        level = int(raw)
    except (TypeError, ValueError):
        return None
    return level if level >= 1 else None


def insights(session: Session, *, since: float) -> dict[str, Any]:
    """Outcomes of the monitors closed at or after `since` (epoch s):

    - `closed`: how many; `close_reasons`: histogram (every CloseReason, 0 included);
    - `tp_hit_rates`: per TP level, `{"hits": n, "rate": n / closed}` (level from tp_hit events);
    - `breakeven_stops` vs `stop_losses`: closes by the breakeven stop vs the original stop;
    - `avg_time_to_tp1_s`: creation → first TP1 hit, over those that hit TP1 (None if none);
    - `avg_time_to_close_s`: creation → close (None if nothing closed).
    """
    since = _time("since", since)
    population = select(
        DbMonitor.id, DbMonitor.created_at, DbMonitor.closed_at, DbMonitor.closed_reason
    ).where(DbMonitor.phase == CLOSED, DbMonitor.closed_at.is_not(None), DbMonitor.closed_at >= since)
    monitors = {row.id: row for row in session.execute(population)}
    closed = len(monitors)
    reasons = dict.fromkeys((r.value for r in CloseReason), 0)
    for row in monitors.values():
        if row.closed_reason is not None:
            reasons[row.closed_reason] = reasons.get(row.closed_reason, 0) + 1
    close_times = [row.closed_at - row.created_at for row in monitors.values()]

    hits: dict[int, set[str]] = {}
    first_tp1: dict[str, float] = {}
    if monitors:
        ids_subq = population.with_only_columns(DbMonitor.id).scalar_subquery()
        tp_events = select(DbEvent.monitor_id, DbEvent.at, DbEvent.payload).where(
            DbEvent.kind == EventKind.TP_HIT.value, DbEvent.monitor_id.in_(ids_subq)
        )
        for mid, at, payload in session.execute(tp_events):
            level = _tp_level(payload)
            if level is None:
                continue
            hits.setdefault(level, set()).add(mid)
            if level == 1 and (mid not in first_tp1 or at < first_tp1[mid]):
                first_tp1[mid] = at
    tp1_times = [at - monitors[mid].created_at for mid, at in first_tp1.items()]
    return {
        "since": since,
        "closed": closed,
        "close_reasons": reasons,
        "tp_hit_rates": {
            str(level): {"hits": len(mids), "rate": len(mids) / closed}
            for level, mids in sorted(hits.items())
        },
        "breakeven_stops": reasons.get(CloseReason.BREAKEVEN_STOP.value, 0),
        "stop_losses": reasons.get(CloseReason.STOP_LOSS.value, 0),
        "avg_time_to_tp1_s": sum(tp1_times) / len(tp1_times) if tp1_times else None,
        "avg_time_to_close_s": sum(close_times) / len(close_times) if close_times else None,
    }


# ------------------------------------------------------------------------------------ maintenance


def prune(session: Session, *, closed_before: float) -> int:
    """Delete monitors closed before `closed_before` (epoch s) and their events; commits. Returns the
    monitors deleted. Open monitors are never touched."""
    cutoff = _time("closed_before", closed_before)
    old = (DbMonitor.phase == CLOSED, DbMonitor.closed_at.is_not(None), DbMonitor.closed_at < cutoff)
    ids = select(DbMonitor.id).where(*old).scalar_subquery()
    try:
        events = session.execute(
            delete(DbEvent).where(DbEvent.monitor_id.in_(ids)).execution_options(synchronize_session=False)
        )
        monitors = session.execute(delete(DbMonitor).where(*old).execution_options(synchronize_session=False))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    n_monitors = int(monitors.rowcount or 0)  # type: ignore[attr-defined]
    n_events = int(events.rowcount or 0)  # type: ignore[attr-defined]
    if n_monitors or n_events:
        log.info("pruned %d closed monitors and %d events (closed before %.0f)", n_monitors, n_events, cutoff)
    return n_monitors
