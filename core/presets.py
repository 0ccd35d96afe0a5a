"""Plan presets: named defaults that fill in what a monitor request leaves out.

A preset never overrides anything the request gives explicitly; it only fills gaps. What each preset
fills, exactly:

``conservative``
    * take-profit fractions 0.85 / 0.05 / 0.05 / 0.05, when the request gives its take-profits as
      prices without fractions (a list of prices, or objects without ``"fraction"``). The request
      must then give exactly 4 take-profit prices.
    * ``breakeven_after`` = 1 (the stop moves to breakeven once TP1 has filled), when the request
      leaves the key out (an explicit ``null`` still means "never").
    * entries, when the request gives ``entry_price`` + ``qty`` instead of ``entries``: 3 limit
      entries at ``entry_price`` and at 0.5 % and 1.0 % further away in the loss direction (below for
      a long, above for a short), each rounded to the tick *in the loss direction* (so a coarse tick
      never pulls a deeper entry nearer to the market than its offset says). ``qty`` is split into 3
      equal parts rounded down to qtyStep; the rounding remainder goes on the first (nearest) entry.
      With explicit ``entries`` the preset supplies only fractions and ``breakeven_after``.

``fast``
    * one market entry of ``qty``, when the request gives ``qty`` without ``entries`` (giving
      ``entry_price`` with this preset is an error: it enters at market).
    * one take-profit of 100 % (fraction 1), when the request gives a single take-profit price
      without a fraction. The request must then give exactly 1 take-profit price.
    * ``breakeven_after`` = 1, when the request leaves the key out.

The plan records the preset's name (``Plan.preset``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from core.errors import PlanInvalid
from core.models import EntryLevel, Instrument, Side
from core.sizing import price_to_tick, qty_down


class EntryLayout(StrEnum):
    LIMIT_LADDER = "limit_ladder"  # limit entries at entry_price and offsets in the loss direction
    MARKET = "market"  # one market entry


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    summary: str
    entry_layout: EntryLayout
    ladder_offsets: tuple[Decimal, ...]  # LIMIT_LADDER: distance of each entry from entry_price, fraction
    tp_fractions: tuple[Decimal, ...]  # sum to exactly 1
    breakeven_after: int | None

    @property
    def fractions_text(self) -> str:
        return "/".join(f"{(f * 100).normalize():f}" for f in self.tp_fractions)


CONSERVATIVE = Preset(
    name="conservative",
    summary="3 limit entries (at entry_price, -0.5 %, -1.0 %), TP 85/5/5/5, breakeven after TP1",
    entry_layout=EntryLayout.LIMIT_LADDER,
    ladder_offsets=(Decimal(0), Decimal("0.005"), Decimal("0.010")),
    tp_fractions=(Decimal("0.85"), Decimal("0.05"), Decimal("0.05"), Decimal("0.05")),
    breakeven_after=1,
)

FAST = Preset(
    name="fast",
    summary="market entry of qty, one TP of 100 %, breakeven after TP1",
    entry_layout=EntryLayout.MARKET,
    ladder_offsets=(),
    tp_fractions=(Decimal(1),),
    breakeven_after=1,
)

PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (CONSERVATIVE, FAST)})


def get_preset(name: str) -> Preset:
    """The preset called `name`; PlanInvalid("preset", …) if there is none."""
    preset = PRESETS.get(name)
    if preset is None:
        known = ", ".join(PRESETS)
        raise PlanInvalid("preset", f"unknown preset {name!r} (known: {known})")
    return preset


def split_equal(qty: Decimal, parts: int, instrument: Instrument) -> list[Decimal]:
    """`qty` in `parts` equal parts rounded down to qtyStep, the remainder on the first part.
    The parts sum to exactly `qty` when `qty` is on the qtyStep grid."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    part = qty_down(qty / parts, instrument)
    first = qty - part * (parts - 1)
    return [qty_down(first, instrument), *([part] * (parts - 1))]


def lay_out_entries(
    preset: Preset,
    side: Side,
    entry_price: Decimal | None,
    qty: Decimal,
    instrument: Instrument,
) -> tuple[EntryLevel, ...]:
    """The entries a preset lays out from a single `entry_price` (None: not given) and `qty`
    (both already parsed: positive and on their grids). Raises PlanInvalid naming `entry_price` or
    `qty` when the preset cannot use them; the caller still checks every entry against the plan rules."""
    if preset.entry_layout is EntryLayout.MARKET:
        if entry_price is not None:
            raise PlanInvalid(
                "entry_price",
                f"the {preset.name} preset enters at market: leave out entry_price "
                f"(got {entry_price}) or give entries",
            )
        return (EntryLevel(qty=qty),)

    if entry_price is None:
        raise PlanInvalid("entry_price", f"required with qty by the {preset.name} preset (or give entries)")
    n = len(preset.ladder_offsets)
    quantities = split_equal(qty, n, instrument)
    if quantities[-1] < instrument.min_qty:
        raise PlanInvalid(
            "qty",
            f"the {preset.name} preset splits qty {qty} into {n} entries of {quantities[-1]}, under "
            f"minOrderQty {instrument.min_qty}: give at least {instrument.min_qty * n}",
        )
    mode = "down" if side is Side.BUY else "up"  # away from the market, in the loss direction
    prices = [
        price_to_tick(entry_price * (1 - side.sign * offset), instrument, mode=mode)
        for offset in preset.ladder_offsets
    ]
    if len(set(prices)) != len(prices):
        shown = ", ".join(str(p) for p in prices)
        raise PlanInvalid(
            "entry_price",
            f"the {preset.name} preset needs {n} distinct entry prices; {entry_price} on tick "
            f"{instrument.tick_size} gives {shown}: give entries explicitly",
        )
    return tuple(EntryLevel(qty=q, price=p) for q, p in zip(quantities, prices, strict=True))
