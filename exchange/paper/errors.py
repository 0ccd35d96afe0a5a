"""Business errors of the paper exchange, carrying Bybit v5 retCodes and retMsg texts (as Bybit's
error-code list and the recorded answers in tests/fixtures/bybit/ show them).

A `PaperError` becomes an HTTP 200 envelope `{"retCode": code, "retMsg": message, "result": {}}`
(or a per-item `{"code", "msg"}` inside a batch answer). Messages never contain a secret.
"""

from __future__ import annotations

from decimal import Decimal

# retCodes used by the paper exchange
OK = 0
PARAMS = 10001
TIMESTAMP = 10002
API_KEY_INVALID = 10003
SIGN = 10004
RATE_LIMIT = 10006
ORDER_NOT_FOUND = 110001
INSUFFICIENT_BALANCE = 110007
TOO_MANY_CONDITIONAL = 110009
REDUCE_ONLY = 110017
TOO_MANY_ACTIVE = 110020
POSITION_EXISTS = 110024
MODE_NOT_MODIFIED = 110025
ORDERS_EXIST = 110028
LEVERAGE_NOT_MODIFIED = 110043
AMEND_BELOW_FILLED = 110064
DUPLICATE_LINK_ID = 110072
EXPECT_RISING = 110092
EXPECT_FALLING = 110093
MIN_NOTIONAL = 110094
NOT_MODIFIED = 34040


class PaperError(Exception):
    """A request the exchange refuses: `code` is the Bybit retCode, `message` its retMsg."""

    def __init__(self, code: int, message: str, *, http_status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status  # 200 for every business error; 401 for missing auth headers


def params_error(field: str, problem: str = "invalid") -> PaperError:
    """10001 naming the field, in Bybit's wording: `params error: side invalid`."""
    return PaperError(PARAMS, f"params error: {field} {problem}")


def e8(value: Decimal) -> int:
    """Bybit prints prices and quantities in some messages scaled by 1e8 (as integers)."""
    return int(value * 100_000_000)


def order_not_found(action: str) -> PaperError:
    """110001 for cancel ("cancel") or amend ("replace") of an unknown or closed order."""
    return PaperError(ORDER_NOT_FOUND, f"order not exists or too late to {action}")


def reduce_only_no_position() -> PaperError:
    return PaperError(REDUCE_ONLY, "current position is zero, cannot fix reduce-only order qty")


def reduce_only_not_satisfied() -> PaperError:
    return PaperError(REDUCE_ONLY, "Reduce-only rule not satisfied")


def expect_rising(trigger: Decimal, current: Decimal, trigger_by: str) -> PaperError:
    return PaperError(
        EXPECT_RISING,
        f"expect Rising, but trigger_price[{e8(trigger)}] <= current[{e8(current)}]??{trigger_by}",
    )


def expect_falling(trigger: Decimal, current: Decimal, trigger_by: str) -> PaperError:
    return PaperError(
        EXPECT_FALLING,
        f"expect Falling, but trigger_price[{e8(trigger)}] >= current[{e8(current)}]??{trigger_by}",
    )
