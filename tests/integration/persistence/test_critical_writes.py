"""The critical path: events written once and committed at once, monitor rows guarded by version."""

from __future__ import annotations

import pytest

from config.accounts import parse_accounts
from core.models import EventKind
from persistence.accounts import upsert_accounts
from persistence.db import make_engine
from persistence.queries import list_accounts
from persistence.records import BadRecord
from persistence.stats import persist_stats
from tests.integration.persistence.support import event, event_ids, monitor_rows, record


def test_events_are_written_once_duplicates_ignored(writer, engine, commits):
    e1 = event("m1", EventKind.MONITOR_CREATED, 1)
    e2 = event("m1", EventKind.TP_HIT, 2, payload={"level": 1})
    assert writer.write_critical([e1, e2], [record("m1", 2)]) == 2
    assert commits.n == 1  # one transaction
    # a retried task writes the same events again: nothing new, no error
    assert writer.write_critical([e2, e1, e2], [record("m1", 2)]) == 0
    e3 = event("m1", EventKind.BREAKEVEN_MOVED, 3)
    assert writer.write_critical([e1, e3], []) == 1
    assert event_ids(engine) == {e1.id, e2.id, e3.id}


def test_write_is_committed_before_returning(writer, database_url):
    writer.write_critical([event("m9", EventKind.SL_HIT, 4)], [record("m9", 4)])
    other = make_engine(database_url)  # another connection pool sees it at once
    try:
        assert set(monitor_rows(other)) == {"m9"}
        assert len(event_ids(other)) == 1
    finally:
        other.dispose()


def test_version_guard_newer_replaces_older(writer, engine):
    writer.write_critical([], [record("m1", 1, tier="standard")])
    writer.write_critical([], [record("m1", 2, tier="critical", phase="profit_taking")])
    row = monitor_rows(engine)["m1"]
    assert (row.version, row.tier, row.phase, row.state) == (2, "critical", "profit_taking", {"version": 2})


def test_version_guard_older_never_replaces_newer(writer, engine, redis_client):
    writer.write_critical([], [record("m1", 5, tier="inactive")])
    writer.write_critical([], [record("m1", 3, tier="critical")])  # a late, older write
    writer.write_critical([], [record("m1", 5, tier="idle")])  # same version: no change either
    row = monitor_rows(engine)["m1"]
    assert (row.version, row.tier) == (5, "inactive")
    assert persist_stats(redis_client)["monitor_rows_written"] == 1


def test_several_versions_in_one_call_keep_the_newest(writer, engine):
    writer.write_critical([], [record("m1", 2), record("m1", 7), record("m1", 4), record("m2", 1)])
    rows = monitor_rows(engine)
    assert rows["m1"].version == 7 and rows["m2"].version == 1


def test_closed_at_is_the_first_closed_version(writer, engine):
    writer.write_critical([], [record("m1", 3, phase="closed", closed_reason="stop_loss", updated_at=5000.0)])
    writer.write_critical([], [record("m1", 4, phase="closed", closed_reason="stop_loss", updated_at=6000.0)])
    row = monitor_rows(engine)["m1"]
    assert (row.version, row.closed_at, row.closed_reason) == (4, 5000.0, "stop_loss")


def test_bad_input_writes_nothing_and_names_the_field(writer, engine):
    good = event("m1", EventKind.TP_HIT, 1)
    bad = event("m1", EventKind.TP_HIT, 2, payload={"x": object()})
    with pytest.raises(BadRecord, match=r"event\.payload"):
        writer.write_critical([good, bad], [])
    with pytest.raises(BadRecord, match="expected MonitorRecord"):
        writer.write_critical([], [{"id": "m1"}])  # type: ignore[list-item]
    assert event_ids(engine) == set()


def accounts(*items: dict) -> list:
    """Accounts as config/accounts.py parses and checks them (the one place they are validated)."""
    base = {"api_key": "k", "api_secret": "s"}
    return list(parse_accounts([{**base, **i} for i in items]).values())


def test_accounts_are_upserted_without_credentials(engine, session):
    main = {"id": "main", "base_url": "http://127.0.0.1:8080"}

    def mirror(mid: str, url: str, ratio: str) -> dict:
        return {"id": mid, "base_url": url, "mirror_of": "main", "ratio": ratio}

    assert upsert_accounts(engine, accounts(main, mirror("mirror1", "http://x", "0.5")), now=100.0) == 2
    upsert_accounts(engine, accounts(main, mirror("mirror1", "http://y", "0.25"))[1:], now=200.0)
    upsert_accounts(engine, accounts(main, mirror("eq", "http://z", "equity"))[1:])
    stored = {a.id: a for a in list_accounts(session)}
    assert stored["mirror1"].ratio == "0.25" and stored["mirror1"].base_url == "http://y"
    assert stored["mirror1"].created_at == 100.0  # kept
    assert stored["main"].role == "main" and stored["eq"].ratio == "equity"
    assert not any(hasattr(a, "api_key") or hasattr(a, "api_secret") for a in stored.values())
