"""One whole lifecycle through the real pipeline (paper exchange over HTTP, Redis, a Celery worker,
the dispatcher, SQLite) in each stop mode (`TPSL_STOP_MODE`): order (a stop order of ours) and
position (the position's own Full-mode stop-loss through trading-stop). Both keep the same promises;
the exchange calls of each are counted (docs/protection.md, Stop modes, quotes them)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

import pytest

from core.models import BreakevenState, CloseReason, OrderRole, Phase
from workers.checker import run_check

from .plans import conservative_long

WRITES = (
    "/v5/order/create-batch",
    "/v5/order/amend-batch",
    "/v5/order/amend",
    "/v5/order/cancel-batch",
    "/v5/position/trading-stop",
)


@pytest.fixture(params=["order", "position"])
def stack_overrides(request):
    return {"stop_mode": request.param}


def live(stack, mid):
    m = stack.monitor(mid)
    assert m is not None
    return m


def position_row(stack, account="main"):
    rows = [
        p for p in stack.paper.admin.account(stack.creds[account].api_key)["positions"] if D(p["size"]) > 0
    ]
    return rows[0] if rows else None


def stop_on_position(stack):
    p = position_row(stack)
    return D(p["stopLoss"]) if p is not None and p.get("stopLoss") else None


def calls(stack, key):
    account_id = stack.paper.admin.account(key)["id"]
    by = stack.paper.admin.stats()["by_account"].get(account_id, {})
    return Counter({path: n for path, n in by.items() if path in WRITES})


def test_a_conservative_long_lifecycle_in_each_stop_mode(stack, capsys):
    mode = stack.settings.stop_mode
    key = stack.creds["main"].api_key
    before = calls(stack, key)
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="fully built")
    if mode == "position":
        stack.wait(lambda: stop_on_position(stack) == D("58000"), what="the position's stop set")
        assert not live(stack, m.id).live_orders(OrderRole.SL)  # no stop order of ours
        assert not [o for o in stack.exchange_orders() if o["orderLinkId"].startswith(f"tg{m.id}-SL")]
    else:
        stack.wait(lambda: live(stack, m.id).current(OrderRole.SL, 0).status.value == "open")
        assert stop_on_position(stack) is None

    # TP1: breakeven, confirmed by a read of the exchange
    stack.prices(BTCUSDT="62100")
    stack.wait(lambda: live(stack, m.id).breakeven is BreakevenState.DONE, what="breakeven")
    mm = live(stack, m.id)
    if mode == "position":
        assert stop_on_position(stack) > mm.avg_entry  # rounded away from the entry
    else:
        assert mm.current(OrderRole.SL, 0).trigger_price > mm.avg_entry

    for price in ("63100", "64100", "65100"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: stack.monitor(m.id) is None, what="monitor finished")
    stack.flush()
    row = stack.db_monitor(m.id)
    assert row.phase == "closed" and row.closed_reason == CloseReason.TP_COMPLETE.value
    kinds = Counter(e.kind for e in stack.events(m.id) if e.critical)
    assert kinds["breakeven_moved"] == 1 and kinds["tp_hit"] == 4 and kinds["position_closed"] == 1
    assert position_row(stack) is None
    writes = calls(stack, key) - before
    with capsys.disabled():
        print(f"\nstop mode {mode}: exchange writes in one lifecycle {sum(writes.values())}: {dict(writes)}")
    if mode == "position":
        # the stop came with the entries (attached: set by the exchange as they filled); breakeven
        # is the one trading-stop
        assert writes["/v5/position/trading-stop"] == 1
        assert writes["/v5/order/amend"] == 0  # no stop order to amend


def built_with_its_stop(stack):
    """A conservative long whose three entries filled, with its stop at 58000 on the exchange and
    seen by a read (the position's own, or our stop order)."""
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    for price in ("59990", "59400", "58900"):
        stack.prices(BTCUSDT=price)
    stack.wait(lambda: live(stack, m.id).phase is Phase.MONITORING, what="fully built")
    if stack.on_position:
        stack.wait(lambda: live(stack, m.id).stop_seen == D("58000"), what="the position's stop seen")
    else:
        stack.wait(lambda: live(stack, m.id).current(OrderRole.SL, 0).status.value == "open")
    return m


def test_a_stop_that_fired_while_no_read_saw_the_price_is_recorded_as_the_stop(stack):
    """The price falls through the stop and comes back before any read of the account: no read's
    price was ever through it. In order mode the stop order's own fill says what closed the
    position; in position mode the position's stop has no order of ours, and the confirming read
    looks up the symbol's executions (`execution/list` over HTTP): its fill is there, so this is
    `sl_hit` and a stop-loss close, not a close by hand (the price alone would have said "by hand")."""
    m = built_with_its_stop(stack)
    stack.quiesce()  # the test reads alone from here: no check sees the price below
    stack.prices(BTCUSDT="57900")  # through the stop at 58000: it fires
    stack.prices(BTCUSDT="59000")  # and the price is back before any read
    assert position_row(stack) is None
    executions_before = stack.paper.admin.stats()["by_endpoint"].get("/v5/execution/list", 0)

    def finished() -> bool:
        run_check(stack.rt, "main", [m.id])
        return stack.monitor(m.id) is None

    stack.wait(finished, timeout=15, what="the monitor to finish")
    stack.flush()
    row = stack.db_monitor(m.id)
    assert row.closed_reason == CloseReason.STOP_LOSS.value
    (sl_hit,) = [e for e in stack.events(m.id) if e.kind == "sl_hit"]
    assert sl_hit.payload["exchange_ms"]  # when the exchange filled it, from its own record
    looked = stack.paper.admin.stats()["by_endpoint"].get("/v5/execution/list", 0) - executions_before
    assert looked == (1 if stack.on_position else 0)  # one look-up, of this symbol, once


def test_with_streams_the_stops_own_fill_is_pushed_and_judges_the_close(stack):
    """The same fall through the stop and back, with the stream process running: the fill's pushes
    call the checks, and what closed the position comes with them (in position mode the execution
    push of the position's stop-loss, `stopOrderType` StopLoss, into the stream view), so no check
    looks the executions up by REST."""
    assert stack.watch is not None  # the stream process runs in this module's stack
    m = built_with_its_stop(stack)
    executions_before = stack.paper.admin.stats()["by_endpoint"].get("/v5/execution/list", 0)
    stack.prices(BTCUSDT="57900")
    stack.prices(BTCUSDT="59000")
    stack.wait(lambda: stack.monitor(m.id) is None, what="the monitor to finish")
    stack.flush()
    assert stack.db_monitor(m.id).closed_reason == CloseReason.STOP_LOSS.value
    (sl_hit,) = [e for e in stack.events(m.id) if e.kind == "sl_hit"]
    assert sl_hit.payload["exchange_ms"]
    assert stack.paper.admin.stats()["by_endpoint"].get("/v5/execution/list", 0) == executions_before
