"""The dialect-specific write statements (SQLite and PostgreSQL both speak `INSERT … ON CONFLICT`).

- events: inserted once, a duplicate id is ignored (`ON CONFLICT DO NOTHING`);
- monitors: upserted, guarded by version (`… DO UPDATE … WHERE monitors.version < excluded.version`),
  so an older version never overwrites a newer one; `closed_at` is set by the first closed version;
- accounts: upserted (created_at kept).

Each function runs inside the caller's transaction and returns what it changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Select, Table, Text, bindparam, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from core.models import CRITICAL_KINDS, Event, EventKind
from persistence.jsonable import dumps as json_dumps
from persistence.jsonable import jsonable
from persistence.models import accounts_table, events_table, monitors_table
from persistence.records import AccountRow, BadRecord, MonitorRecord, check_id, check_time, check_version

_CRITICAL_VALUES = frozenset(k.value for k in CRITICAL_KINDS)
# PostgreSQL batches larger than this go through unnest(); smaller ones as a plain multi-row INSERT
# (building the unnest statement costs ~1.5 ms of Python, parsing a large multi-row one ~0.2 ms a row).
PG_UNNEST_ABOVE = 32


# ------------------------------------------------------------------------------------------- rows


def event_row(event: Event) -> dict[str, Any]:
    """The events row of a core Event (fields checked, payload made plain JSON)."""
    check_id("event.id", event.id)
    check_id("event.monitor_id", event.monitor_id)
    check_id("event.account", event.account)
    try:
        kind = EventKind(event.kind).value
    except ValueError:
        allowed = ", ".join(k.value for k in EventKind)
        raise BadRecord("event.kind", f"{event.kind!r} is not one of {allowed}") from None
    return {
        "id": event.id,
        "monitor_id": event.monitor_id,
        "account": event.account,
        "kind": kind,
        "critical": kind in _CRITICAL_VALUES,
        "at": check_time("event.at", event.at),
        "monitor_version": check_version("event.monitor_version", event.monitor_version),
        "payload": jsonable("event.payload", event.payload),
    }


def monitor_row(record: MonitorRecord) -> dict[str, Any]:
    """The monitors row of a record; `closed_at` is the record's updated_at once it is closed."""
    row = record.to_dict()
    row["state"] = jsonable("monitor.state", record.state)
    row["closed_at"] = record.updated_at if record.closed else None
    return row


def newest_per_monitor(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per monitor id, the highest version (a statement may not touch a row twice), in id
    order (concurrent transactions lock rows in the same order: no deadlock on PostgreSQL)."""
    best: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        seen = best.get(row["id"])
        if seen is None or row["version"] >= seen["version"]:
            best[row["id"]] = row
    return [best[k] for k in sorted(best)]


def unique_by_id(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per id (the first), in id order."""
    out: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        out.setdefault(row["id"], row)
    return [out[k] for k in sorted(out)]


# ------------------------------------------------------------------------------------- statements


def _pg_unnest_select(table: Table, rows: Sequence[Mapping[str, Any]]) -> Select[Any]:
    """`SELECT … FROM unnest(:col1, :col2, …)`: the rows as one array per column, so a batch of any
    size is one statement with one parameter per column (executemany-style batches cost psycopg a
    parse of the whole multi-row statement, ~0.2 ms a row)."""
    arrays = []
    for col in table.columns:
        values = [row[col.name] for row in rows]
        if isinstance(col.type, JSON):  # sent as text, cast to jsonb per element
            values = [json_dumps(v) for v in values]
            arrays.append(cast(bindparam(f"a_{col.name}", values), ARRAY(Text())))
        else:
            arrays.append(cast(bindparam(f"a_{col.name}", values), ARRAY(col.type)))
    names = [col.name for col in table.columns]
    unnested = func.unnest(*arrays).table_valued(*names).render_derived(name="u")
    return select(
        *(
            cast(unnested.c[col.name], JSONB()) if isinstance(col.type, JSON) else unnested.c[col.name]
            for col in table.columns
        )
    )


def _write(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    on_conflict: Callable[[Any], Any],
) -> int:
    """Run `INSERT … ON CONFLICT …` for `rows` (deduplicated by the caller); returns rows changed."""
    if not rows:
        return 0
    name = conn.dialect.name
    if name == "postgresql" and len(rows) > PG_UNNEST_ABOVE:
        ins = postgresql.insert(table).from_select(
            [c.name for c in table.columns], _pg_unnest_select(table, rows)
        )
        result = conn.execute(on_conflict(ins).returning(table.c.id))
    elif name in ("sqlite", "postgresql"):
        dml = sqlite if name == "sqlite" else postgresql
        result = conn.execute(on_conflict(dml.insert(table)).returning(table.c.id), list(rows))
    else:  # db.normalize_url refuses other databases
        raise NotImplementedError(f"no upsert for dialect {name!r}")
    return len(result.fetchall())


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert events, ignoring ids already stored. Returns the rows newly inserted."""
    return _write(
        conn, events_table, unique_by_id(rows), lambda ins: ins.on_conflict_do_nothing(index_elements=["id"])
    )


def _monitor_conflict(ins: Any) -> Any:
    t = monitors_table
    ex = ins.excluded
    return ins.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "account": ex.account,
            "symbol": ex.symbol,
            "position_idx": ex.position_idx,
            "side": ex.side,
            "phase": ex.phase,
            "tier": ex.tier,
            "closed_reason": ex.closed_reason,
            "version": ex.version,
            "state": ex.state,
            "mirror_of": ex.mirror_of,
            "created_at": ex.created_at,
            "updated_at": ex.updated_at,
            # closed is terminal: the first closed version says when it closed
            "closed_at": func.coalesce(t.c.closed_at, ex.closed_at),
        },
        where=t.c.version < ex.version,
    )


def upsert_monitors(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert or update monitor rows, never replacing a version with an older (or the same) one.
    Returns the rows inserted or updated."""
    return _write(conn, monitors_table, newest_per_monitor(rows), _monitor_conflict)


def upsert_account_rows(conn: Connection, rows: Sequence[AccountRow], now: float) -> int:
    """Insert or update accounts (created_at of an existing account is kept). Returns rows written."""
    if not rows:
        return 0
    t = accounts_table
    data = [
        {
            "id": r.id,
            "role": r.role,
            "mirror_of": r.mirror_of,
            "ratio": r.ratio,
            "base_url": r.base_url,
            "created_at": now,
        }
        for r in sorted({r.id: r for r in rows}.values())
    ]
    return _write(
        conn,
        t,
        data,
        lambda ins: ins.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "role": ins.excluded.role,
                "mirror_of": ins.excluded.mirror_of,
                "ratio": ins.excluded.ratio,
                "base_url": ins.excluded.base_url,
            },
        ),
    )
