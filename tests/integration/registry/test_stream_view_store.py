"""The stream view in a real Redis: a late push never undoes a newer state, and the view is read
only while it can be trusted (stream up, reconciled after its last gap, recently)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

from core.models import ExchangeOrder, ExchangeOrderStatus, Position, Side, Snapshot
from workers import stream_view
from workers.stream_view import StreamView

LID = "tg7kq2m9xa3f-SL-1"
T = 1_800_000_000.0


def order(status=ExchangeOrderStatus.UNTRIGGERED, qty="0.030", updated=1):
    return ExchangeOrder(
        order_id="o1",
        link_id=LID,
        symbol="BTCUSDT",
        side=Side.SELL,
        order_type="Market",
        qty=D(qty),
        filled=D("0.030") if status is ExchangeOrderStatus.FILLED else D("0"),
        status=status,
        trigger_price=D("58000"),
        updated_ms=updated,
    )


def rest(taken_at, orders=(), positions=()):
    return Snapshot(
        "main",
        taken_at,
        {(p.symbol, p.position_idx): p for p in positions},
        {o.link_id: o for o in orders},
        {},
    )


def view(redis_client, **kw):
    return StreamView(redis_client, prefix="t-view", reconcile_s=60.0, read_margin_s=0.5, **kw)


def no_instruments():
    return {}


def snapshot(v, account="main", **kw):
    """What a check that does not wait for position pushes reads: the view's Snapshot, or None
    (the check reads REST)."""
    got = v.read(account, instruments=no_instruments, **kw)
    assert got is None or got.behind == frozenset()
    return None if got is None else got.snapshot


def test_a_late_push_never_undoes_a_newer_state(redis_client):
    v = view(redis_client)
    v.mark_alive("main")
    v.reconcile("main", rest(T))
    assert v.apply_orders("main", [order(ExchangeOrderStatus.FILLED, updated=2000)]) == 1
    assert v.apply_orders("main", [order(updated=1000)]) == 0  # older: refused
    snap = snapshot(v, now=T + 1)
    assert snap is not None and LID not in snap.open_orders
    assert snap.closed_orders[LID].status is ExchangeOrderStatus.FILLED and LID in snap.looked_up
    assert v.apply_orders("main", [order(ExchangeOrderStatus.FILLED, updated=2000)]) == 1  # same stamp: ok
    # orders that are not ours are not kept
    assert (
        v.apply_orders(
            "main",
            [
                ExchangeOrder(
                    "x", "by-hand", "BTCUSDT", Side.BUY, "Limit", D(1), D(0), ExchangeOrderStatus.NEW
                )
            ],
        )
        == 0
    )


def test_the_view_is_read_only_while_it_can_be_trusted(redis_client):
    v = view(redis_client)
    p = Position("BTCUSDT", 0, Side.BUY, D("0.030"), D("60000"), mark_price=D("60100"))
    assert snapshot(v, now=T) is None  # the stream is not up
    assert v.reconcile("main", rest(T, [order()], [p])) is None  # nor written while it is not
    v.mark_alive("main")
    v.mark_gap("main", T)
    assert snapshot(v, now=T + 1) is None  # not reconciled yet
    v.reconcile("main", rest(T + 1, [order()], [p]))  # a REST read that started after the gap
    snap = snapshot(v, now=T + 2)
    assert snap is not None and snap.taken_at == T + 1.5  # the read margin
    assert snap.positions[("BTCUSDT", 0)].size == D("0.030") and LID in snap.open_orders
    # a position's mark is as old as its last push: the check prices the symbol from the tickers
    assert snap.positions[("BTCUSDT", 0)].mark_price is None
    v.mark_gap("main", T + 3)  # the stream re-subscribed: pushes may have been missed
    assert snapshot(v, now=T + 4) is None
    v.reconcile("main", rest(T + 5, [order()], [p]))
    assert snapshot(v, now=T + 6) is not None
    assert snapshot(v, now=T + 5 + 61) is None  # reconciled too long ago
    v.mark_down("main")
    assert snapshot(v, now=T + 7) is None  # the stream is down
    assert v.divergences("main") == 0  # every REST read agreed with the view


def test_a_fill_the_position_push_has_not_shown_yet_keeps_the_view_unread(redis_client):
    """Bybit pushes a fill's execution, order and position as separate messages: between the first
    and the last, the view's orders and position disagree, so a check reads REST instead."""
    v = view(redis_client)
    p = Position("BTCUSDT", 0, Side.BUY, D("0.030"), D("60000"))
    v.mark_alive("main")
    v.reconcile("main", rest(T, [order()], [p]))
    assert snapshot(v, now=T + 1) is not None
    fill_ms = int((T + 2) * 1000)
    v.apply_fills("main", [("BTCUSDT", fill_ms)])  # the stop fired: its execution came first
    v.apply_orders("main", [order(ExchangeOrderStatus.FILLED, updated=fill_ms)])
    assert snapshot(v, now=T + 3) is None  # the position lags
    v.apply_fills("main", [("ETHUSDT", fill_ms - 5)])  # another symbol's fill changes nothing here
    flat = Position("BTCUSDT", 0, None, D("0"), D("0"))
    v.apply_positions("main", [(flat, fill_ms)], seen_at=T)  # the position push that shows it
    snap = snapshot(v, now=T + 3)
    assert snap is None  # ETHUSDT's position has not been pushed yet either
    v.apply_positions("main", [(Position("ETHUSDT", 0, Side.BUY, D("1"), D("3000")), fill_ms)], seen_at=T)
    snap = snapshot(v, now=T + 3)
    assert snap is not None and ("BTCUSDT", 0) not in snap.positions  # flat
    # a fill whose position push was lost: a REST read made after it settles it
    v.apply_fills("main", [("BTCUSDT", fill_ms + 100)])
    assert snapshot(v, now=T + 4) is None
    v.reconcile("main", rest(T + 4, [], []))
    assert snapshot(v, now=T + 5) is not None


