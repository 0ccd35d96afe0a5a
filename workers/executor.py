"""Sends a pass's intents through the batch endpoints of the account's own client.

Order matters (`core.models.Stage`): the stops first (a position's own stop set through trading-stop,
then stop orders placed or amended), then cancels, then amends
that lower a quantity, then places and amends that raise one — so the reduce-only total never
exceeds the position on the way. Every stop call is sent whatever happened to another; from the
cancels on, a whole call that fails (transport, rate limit), or a cancel or lowering amend that did
not take, stops the pass: every later intent is answered "not sent" (`IntentResult.sent` False), so
the monitors decide again next pass.

So does the running task's soft deadline (workers/deadline.py): from the cancels on, no call starts
once it has passed, and the rest is answered "not sent". The executor never raises for it: every
call that was sent has its answer in the outcomes, for the caller to fold back and save; the task
stops at its next safe point after that. The stops are sent even past the deadline.

`send` is what a pass does with a Decision: execute, fold the answers back (`core.step.acknowledge`),
and send once more what the answers made urgent (a stop refused as breached becomes a market close).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import cast

from core.errors import RetryLater, TpslError
from core.models import (
    Account,
    AmendOrder,
    CancelOrder,
    Decision,
    Event,
    Intent,
    IntentResult,
    Monitor,
    PlaceOrder,
    SetPositionStop,
    Stage,
)
from core.ports import ExchangePort
from core.step import acknowledge
from workers import deadline

log = logging.getLogger(__name__)

Outcome = tuple[Intent, IntentResult]


def execute(
    client: ExchangePort,
    account: Account,
    intents: Sequence[Intent],
    clock: Callable[[], float] | None = None,
) -> list[Outcome]:
    """Send `intents` in stage order; with a `clock`, every answer is stamped with the time its call
    returned (`IntentResult.answered_at`: the reaction latency of the stops, sent first, is theirs,
    not the whole pass's)."""

    def stamped(results: Sequence[IntentResult]) -> list[IntentResult]:
        # an answer the port stamped itself (a call of its own, among several sent side by side)
        # keeps its time; the others get the time the whole call returned
        if clock is None:
            return list(results)
        at = clock()
        return [r if r.answered_at is not None else dataclasses.replace(r, answered_at=at) for r in results]

    for intent in intents:
        if intent.account != account.id:  # every action goes through its monitor's own account
            raise ValueError(f"intent for account {intent.account!r} sent through {account.id!r}")
    out: list[Outcome] = []
    failure: TpslError | None = None
    for stage, kind, group in _calls(intents):
        if failure is None and stage != Stage.STOP and deadline.passed():
            # between two calls, never inside one: what was sent is answered, the rest not sent
            log.warning("account %s: soft time limit passed; the rest of the pass is not sent", account.id)
            failure = RetryLater("the task's soft time limit passed")
        if failure is not None:
            out.extend((i, _failed(i, failure, sent=False)) for i in group)
            continue
        try:
            if kind is SetPositionStop:
                results = client.set_position_stop(account, cast("list[SetPositionStop]", group))
            elif kind is PlaceOrder:
                results = client.place(account, cast("list[PlaceOrder]", group))
            elif kind is AmendOrder:
                results = client.amend(account, cast("list[AmendOrder]", group))
            else:
                results = client.cancel(account, cast("list[CancelOrder]", group))
        except TpslError as e:
            log.warning("account %s: %s of %d orders failed: %s", account.id, kind.__name__, len(group), e)
            out.extend(zip(group, stamped([_failed(i, e, sent=True) for i in group]), strict=True))
            if stage != Stage.STOP:
                failure = e  # a failed stop call never holds back another stop
            continue
        if len(results) != len(group):
            raise RuntimeError(f"{kind.__name__}: {len(results)} results for {len(group)} intents")
        results = stamped(results)
        out.extend(zip(group, results, strict=True))
        if stage in (Stage.CANCEL, Stage.LOWER) and not all(r.ok for r in results):
            # a cancel or a lowering amend did not take: raising now could put more reduce-only
            # quantity on the book than the position (the next pass decides again)
            failure = RetryLater("an earlier cancel or lowering amend of this pass did not take")
    return out


def _calls(intents: Sequence[Intent]) -> list[tuple[int, type, list[Intent]]]:
    """One call per (stage, kind), in stage order; within a stage a position's stop before places
    before amends before cancels (the order the intents' types are listed in). Every intent of a
    group is of the group's kind."""
    order = {SetPositionStop: 0, PlaceOrder: 1, AmendOrder: 2, CancelOrder: 3}
    groups: dict[tuple[int, int], list[Intent]] = {}
    for i in intents:
        groups.setdefault((i.stage, order[type(i)]), []).append(i)
    kinds = {v: k for k, v in order.items()}
    return [(stage, kinds[k], groups[(stage, k)]) for stage, k in sorted(groups)]


def _failed(intent: Intent, error: TpslError, *, sent: bool) -> IntentResult:
    prefix = "" if sent else "not sent: "
    return IntentResult(intent.link_id, False, error.kind, f"{prefix}{error.message}"[:300], sent=sent)


def send(
    client: ExchangePort, account: Account, d: Decision, clock: Callable[[], float]
) -> tuple[Decision, list[Outcome]]:
    """Execute a decision's intents and fold the answers back; what the answers made urgent (a
    market close for a stop refused as breached) is sent in the same pass. Returns the decision as
    it stands after the answers (every intent sent, every event) and all outcomes."""
    if not d.intents:
        return d, []
    outcomes = execute(client, account, d.intents, clock)
    ack = acknowledge(d.monitor, outcomes, clock())
    monitor: Monitor = ack.monitor
    events: list[Event] = [*d.events, *ack.events]
    intents: list[Intent] = [*d.intents]
    if ack.intents:
        more = execute(client, account, ack.intents, clock)
        again = acknowledge(monitor, more, clock())
        monitor = again.monitor
        events.extend(again.events)
        intents.extend(ack.intents)
        outcomes.extend(more)
    return Decision(monitor, tuple(intents), tuple(events)), outcomes
