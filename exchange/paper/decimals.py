"""Decimal parsing and Bybit-style formatting (every number in a v5 `result` is a string)."""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation

from exchange.paper.errors import params_error

ZERO = Decimal(0)
_E8 = Decimal("0.00000001")
_WIDE = Context(prec=60)  # quantizing to 1e-8 must not run out of digits on large amounts


def to_decimal(value: object, field: str) -> Decimal:
    """A finite Decimal from a JSON number or a numeric string; 10001 naming `field` otherwise."""
    if isinstance(value, bool) or value is None:
        raise params_error(field)
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, float, str)):
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation:
            raise params_error(field) from None
    else:
        raise params_error(field)
    if not d.is_finite():
        raise params_error(field)
    return d


def places(step: Decimal) -> int:
    """Decimal places of a tick or qty step as written: 0.10 → 2, 0.001 → 3, 1 → 0."""
    exponent = step.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def on_step(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def fmt_fixed(value: Decimal, n_places: int) -> str:
    """`value` with exactly `n_places` decimals (prices at the tick's scale, qty at the step's)."""
    return f"{value:.{n_places}f}"


def fmt_amount(value: Decimal) -> str:
    """Money amounts (PnL, fees, balances, values): at most 8 decimals, no trailing zeros."""
    s = f"{value.quantize(_E8, context=_WIDE):f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        return "0"
    return s


def round8(value: Decimal) -> Decimal:
    """Amounts kept by the ledger are rounded to 1e-8 (Bybit's display precision)."""
    return value.quantize(_E8, context=_WIDE)
