"""One simulated run: a seed → scenario, price path, adversary and a person, driven pass by pass.

A pass is what a worker does for an account (workers/checker.py), with the adversary in between:
  time moves; creates still in the network may land; the person may act; the market moves;
  read (positions + open orders + look-ups of missing orders, maybe cut short);
  the market may move again (a fill between our read and our intents);
  step every monitor; send the intents (faults and races between calls); fold the answers back;
  check the invariants.
After `passes` adversarial passes come `settle` quiet ones (no faults, no person, the price held),
then the end-of-run invariants. Everything random comes from one `random.Random(seed)`.

`stop_mode` is the guard's `Policy.stop_mode`: "order" (a stop order of ours) or "position" (the
position's own Full-mode stop-loss through trading-stop). It draws nothing from the seed's RNG, so a
seed is the same scenario, market, adversary and person in both modes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from core.models import (
    Account,
    Decision,
    EntryLevel,
    Monitor,
    OrderRole,
    Plan,
    Secret,
    Side,
    TakeProfitLevel,
)
from core.plan import resolve_position_idx, validate_plan
from core.policy import Policy
from core.sizing import price_to_tick
from core.step import is_finished, open_monitor, step
from exchange.paper.commands import OrderRequest, TradingStopRequest
from exchange.paper.engine import PaperEngine
from workers.executor import send
from workers.lookups import look_up

from .invariants import Checker, Violation
from .port import Faults, SimPort
from .pushes import SimView

SYMBOL = "BTCUSDT"
P0 = Decimal("60000")
T0 = 1_800_000_000.0  # the simulated clock's start
KINDS = ("conservative", "fast", "adopted", "hedge", "mirror")
D = Decimal


@dataclass
class Result:
    seed: int
    kind: str
    passes: int
    violations: list[Violation]
    trace: list[str] = field(default_factory=list)
    stop_mode: str = "order"
    stats: dict[str, float] = field(default_factory=dict)  # writes, monitors, covered/uncovered time

    @property
    def ok(self) -> bool:
        return not self.violations


class World:
    def __init__(
        self,
        seed: int,
        *,
        passes: int = 150,
        settle: int = 15,
        kind: str | None = None,
        book: bool = False,
        stop_mode: str = "order",
    ) -> None:
        self.seed = seed
        self.book = book  # the trace shows the book (positions and our open orders) after every pass
        self.rng = random.Random(seed)
        self.kind = kind or self.rng.choice(KINDS)
        self.passes = passes
        self.settle = settle
        self.t = 1_800_000_000.0
        self.trace: list[str] = []
        self.engine = PaperEngine(clock=lambda: self.t)
        self.engine.set_prices({SYMBOL: P0})
        self.inst = None
        self.stop_mode = stop_mode
        # the simulated reads carry the price at the read (no shared ticker cache): price_max_age_s 0
        self.policy = Policy(stop_mode=stop_mode, price_max_age_s=0.0)
        self.faults = self._draw_faults()
        self.view = SimView(self.engine, seed)  # reads from the account's stream view
        self.port = SimPort(self.engine, self.rng, self.faults, self._race)
        self.inst = self.port.instruments()[SYMBOL]
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, str] = {}
        self.monitors: dict[str, Monitor] = {}  # live (scheduled)
        self.all_monitors: dict[str, Monitor] = {}  # every monitor ever, last saved state
        self.finished_at: dict[str, int] = {}
        self.checker = Checker(stop_mode)
        self.quiet: dict[str, bool] = {}  # per account: nothing executed since the guard's read
        self.person_p = self.rng.choice((0.0, 0.01, 0.03))
        self.adversarial = True
        self.person_acted = False
        self.rounds = 0
        self.owner: dict[tuple[str, str, int], str] = {}  # the newest monitor of each position
        self.traded: set[tuple[str, int]] = set()  # (account, positionIdx) the person ever traded

    # ------------------------------------------------------------------------------------ set-up

    def _draw_faults(self) -> Faults:
        r = self.rng
        if r.random() < 0.15:
            return Faults.quiet()
        return Faults(
            backoff=r.choice((0.0, 0.02, 0.05)),
            timeout_done=r.choice((0.0, 0.03, 0.08)),
            timeout_lost=r.choice((0.0, 0.03, 0.08)),
            timeout_late=r.choice((0.0, 0.03, 0.08)),
            reject=r.choice((0.0, 0.01, 0.03)),
            race=r.choice((0.0, 0.1, 0.3)),
            lookup_cut=r.choice((0.0, 0.2, 0.5)),
            list_lag=r.choice((0.0, 0.0, 0.2)),
        )

    def _account(self, name: str, *, hedge: bool = False) -> Account:
        key = f"{name}-key"
        self.engine.create_account(
            key, f"{name}-secret", balance="10000000", hedge_mode=hedge, account_id=name
        )
        acct = Account(name, "paper://", Secret(key), Secret(f"{name}-secret"))
        self.accounts[name] = acct
        self.keys[name] = key
        return acct

    def paper(self, account: str) -> Any:
        return self.engine.account(self.keys[account])

    def recent_monitors(self) -> list[Monitor]:
        """Live monitors and those finished in the last passes (a late create could still land)."""
        now = self.checker.passno
        return [m for mid, m in self.all_monitors.items() if self.finished_at.get(mid, now) >= now - 10]

    def _px(self, frac: float) -> Decimal:
        return price_to_tick(self.engine.markets[SYMBOL].last * D(str(round(1 + frac, 5))), self.inst)

    def _plan(self, side: Side, *, kind: str, position_idx: int = 0, adopt: bool = False) -> Plan:
        r = self.rng
        s = side.sign
        if kind == "fast":
            entries: tuple[EntryLevel, ...] = (EntryLevel(D(r.choice(("0.010", "0.020", "0.035")))),)
        elif adopt:
            entries = ()
        else:
            n = r.randint(1, 3)
            entries = tuple(
                EntryLevel(D(r.choice(("0.005", "0.010", "0.015"))), self._px(-s * (0.002 + 0.007 * i)))
                for i in range(n)
            )
        ntp = r.randint(1, 4)
        fracs = [D(r.choice(("0.02", "0.1", "0.25", "0.5"))) for _ in range(ntp - 1)]
        while sum(fracs, D(0)) >= 1:
            fracs = [f / 2 for f in fracs]
        fracs.append(D(1) - sum(fracs, D(0)))
        tps = tuple(TakeProfitLevel(self._px(s * (0.015 + 0.012 * i)), f) for i, f in enumerate(fracs))
        plan = Plan(
            symbol=SYMBOL,
            side=side,
            entries=entries,
            take_profits=tps,
            stop_loss=self._px(-s * r.choice((0.025, 0.035, 0.045))),
            breakeven_after=r.choice((1, 1, min(2, ntp), None)),
            adopt=adopt,
            position_idx=position_idx,
            entry_time_limit_s=r.choice((None, None, 20.0, 90.0))
            if entries and all(e.price is not None for e in entries)
            else None,
        )
        validate_plan(plan, self.inst, mark_price=self.engine.markets[SYMBOL].mark)
        return plan

    def setup(self) -> None:
        if self.kind == "hedge":
            self._account("main", hedge=True)
        else:
            self._account("main")
        if self.kind == "mirror":
            self._account("mirror")
        self._round()

    def _round(self) -> None:
        """A new set of monitors of the run's kind (the run goes on when the last one finished)."""
        r = self.rng
        kind = self.kind
        self.rounds += 1
        tag = f"{self.rounds:05d}"
        self._flatten()
        side = r.choice((Side.BUY, Side.SELL))
        if kind == "hedge":
            # plans name their positionIdx, or leave it out and are fitted to the account's mode
            for side, name in ((Side.BUY, "hlong"), (Side.SELL, "hshrt")):
                idx = r.choice((0, 1 if side is Side.BUY else 2))
                plan, _ = resolve_position_idx(
                    self._plan(side, kind="conservative", position_idx=idx),
                    hedge=self.port.hedge_mode(self.accounts["main"], SYMBOL),
                )
                self._open("main", plan, f"{name}{tag}")
            return
        if kind == "adopted":
            qty = D(r.choice(("0.010", "0.030", "0.050")))
            self._person_order("main", side, qty, reduce=False)
            self._open("main", self._plan(side, kind="adopted", adopt=True), f"adopt{tag}")
            return
        plan = self._plan(side, kind="fast" if kind == "fast" else "conservative")
        main = self._open("main", plan, f"mmain{tag}")
        if kind == "mirror":
            from core.mirror import mirror_plan

            mplan = mirror_plan(plan, D("0.5"), self.inst)
            if mplan is not None:
                self._open("mirror", mplan, f"mmirr{tag}", mirror_of=main.id)

    def _flatten(self) -> None:
        """Before a new round the person closes whatever is left open (a flipped position, say)."""
        for name in self.accounts:
            acct = self.paper(name)
            for (_sym, idx), p in list(acct.positions.items()):
                if p.size > 0 and p.side is not None:
                    self._person_order(name, p.side.opposite, p.size, reduce=True, idx=idx)

    def _open(self, account: str, plan: Plan, mid: str, *, mirror_of: str | None = None) -> Monitor:
        snap = self._read(account, [], rest=True)
        d = open_monitor(mid, account, plan, snap, self.t, self.policy, mirror_of=mirror_of)
        self.owner[(account, plan.symbol, plan.position_idx)] = mid
        self.trace.append(f"open {mid} on {account}: {plan}")
        return self._apply(account, None, d)

    # ----------------------------------------------------------------------------------- market

    def _move(self, frac: Decimal, *, mark_off: Decimal | None = None, cap: Decimal | None = None) -> None:
        m = self.engine.markets[SYMBOL]
        last = m.last * (1 + frac)
        last = min(max(last, P0 * D("0.85")), P0 * D("1.15"))
        marks = {SYMBOL: last * (1 + mark_off)} if mark_off else None
        fills = self.engine.set_prices(
            {SYMBOL: last}, marks, max_fill={SYMBOL: cap} if cap is not None else None
        )
        if fills:
            self.trace.append(f"  market {m.last} (mark {m.mark}): {len(fills)} fills")

    def _market_step(self) -> None:
        r = self.rng
        x = r.random()
        m = self.engine.markets[SYMBOL]
        if x < 0.45:
            frac = D(str(round(r.uniform(-0.004, 0.004), 5)))
        elif x < 0.62:
            frac = D(str(round(r.choice((-1, 1)) * r.uniform(0.01, 0.04), 5)))
        elif x < 0.77:
            frac = (P0 - m.last) / m.last * D(str(round(r.uniform(0.3, 0.7), 3)))
        else:
            return
        mark_off = D(str(round(r.uniform(-0.006, 0.006), 5))) if r.random() < 0.15 else None
        cap = D(r.choice(("0.001", "0.002", "0.004"))) if r.random() < 0.1 else None
        self._move(frac, mark_off=mark_off, cap=cap)

    def _race(self) -> None:
        """The market moves while the guard is between its read and its writes."""
        frac = D(str(round(self.rng.uniform(-0.015, 0.015), 5)))
        self.trace.append(f"  race: market moves {frac}")
        self._move(frac)

    # ----------------------------------------------------------------------------------- person

    def _person_order(self, account: str, side: Side, qty: Decimal, *, reduce: bool, idx: int = 0) -> None:
        self.traded.add((account, idx))
        try:
            self.engine.place_order(
                self.paper(account),
                OrderRequest(
                    symbol=SYMBOL,
                    side=side,
                    order_type="Market",
                    qty=qty,
                    reduce_only=reduce,
                    position_idx=idx,
                ),
            )
        except Exception as e:  # a refusal is the person's problem
            self.trace.append(f"  person's order refused: {e}")

    def _person(self) -> None:
        if not self.monitors or self.rng.random() >= self.person_p:
            return
        m = self.rng.choice(sorted(self.monitors.values(), key=lambda x: x.id))
        if m.mirror_of:
            return
        acct = self.paper(m.account)
        pos = acct.positions.get((SYMBOL, m.plan.position_idx))
        size = pos.size if pos is not None and pos.side is m.plan.side else D(0)
        act = self.rng.choice(("cancel_stop", "cancel_tp", "add", "close", "flip"))
        self.trace.append(f"  person: {act} on {m.id} (position {size})")
        self.person_acted = True
        if act == "cancel_stop" and self.stop_mode == "position":
            try:  # the position's own stop removed by hand
                self.engine.set_trading_stop(
                    acct, TradingStopRequest(SYMBOL, m.plan.position_idx, stop_loss=D(0))
                )
            except Exception:
                pass
        elif act in ("cancel_stop", "cancel_tp"):
            role = OrderRole.SL if act == "cancel_stop" else OrderRole.TP
            live = [o for o in m.orders if o.role is role and o.status.live]
            if live:
                o = self.rng.choice(live)
                try:
                    self.engine.cancel_order(acct, SYMBOL, link_id=o.link_id)
                except Exception:
                    pass
        elif act == "add":
            self._person_order(m.account, m.plan.side, D("0.005"), reduce=False, idx=m.plan.position_idx)
        elif act == "close" and size > 0:
            self._person_order(m.account, m.plan.side.opposite, size, reduce=True, idx=m.plan.position_idx)
        elif act == "flip" and size > 0 and m.plan.position_idx == 0:
            self._person_order(m.account, m.plan.side.opposite, size * 2, reduce=False)

    # ------------------------------------------------------------------------------------ guard

    def _read(self, account: str, monitors: list[Monitor], *, rest: bool = False) -> Any:
        acct = self.accounts[account]
        snap = self.port.snapshot(acct)
        if not rest and self.view.serves(account, monitors, self.t):
            snap, stale = self.view.pushed(snap, self.t)
            if stale:
                self.port.ledger.faulted_accounts.add(account)  # a push lost: the exchange failed us
        else:
            self.view.reconcile(account, self.paper(account), self.t)
        snap = replace(snap, tickers=self.port.ticker_of(SYMBOL))
        return look_up(acct, self.port, snap, monitors, self.policy)  # as a worker's check does

    def _apply(self, account: str, before: Monitor | None, d: Decision) -> Monitor:
        acct = self.accounts[account]
        self.checker.on_intents(before or d.monitor, d.intents)
        if d.intents:
            self.trace.append(f"  {d.monitor.id} intents: " + "; ".join(_short(i) for i in d.intents))
        sent, outcomes = send(self.port, acct, d, lambda: self.t)
        extra = sent.intents[len(d.intents) :]
        if extra:
            self.checker.on_intents(d.monitor, extra)
            self.trace.append(f"  {d.monitor.id} follow-up: " + "; ".join(_short(i) for i in extra))
        self.checker.on_outcomes(d.monitor, outcomes)
        for intent, res in outcomes:
            if not res.ok:
                self.trace.append(f"    {intent.link_id}: {res.error} {res.message}")
        final, events = sent.monitor, list(sent.events)
        for e in events:
            self.trace.append(f"  event {e.monitor_id} {e.kind.value} {dict(e.payload)}")
        self.checker.on_events(events)
        self.checker.on_hand_changes(events, (account, final.plan.position_idx) in self.traded)
        self.checker.on_saved(final)
        self.all_monitors[final.id] = final
        if is_finished(final):
            self.monitors.pop(final.id, None)
            self.finished_at.setdefault(final.id, self.checker.passno)
            self.trace.append(f"  {final.id} finished: {final.closed_reason}")
        else:
            self.monitors[final.id] = final
        return final

    def _check_account(self, account: str) -> None:
        live = sorted((m for m in self.monitors.values() if m.account == account), key=lambda m: m.id)
        if not live:
            return
        snap = self._read(account, live)
        mark = self._executions()
        self.quiet[account] = not self.person_acted
        if self.adversarial and self.rng.random() < self.faults.race:
            self._race()
        leaders = self.all_monitors
        for m in live:
            leader = leaders.get(m.mirror_of) if m.mirror_of else None
            d = step(m, snap, self.t, self.policy, leader=leader)
            self._apply(account, m, d)
        if self._executions() != mark:
            self.quiet[account] = False

    def _set_clock(self, t: float) -> None:
        self.t = t

    def _executions(self) -> int:
        return sum(len(self.paper(a).executions) for a in self.accounts)

    def _pass(self) -> None:
        self.checker.passno += 1
        dt = self.rng.choice((0.5, 1.0, 2.0, 2.0, 5.0))
        self.t += dt
        self.checker.dt = dt
        self.port.ledger.faulted_accounts.clear()
        self.view.new_pass()
        self.person_acted = False
        self.port.land_late(self.t, self._set_clock)
        if self.adversarial and not self.monitors:
            self._round()
        if self.adversarial:
            self._person()
            self._market_step()
        self.trace.append(
            f"pass {self.checker.passno} t={self.t - T0:.1f} last={self.engine.markets[SYMBOL].last}"
        )
        self.view.new_pass()  # the checks' reads begin (a round's opening read came before)
        for account in sorted(self.accounts):
            self._check_account(account)
        for wrong in self.port.ledger.wrong_reuse:
            self.checker.fail("link_id_integrity", "-", wrong)
        self.port.ledger.wrong_reuse.clear()
        self.trace.extend(self.port.ledger.log)
        self.port.ledger.log.clear()
        self.checker.after_pass(self, set(self.port.ledger.faulted_accounts))
        if self.book:
            self._trace_book()

    def _trace_book(self) -> None:
        for name in sorted(self.accounts):
            acct = self.paper(name)
            pos = [
                f"idx{idx} {p.side.value if p.side else '-'} {p.size}"
                + (f" sl {p.stop_loss}" if p.stop_loss else "")
                for (_, idx), p in acct.positions.items()
            ]
            orders = [
                f"{o.link_id} {o.qty}@{o.trigger_price or o.price} filled {o.cum_qty}"
                for o in acct.open_orders.newest_first()
            ]
            self.trace.append(f"  book {name}: positions [{', '.join(pos)}] open [{'; '.join(orders)}]")

    def run(self) -> Result:
        try:
            self._run()
        except Exception:
            import traceback

            self.checker.fail("no_crash", "-", traceback.format_exc())
        stats = dict(self.checker.stats)
        stats["writes"] = float(sum(self.port.ledger.writes.values()))
        for what, n in self.port.ledger.writes.items():
            stats[f"writes_{what}"] = float(n)
        stats["monitors"] = float(len(self.all_monitors))
        stats["stops_unchanged"] = float(self.port.ledger.stops_unchanged)
        stats["position_pushes"] = float(self.view.pushes)
        stats["position_pushes_lost"] = float(self.view.lost_pushes)
        stats["order_pushes"] = float(self.view.order_pushes)
        stats["order_pushes_lost"] = float(self.view.lost_order_pushes)
        stats["reads"] = float(self.view.reads)
        stats["pushed_reads"] = float(self.view.pushed_reads)
        return Result(
            self.seed,
            self.kind,
            self.checker.passno,
            self.checker.violations,
            self.trace,
            self.stop_mode,
            stats,
        )

    def _run(self) -> None:
        self.setup()
        for _ in range(self.passes):
            self._pass()
        self.adversarial = False
        self.port.faults = Faults.quiet()
        self.view.quiet()
        self.t += 10.0  # creates still in the network land (each at its own time, within the window)
        for _ in range(self.settle):
            self._pass()
        self.checker.at_end(self)


def _short(i: Any) -> str:
    name = type(i).__name__.replace("Order", "")
    parts = [name, i.link_id]
    for f in ("order_type", "qty", "price", "trigger_price"):
        v = getattr(i, f, None)
        if v is not None:
            parts.append(f"{f}={v}")
    return " ".join(parts)


def run_seed(
    seed: int,
    *,
    passes: int = 150,
    settle: int = 15,
    kind: str | None = None,
    book: bool = False,
    stop_mode: str = "order",
) -> Result:
    return World(seed, passes=passes, settle=settle, kind=kind, book=book, stop_mode=stop_mode).run()


__all__ = ["KINDS", "Result", "World", "run_seed"]
