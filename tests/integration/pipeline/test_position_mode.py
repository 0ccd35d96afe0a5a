"""A plan without positionIdx on a hedge-mode account (defect 10 of the protection issue): the
account's position mode is read from the account; the plan guards its side's own position (Buy → 1,
Sell → 2) and says so, and a plan that names a hedge index on a one-way account is refused. Real
stack: paper exchange over HTTP, Redis, a Celery worker."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from core.errors import PlanInvalid

from .plans import conservative_long, conservative_short


@pytest.fixture
def stack_accounts(paper) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    hedged = paper.new_account(balance=1_000_000, hedge_mode=True)
    plain = paper.new_account(balance=1_000_000)
    creds = {"main": hedged, "oneway": plain}
    accounts = [
        {"id": name, "base_url": paper.base_url, "api_key": c.api_key, "api_secret": c.api_secret}
        for name, c in creds.items()
    ]
    paper.admin.set_rate_limits(enabled=False)
    return creds, accounts


def test_a_plan_without_position_idx_on_a_hedge_account_guards_its_sides_position(stack):
    stack.prices(BTCUSDT="60500", ETHUSDT="2990")
    long = stack.create(conservative_long())  # no position_idx
    short = stack.create(conservative_short())
    assert long.plan.position_idx == 1 and short.plan.position_idx == 2
    created = [e for e in stack.events(long.id) if e.kind == "monitor_created"]
    assert created and created[0].payload["position_idx_inferred"] is True
    # it is really guarded: the entry fills and the stop goes in on positionIdx 1
    stack.prices(BTCUSDT="59990")
    stack.wait(
        lambda: (
            (m := stack.monitor(long.id)) is not None
            and m.built_qty == D("0.010")
            and stack.stop_trigger(long.id) is not None
        ),
        what="the hedge long's entry filled and its stop placed",
    )
    if stack.on_position:  # the stop-loss of the long's own position (positionIdx 1)
        assert stack.position_stop("main", "BTCUSDT", idx=1) == D("58000")
        return
    stops = [o for o in stack.exchange_orders("main") if o["orderLinkId"].startswith(f"tg{long.id}-SL")]
    assert stops and stops[0]["positionIdx"] == 1


def test_a_hedge_index_on_a_one_way_account_is_refused_naming_the_field(stack):
    stack.prices(BTCUSDT="60500")
    with pytest.raises(PlanInvalid) as err:
        stack.create(conservative_long(account="oneway", position_idx=1))
    assert err.value.field == "position_idx"
    assert not [o for o in stack.exchange_orders("oneway") if o["orderStatus"] in ("New", "Untriggered")]
