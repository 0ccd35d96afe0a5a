"""The stream view's reconciliation, decided without I/O: what differs from a REST read, what is a
divergence (a change a push should have brought), and what the view becomes (newer wins)."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from core.models import ExchangeOrder, ExchangeOrderStatus, Position, Side
from tasks.stream import pushed_rows
from workers.stream_view import DIVERGENCE_GRACE_MS, FINAL_KEPT_MS, diverged, positions_behind

T = 1_800_000_000_000  # the REST read started here (ms)
OLD = T - DIVERGENCE_GRACE_MS - 1
NEW = T - 10  # within the grace: its push may still be on the way
LID = "tg7kq2m9xa3f-TP1-1"
NEW_, FILLED, CANCELLED = ExchangeOrderStatus.NEW, ExchangeOrderStatus.FILLED, ExchangeOrderStatus.CANCELLED


def order(status=NEW_, filled="0", updated=OLD, qty="0.010", lid=LID):
    return ExchangeOrder(
        order_id="o1",
        link_id=lid,
        symbol="BTCUSDT",
        side=Side.SELL,
        order_type="Limit",
        qty=D(qty),
        filled=D(filled),
        status=status,
        price=D("62000"),
        updated_ms=updated,
    )


def pos(size="0.030", side=Side.BUY):
    return Position("BTCUSDT", 0, side if D(size) > 0 else None, D(size), D("60000"))


def kinds(found):
    return [(d.kind, d.key) for d in found]


def test_a_view_that_matches_the_exchange_changes_nothing():
    found, ow, pw = diverged(
        T, {LID: (order(), OLD)}, {"BTCUSDT:0": (pos(), OLD)}, {LID: order()}, {"BTCUSDT:0": pos()}
    )
    assert (found, ow, pw) == ([], {}, {})


def test_an_order_the_pushes_never_brought_is_a_divergence_and_the_exchange_wins():
    rest = order(filled="0.004", status=ExchangeOrderStatus.PARTIALLY_FILLED)
    found, ow, _ = diverged(T, {LID: (order(), OLD - 5)}, {}, {LID: rest}, {})
    assert kinds(found) == [("order_differs", LID)]
    assert ow == {LID: (OLD, rest)}  # written with the exchange's own update time
    found, ow, _ = diverged(T, {}, {}, {LID: order()}, {})
    assert kinds(found) == [("order_missing", LID)] and ow == {LID: (OLD, order())}


def test_a_change_within_the_grace_is_written_but_not_counted():
    rest = order(filled="0.004", status=ExchangeOrderStatus.PARTIALLY_FILLED, updated=NEW)
    found, ow, _ = diverged(T, {LID: (order(), OLD)}, {}, {LID: rest}, {})
    assert found == [] and ow == {LID: (NEW, rest)}


def test_a_push_newer_than_the_read_is_kept():
    pushed = order(status=FILLED, filled="0.010", updated=T + 50)
    found, ow, _ = diverged(T, {LID: (pushed, T + 50)}, {}, {LID: order()}, {})
    assert (found, ow) == ([], {})


def test_an_order_open_in_the_view_that_the_exchange_no_longer_lists_is_dropped_for_a_look_up():
    found, ow, _ = diverged(T, {LID: (order(), OLD)}, {}, {}, {})
    assert kinds(found) == [("order_gone", LID)] and ow == {LID: (T, None)}
    # pushed after the read started: the read cannot judge it
    found, ow, _ = diverged(T, {LID: (order(updated=T + 5), T + 5)}, {}, {}, {})
    assert (found, ow) == ([], {})


def test_final_orders_stay_for_look_ups_then_go():
    done = order(status=CANCELLED, updated=OLD)
    assert diverged(T, {LID: (done, OLD)}, {}, {}, {}) == ([], {}, {})
    ancient = T - FINAL_KEPT_MS - 1
    assert diverged(T, {LID: (done, ancient)}, {}, {}, {}) == ([], {LID: (T, None)}, {})


def test_positions_the_pushes_missed_are_divergences():
    found, _, pw = diverged(T, {}, {"BTCUSDT:0": (pos("0.030"), OLD)}, {}, {"BTCUSDT:0": pos("0.020")})
    assert kinds(found) == [("position_differs", "BTCUSDT:0")] and pw == {"BTCUSDT:0": (T, pos("0.020"))}
    found, _, pw = diverged(T, {}, {"BTCUSDT:0": (pos("0.030"), OLD)}, {}, {})
    assert kinds(found) == [("position_gone", "BTCUSDT:0")] and pw == {"BTCUSDT:0": (T, None)}
    # a stop-loss the pushes did not bring (a trading-stop whose push was lost)
    held = replace(pos("0.030"), stop_loss=D("58000"))
    found, _, pw = diverged(T, {}, {"BTCUSDT:0": (pos("0.030"), OLD)}, {}, {"BTCUSDT:0": held})
    assert kinds(found) == [("position_differs", "BTCUSDT:0")] and pw == {"BTCUSDT:0": (T, held)}
    assert found[0].exchange.endswith("sl 58000") and "sl" not in found[0].view
    # a flat row in the view and no row from REST (REST lists open positions only): the same
    assert diverged(T, {}, {"BTCUSDT:0": (pos("0"), OLD)}, {}, {}) == ([], {}, {})
    # a position pushed after the read started is kept
    assert diverged(T, {}, {"BTCUSDT:0": (pos("0.030"), T + 1)}, {}, {"BTCUSDT:0": pos("0.020")}) == (
        [],
        {},
        {},
    )


def test_what_a_push_carries_into_the_view():
    row = {
        "orderId": "o1",
        "orderLinkId": LID,
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Limit",
        "qty": "0.010",
        "cumExecQty": "0.010",
        "orderStatus": "Filled",
        "price": "62000",
        "updatedTime": "1800000000123",
    }
    orders, positions, fills, _ = pushed_rows(
        "order", [row, {**row, "orderLinkId": "by-hand"}, "junk"], received_at=1.0
    )
    assert [(o.link_id, o.status, o.filled, o.updated_ms) for o in orders] == [
        (LID, FILLED, D("0.010"), 1_800_000_000_123)
    ]
    assert positions == [] and fills == []
    prow = {"symbol": "BTCUSDT", "positionIdx": 0, "side": "Buy", "size": "0.02", "avgPrice": "60000"}
    _, positions, _, _ = pushed_rows("position", [prow], received_at=1_800_000_001.5)
    assert [(p.size, stamp) for p, stamp in positions] == [(D("0.02"), 1_800_000_001_500)]
    _, positions, _, _ = pushed_rows("position", [{**prow, "updatedTime": "1800000000999"}], received_at=0)
    assert positions[0][1] == 1_800_000_000_999
    # a row that does not parse is skipped, not fatal
    assert pushed_rows("order", [{**row, "orderStatus": "Weird"}], received_at=1.0) == ([], [], [], [])
    # every execution (ours or by hand) moves its symbol's position: its time is noted
    erow = {"symbol": "BTCUSDT", "orderLinkId": "by-hand", "execTime": "1800000000500", "execQty": "0.01"}
    assert pushed_rows("execution", [erow], received_at=0).fills == [("BTCUSDT", 1_800_000_000_500)]
    assert pushed_rows("execution", [erow], received_at=0).stop_fills == []
    # a fill of a position's own stop-loss (no orderLinkId) is noted apart: it judges a close
    srow = {**erow, "orderLinkId": "", "stopOrderType": "StopLoss", "side": "Sell"}
    assert pushed_rows("execution", [srow], received_at=0).stop_fills == [
        ("BTCUSDT", Side.SELL, 1_800_000_000_500)
    ]


@pytest.mark.parametrize(
    ("fills", "stamps", "behind"),
    [
        ({}, {}, []),
        ({"BTCUSDT": 100}, {}, ["BTCUSDT"]),  # a new position, not pushed yet
        ({"BTCUSDT": 100}, {"BTCUSDT|0": 100}, []),  # the same instant: shown
        ({"BTCUSDT": 100}, {"BTCUSDT|0": 99}, ["BTCUSDT"]),
        ({"BTCUSDT": 100}, {"BTCUSDT|1": 50, "BTCUSDT|2": 120}, []),  # hedge: either side's push
        ({"BTCUSDT": 100, "ETHUSDT": 7}, {"BTCUSDT|0": 150, "ETHUSDT|0": 3}, ["ETHUSDT"]),
    ],
)
def test_positions_behind_their_fills(fills, stamps, behind):
    assert positions_behind(fills, stamps) == behind