def test_a_check_reads_only_the_orders_it_names(redis_client):
    v = view(redis_client)
    p = Position("BTCUSDT", 0, Side.BUY, D("0.030"), D("60000"))
    other = ExchangeOrder(
        "o2", "tg7kq2m9xa3f-TP1-1", "BTCUSDT", Side.SELL, "Limit", D("0.01"), D(0), ExchangeOrderStatus.NEW
    )
    v.mark_alive("main")
    v.reconcile("main", rest(T, [order(), other], [p]))
    seen = []

    def orders_for(positions):
        seen.append(dict(positions.positions))  # the positions come first, to decide who joins
        return [LID, "tgnotthere00-SL-1"]

    snap = snapshot(v, now=T + 1, orders_for=orders_for)
    assert snap is not None and list(snap.open_orders) == [LID]
    assert seen == [{("BTCUSDT", 0): p}]
    assert snapshot(v, now=T + 1, orders_for=lambda _: []).open_orders == {}

    def a_fill_arrives_meanwhile(positions):
        v.apply_fills("main", [("BTCUSDT", int((T + 1) * 1000))])
        return [LID]

    assert snapshot(v, now=T + 1, orders_for=a_fill_arrives_meanwhile) is None


def test_rows_decoded_once_per_text_and_never_stale(redis_client):
    """Checks read the same rows pass after pass: an unchanged row comes from the process's memo,
    a changed one is decoded anew, and two accounts' rows of one symbol never mix."""
    v = view(redis_client)
    p = Position("BTCUSDT", 0, Side.BUY, D("0.030"), D("60000"), mark_price=D("60100"))
    for account in ("main", "mirror"):
        v.mark_alive(account)
        v.reconcile(account, rest(T, [order()], [p]))
    v.apply_positions("mirror", [(replace(p, size=D("0.015")), int((T + 1) * 1000))], seen_at=T)

    def read(account, now=T + 2):
        snap = snapshot(v, account, now=now, orders_for=lambda _: [LID])
        assert snap is not None
        return snap

    first = read("main")
    positions, orders = stream_view._positions.hits, stream_view._orders.hits
    again = read("main")
    assert again.positions == first.positions and again.open_orders == first.open_orders
    assert stream_view._positions.hits > positions and stream_view._orders.hits > orders
    assert first.positions[("BTCUSDT", 0)].mark_price is None  # priced from the tickers, not the push
    assert read("mirror").positions[("BTCUSDT", 0)].size == D("0.015")
    assert read("main").positions[("BTCUSDT", 0)].size == D("0.030")

    later = int((T + 3) * 1000)
    v.apply_positions("main", [(replace(p, size=D("0.010")), later)], seen_at=T)
    v.apply_orders("main", [order(qty="0.010", updated=later)])
    changed = read("main", now=T + 4)
    assert changed.positions[("BTCUSDT", 0)].size == D("0.010")
    assert changed.open_orders[LID].qty == D("0.010")


