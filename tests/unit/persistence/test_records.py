"""Pure parts of persistence: record checks, row building, JSON, URL handling (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import FixInput
from core.models import Event, EventKind, Phase, Side, Tier
from persistence.db import normalize_url, safe_url, sqlite_file
from persistence.jsonable import jsonable
from persistence.pending import decode_entry, encode_entry
from persistence.records import BadRecord, MonitorRecord
from persistence.upserts import event_row, monitor_row, newest_per_monitor, unique_by_id


def record(**over) -> MonitorRecord:
    base = dict(
        id="m1",
        account="main",
        symbol="BTCUSDT",
        position_idx=0,
        side="Buy",
        phase="monitoring",
        tier="standard",
        closed_reason=None,
        version=3,
        state={"k": 1},
        mirror_of=None,
        created_at=1000.0,
        updated_at=1001.5,
    )
    base.update(over)
    return MonitorRecord(**base)


def test_record_accepts_enum_members_and_stores_plain_strings():
    r = record(side=Side.SELL, phase=Phase.CLOSED, tier=Tier.IDLE, closed_reason="stop_loss")
    assert (r.side, r.phase, r.tier, r.closed_reason) == ("Sell", "closed", "idle", "stop_loss")
    assert type(r.phase) is str
    assert r.closed


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("id", "", "non-empty"),
        ("id", "x" * 65, "at most 64"),
        ("phase", "open", "'open' is not one of"),
        ("tier", "urgent", "is not one of"),
        ("side", "Long", "is not one of"),
        ("closed_reason", "oops", "is not one of"),
        ("version", -1, "integer ≥ 0"),
        ("version", 1.5, "integer ≥ 0"),
        ("position_idx", 3, "0, 1 or 2"),
        ("state", ["not", "a", "dict"], "JSON object"),
        ("updated_at", float("nan"), "finite"),
        ("symbol", "", "symbol"),
    ],
)
def test_record_names_the_bad_field(field, value, fragment):
    with pytest.raises(BadRecord) as err:
        record(**{field: value})
    assert err.value.field == f"monitor.{field}"
    assert fragment in str(err.value)


def test_record_round_trips_through_a_dict():
    r = record(state={"orders": [{"qty": "0.01"}]}, mirror_of="m0")
    assert MonitorRecord.from_dict(r.to_dict()) == r
    with pytest.raises(BadRecord, match=r"monitor\.version: is missing"):
        MonitorRecord.from_dict({k: v for k, v in r.to_dict().items() if k != "version"})


def test_monitor_row_sets_closed_at_only_when_closed():
    assert monitor_row(record())["closed_at"] is None
    closed = monitor_row(record(phase="closed", closed_reason="tp_complete", updated_at=2000.0))
    assert closed["closed_at"] == 2000.0


def test_monitor_row_makes_state_plain_json():
    row = monitor_row(record(state={"price": Decimal("60000.5"), "levels": (1, 2)}))
    assert row["state"] == {"price": "60000.5", "levels": [1, 2]}
    with pytest.raises(BadRecord, match=r"monitor\.state: is not JSON-able"):
        monitor_row(record(state={"x": object()}))


def test_event_row_derives_critical_and_checks_fields():
    e = Event("e1", "m1", "main", EventKind.TP_HIT, 10.0, 2, {"level": 1, "qty": Decimal("0.5")})
    row = event_row(e)
    assert row["critical"] is True and row["kind"] == "tp_hit"
    assert row["payload"] == {"level": 1, "qty": "0.5"}
    assert event_row(Event("e2", "m1", "main", EventKind.POSITION_UPDATE, 10.0, 2))["critical"] is False
    with pytest.raises(BadRecord, match=r"event\.id: is 65 characters long"):
        event_row(Event("e" * 65, "m1", "main", EventKind.TP_HIT, 10.0, 2))
    with pytest.raises(BadRecord, match=r"event\.kind: 'bogus' is not one of"):
        event_row(Event("e3", "m1", "main", "bogus", 10.0, 2))  # type: ignore[arg-type]
    with pytest.raises(BadRecord, match=r"event\.monitor_version"):
        event_row(Event("e4", "m1", "main", EventKind.TP_HIT, 10.0, -2))


def test_every_critical_kind_is_marked_critical():
    critical = {k.value for k in EventKind if event_row(Event("e", "m", "a", k, 1.0, 0))["critical"]}
    assert critical == {
        "monitor_created",
        "monitor_removed",
        "tp_hit",
        "sl_hit",
        "breakeven_moved",
        "position_closed",
    }


def test_jsonable_rejects_non_mappings():
    with pytest.raises(BadRecord, match="payload: must be a JSON object"):
        jsonable("payload", [1, 2])


def test_newest_per_monitor_keeps_the_highest_version_in_id_order():
    rows = [
        {"id": "b", "version": 1},
        {"id": "a", "version": 5},
        {"id": "b", "version": 3},
        {"id": "a", "version": 4},
    ]
    assert newest_per_monitor(rows) == [{"id": "a", "version": 5}, {"id": "b", "version": 3}]
    assert unique_by_id([{"id": "z", "n": 1}, {"id": "y"}, {"id": "z", "n": 2}]) == [
        {"id": "y"},
        {"id": "z", "n": 1},
    ]


def test_pending_entry_round_trip_keeps_floats_exact():
    m = monitor_row(record(updated_at=1718000000.123456))
    e = event_row(Event("e1", "m1", "main", EventKind.PARTIAL_FILL, 1718000000.654321, 3, {"q": "1"}))
    entry = decode_entry("m1", encode_entry(m, e))
    assert entry.monitor == m and entry.event == e
    assert decode_entry("m1", encode_entry(None, e)).monitor is None
    with pytest.raises(ValueError):
        encode_entry(None, None)


def test_database_urls():
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://h/db").drivername == "postgresql+psycopg"
    assert safe_url("postgresql://user:hunter22@h/db") == "postgresql+psycopg://user:***@h/db"
    assert str(sqlite_file(normalize_url("sqlite:///var/tpsl.db"))) == "var/tpsl.db"
    assert sqlite_file(normalize_url("sqlite://")) is None
    assert sqlite_file(normalize_url("sqlite:///:memory:")) is None
    with pytest.raises(FixInput, match="database_url: unsupported database 'mysql'"):
        normalize_url("mysql://h/db")
    with pytest.raises(FixInput, match="database_url: is empty"):
        normalize_url("  ")
    with pytest.raises(FixInput, match="database_url: is not a SQLAlchemy URL"):
        normalize_url("not a url")
