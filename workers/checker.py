"""One check of one account: read it once, step every listed monitor, act, record, reschedule.

The cost of a check is a fixed handful of exchange calls per account (positions + open orders, all
pages; a look-up of orders that left the open list, when some did; the shared ticker cache, unless
the public ticker stream has fresh prices of every symbol checked) whatever the number of monitors,
unless the `per_monitor_calls` rollback switch asks for one read per monitor.
A failed read changes nothing: no Snapshot, no step; the monitors stay scheduled.

The running task's soft deadline (workers/deadline.py) is checked between passes, after the read,
between the steps and before anything is sent: a check stopped there has sent nothing. Once the
executor has sent something, the pass folds the answers back, commits its critical events and
saves its monitors before the next check of the deadline.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from config import keys
from core.codec import ticker_from_dict, ticker_to_dict
from core.errors import StopAndAlert, TpslError
from core.models import Account, Decision, ErrorKind, Event, Monitor, Snapshot, Ticker, Tier
from core.ports import ExchangePort
from core.step import acknowledge, is_finished, step
from workers import deadline
from workers.executor import Outcome, execute
from workers.lag import REACTION, REACTION_ALL, REACTION_SEEN
from workers.locks import hold_account
from workers.lookups import look_up
from workers.placements import execute_unless_known
from workers.position_index import PositionIndex, key_of
from workers.recorder import Recorder
from workers.store import Loaded, MonitorStore
from workers.stream_prices import StreamPrices
from workers.stream_view import BEHIND_WAIT_S, UNEXPLAINED_WAIT_S, stream_view

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

READ_COUNTERS = ("reads", "checked", "view_reads", "deferred")  # fleet-wide, per account


@dataclass
class CheckResult:
    account: str
    checked: int = 0
    changed: int = 0
    intents: int = 0
    events: int = 0
    finished: int = 0
    reads: int = 0
    skipped: str | None = None
    monitors: list[Monitor] = field(default_factory=list)
    # monitors not checked: their symbol's latest fill had no position push in the view yet (the
    # push calls a check of them; the task checks them again once the wait for it is over)
    behind: list[str] = field(default_factory=list)
    # what a pass leaves until the account is free again: writes that need no lock (run_check)
    after: list[Callable[[], None]] = field(default_factory=list, repr=False)


def run_check(
    rt: Runtime, account_id: str, monitor_ids: Sequence[str], *, lock_wait_s: float = 2.0
) -> CheckResult:
    result = CheckResult(account_id)
    account = rt.accounts.get(account_id)
    if account is None:
        log.warning("check: account %s is not configured; its monitors are left alone", account_id)
        result.skipped = "unknown account"
        return result
    try:
        _hold_and_check(rt, account, monitor_ids, lock_wait_s, result)
    finally:
        # the passes' buffered rows and events, once the account is free: fills pushed meanwhile
        # wait for the account's next check, not for this bookkeeping
        for later in result.after:
            later()
    return result


def _hold_and_check(
    rt: Runtime, account: Account, monitor_ids: Sequence[str], lock_wait_s: float, result: CheckResult
) -> None:
    account_id = account.id
    with hold_account(rt, account_id, wait_s=deadline.bound(lock_wait_s)) as held:
        if not held:
            result.skipped = "account busy"
            return
        try:
            _check(rt, account, monitor_ids, result)
        except StopAndAlert as e:
            result.skipped = f"stop: {e.message}"
            log.error("check of %s: credentials refused (%s); alerting", account_id, e.message)
            Recorder(rt).publisher.alert(
                {
                    "kind": "account_error",
                    "account": account_id,
                    "monitor_id": None,
                    "payload": {"error": e.kind.value, "message": e.message},
                    "critical": True,
                }
            )
        except TpslError as e:
            # unknown is not flat: nothing is decided on a failed read; the monitors stay scheduled
            result.skipped = f"{e.kind.value}: {e.message}"
            log.warning("check of %s skipped: %s", account_id, result.skipped)


def _check(rt: Runtime, account: Account, monitor_ids: Sequence[str], result: CheckResult) -> None:
    store = MonitorStore(rt.registry)
    loaded = store.load_many(monitor_ids)
    if not loaded:
        return
    client = rt.client_for(account)
    if rt.settings.per_monitor_calls:
        groups: list[list[Loaded]] = [[item] for item in loaded.values()]
    else:
        groups = [list(loaded.values())]
    for group in groups:
        deadline.check()  # between passes: the last one saved what it sent
        symbol = group[0].monitor.plan.symbol if rt.settings.per_monitor_calls else None
        _pass(rt, account, client, store, group, symbol, result)


def read(
    rt: Runtime,
    account: Account,
    client: ExchangePort,
    monitors: Iterable[Monitor],
    *,
    symbol: str | None = None,
) -> Snapshot:
    """A Snapshot of the account for these monitors: positions + open orders, the prices of their
    symbols (and of `symbol`), and the final state of every owned order that left the open list."""
    monitors = list(monitors)
    wanted = {m.plan.symbol for m in monitors} | ({symbol} if symbol else set())
    snap, _, _ = read_orders_positions(
        rt, account, client, symbol=symbol, orders_for=lambda _: link_ids(monitors)
    )
    snap = replace(snap, tickers=tickers_for(rt, client, wanted or None))
    return look_up(account, client, snap, monitors, rt.policy)


def read_orders_positions(
    rt: Runtime,
    account: Account,
    client: ExchangePort,
    *,
    symbol: str | None = None,
    orders_for: Callable[[Snapshot], Iterable[str]] | None = None,
    behind_wait_s: float = 0.0,
    rest: bool = False,
) -> tuple[Snapshot, bool, frozenset[str]]:
    """Positions + open orders of the account (or of one symbol), no tickers, whether they came
    from the account's stream view, and the symbols the view is behind on (their rows are older
    than their latest fill: not for this check). The view is read while its stream is healthy and
    it was recently reconciled (no REST call; only the orders `orders_for` names, given the
    positions), and while every symbol it is behind on had its fill less than `behind_wait_s` ago;
    else (or with `rest`) the account is read by REST, every order, and that read reconciles the
    view (workers/stream_view.py)."""
    view = stream_view(rt)
    if view is not None and symbol is None and not rest:
        got = view.read(
            account.id,
            now=rt.clock(),
            instruments=client.instruments,
            orders_for=orders_for,
            behind_wait_s=behind_wait_s,
        )
        if got is not None:
            return got.snapshot, True, got.behind
    snap = client.snapshot(account, symbol=symbol)
    if view is not None and symbol is None:
        view.reconcile(account.id, snap)
    return snap, False, frozenset()


def unexplained_by_view(monitors: Iterable[Monitor], now: float) -> bool:
    """Whether a monitor of the check has a position change its fills have not explained for
    `UNEXPLAINED_WAIT_S`, which a read from the view could not confirm (`Monitor.confirm_by_rest`):
    the view may have lost an order push, and only a REST read confirms the change
    (`core.step._pushed_cannot_confirm`), so the check reads the account by REST. A change the view
    does explain (the position's own stop's fill, pushed) is confirmed by the next read of it."""
    return any(
        m.confirm_by_rest and m.unexplained_at is not None and now - m.unexplained_at >= UNEXPLAINED_WAIT_S
        for m in monitors
    )


def link_ids(monitors: Iterable[Monitor]) -> list[str]:
    """The orderLinkIds a check of these monitors reads: every order their state holds."""
    return [o.link_id for m in monitors for o in m.orders]


def tickers_for(rt: Runtime, client: ExchangePort, symbols: Collection[str] | None) -> dict[str, Ticker]:
    """The prices of `symbols`: from the public ticker stream where the stream process confirmed
    them within `ticker_stream_fresh_s` (workers/stream_prices.py), no exchange call when every one
    is; the shared REST ticker cache for the rest (and for every ticker when `symbols` is None or
    streams are off). A stream price is never older than that bound; the cache's at most
    `ticker_cache_s`."""
    if not rt.settings.streams or not symbols:
        return shared_tickers(rt, client)
    fresh = StreamPrices(rt.redis, prefix=rt.prefix).fresh(
        symbols, now=time.time(), max_age_s=rt.settings.ticker_stream_fresh_s
    )
    if len(fresh) == len(set(symbols)):
        return fresh
    return {**shared_tickers(rt, client), **fresh}


def shared_tickers(rt: Runtime, client: ExchangePort) -> dict[str, Ticker]:
    """Every ticker, one exchange call per `ticker_cache_s` shared by all accounts and workers."""
    import orjson

    return rt.market.tickers(
        client.tickers,
        lambda t: orjson.dumps([ticker_to_dict(x) for x in t.values()]),
        lambda b: {d["symbol"]: ticker_from_dict(d) for d in orjson.loads(b)},
    )


def _pass(
    rt: Runtime,
    account: Account,
    client: ExchangePort,
    store: MonitorStore,
    group: list[Loaded],
    symbol: str | None,
    result: CheckResult,
) -> None:
    index = PositionIndex(rt.redis, prefix=rt.prefix)
    skip = {item.monitor.id for item in group}
    moved: list[Loaded] = []

    def joining(snap: Snapshot) -> list[Loaded]:
        # monitors whose position changed since their last step join this pass, due or not: a fill
        # is acted on within one read of the account, whatever the monitor's tier
        changed = index.changed(snap, skip=skip) if symbol is None else []
        return list(store.load_many(changed).values()) if changed else []

    def orders_for(positions: Snapshot) -> list[str]:
        moved.extend(joining(positions))
        return link_ids(item.monitor for item in (*group, *moved))

    read_at = rt.clock()
    snap, from_view, behind = read_orders_positions(
        rt,
        account,
        client,
        symbol=symbol,
        orders_for=orders_for,
        # a fill whose position push is a moment late leaves its symbol's monitors to the check
        # that push calls, not the whole account to a REST read (seconds, in a burst of fills)
        behind_wait_s=BEHIND_WAIT_S if symbol is None else 0.0,
        rest=unexplained_by_view((item.monitor for item in group), read_at),
    )
    if not from_view:
        moved[:] = joining(snap)  # a REST read: every order came, the positions decide who joins
    group = group + moved
    if behind:
        result.behind.extend(item.monitor.id for item in group if item.monitor.plan.symbol in behind)
        group = [item for item in group if item.monitor.plan.symbol not in behind]
        if not group:
            result.reads += 1
            count_read(rt, account.id, 0, from_view=from_view)
            return
    snap = replace(snap, tickers=tickers_for(rt, client, {item.monitor.plan.symbol for item in group}))
    snap = look_up(account, client, snap, (item.monitor for item in group), rt.policy)
    result.reads += 1
    count_read(rt, account.id, len(group), from_view=from_view)
    deadline.check()  # read, nothing sent: stopping here loses the read only
    leaders = _leaders(store, group)
    now = rt.clock()
    decisions: dict[str, Decision] = {}
    for item in group:
        deadline.check()
        m = item.monitor
        decisions[m.id] = step(m, snap, now, rt.policy, leader=leaders.get(m.mirror_of or ""))
    deadline.check()  # the last safe point of the pass: from here on what is sent is also saved
    intents = [i for d in decisions.values() for i in d.intents]
    outcomes: dict[str, list[Outcome]] = defaultdict(list)
    stepped_at = rt.clock()
    if intents:
        for intent, res in execute_unless_known(client, account, intents, snap, rt.clock):
            outcomes[intent.monitor_id].append((intent, res))
            if not res.ok and POSITION_IDX_MISMATCH in res.message:
                _position_mode_changed(rt, account.id, intent)
    sent_at = rt.clock()
    events: list[Event] = []
    finals: list[tuple[Loaded, Monitor]] = []
    reactions: list[tuple[str, float]] = []
    reactions_all: list[tuple[str, float]] = []
    seen: list[tuple[str, float]] = []
    deferred = 0
    follow: dict[str, Decision] = {}
    for item in group:
        d = decisions[item.monitor.id]
        final, evs = d.monitor, list(d.events)
        if outcomes.get(final.id):
            acked_at = rt.clock()
            ack = acknowledge(final, outcomes[final.id], acked_at)
            final = ack.monitor
            evs.extend(ack.events)
            if ack.intents:
                follow[final.id] = ack
            reaction = reaction_of(d.events, outcomes[final.id], read_at)
            if reaction is not None:
                if reaction.seen_s is not None:
                    seen.append((reaction.kind, reaction.seen_s))
                if reaction.first_s is not None:
                    reactions.append((reaction.kind, reaction.first_s))
                if reaction.all_s is not None:
                    reactions_all.append((reaction.kind, reaction.all_s))
                deferred += reaction.deferred
        events.extend(evs)
        finals.append((item, final))
    if follow:
        # what the answers made urgent (a stop refused as breached → a market close), this pass
        more: dict[str, list[Outcome]] = defaultdict(list)
        for intent, res in execute(
            client, account, [i for a in follow.values() for i in a.intents], rt.clock
        ):
            more[intent.monitor_id].append((intent, res))
        for n, (item, final) in enumerate(finals):
            if final.id in follow:
                again = acknowledge(final, more[final.id], rt.clock())
                finals[n] = (item, again.monitor)
                events.extend(again.events)
        intents.extend(i for a in follow.values() for i in a.intents)
    if reactions:
        rt.latency.record_many(REACTION, reactions, now=now)
    if reactions_all:
        rt.latency.record_many(REACTION_ALL, reactions_all, now=now)
    if seen:
        rt.latency.record_many(REACTION_SEEN, seen, now=now)
    if deferred:
        count_deferred(rt, account.id, deferred)
    recorder = Recorder(rt)
    recorder.commit_critical(events)  # durable before the state that consumed them is saved
    saved = store.save_many(finals)
    lost = [mid for mid, ok in saved.items() if not ok]
    if lost:
        log.warning(
            "check of %s: %d monitors changed meanwhile (kept theirs): %s",
            account.id,
            len(lost),
            ", ".join(lost[:5]),
        )
    changed = [new for old, new in finals if new != old.monitor and saved.get(new.id, False)]
    kept_events = [e for e in events if e.monitor_id not in lost]
    # the rows of the monitors and the events that are not critical (those were committed above)
    # go to the coalescing buffer once the account is free: the buffer keeps the newest version of
    # each monitor, whichever pass writes first
    result.after.append(lambda: recorder.record(kept_events, changed, committed=True))
    _move_tiers(rt, [(old.monitor, new) for old, new in finals if new.id not in lost], rt.clock())
    stepped = [new for old, new in finals if new.id not in lost]
    index.remember(
        account.id, {key_of(m.symbol, m.position_idx): snap.size(m.symbol, m.position_idx) for m in stepped}
    )
    done = [new for new in changed if is_finished(new)]
    rt.registry.remove_many(m.id for m in done)
    index.unbind(done)
    _log_slow_pass(account.id, len(group), len(intents), read_at, now, stepped_at, sent_at, rt.clock())
    result.checked += len(group)
    result.changed += len(changed)
    result.intents += len(intents)
    result.events += len(kept_events)
    result.finished += len(done)
    result.monitors.extend(new for _, new in finals)


SLOW_PASS_S = 0.5  # a pass that takes longer is logged with where its time went


def _log_slow_pass(
    account: str,
    monitors: int,
    intents: int,
    read_at: float,
    stepping: float,
    stepped: float,
    sent: float,
    done: float,
) -> None:
    """One line for a pass slower than SLOW_PASS_S: the read, the steps, the calls, the saves."""
    if done - read_at < SLOW_PASS_S:
        return
    log.info(
        "slow pass of %s: %d monitors, %d intents in %.0f ms (read %.0f, step %.0f, send %.0f, save %.0f)",
        account,
        monitors,
        intents,
        (done - read_at) * 1000,
        (stepping - read_at) * 1000,
        (stepped - stepping) * 1000,
        (sent - stepped) * 1000,
        (done - sent) * 1000,
    )


POSITION_IDX_MISMATCH = "position idx not match"  # 10001: the account's position mode changed


def _position_mode_changed(rt: Runtime, account_id: str, intent: Any) -> None:
    """The exchange refused an order's positionIdx: the account's position mode changed under a
    monitor (switched by hand). Forget the cached mode (new monitors read it again) and alert."""
    from workers.lifecycle import forget_position_mode

    forget_position_mode(rt, account_id)
    log.error("account %s: positionIdx refused for %s; the position mode changed", account_id, intent.link_id)
    Recorder(rt).publisher.alert(
        {
            "kind": "position_mode_changed",
            "account": account_id,
            "monitor_id": intent.monitor_id,
            "critical": True,
            "payload": {"link_id": intent.link_id, "symbol": intent.symbol},
        }
    )


@dataclass(frozen=True, slots=True)
class Reaction:
    """A pass's reaction to a fill: seconds from the earliest fill to the first accepted answer
    (None: nothing was accepted) and to the last one (None: some follow-ups were left to a later
    pass, by the rate limit or an earlier failed call: when the whole reaction stood is not known
    here, and `deferred` says so)."""

    kind: str
    first_s: float | None
    all_s: float | None
    seen_s: float | None = None  # the fill → the read that saw it started (what detection took)

    @property
    def deferred(self) -> bool:
        return self.all_s is None


def reaction_of(
    events: Sequence[Event], outcomes: Sequence[Outcome], read_at: float | None = None
) -> Reaction | None:
    """Fill on the exchange → follow-ups acknowledged, for a pass that saw a fill and sent something.
    The stops go first (`workers.executor`), so the first accepted answer is the protection; the
    last is when the whole reaction (take-profits resized, leftovers cancelled) stood. Answers
    without a time (creates the read already showed: nothing was sent) are not reactions.
    `read_at`: when the pass's read started; the part of the reaction before it is detection."""
    fills = [(e.payload["exchange_ms"], e.kind.value) for e in events if e.payload.get("exchange_ms")]
    sent = [r for _, r in outcomes if r.answered_at is not None or not r.sent]
    if not fills or not sent:
        return None
    first_ms, kind = min(fills)
    filled_at = first_ms / 1000
    answered = [r.answered_at for r in sent if r.ok and r.answered_at is not None]
    left = any(not r.sent or r.error is ErrorKind.BACK_OFF for r in sent)
    first = max(0.0, min(answered) - filled_at) if answered else None
    whole = None if left or not answered else max(0.0, max(answered) - filled_at)
    seen = None if read_at is None else max(0.0, read_at - filled_at)
    return Reaction(kind, first, whole, seen)


