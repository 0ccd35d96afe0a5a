"""Door 5: nothing becomes a live (or recorded) monitor without passing the plan validator. A forged
persist task, a forged database row and a forged registry entry are quarantined and alerted on,
never written, restored or guarded."""

from __future__ import annotations

import copy
import dataclasses

import orjson
import pytest

from core.codec import monitor_from_dict, monitor_to_dict
from core.models import Tier
from persistence.records import MonitorRecord
from tests.integration.pipeline.plans import conservative_long
from tests.integration.pipeline.test_alerts import Receiver
from workers.quarantine import quarantined
from workers.reconcile import reconcile
from workers.store import encode, record_of


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def stack_overrides(receiver):
    return {"webhook_url": receiver.url + "/alerts-of-the-trust-test"}


def forged(stack, new_id: str, **plan_changes) -> dict:
    """A monitor state like a real one, with another id and a plan that breaks a rule."""
    stack.prices(BTCUSDT="60500")
    real = stack.create(conservative_long())
    state = copy.deepcopy(monitor_to_dict(real))
    state["id"] = new_id
    state["plan"].update(plan_changes)
    return state


def quarantine_alerted(receiver, monitor_id: str) -> bool:
    return any(
        b["alert"]["kind"] == "monitor_quarantined" and b["alert"]["monitor_id"] == monitor_id
        for _, b in receiver.requests
    )


def test_a_forged_persist_task_is_quarantined_not_written(stack, receiver):
    # a long whose stop is above its entries: the validator refuses it
    state = forged(stack, "forgedpersist01", stop_loss="99000")
    m = monitor_from_dict(state)
    record = dataclasses.replace(record_of(m), state=state).to_dict()
    stack.app.send_task("tpsl.persist_critical", args=[[], [record]], queue="persist", routing_key="persist")
    stack.wait(lambda: "forgedpersist01" in quarantined(stack.rt), what="the quarantine note")
    note = quarantined(stack.rt)["forgedpersist01"]
    assert note["source"] == "persist" and note["field"] == "stop_loss"
    stack.wait(lambda: quarantine_alerted(receiver, "forgedpersist01"), what="the quarantine alert")
    assert stack.db_monitor("forgedpersist01") is None
    reconcile(stack.rt)
    assert stack.monitor("forgedpersist01") is None


def test_a_persist_record_that_disagrees_with_its_state_is_quarantined(stack):
    state = forged(stack, "forgedpersist02")  # a valid plan, but the record names another account
    m = monitor_from_dict(state)
    record = dataclasses.replace(record_of(m), account="mirror1").to_dict()
    stack.app.send_task("tpsl.persist_critical", args=[[], [record]], queue="persist", routing_key="persist")
    stack.wait(lambda: "forgedpersist02" in quarantined(stack.rt), what="the quarantine note")
    assert quarantined(stack.rt)["forgedpersist02"]["field"] == "account"
    assert stack.db_monitor("forgedpersist02") is None


def test_reconcile_quarantines_a_forged_database_row(stack, receiver):
    state = forged(
        stack,
        "forgeddbrow0001",
        take_profits=[{"price": "62000", "fraction": "0.85"}, {"price": "63000", "fraction": "0.85"}],
    )
    m = monitor_from_dict(state)
    stack.rt.writer.write_critical([], [MonitorRecord.from_dict({**record_of(m).to_dict(), "state": state})])
    assert stack.db_monitor("forgeddbrow0001") is not None
    report = reconcile(stack.rt)
    assert report.quarantined == 1
    assert stack.monitor("forgeddbrow0001") is None  # not restored into the registry
    assert quarantined(stack.rt)["forgeddbrow0001"]["source"] == "reconcile: database"
    stack.wait(lambda: quarantine_alerted(receiver, "forgeddbrow0001"), what="the quarantine alert")


def test_reconcile_quarantines_a_forged_registry_entry(stack):
    state = forged(stack, "forgedregistry1", side="Sell")  # a "short" with a long's ladder and stop
    stack.rt.registry.add("forgedregistry1", "main", orjson.dumps(state).decode(), Tier.CRITICAL, 0.0)
    report = reconcile(stack.rt)
    assert report.quarantined == 1
    assert "forgedregistry1" not in stack.rt.registry.ids()  # no longer guarded (nor checked)
    assert stack.db_monitor("forgedregistry1") is None  # and never written
    assert quarantined(stack.rt)["forgedregistry1"]["source"] == "reconcile: registry"


def test_valid_monitors_pass_every_recheck(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.flush()
    stack.rt.registry.remove(m.id)  # Redis lost it: reconcile restores it from the database
    report = reconcile(stack.rt)
    assert report.restored == 1 and report.quarantined == 0
    assert stack.monitor(m.id) is not None and quarantined(stack.rt) == {}
    assert encode(stack.monitor(m.id))
