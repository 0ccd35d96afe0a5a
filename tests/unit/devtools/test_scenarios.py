"""The demo's scenarios (devtools/demo/scenarios.py): plans the system accepts, mirrors that keep every
level, price scripts that cross what they claim, and the script runner's state machine. Pure: no I/O."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.mirror import mirror_plan
from core.models import BreakevenState, CloseReason, Monitor, Phase, Plan, Side, Tier
from core.plan import parse_request
from core.sizing import allocate, breakeven_price
from devtools.demo.scenarios import (
    CRITICAL,
    MIRROR_RATIO,
    SCENARIOS,
    SOFT_WAIT_S,
    Scenario,
    ScriptRunner,
    State,
    entries_filled,
    start_prices,
)
from exchange.paper.instruments import REAL_INSTRUMENTS

INSTRUMENTS = {s.symbol: s.to_core() for s in REAL_INSTRUMENTS}


def plan_of(sc: Scenario) -> Plan:
    return parse_request(dict(sc.plan), instruments=INSTRUMENTS, mark_price=sc.start_price).plan


def beyond(price: Decimal, level: Decimal, side: Side, *, profit: bool) -> bool:
    """Is `price` at or past `level` in the profit (or loss) direction of a position on `side`?"""
    up = (side is Side.BUY) == profit
    return price >= level if up else price <= level


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.key)
def test_plans_are_valid_and_their_mirrors_keep_every_level(sc: Scenario) -> None:
    plan = plan_of(sc)
    inst = INSTRUMENTS[sc.symbol]
    assert plan.mirror and sc.plan["account"] == "main"
    assert sc.start_price % inst.tick_size == 0
    mirror = mirror_plan(plan, MIRROR_RATIO, inst)
    assert mirror is not None and len(mirror.entries) == len(plan.entries)
    fractions = [tp.fraction for tp in plan.take_profits]
    for p in (plan, mirror):
        ladder = allocate(p.planned_qty, fractions, inst)
        assert all(q > 0 for q in ladder), (
            f"{sc.key}: a TP level of {p.planned_qty} rounds to nothing: {ladder}"
        )


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.key)
def test_price_scripts_cross_what_they_claim(sc: Scenario) -> None:
    plan = plan_of(sc)
    inst = INSTRUMENTS[sc.symbol]
    side = plan.side
    prices = [step.price for step in sc.steps]
    assert all(p % inst.tick_size == 0 for p in prices)
    # no step before the last one ends the scenario the wrong way
    for p in prices[:-1]:
        assert not beyond(p, plan.stop_loss, side, profit=False), f"{sc.key}: {p} hits the stop early"
    if sc.expected is not CloseReason.TP_COMPLETE:
        assert not any(beyond(p, plan.take_profits[-1].price, side, profit=True) for p in prices)
    # every limit entry is crossed before the first take-profit is
    first_tp = (
        next(i for i, p in enumerate(prices) if beyond(p, plan.take_profits[0].price, side, profit=True))
        if any(beyond(p, plan.take_profits[0].price, side, profit=True) for p in prices)
        else len(prices)
    )
    for e in plan.entries:
        if e.price is not None:
            assert any(beyond(p, e.price, side, profit=False) for p in prices[:first_tp]), f"entry {e.price}"
    last = prices[-1]
    if sc.expected is CloseReason.TP_COMPLETE:
        assert beyond(last, plan.take_profits[-1].price, side, profit=True)
    elif sc.expected is CloseReason.STOP_LOSS:
        assert beyond(last, plan.stop_loss, side, profit=False)
        assert first_tp == len(prices), "a stop-loss scenario must end before TP1"
    elif sc.expected is CloseReason.BREAKEVEN_STOP:
        assert first_tp < len(prices) - 1 and plan.breakeven_after == 1
        avg = sum((e.qty * e.price for e in plan.entries if e.price), Decimal(0)) / plan.planned_qty
        be = breakeven_price(avg, side, plan.fee_buffer, inst)
        assert beyond(last, be, side, profit=False) and not beyond(last, plan.stop_loss, side, profit=False)
    # a soft "near" step is within the proximity band of what it approaches, and does not cross it
    for step in sc.steps:
        if step.soft:
            targets = [plan.take_profits[0].price, plan.stop_loss]
            assert any(abs(step.price - t) <= step.price * Decimal("0.005") for t in targets), step
            assert not beyond(step.price, plan.stop_loss, side, profit=False)


def test_scenarios_cover_both_presets_both_sides_and_every_close() -> None:
    plans = [plan_of(sc) for sc in SCENARIOS]
    assert {p.preset for p in plans} == {"conservative", "fast"}
    assert {p.side for p in plans} == {Side.BUY, Side.SELL}
    assert {sc.expected for sc in SCENARIOS} == {
        CloseReason.TP_COMPLETE,
        CloseReason.STOP_LOSS,
        CloseReason.BREAKEVEN_STOP,
    }
    assert len({sc.symbol for sc in SCENARIOS}) == len(SCENARIOS)  # one position per symbol
    assert start_prices() == {sc.symbol: sc.start_price for sc in SCENARIOS}


# --------------------------------------------------------------------------------------- the runner


BTC = SCENARIOS[0]


def monitors(plan: Plan) -> tuple[Monitor, Monitor]:
    main = Monitor(id="main1", account="main", plan=plan, phase=Phase.BUILDING)
    mirror_p = mirror_plan(plan, MIRROR_RATIO, INSTRUMENTS[plan.symbol])
    assert mirror_p is not None
    return main, Monitor(
        id="mirr1", account="mirror1", plan=mirror_p, phase=Phase.BUILDING, mirror_of="main1"
    )


def test_runner_follows_the_monitors_not_the_clock() -> None:
    sent: list[tuple[str, Decimal]] = []
    runner = ScriptRunner(lambda s, p: sent.append((s, p)), speed=2.0)
    main, mirror = monitors(plan_of(BTC))
    run = runner.add(BTC, [main.id, mirror.id], now=100.0)
    state = {main.id: main, mirror.id: mirror}

    runner.advance(state, now=100.0)
    assert sent == [("BTCUSDT", BTC.steps[0].price)] and run.state is State.RUNNING and run.step == 0

    # step 1 waits for entry 1 on both monitors: the dwell alone is not enough
    runner.advance(state, now=1000.0)
    assert run.step == 0 and "entry 1 filled" in run.detail and mirror.id in run.detail
    filled = entries_filled(1)
    state[main.id] = replace(main, built_qty=main.plan.entries[0].qty)
    state[mirror.id] = replace(mirror, built_qty=mirror.plan.entries[0].qty)
    assert filled(state[main.id]) and filled(state[mirror.id])
    runner.advance(state, now=1000.0)
    assert run.step == 0, "the stop is not on the exchange yet"
    assert len(sent) == 1


def test_runner_waits_the_dwell_scaled_by_speed() -> None:
    sent: list[tuple[str, Decimal]] = []
    runner = ScriptRunner(lambda s, p: sent.append((s, p)), speed=4.0)
    sc = next(s for s in SCENARIOS if s.key == "eth")
    run = runner.add(sc, ["a"], now=0.0)
    m = Monitor(id="a", account="main", plan=plan_of(sc))
    runner.advance({"a": m}, now=sc.start_after_s / 4 - 0.01)
    assert run.step == -1 and not sent
    runner.advance({"a": m}, now=sc.start_after_s / 4)
    assert run.step == 0
    # jump to the unconditional "bounce" step and check its dwell
    bounce = next(i for i, st in enumerate(sc.steps) if st.until is None)
    run.step, run.step_at = bounce, 10.0
    runner.advance({"a": m}, now=10.0 + sc.steps[bounce].dwell_s / 4 - 0.01)
    assert run.step == bounce
    runner.advance({"a": m}, now=10.0 + sc.steps[bounce].dwell_s / 4)
    assert run.step == bounce + 1 and sent[-1] == (sc.symbol, sc.steps[bounce + 1].price)


def test_a_soft_condition_is_given_up_after_a_while() -> None:
    runner = ScriptRunner(lambda s, p: None)
    run = runner.add(BTC, ["a"], now=0.0)
    near = next(i for i, st in enumerate(BTC.steps) if st.soft)
    assert BTC.steps[near].until is CRITICAL
    m = Monitor(id="a", account="main", plan=plan_of(BTC), phase=Phase.MONITORING, tier=Tier.STANDARD)
    run.state, run.step, run.step_at = State.RUNNING, near, 0.0
    runner.advance({"a": m}, now=SOFT_WAIT_S - 0.1)
    assert run.step == near
    runner.advance({"a": m}, now=SOFT_WAIT_S)
    assert run.step == near + 1
    # …and taken at once when it holds
    run.step, run.step_at = near, 0.0
    runner.advance({"a": replace(m, tier=Tier.CRITICAL)}, now=BTC.steps[near].dwell_s)
    assert run.step == near + 1


def test_done_needs_every_monitor_closed_with_the_expected_reason() -> None:
    runner = ScriptRunner(lambda s, p: None)
    main, mirror = monitors(plan_of(BTC))
    run = runner.add(BTC, [main.id, mirror.id], now=0.0)
    closed_main = replace(main, phase=Phase.CLOSED, closed_reason=CloseReason.TP_COMPLETE)
    runner.advance({main.id: closed_main, mirror.id: mirror}, now=1.0)
    assert run.state is not State.DONE and not runner.all_finished
    runner.advance({main.id: closed_main, mirror.id: None}, now=2.0)  # unreadable for a moment
    assert run.state is not State.DONE
    closed_mirror = replace(mirror, phase=Phase.CLOSED, closed_reason=CloseReason.TP_COMPLETE)
    changed = runner.advance({main.id: closed_main, mirror.id: closed_mirror}, now=3.0)
    assert changed == [run] and run.state is State.DONE and runner.all_done
    assert run.summary().startswith("BTC conservative long: ok, closed tp_complete")


def test_a_wrong_close_fails_the_scenario_with_a_one_line_reason() -> None:
    runner = ScriptRunner(lambda s, p: None)
    main, mirror = monitors(plan_of(BTC))
    run = runner.add(BTC, [main.id, mirror.id], now=0.0)
    runner.advance({main.id: main, mirror.id: mirror}, now=0.0)
    stopped = replace(mirror, phase=Phase.CLOSED, closed_reason=CloseReason.STOP_LOSS)
    runner.advance({main.id: main, mirror.id: stopped}, now=1.0)
    assert run.state is State.FAILED and runner.all_finished and not runner.all_done
    line = run.summary()
    assert (
        "\n" not in line and "FAILED" in line and "mirr1 closed stop_loss" in line and "tp_complete" in line
    )


def test_an_unfinished_scenario_says_where_it_stands() -> None:
    runner = ScriptRunner(lambda s, p: None)
    main, _ = monitors(plan_of(BTC))
    run = runner.add(BTC, [main.id], now=0.0)
    runner.advance({main.id: main}, now=0.0)
    runner.advance({main.id: replace(main, breakeven=BreakevenState.NONE)}, now=100.0)
    line = run.summary()
    assert "RUNNING at step 1/8" in line and "waiting for entry 1 filled" in line


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScriptRunner(lambda s, p: None, speed=0)


def test_a_price_move_that_fails_is_tried_again_on_the_next_tick() -> None:
    calls: list[Decimal] = []

    def flaky(symbol: str, price: Decimal) -> None:
        calls.append(price)
        if len(calls) == 1:
            raise ConnectionError("exchange busy")

    runner = ScriptRunner(flaky)
    run = runner.add(BTC, ["a"], now=0.0)
    m = Monitor(id="a", account="main", plan=plan_of(BTC))
    with pytest.raises(ConnectionError):
        runner.advance({"a": m}, now=0.0)
    assert run.step == -1
    runner.advance({"a": m}, now=0.5)
    assert run.step == 0 and calls == [BTC.steps[0].price] * 2
