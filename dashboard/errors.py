"""Every error the dashboard answers has one shape: `{"error": {"code", "message", "field"}}`.

The core error tree says what the caller must do; this module turns it into a status:

| raised                                   | status | code               |
|------------------------------------------|--------|--------------------|
| FixInput (bad plan, unknown account, …)  | 422    | invalid            |
| body that is not JSON / too large        | 400/413| bad_json/too_large |
| FastAPI's own parameter validation       | 422    | invalid            |
| NotFound / unknown monitor or route      | 404    | not_found          |
| monitor already closed                   | 409    | closed             |
| RetryLater, ExchangeDown, BackOff        | 503    | retry_later/exchange_down/rate_limited (+ Retry-After) |
| StopAndAlert (credentials refused)       | 502    | exchange_refused   |
| InvalidOrder                             | 422    | invalid_order      |
| missing or wrong bearer token            | 401    | unauthorized       |
| anything else                            | 500    | internal (logged; no detail leaves) |

Messages never carry a secret: core errors are written without credentials, and anything unexpected
is answered with a fixed text (the exception goes to the log, through the redaction filter).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import BackOff, ExchangeDown, FixInput, InvalidOrder, NotFound, RetryLater, StopAndAlert
from dashboard.responses import JSONBytes
from readmodel.errors import ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2  # Retry-After for a busy account or a passing exchange failure, seconds


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONBytes:
    return JSONBytes(error_body(code, message, field), status_code=status, headers=headers)


def api_error_for(exc: Exception, *, now: float | None = None) -> ApiError:
    """The ApiError of a core error (anything else: 500 internal)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, FixInput):
        return ApiError(422, "invalid", exc.problem, exc.field)
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.message or "not found", "id")
    if isinstance(exc, BackOff):
        wait = max(1, math.ceil(exc.until - (time.time() if now is None else now)))
        return ApiError(
            503,
            "rate_limited",
            "the exchange rate limit is spent; retry later",
            None,
            {"Retry-After": str(wait)},
        )
    if isinstance(exc, ExchangeDown):
        return ApiError(
            503, "exchange_down", exc.message or "the exchange is unavailable", None, _retry_after()
        )
    if isinstance(exc, RetryLater):
        return ApiError(503, "retry_later", exc.message or "busy; retry later", None, _retry_after())
    if isinstance(exc, StopAndAlert):
        return ApiError(502, "exchange_refused", exc.message or "the exchange refused the credentials")
    if isinstance(exc, InvalidOrder):
        return ApiError(422, "invalid_order", exc.message or "the exchange refused the order")
    return ApiError(500, "internal", "internal error (logged)")


def _retry_after() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}


def _loc_field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    if not parts:
        return None
    out = str(parts[0])
    for p in parts[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONBytes:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONBytes:
        errors = exc.errors()
        first = errors[0] if errors else {}
        field = _loc_field(first.get("loc", ()))
        message = str(first.get("msg", "invalid input"))
        return error_response(422, "invalid", message, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONBytes:
        code = _STATUS_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, detail, None, getattr(exc, "headers", None))

    for kind in (FixInput, NotFound, RetryLater, BackOff, StopAndAlert, InvalidOrder):

        async def _core(_: Request, exc: Exception) -> JSONBytes:
            err = api_error_for(exc)
            return error_response(err.status, err.code, err.message, err.field, err.headers)

        app.add_exception_handler(kind, _core)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONBytes:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
        return error_response(500, "internal", "internal error (logged)")
