"""Symbols the paper exchange lists: real USDT-linear perpetuals with real-looking filters, plus
any number of synthetic ones (`SYN0001USDT`, …) so that load tests can hold one position per symbol.

Filters are those Bybit showed for these symbols in 2024 (rounded where they drift); the start
prices are plausible, not live.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from core.models import Instrument
from exchange.paper.decimals import places

SETTLE_COIN = "USDT"
LAUNCH_TIME_MS = "1584230400000"


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    symbol: str
    base_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_mkt_qty: Decimal
    max_leverage: Decimal
    start_price: Decimal
    min_notional: Decimal = Decimal(5)
    max_price: Decimal | None = None  # default: 19999998 ticks (Bybit-like)

    @property
    def price_places(self) -> int:
        return places(self.tick_size)

    @property
    def qty_places(self) -> int:
        return places(self.qty_step)

    @property
    def min_price(self) -> Decimal:
        return self.tick_size

    @property
    def top_price(self) -> Decimal:
        return self.max_price if self.max_price is not None else self.tick_size * 19_999_998

    def to_core(self) -> Instrument:
        return Instrument(
            symbol=self.symbol,
            tick_size=self.tick_size,
            qty_step=self.qty_step,
            min_qty=self.min_qty,
            max_qty=self.max_qty,
            min_notional=self.min_notional,
            max_mkt_qty=self.max_mkt_qty,
        )


def _spec(
    symbol: str, tick: str, step: str, max_qty: str, max_mkt: str, lev: str, price: str
) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=symbol,
        base_coin=symbol[: -len(SETTLE_COIN)],
        tick_size=Decimal(tick),
        qty_step=Decimal(step),
        min_qty=Decimal(step),
        max_qty=Decimal(max_qty),
        max_mkt_qty=Decimal(max_mkt),
        max_leverage=Decimal(lev),
        start_price=Decimal(price),
    )


REAL_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _spec("BTCUSDT", "0.10", "0.001", "1190.000", "500.000", "100", "65000.00"),
    _spec("ETHUSDT", "0.01", "0.01", "7240.00", "2000.00", "100", "3500.00"),
    _spec("SOLUSDT", "0.010", "0.1", "79770.0", "16000.0", "100", "150.000"),
    _spec("XRPUSDT", "0.0001", "1", "2330000", "960000", "75", "0.5500"),
    _spec("DOGEUSDT", "0.00001", "1", "18180000", "2100000", "75", "0.15000"),
    _spec("ADAUSDT", "0.0001", "1", "2280000", "300000", "75", "0.4500"),
    _spec("LINKUSDT", "0.001", "0.1", "62400.0", "20000.0", "50", "14.000"),
    _spec("AVAXUSDT", "0.001", "0.1", "60630.0", "8000.0", "50", "35.000"),
    _spec("LTCUSDT", "0.01", "0.1", "33000.0", "4000.0", "50", "80.00"),
    _spec("BNBUSDT", "0.01", "0.01", "1440.00", "300.00", "75", "580.00"),
    _spec("DOTUSDT", "0.001", "0.1", "126000.0", "20000.0", "50", "7.000"),
    _spec("TRXUSDT", "0.00001", "1", "12000000", "1800000", "50", "0.12000"),
    _spec("ARBUSDT", "0.0001", "0.1", "1800000.0", "400000.0", "50", "1.0000"),
    _spec("1000PEPEUSDT", "0.0000001", "100", "370000000", "60000000", "50", "0.0120000"),
)


def synthetic_instruments(n: int) -> Iterator[InstrumentSpec]:
    """`n` synthetic symbols SYN0001USDT… (tick 0.01, step 0.01, start prices 50–499.9)."""
    if n < 0:
        raise ValueError(f"extra_symbols: must be >= 0, got {n}")
    width = max(4, len(str(n)))
    for i in range(1, n + 1):
        base = f"SYN{i:0{width}d}"
        price = Decimal(50) + Decimal((i * 7919) % 4500) / 10
        yield InstrumentSpec(
            symbol=f"{base}{SETTLE_COIN}",
            base_coin=base,
            tick_size=Decimal("0.01"),
            qty_step=Decimal("0.01"),
            min_qty=Decimal("0.01"),
            max_qty=Decimal("100000.00"),
            max_mkt_qty=Decimal("20000.00"),
            max_leverage=Decimal(50),
            start_price=f_price(price),
        )


def f_price(price: Decimal) -> Decimal:
    return price.quantize(Decimal("0.01"))


def default_instruments(extra_symbols: int = 0) -> list[InstrumentSpec]:
    """The real symbols followed by `extra_symbols` synthetic ones."""
    return [*REAL_INSTRUMENTS, *synthetic_instruments(extra_symbols)]