def _move_tiers(rt: Runtime, pairs: Sequence[tuple[Monitor, Monitor]], now: float) -> None:
    """Each monitor into the tier its step classified. An escalation takes effect at once: the
    monitor's next check is one new-tier interval after this read (this check has just read the
    account: re-reading it right away would repeat the same data); a de-escalation keeps the next
    natural due time."""
    for tier, moves in tier_moves(pairs).items():
        rt.registry.move_tiers(moves, now + rt.settings.interval(tier))


def tier_moves(pairs: Sequence[tuple[Monitor, Monitor]]) -> dict[Tier, dict[str, Tier]]:
    """The monitors whose step changed their tier, grouped by the new tier (one registry call each)."""
    by_tier: dict[Tier, dict[str, Tier]] = defaultdict(dict)
    for old, new in pairs:
        if new.tier is not old.tier:
            by_tier[new.tier][new.id] = new.tier
    return dict(by_tier)


def count_read(rt: Runtime, account_id: str, monitors: int, *, from_view: bool = False) -> None:
    """Fleet-wide counters: account reads (snapshots) and monitors checked, per account; reads
    served by the stream view (no REST call) are counted apart too, as a subset of "reads"."""
    pipe = rt.redis.pipeline(transaction=False)
    pipe.hincrby(keys.read_stats(rt.prefix, "reads"), account_id, 1)
    pipe.hincrby(keys.read_stats(rt.prefix, "checked"), account_id, monitors)
    if from_view:
        pipe.hincrby(keys.read_stats(rt.prefix, "view_reads"), account_id, 1)
    pipe.execute()


