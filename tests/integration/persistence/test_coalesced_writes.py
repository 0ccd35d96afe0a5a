"""The coalesced path: last write wins per monitor in Redis, one transaction per flush, failed flushes
merged into the next one, dead flushers' entries recovered, concurrent flushers write each entry once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text

from core.models import EventKind
from devtools.ports import free_port
from persistence.db import make_engine
from persistence.models import Base, events_table
from persistence.pending import PendingStore, encode_entry
from persistence.records import BadRecord
from persistence.stats import persist_stats
from persistence.upserts import event_row, monitor_row
from persistence.writer import EventWriter, FlushResult
from tests.integration.persistence.support import event, event_ids, monitor_rows, record

PU = EventKind.POSITION_UPDATE


def test_buffer_keeps_the_last_write_per_monitor(writer, engine, redis_client, commits):
    for v in (1, 2, 3):
        writer.buffer([event("m1", PU, v)], [record("m1", v)])
    writer.buffer([event("m2", EventKind.PARTIAL_FILL, 1)], [record("m2", 1)])
    assert redis_client.hlen("tpsl:persist:pending") == 2
    assert commits.n == 0  # nothing written yet

    result = writer.flush()
    assert result == FlushResult(monitors=2, events=2, transactions=1, entries=2)
    assert commits.n == 1  # ONE transaction for everything
    rows = monitor_rows(engine)
    assert rows["m1"].version == 3 and rows["m2"].version == 1
    assert event_ids(engine) == {event("m1", PU, 3).id, event("m2", EventKind.PARTIAL_FILL, 1).id}
    assert not redis_client.exists("tpsl:persist:pending")
    assert writer.flush() == FlushResult(0, 0, 0, 0)  # nothing left
    assert commits.n == 1


def test_an_older_buffer_write_arriving_late_changes_nothing(writer, engine):
    assert writer.buffer([event("m1", PU, 5)], [record("m1", 5, tier="idle")]) == 1
    assert writer.buffer([event("m1", PU, 4)], [record("m1", 4, tier="critical")]) == 0
    # the same version at a later time: the newer event wins, the monitor half stays
    later = event("m1", PU, 5, at=2000.0)
    assert writer.buffer([later], []) == 1
    writer.flush()
    row = monitor_rows(engine)["m1"]
    assert (row.version, row.tier) == (5, "idle")
    assert event_ids(engine) == {later.id}


def test_halves_are_merged_independently(writer, engine):
    writer.buffer([], [record("m1", 3)])  # a monitor row, no event
    writer.buffer([event("m1", PU, 2)], [])  # an event of an older version, no row
    writer.buffer([], [record("m1", 2)])  # an older row: ignored
    assert writer.flush().entries == 1
    assert monitor_rows(engine)["m1"].version == 3
    assert event_ids(engine) == {event("m1", PU, 2).id}


def test_flush_respects_newer_rows_already_written(writer, engine):
    writer.buffer([event("m1", PU, 4)], [record("m1", 4, tier="active")])
    writer.write_critical([event("m1", EventKind.TP_HIT, 5)], [record("m1", 5, tier="critical")])
    result = writer.flush()
    assert result.monitors == 0 and result.events == 1
    assert monitor_rows(engine)["m1"].tier == "critical"


def test_buffer_refuses_critical_events(writer, redis_client):
    with pytest.raises(BadRecord, match="tp_hit is critical"):
        writer.buffer([event("m1", EventKind.TP_HIT, 1)], [])
    assert not redis_client.exists("tpsl:persist:pending")


def test_write_routes_critical_now_and_the_rest_to_the_buffer(writer, engine, redis_client, commits):
    tp = event("m1", EventKind.TP_HIT, 2, payload={"level": 1})
    pu = event("m1", PU, 2)
    other = event("m2", PU, 7)
    result = writer.write([tp, pu, other], [record("m1", 2), record("m2", 7)], sync=False)
    assert (result.written, result.buffered) == (1, 2)
    assert commits.n == 1
    assert monitor_rows(engine)["m1"].version == 2  # the critical monitor is in the database
    assert "m2" not in monitor_rows(engine)  # the other waits for the flush
    assert set(redis_client.hkeys("tpsl:persist:pending")) == {"m1", "m2"}
    writer.flush()
    assert event_ids(engine) == {tp.id, pu.id, other.id}
    assert monitor_rows(engine)["m2"].version == 7


def test_write_checks_everything_before_writing_anything(writer, engine, redis_client):
    good = event("m1", EventKind.TP_HIT, 2)
    bad = event("m2", PU, 1, payload={"x": 1j})  # a complex number is not JSON
    with pytest.raises(BadRecord, match=r"event\.payload"):
        writer.write([good, bad], [record("m1", 2)], sync=False)
    assert event_ids(engine) == set() and monitor_rows(engine) == {}
    assert not redis_client.exists("tpsl:persist:pending")


def test_sync_saves_write_everything_at_once(writer, engine, redis_client, commits):
    for v in (1, 2, 3):
        r = writer.write([event("m1", PU, v)], [record("m1", v)], sync=True)
        assert r.written == 1 and r.buffered == 0
    assert commits.n == 3
    assert not redis_client.exists("tpsl:persist:pending")
    assert len(event_ids(engine)) == 3  # no coalescing: every event kept
    stats = persist_stats(redis_client)
    assert stats["transactions"] == 3 and stats["coalescing_ratio"] == 1.0


def test_counters_and_coalescing_ratio(writer, redis_client):
    assert writer.coalescing_ratio() is None  # no transaction yet
    writer.write_critical(
        [event("m1", EventKind.MONITOR_CREATED, 1), event("m2", EventKind.MONITOR_CREATED, 1)], []
    )
    for v in range(2, 7):  # 10 non-critical events over two monitors
        writer.buffer([event("m1", PU, v), event("m2", PU, v)], [record("m1", v), record("m2", v)])
    writer.flush()
    stats = persist_stats(redis_client)
    assert stats["events_received_critical"] == 2
    assert stats["events_received_noncritical"] == 10
    assert stats["events_received"] == 12
    assert stats["events_written"] == 4  # 2 critical + the last event of each monitor
    assert stats["monitor_rows_written"] == 2
    assert stats["transactions"] == 2
    assert stats["flushes"] == 1 and stats["entries_flushed"] == 2
    assert stats["pending"] == 0
    assert stats["coalescing_ratio"] == 6.0
    assert writer.coalescing_ratio() == 6.0


def test_custom_prefix_keeps_keys_apart(engine, redis_client):
    a = EventWriter(engine, redis_client, prefix="a")
    a.buffer([event("m1", PU, 1)], [])
    assert redis_client.exists("a:persist:pending") and not redis_client.exists("tpsl:persist:pending")
    assert persist_stats(redis_client, prefix="a")["events_received_noncritical"] == 1
    assert persist_stats(redis_client)["events_received_noncritical"] == 0


# ------------------------------------------------------------------------------------------ failures


def test_failed_flush_leaves_its_entries_pending_and_the_next_flush_writes_them(
    writer, engine: Engine, redis_client
):
    writer.buffer([event("m1", PU, 1)], [record("m1", 1)])
    writer.buffer([event("m2", PU, 1)], [record("m2", 1)])
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE events"))
    with pytest.raises(Exception, match="events"):
        writer.flush()
    assert set(redis_client.hkeys("tpsl:persist:pending")) == {"m1", "m2"}
    assert redis_client.zcard("tpsl:persist:processing") == 0  # nothing left in limbo
    assert monitor_rows(engine) == {}  # the transaction was rolled back as a whole

    writer.buffer([], [record("m2", 2)])  # newer work arrives before the retry
    Base.metadata.create_all(engine, tables=[events_table])
    result = writer.flush()
    assert result.entries == 2 and result.transactions == 1
    assert {k: r.version for k, r in monitor_rows(engine).items()} == {"m1": 1, "m2": 2}
    assert event_ids(engine) == {event("m1", PU, 1).id, event("m2", PU, 1).id}
    stats = persist_stats(redis_client)
    assert stats["flush_failures"] == 1 and stats["entries_given_back"] == 2


def test_unreachable_database_keeps_entries_for_the_next_flush(engine, redis_client):
    dead = make_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none")  # connection refused
    try:
        down = EventWriter(dead, redis_client)
        down.buffer([event("m1", PU, 1)], [record("m1", 1)])
        with pytest.raises(Exception, match=r"refused|failed"):
            down.flush()
    finally:
        dead.dispose()
    assert redis_client.hlen("tpsl:persist:pending") == 1
    up = EventWriter(engine, redis_client)
    assert up.flush().entries == 1
    assert monitor_rows(engine)["m1"].version == 1


def test_giving_back_never_replaces_a_newer_pending_entry(redis_client):
    store = PendingStore(redis_client)

    def entry(mid, v, tier):
        return mid, encode_entry(monitor_row(record(mid, v, tier=tier)), event_row(event(mid, PU, v)))

    store.put([entry("m1", 3, "active"), entry("m2", 3, "active")])
    taken = store.take(now=100.0)
    assert len(taken.entries) == 2 and store.size() == 0
    store.put([entry("m1", 4, "idle")])  # newer, written while the flush was failing
    assert store.give_back(taken) == 1  # only m2 goes back: m1 is newer in pending
    again = {e.monitor_id: e for e in store.take(now=101.0).entries}
    assert again["m1"].monitor["version"] == 4 and again["m1"].monitor["tier"] == "idle"
    assert again["m2"].monitor["version"] == 3


def test_entries_of_a_dead_flusher_are_recovered_after_its_lease(engine, redis_client):
    clock = [1000.0]
    writer = EventWriter(engine, redis_client, lease_s=60.0, clock=lambda: clock[0])
    writer.buffer([event("m1", PU, 1)], [record("m1", 1)])
    writer.pending.take(now=clock[0])  # a flusher takes the hash and dies before writing
    assert redis_client.zcard("tpsl:persist:processing") == 1

    clock[0] += 30  # its lease still runs: it might be alive and writing
    assert writer.flush().entries == 0
    clock[0] += 31  # lease over
    writer.buffer([event("m2", PU, 1)], [record("m2", 1)])
    result = writer.flush()
    assert result.entries == 2 and result.transactions == 1  # recovered and new, one transaction
    assert set(monitor_rows(engine)) == {"m1", "m2"}
    assert redis_client.zcard("tpsl:persist:processing") == 0
    assert not redis_client.keys("tpsl:persist:processing:*")


def test_two_concurrent_flushers_write_each_entry_exactly_once(engine, redis_client):
    n = 300
    writers = [EventWriter(engine, redis_client) for _ in range(3)]
    producing = threading.Event()
    producing.set()
    results: list[FlushResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(3)

    def produce() -> None:
        start.wait()
        try:
            for i in range(n):
                writers[0].buffer([event(f"m{i}", PU, 1)], [record(f"m{i}", 1)])
        finally:
            producing.clear()

    def flush_loop(w: EventWriter) -> None:
        start.wait()
        try:
            while True:
                still = producing.is_set()
                r = w.flush()
                with lock:
                    results.append(r)
                if not still:
                    return
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce)] + [
        threading.Thread(target=flush_loop, args=(w,)) for w in writers[1:]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    results.append(writers[1].flush())  # whatever the last loop pass missed
    assert sum(r.entries for r in results) == n  # every entry taken exactly once
    assert sum(r.events for r in results) == n
    assert sum(r.monitors for r in results) == n
    assert len(monitor_rows(engine)) == n and len(event_ids(engine)) == n
    assert redis_client.hlen("tpsl:persist:pending") == 0


def test_a_large_flush_round_trips_every_field_and_keeps_the_guard(writer, engine, session):
    """Big batches take another statement shape on PostgreSQL (unnest): same results."""
    from persistence.queries import events_for, get_monitor
    from persistence.upserts import PG_UNNEST_ABOVE

    n = PG_UNNEST_ABOVE * 3
    at = 1718000000.123456

    def rec(i: int, v: int):
        closed = i % 3 == 0
        return record(
            f"m{i}",
            v,
            phase="closed" if closed else "profit_taking",
            closed_reason="breakeven_stop" if closed else None,
            mirror_of=f"m{i - 1}" if i % 2 else None,
            created_at=at + i,
            state={"orders": [{"link": f"tgx-TP{i}", "qty": "0.001"}], "ü": "✓", "n": None, "v": v},
        )

    writer.buffer(
        [event(f"m{i}", PU, 2, at + i / 7, payload={"i": i}) for i in range(n)], [rec(i, 2) for i in range(n)]
    )
    assert writer.flush().monitors == n
    for i in (0, 1, n - 1):
        got = get_monitor(session, f"m{i}")
        expected = monitor_row(rec(i, 2))
        assert got is not None and got.to_dict() == expected
        (ev,) = events_for(session, f"m{i}")
        assert ev.at == at + i / 7 and ev.payload == {"i": i}

    # half newer, half older: only the newer half is written
    writer.buffer([], [rec(i, 3 if i % 2 else 1) for i in range(n)])
    assert writer.flush().monitors == n // 2
    rows = monitor_rows(engine)
    assert all(rows[f"m{i}"].version == (3 if i % 2 else 2) for i in range(n))
