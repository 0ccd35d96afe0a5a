"""The executor under a task's soft deadline (workers/deadline.py), over the paper exchange's engine
in process: past the deadline no call starts from the cancels on and the rest is answered "not sent";
the stops still go; every call that was sent keeps its answer, so the pass can record it."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal as D

from core import ids
from core.models import (
    Account,
    AmendOrder,
    CancelOrder,
    IntentResult,
    Monitor,
    OrderRole,
    OrderStatus,
    OwnedOrder,
    PlaceOrder,
    Secret,
    Side,
    Stage,
)
from core.step import acknowledge
from exchange.paper.engine import PaperEngine
from exchange.paper.port import PaperPort
from tests.unit.core.builders import conservative_long
from workers import deadline
from workers.deadline import Deadline
from workers.executor import execute

SYMBOL = "BTCUSDT"
MID = "m1"


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class SlowPort(PaperPort):
    """The paper engine in process, each write call taking `call_s` of the test's clock; the calls
    it received, by kind."""

    def __init__(self, engine: PaperEngine, clock: Clock, call_s: float) -> None:
        super().__init__(engine)
        self.clock, self.call_s = clock, call_s
        self.calls: list[str] = []

    def _took(self, kind: str) -> None:
        self.calls.append(kind)
        self.clock.t += self.call_s

    def place(self, account: Account, orders: Sequence[PlaceOrder]) -> list[IntentResult]:
        self._took("place")
        return super().place(account, orders)

    def amend(self, account: Account, orders: Sequence[AmendOrder]) -> list[IntentResult]:
        self._took("amend")
        return super().amend(account, orders)

    def cancel(self, account: Account, orders: Sequence[CancelOrder]) -> list[IntentResult]:
        self._took("cancel")
        return super().cancel(account, orders)


def lid(role: OrderRole, level: int = 1, generation: int = 1) -> str:
    return ids.link_id(MID, role, level, generation)


def stop(qty: str = "0.010") -> PlaceOrder:
    return PlaceOrder(
        "main", MID, lid(OrderRole.SL), SYMBOL, Side.SELL, D(qty), order_type="Market",
        trigger_price=D("55000"), trigger_direction=2, reduce_only=True, close_on_trigger=True,
        stage=Stage.STOP,
    )  # fmt: skip


def take_profit(level: int, price: str) -> PlaceOrder:
    return PlaceOrder(
        "main", MID, lid(OrderRole.TP, level), SYMBOL, Side.SELL, D("0.005"), price=D(price),
        reduce_only=True, stage=Stage.RAISE,
    )  # fmt: skip


def exchange(call_s: float) -> tuple[Clock, SlowPort, Account]:
    """A long position of 0.010 BTC and a resting take-profit (TP1), on a port whose calls take
    `call_s`."""
    clock = Clock()
    engine = PaperEngine(clock=clock)
    engine.create_account("main-key", "main-secret", balance="10000000")
    engine.set_prices({SYMBOL: D("60000")})
    account = Account("main", "paper://", Secret("main-key"), Secret("main-secret"))
    port = SlowPort(engine, clock, call_s)
    entry = PlaceOrder("main", MID, lid(OrderRole.ENTRY), SYMBOL, Side.BUY, D("0.010"), order_type="Market")
    assert all(r.ok for r in port.place(account, [entry, take_profit(1, "70000")]))
    port.calls.clear()
    return clock, port, account


def open_links(port: SlowPort, account: Account) -> set[str]:
    return {o.link_id for o in port.open_orders(account)}


def test_past_the_deadline_the_stop_goes_and_the_rest_is_not_sent() -> None:
    clock, port, account = exchange(call_s=2.0)
    cancel_tp1 = CancelOrder("main", MID, lid(OrderRole.TP, 1), SYMBOL)
    intents = [take_profit(2, "71000"), cancel_tp1, stop()]
    with deadline.running(Deadline.after(1.0, clock)):  # passes during the stop's call
        outcomes = dict((i.link_id, r) for i, r in execute(port, account, intents, clock))
    assert port.calls == ["place"]  # the stop's call only
    sl = outcomes[stop().link_id]
    assert sl.ok and sl.sent and sl.answered_at == clock.t  # its real answer, kept
    for link in (cancel_tp1.link_id, take_profit(2, "71000").link_id):
        r = outcomes[link]
        assert (r.ok, r.sent) == (False, False)
        assert r.message == "not sent: the task's soft time limit passed"
    assert not outcomes[cancel_tp1.link_id].unknown  # not sent is known: never "failed", never "unknown"
    assert open_links(port, account) == {stop().link_id, lid(OrderRole.TP, 1)}


def test_every_stop_call_goes_even_when_the_deadline_passed_before_the_pass() -> None:
    clock, port, account = exchange(call_s=0.5)
    assert port.place(account, [stop()])[0].ok
    port.calls.clear()
    move_stop = AmendOrder(
        "main", MID, stop().link_id, SYMBOL, trigger_price=D("56000"), conditional=True, stage=Stage.STOP
    )
    second = PlaceOrder(
        "main", MID, lid(OrderRole.SL, generation=2), SYMBOL, Side.SELL, D("0.001"), order_type="Market",
        trigger_price=D("54000"), trigger_direction=2, reduce_only=True, close_on_trigger=True,
        stage=Stage.STOP,
    )  # fmt: skip
    with deadline.running(Deadline.after(-1.0, clock)):
        outcomes = execute(port, account, [take_profit(2, "71000"), move_stop, second], clock)
    assert sorted(port.calls) == ["amend", "place"]  # both stop calls, nothing after them
    assert [(i.link_id, r.sent) for i, r in outcomes] == [
        (second.link_id, True),
        (move_stop.link_id, True),
        (lid(OrderRole.TP, 2), False),
    ]
    assert all(r.ok for _, r in outcomes[:2])


def test_without_a_deadline_every_call_is_sent() -> None:
    clock, port, account = exchange(call_s=2.0)
    cancel_tp1 = CancelOrder("main", MID, lid(OrderRole.TP, 1), SYMBOL)
    outcomes = execute(port, account, [take_profit(2, "71000"), cancel_tp1, stop()], clock)
    assert port.calls == ["place", "cancel", "place"]
    assert all(r.ok and r.sent for _, r in outcomes)


def test_what_was_not_sent_is_sent_again_next_pass() -> None:
    """The core reads a create answered "not sent" as one to send again under the same orderLinkId
    (RETRY), not as a refusal (LOST): stopping between calls loses nothing."""
    tp2 = take_profit(2, "71000")
    owned = OwnedOrder(
        link_id=tp2.link_id, role=OrderRole.TP, level=2, generation=1, side=Side.SELL, qty=tp2.qty,
        price=tp2.price, status=OrderStatus.PLACING, changed_at=1.0,
    )  # fmt: skip
    m = Monitor(id=MID, account="main", plan=conservative_long(), orders=(owned,))
    not_sent = IntentResult(
        tp2.link_id, False, message="not sent: the task's soft time limit passed", sent=False
    )
    after = acknowledge(m, [(tp2, not_sent)], 2.0).monitor
    assert after.orders[0].status is OrderStatus.RETRY and after.orders[0].link_id == tp2.link_id