def count_deferred(rt: Runtime, account_id: str, n: int) -> None:
    """Fleet-wide counter: reactions to a fill that left some follow-ups to a later pass."""
    rt.redis.hincrby(keys.read_stats(rt.prefix, "deferred"), account_id, n)


def read_counts(rt: Runtime) -> dict[str, dict[str, int]]:
    """{"reads": {account: n}, "checked": {account: n}, "view_reads": {account: n}, "deferred":
    {account: n}} since the counters were last reset."""
    out: dict[str, dict[str, int]] = {}
    for name in READ_COUNTERS:
        raw = cast("dict[str, str]", rt.redis.hgetall(keys.read_stats(rt.prefix, name)))  # decoded
        out[name] = {k: int(v) for k, v in raw.items()}
    return out


def reset_read_counts(rt: Runtime) -> None:
    """Start the counters of `read_counts` from zero (a benchmark's window)."""
    rt.redis.delete(*(keys.read_stats(rt.prefix, name) for name in READ_COUNTERS))


def _leaders(store: MonitorStore, group: list[Loaded]) -> dict[str, Monitor]:
    ids = {item.monitor.mirror_of for item in group if item.monitor.mirror_of}
    if not ids:
        return {}
    return {mid: item.monitor for mid, item in store.load_many(ids).items()}
