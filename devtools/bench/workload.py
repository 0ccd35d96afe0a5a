"""The benchmark's workload: accounts, one plan per (account, symbol), and a price script per symbol.

Pure and seeded: the same `--seed` gives the same plans and the same prices, so both profiles see
the same market. Every symbol has a fate that its price script walks it into, so monitors pass
through every tier and reach take-profits, breakevens, stop-losses and closes during the run:

| fate     | share | long path (a short is mirrored)                          | expected end    |
|----------|-------|----------------------------------------------------------|-----------------|
| tp_all   | 35 %  | down through the entries, then up through every TP       | tp_complete     |
| stop     | 20 %  | down through the entries, then through the stop          | stop_loss       |
| be_stop  | 20 %  | through the entries, up to TP1, back below breakeven     | breakeven_stop (*) |
| hover    | 25 %  | wanders ±0.4 % around the start (near entries: critical) | still open      |

(*) a `fast` plan (one TP at +1.5 %, no breakeven) never reaches its TP on this path and stays open.

Accounts: `main1 … main{A-1}` and `mirror1` (a mirror of main1 at ratio 0.5); with A = 1, one main.
The monitor count N includes the mirror monitors: N/A per account.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

MIRROR_RATIO = Decimal("0.5")
FATES = (("tp_all", 0.35), ("stop", 0.20), ("be_stop", 0.20), ("hover", 0.25))
NOTIONAL_USDT = Decimal(120)  # per entry level, so a mirror at 0.5 stays over the minimums

# waypoints (fraction of the run, price change vs start) of a long; shorts negate the change
PATHS: dict[str, tuple[tuple[float, float], ...]] = {
    "tp_all": (
        (0.0, 0.0),
        (0.12, -0.014),
        (0.30, 0.011),
        (0.45, 0.016),
        (0.60, 0.021),
        (0.75, 0.026),
        (1.0, 0.027),
    ),
    "stop": ((0.0, 0.0), (0.15, -0.014), (0.40, -0.027), (1.0, -0.028)),
    "be_stop": ((0.0, 0.0), (0.12, -0.014), (0.35, 0.011), (0.60, -0.010), (1.0, -0.011)),
    "hover": ((0.0, 0.0), (0.25, -0.004), (0.5, 0.004), (0.75, -0.004), (1.0, 0.0)),
}


@dataclass(frozen=True, slots=True)
class AccountSpec:
    id: str
    mirror_of: str | None = None


@dataclass(frozen=True, slots=True)
class SymbolScript:
    symbol: str
    start: Decimal
    tick: Decimal
    side: str  # Buy | Sell: every account trades it the same way, so the script hits its plans
    kind: str  # conservative | fast
    fate: str
    phase: float  # a per-symbol shift of the hover wave, so symbols do not move in lockstep

    def price_at(self, fraction: float) -> Decimal:
        """The scripted price at `fraction` (0..1) of the run, on the tick."""
        pts = PATHS[self.fate]
        f = min(max(fraction, 0.0), 1.0)
        for (f0, c0), (f1, c1) in itertools.pairwise(pts):
            if f <= f1:
                change = c0 + (c1 - c0) * ((f - f0) / (f1 - f0) if f1 > f0 else 1.0)
                break
        else:
            change = pts[-1][1]
        if self.fate == "hover":
            change = 0.004 * math.sin(2 * math.pi * (2 * f + self.phase))
        sign = 1 if self.side == "Buy" else -1
        raw = self.start * (1 + Decimal(str(round(sign * change, 6))))
        return (raw / self.tick).to_integral_value() * self.tick


@dataclass(frozen=True, slots=True)
class Workload:
    accounts: tuple[AccountSpec, ...]
    per_account: int  # monitors per account (main accounts create them, the mirror follows main1)
    scripts: tuple[SymbolScript, ...]

    @property
    def mains(self) -> list[AccountSpec]:
        return [a for a in self.accounts if a.mirror_of is None]

    @property
    def monitors(self) -> int:
        return self.per_account * len(self.accounts)

    def plan(self, account: str, script: SymbolScript) -> dict[str, Any]:
        """The pinned request shape for one monitor of `account` on the script's symbol."""
        return plan_for(account, script, mirror=account == self.mains[0].id and len(self.accounts) > 1)

    def prices_at(self, fraction: float) -> dict[str, str]:
        return {s.symbol: str(s.price_at(fraction)) for s in self.scripts}

    def expected_end(self, script: SymbolScript) -> str | None:
        """The close reason the script drives its plans into; None: still open at the end."""
        if script.fate == "be_stop" and script.kind == "fast":
            return None  # its single TP (+1.5 %) is above the be_stop peak (+1.1 %): no TP1, no breakeven
        return {"tp_all": "tp_complete", "stop": "stop_loss", "be_stop": "breakeven_stop"}.get(script.fate)


def build(*, monitors: int, accounts: int, seed: int, instruments: list[Any]) -> Workload:
    """`instruments`: the paper exchange's synthetic InstrumentSpecs (symbol, start_price, tick_size,
    qty_step); one is used per monitor of an account."""
    if accounts < 1:
        raise ValueError("accounts: at least 1")
    per = max(1, monitors // accounts)
    if len(instruments) < per:
        raise ValueError(
            f"{per} monitors per account need {per} symbols, the exchange has {len(instruments)}"
        )
    rng = random.Random(seed)
    mains = [AccountSpec(f"main{i}") for i in range(1, max(accounts, 2))]
    specs = [*mains, AccountSpec("mirror1", mirror_of="main1")] if accounts > 1 else mains
    scripts = []
    for inst in instruments[:per]:
        fate = rng.choices([f for f, _ in FATES], weights=[w for _, w in FATES])[0]
        scripts.append(
            SymbolScript(
                symbol=inst.symbol,
                start=Decimal(str(inst.start_price)),
                tick=Decimal(str(inst.tick_size)),
                side=rng.choice(["Buy", "Sell"]),
                kind=rng.choice(["conservative", "conservative", "fast"]),
                fate=fate,
                phase=rng.random(),
            )
        )
    return Workload(tuple(specs), per, tuple(scripts))


def _q(value: Decimal, step: Decimal) -> str:
    return str((value / step).to_integral_value(rounding=ROUND_DOWN) * step)


def plan_for(
    account: str, s: SymbolScript, *, mirror: bool, qty_step: Decimal = Decimal("0.01")
) -> dict[str, Any]:
    sign = Decimal(1 if s.side == "Buy" else -1)

    def px(change: str) -> str:
        return str(((s.start * (1 + sign * Decimal(change))) / s.tick).to_integral_value() * s.tick)

    qty = max(Decimal(_q(NOTIONAL_USDT / s.start, qty_step)), qty_step * 4)
    plan: dict[str, Any] = {
        "account": account,
        "symbol": s.symbol,
        "side": s.side,
        "mirror": mirror,
        "stop_loss": px("-0.022"),
    }
    if s.kind == "fast":
        plan.update(
            preset="fast",
            entries={"type": "market", "qty": str(qty * 3)},
            take_profits=[{"price": px("0.015"), "fraction": "1"}],
        )
    else:
        plan.update(
            preset="conservative",
            entries=[{"price": px(c), "qty": str(qty)} for c in ("-0.003", "-0.008", "-0.012")],
            take_profits=[
                {"price": px(c), "fraction": f}
                for c, f in (("0.010", "0.85"), ("0.015", "0.05"), ("0.020", "0.05"), ("0.025", "0.05"))
            ],
            breakeven_after=1,
        )
    return plan