def test_pushed_stop_loss_fills_reach_the_checks_and_are_pruned_after_an_hour(redis_client):
    v = view(redis_client)
    v.mark_alive("main")
    v.reconcile("main", rest(T))
    ms = int(T * 1000)
    assert v.apply_stop_fills("main", [("BTCUSDT", Side.SELL, ms - 5), ("BTCUSDT", Side.SELL, ms)]) == 1
    assert v.apply_stop_fills("main", [("BTCUSDT", Side.SELL, ms - 1)]) == 0  # older: refused
    v.apply_stop_fills("main", [("ETHUSDT", Side.BUY, ms + 7)])
    snap = snapshot(v, now=T + 1)
    assert snap is not None
    assert snap.stop_fills == {("BTCUSDT", Side.SELL): ms, ("ETHUSDT", Side.BUY): ms + 7}
    assert snap.stop_fills_read == frozenset()  # pushed only: an absent fill proves nothing
    # another account's view holds none of them
    other = snapshot(v, "mirror", now=T + 1)
    assert other is None or other.stop_fills == {}
    # a REST reconciliation an hour later drops them: no close waits that long to be judged
    v.reconcile("main", rest(T + 3601))
    snap = snapshot(v, now=T + 3601.5)
    assert snap is not None and snap.stop_fills == {}


def test_a_check_that_waits_for_position_pushes_is_told_which_symbols_are_behind(redis_client):
    """Given a wait, a fill younger than it names its symbol behind (its rows are the view's, older
    than the fill: not to be stepped) and the read goes on; an older one sends the check to REST."""
    v = view(redis_client)
    btc = Position("BTCUSDT", 0, Side.BUY, D("0.030"), D("60000"))
    eth = Position("ETHUSDT", 0, Side.BUY, D("1"), D("3000"))
    v.mark_alive("main")
    v.reconcile("main", rest(T, [order()], [btc, eth]))
    v.apply_fills("main", [("BTCUSDT", int((T + 2) * 1000))])
    got = v.read("main", now=T + 2.4, instruments=no_instruments, behind_wait_s=0.5)
    assert got is not None and got.behind == frozenset({"BTCUSDT"})
    assert set(got.snapshot.positions) == {("BTCUSDT", 0), ("ETHUSDT", 0)}  # as the view holds them
    assert v.read("main", now=T + 2.6, instruments=no_instruments, behind_wait_s=0.5) is None  # too old
    assert v.read("main", now=T + 2.4, instruments=no_instruments) is None  # a check that does not wait

    def eth_fills_meanwhile(_):
        v.apply_fills("main", [("ETHUSDT", int((T + 2.3) * 1000))])
        return [LID]

    got = v.read(
        "main", now=T + 2.4, instruments=no_instruments, orders_for=eth_fills_meanwhile, behind_wait_s=0.5
    )
    assert got is not None and got.behind == frozenset({"BTCUSDT", "ETHUSDT"})
    v.apply_positions(
        "main", [(replace(btc, size=D("0.020")), int((T + 2) * 1000))], seen_at=T + 2
    )  # its push came
    got = v.read("main", now=T + 2.4, instruments=no_instruments, behind_wait_s=0.5)
    assert got is not None and got.behind == frozenset({"ETHUSDT"})
    assert got.snapshot.positions[("BTCUSDT", 0)].size == D("0.020")


def test_a_lost_stop_push_keeps_the_row_as_of_its_last_push_until_rest_sets_it_right(redis_client):
    """A position row says when its push came (`Snapshot.position_seen_at`): a check that set the
    position's stop after that knows the row cannot show it. The reconciliation finds the stop the
    push did not bring, counts it, and writes the row as of its own read."""
    v = view(redis_client)
    bare = Position("BTCUSDT", 0, Side.BUY, D("0.030"), D("60000"))
    v.mark_alive("main")
    v.reconcile("main", rest(T, [], []))
    v.apply_positions("main", [(bare, int((T + 1) * 1000))], seen_at=T + 1.01)  # the entry's fill
    snap = snapshot(v, now=T + 2)
    assert snap is not None and snap.position_seen_at == {("BTCUSDT", 0): T + 1.01}
    # the guard set the stop at T + 1.2; that push was lost: the view still shows no stop
    snap = snapshot(v, now=T + 10)
    assert snap is not None and snap.positions[("BTCUSDT", 0)].stop_loss is None
    assert snap.position_seen_at[("BTCUSDT", 0)] < T + 1.2
    held = replace(bare, stop_loss=D("58000"))
    found = v.reconcile("main", rest(T + 20, [], [held]))
    assert found is not None and [(d.kind, d.key) for d in found] == [("position_differs", "BTCUSDT|0")]
    assert "sl 58000" in found[0].exchange and v.divergences("main") == 1
    snap = snapshot(v, now=T + 21)
    assert snap is not None and snap.positions[("BTCUSDT", 0)].stop_loss == D("58000")
    assert snap.position_seen_at == {("BTCUSDT", 0): T + 20}
