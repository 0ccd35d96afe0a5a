"""Creating and removing monitors (API, CLI and tasks all come here).

Create: the plan is validated first (nothing is placed for a plan that fails); then, holding the
account, the account is read once, the first pass places the entries (or, when adopting an open
position, its ladder and stop), the monitor is registered and `monitor_created` is committed before
the call returns. Mirrors follow at their account's ratio; a mirror failure is logged and alerted,
never raised: it must not block the main account.

Remove: `monitor_removed` is recorded; the monitor's live orders are cancelled unless told to leave
them; mirrors of the monitor are removed the same way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from config import keys
from config.accounts import mirrors_of
from core import ids
from core.codec import event_to_dict
from core.errors import FixInput, NotFound, RetryLater
from core.mirror import equity_ratio, mirror_plan
from core.models import Account, Decision, Instrument, Monitor, Phase, Plan
from core.plan import check_adoption, parse_request, resolve_position_idx
from core.step import is_finished, open_monitor
from core.step import remove_monitor as core_remove
from workers.checker import read
from workers.executor import send
from workers.locks import hold_account
from workers.position_index import PositionIndex
from workers.recorder import Recorder, needs_alert
from workers.store import Loaded, MonitorStore, record_of
from workers.ttl_cache import invalidate_accounts_quietly

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

LOCK_WAIT_S = 10.0


def instruments(rt: Runtime, account: Account) -> dict[str, Instrument]:
    """Instrument filters of the account's exchange: the client's one cache (per host and process,
    `instruments_cache_s`), the same the client's reads use. One layer: filters change rarely, and
    one exchange call per process per `instruments_cache_s` is all sharing them would save."""
    return rt.client_for(account).instruments()


def create_monitor(rt: Runtime, data: Mapping[str, Any], *, nonce: str | None = None) -> Monitor:
    """Validate, place, register and record a monitor for the plan `data` (the pinned request
    shape). Raises FixInput (bad input, nothing placed) or RetryLater (exchange or account busy)."""
    if not isinstance(data, Mapping):
        raise FixInput("plan", "must be a JSON object")
    account_id = data.get("account")
    if not isinstance(account_id, str):
        raise FixInput("account", "missing or not a string")
    account = rt.account(account_id)
    if account.is_mirror:
        raise FixInput("account", f"{account.id} is a mirror account: guard positions on {account.mirror_of}")
    insts = instruments(rt, account)
    symbol = data.get("symbol")
    mark = None
    if isinstance(symbol, str) and symbol in insts:
        from workers.checker import tickers_for

        ticker = tickers_for(rt, rt.client_for(account), {symbol}).get(symbol)
        mark = ticker.mark_price if ticker else None
    req = parse_request(data, instruments=insts, fee_buffer=rt.settings.fee_buffer, mark_price=mark)
    plan, inferred = resolve_position_idx(req.plan, hedge=hedge_mode(rt, account, req.plan.symbol))
    mid = ids.monitor_id(account.id, plan.symbol, plan.position_idx, nonce or uuid.uuid4().hex)
    main = _open(rt, account, plan, mid, position_idx_inferred=inferred)
    if req.plan.mirror:
        for mirror in mirrors_of(rt.accounts, account.id):
            try:
                _open_mirror(rt, main, mirror, insts)
            except Exception as e:  # a mirror never blocks the main account
                log.exception("mirror %s of monitor %s failed", mirror.id, main.id)
                Recorder(rt).publisher.alert(
                    {
                        "kind": "mirror_failed",
                        "account": mirror.id,
                        "monitor_id": main.id,
                        "critical": True,
                        "payload": {"error": type(e).__name__, "message": str(e)[:300]},
                    }
                )
    return main


def _open(
    rt: Runtime,
    account: Account,
    plan: Plan,
    mid: str,
    *,
    mirror_of: str | None = None,
    ratio: Decimal = Decimal(1),
    leader: Monitor | None = None,
    position_idx_inferred: bool = False,
) -> Monitor:
    store = MonitorStore(rt.registry)
    with hold_account(rt, account.id, wait_s=LOCK_WAIT_S) as held:
        if not held:
            raise RetryLater(f"account {account.id} is busy; try again")
        existing = store.load(mid)
        if existing is not None:
            return existing.monitor  # the same request again: same id, nothing placed twice
        _refuse_duplicate(rt, store, account, plan)
        client = rt.client_for(account)
        snap = read(rt, account, client, (), symbol=plan.symbol)  # the new monitor's symbol is all it needs
        pos = snap.position(plan.symbol, plan.position_idx)
        if plan.adopt:
            if pos is None:
                raise FixInput("adopt", f"no open {plan.side.value} position on {plan.symbol} to adopt")
            check_adoption(plan, pos)
        elif pos is not None and pos.size > 0:
            raise FixInput(
                "adopt",
                f"a {plan.symbol} position of {pos.size} is already open on {account.id}: "
                'guard it with "adopt": true',
            )
        now = rt.clock()
        d = open_monitor(
            mid,
            account.id,
            plan,
            snap,
            now,
            rt.policy,
            mirror_of=mirror_of,
            ratio=ratio,
            leader=leader,
            position_idx_inferred=position_idx_inferred,
        )
        d = _send(rt, account, client, d)
        store.add(d.monitor, due_at=now)
        PositionIndex(rt.redis, prefix=rt.prefix).bind([d.monitor])
        _record_now(rt, d)
        return d.monitor


def _refuse_duplicate(rt: Runtime, store: MonitorStore, account: Account, plan: Plan) -> None:
    """One monitor per (account, symbol, positionIdx): the position index names its guard."""
    mid = PositionIndex(rt.redis, prefix=rt.prefix).owner(account.id, plan.symbol, plan.position_idx)
    item = store.load(mid) if mid is not None else None
    if item is not None and item.monitor.phase is not Phase.CLOSED:
        raise FixInput(
            "symbol",
            f"{plan.symbol} (positionIdx {plan.position_idx}) on {account.id} "
            f"is already guarded by monitor {item.monitor.id}",
        )


def _open_mirror(rt: Runtime, main: Monitor, mirror: Account, insts: dict[str, Instrument]) -> Monitor | None:
    ratio = mirror.ratio
    if mirror.ratio_by_equity:
        main_acc = rt.account(main.account)
        main_eq = rt.client_for(main_acc).wallet_balance(main_acc).equity
        mirror_eq = rt.client_for(mirror).wallet_balance(mirror).equity
        ratio = equity_ratio(main_eq, mirror_eq)
    plan = mirror_plan(main.plan, ratio, insts[main.plan.symbol])
    if plan is None:
        log.warning(
            "monitor %s: %s at ratio %s is under the minimum order size; not mirrored",
            main.id,
            mirror.id,
            ratio,
        )
        Recorder(rt).publisher.alert(
            {
                "kind": "mirror_skipped",
                "account": mirror.id,
                "monitor_id": main.id,
                "critical": False,
                "payload": {"reason": "under minimum order size", "ratio": str(ratio)},
            }
        )
        return None
    # the mirror account has a position mode of its own: the plan is fitted to it
    plan, inferred = resolve_position_idx(
        replace(plan, position_idx=0), hedge=hedge_mode(rt, mirror, plan.symbol)
    )
    mid = ids.mirror_monitor_id(main.id, mirror.id)
    return _open(
        rt, mirror, plan, mid, mirror_of=main.id, ratio=ratio, leader=main, position_idx_inferred=inferred
    )


POSITION_MODE_TTL_S = 3600.0  # an account's position mode is read again at most hourly (and on 10001)


def hedge_mode(rt: Runtime, account: Account, symbol: str) -> bool:
    """The account's position mode on `symbol`, read from the account and kept in Redis for an hour;
    forgotten when the exchange answers "position idx not match" (`forget_position_mode`)."""
    key = position_mode_key(rt.prefix, account.id)
    cached = rt.redis.hget(key, symbol)
    if cached is not None:
        return cached == "hedge"
    hedge = rt.client_for(account).hedge_mode(account, symbol)
    pipe = rt.redis.pipeline(transaction=False)
    pipe.hset(key, symbol, "hedge" if hedge else "oneway")
    pipe.expire(key, int(POSITION_MODE_TTL_S))
    pipe.execute()
    return hedge


def forget_position_mode(rt: Runtime, account_id: str) -> None:
    rt.redis.delete(position_mode_key(rt.prefix, account_id))


def position_mode_key(prefix: str, account_id: str) -> str:
    return keys.position_mode(prefix, account_id)


def remove_monitor(rt: Runtime, monitor_id: str, *, cancel_orders: bool = True) -> Monitor:
    """End a monitor (and its mirrors). Raises NotFound when no such live monitor exists."""
    store = MonitorStore(rt.registry)
    item = store.load(monitor_id)
    if item is None:
        raise NotFound(f"no live monitor {monitor_id}")
    removed = _remove(rt, store, item.monitor.account, monitor_id, cancel_orders)
    for mirror in mirrors_of(rt.accounts, removed.account):
        mirror_id = ids.mirror_monitor_id(monitor_id, mirror.id)
        if store.load(mirror_id) is not None:
            try:
                _remove(rt, store, mirror.id, mirror_id, cancel_orders)
            except Exception:
                log.exception("removing mirror monitor %s failed; the next check retries cancels", mirror_id)
    return removed


def _remove(
    rt: Runtime, store: MonitorStore, account_id: str, monitor_id: str, cancel_orders: bool
) -> Monitor:
    account = rt.account(account_id)
    with hold_account(rt, account.id, wait_s=LOCK_WAIT_S) as held:
        if not held:
            raise RetryLater(f"account {account.id} is busy; try again")
        item = store.load(monitor_id)  # fresh, under the lock
        if item is None:
            raise NotFound(f"no live monitor {monitor_id}")
        d = core_remove(item.monitor, rt.clock(), cancel_orders=cancel_orders)
        d = _send(rt, account, rt.client_for(account), d)
        saved = store.save_many([(item, d.monitor)])
        if saved and not saved.get(monitor_id, False):
            raise RetryLater(f"monitor {monitor_id} changed meanwhile; try again")
        _record_now(rt, d)
        if is_finished(d.monitor):
            rt.registry.remove(monitor_id)
        return d.monitor


def _send(rt: Runtime, account: Account, client: Any, d: Decision) -> Decision:
    sent, _ = send(client, account, d, rt.clock)
    return sent


def _record_now(rt: Runtime, d: Decision) -> None:
    """Lifecycle passes are rare: their events and the monitor row are committed in one transaction
    before the caller hears back (read-your-writes for the API)."""
    rt.writer.write_critical(list(d.events), [record_of(d.monitor)])
    invalidate_accounts_quietly(rt, {e.account for e in d.events if e.critical})
    publisher = Recorder(rt).publisher
    for e in d.events:
        if needs_alert(e):
            publisher.alert(event_to_dict(e))


__all__ = ["Loaded", "create_monitor", "instruments", "remove_monitor"]
