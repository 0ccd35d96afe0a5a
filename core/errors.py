"""One error tree, named by what the caller must do.

Vendor errors (HTTP statuses, Bybit retCodes) are translated into these in exactly one place:
`exchange.bybit.errors.map_error`. Nothing else reads a retCode.
"""

from __future__ import annotations

from core.models import ErrorKind


class TpslError(Exception):
    """Base of every error tpsl-guard raises on purpose."""

    kind: ErrorKind = ErrorKind.RETRY_LATER

    def __init__(self, message: str = "", *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the vendor code, kept for the logs (never a secret)


class RetryLater(TpslError):
    """Transient (timeout, connection reset, 5xx, clock skew): the same call may succeed later."""

    kind = ErrorKind.RETRY_LATER


class ExchangeDown(RetryLater):
    """The exchange is unavailable (maintenance, repeated 5xx): retry later, alert if it lasts."""

    kind = ErrorKind.EXCHANGE_DOWN


class BackOff(TpslError):
    """Rate limited: send nothing to this account/endpoint group before `until` (epoch seconds)."""

    kind = ErrorKind.BACK_OFF

    def __init__(self, message: str = "", *, until: float, code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.until = until


class InvalidOrder(TpslError):
    """The exchange refused this order as it stands: do not retry it unchanged."""

    kind = ErrorKind.INVALID_ORDER


class TriggerPassed(InvalidOrder):
    """A conditional order was refused because the price is already through its trigger: for a stop,
    close at market instead."""

    kind = ErrorKind.TRIGGER_PASSED


class NoPosition(InvalidOrder):
    """A position's own stop was refused because the position is flat (zero size): nothing to
    protect; the next read settles what happened to it."""

    kind = ErrorKind.NO_POSITION


class NotFound(TpslError):
    """The order (or position) does not exist (any more)."""

    kind = ErrorKind.NOT_FOUND


class Duplicate(TpslError):
    """The orderLinkId was used already: the earlier attempt went through."""

    kind = ErrorKind.DUPLICATE


class StopAndAlert(TpslError):
    """Credentials or permissions are wrong: stop using the account and alert the operator."""

    kind = ErrorKind.STOP_AND_ALERT


class FixInput(TpslError, ValueError):
    """Bad input from a person or a file: says which field and what is wrong with it."""

    kind = ErrorKind.FIX_INPUT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PlanInvalid(FixInput):
    """A plan broke a rule; nothing was placed."""


ERROR_FOR_KIND: dict[ErrorKind, type[TpslError]] = {
    ErrorKind.RETRY_LATER: RetryLater,
    ErrorKind.EXCHANGE_DOWN: ExchangeDown,
    ErrorKind.BACK_OFF: BackOff,
    ErrorKind.INVALID_ORDER: InvalidOrder,
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.DUPLICATE: Duplicate,
    ErrorKind.STOP_AND_ALERT: StopAndAlert,
    ErrorKind.FIX_INPUT: FixInput,
    ErrorKind.TRIGGER_PASSED: TriggerPassed,
    ErrorKind.NO_POSITION: NoPosition,
}


class InternalError(TpslError):
    """A bug or corrupt stored state (a Redis value that does not decode, a re-check that fails):
    not bad input from a person, so nothing for them to fix. Alert the operator; never retried as-is.
    `FixInput` is for people and files; this is for everything else."""

    kind = ErrorKind.INTERNAL
