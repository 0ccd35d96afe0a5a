"""The JSON API (docs/dashboard.md, "JSON API"; plans as in the README's "Plans"). Every handler
is a plain function (FastAPI runs it in its thread pool): Redis, the database and the exchange are
called synchronously, through `DashboardData` and its cache.

    GET    /api/health                      no auth; Redis and the database: 200 or 503
    GET    /api/monitors                    {"monitors": [view…]}
                                            ?status=all|open|closed&account&limit&offset
    POST   /api/monitors                    201 view  (Idempotency-Key header: same key, same monitor)
    GET    /api/monitors/{id}               view (live from the registry, else closed from the database)
    DELETE /api/monitors/{id}               view of the removed monitor  ?cancel_orders=false leaves orders
    GET    /api/monitors/{id}/events        {"events": [{id, kind, critical, at, payload, …}]} newest first
    GET    /api/accounts                    {"accounts": [{id, role, mirror_of, ratio}]}
    GET    /api/accounts/{id}               equity, balances, unrealised PnL, positions, open orders
    GET    /api/stats                       operations figures (dashboard/stats.py)
    GET    /api/insights                    outcomes of closed monitors  ?days=7
                                            (rounded up to 1, 7, 30, 90, 365 or 3650)
    GET    /metrics                         Prometheus text (dashboard/metrics.py)
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text
from starlette.responses import Response

from dashboard.metrics import render
from dashboard.responses import JSONBytes
from dashboard.state import DashboardState, state_of
from readmodel.errors import ApiError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # bytes of a monitor request
_NONCE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

PLAN_EXAMPLE: dict[str, Any] = {
    "account": "main",
    "symbol": "BTCUSDT",
    "side": "Buy",
    "preset": "conservative",
    "entries": [
        {"price": "60000", "qty": "0.010"},
        {"price": "59500", "qty": "0.010"},
        {"price": "59000", "qty": "0.010"},
    ],
    "take_profits": [
        {"price": "62000", "fraction": "0.85"},
        {"price": "63000", "fraction": "0.05"},
        {"price": "64000", "fraction": "0.05"},
        {"price": "65000", "fraction": "0.05"},
    ],
    "stop_loss": "58000",
    "breakeven_after": 1,
    "mirror": True,
}

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'A monitor request (README, "Plans"). Decimals as strings or numbers; `preset` '
    "fills what is left out; `entries` may be one market entry {type: market, qty}; `adopt: true` guards an "
    "open position (no entries).",
    "required": ["account", "symbol", "side", "stop_loss"],
    "properties": {
        "account": {"type": "string"},
        "symbol": {"type": "string"},
        "side": {"type": "string", "enum": ["Buy", "Sell"]},
        "preset": {"type": "string", "enum": ["conservative", "fast"]},
        "position_idx": {"type": "integer", "enum": [0, 1, 2]},
        "adopt": {"type": "boolean"},
        "entries": {"oneOf": [{"type": "array", "items": {"type": "object"}}, {"type": "object"}]},
        "entry_price": {"type": ["string", "number"]},
        "qty": {"type": ["string", "number"]},
        "take_profits": {"type": "array"},
        "stop_loss": {"type": ["string", "number"]},
        "breakeven_after": {"type": ["integer", "null"]},
        "fee_buffer": {"type": ["string", "number"]},
        "entry_time_limit_s": {"type": "number"},
        "mirror": {"type": "boolean"},
    },
}


def _decimal_constant(name: str) -> Decimal:
    return Decimal(name)  # NaN / Infinity: refused by the plan parser, naming the field


def parse_body(body: bytes) -> Any:
    """The request body as JSON with exact decimals (floats become Decimal, never rounded); NaN and
    Infinity pass as Decimals so the plan parser can name the field they are in."""
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", f"the request body is over {MAX_BODY // 1024} KiB")
    if not body.strip():
        raise ApiError(400, "bad_json", "the request body is empty: send a JSON object")
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_decimal_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "bad_json",
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits, deep nesting
        raise ApiError(400, "bad_json", f"the request body cannot be read: {str(exc)[:120]}") from None


def build_api(app_state: DashboardState) -> tuple[APIRouter, APIRouter]:
    """(open router: /api/health, protected router: everything else)."""
    open_router = APIRouter()
    api = APIRouter(dependencies=[Depends(app_state.require_token)])

    @open_router.get("/api/health", tags=["health"], summary="Redis and the database answer")
    def health(request: Request) -> Response:
        st = state_of(request)
        checks: dict[str, str] = {}
        try:
            st.rt.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        try:
            with st.rt.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONBytes({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)

    # ------------------------------------------------------------------------------ monitors

    @api.get("/api/monitors", tags=["monitors"], summary="Live monitors (fresh) and closed ones")
    def list_monitors(
        request: Request,
        status: str = Query("all", pattern="^(all|open|closed)$", description="all, open (live) or closed"),
        account: str | None = Query(None, max_length=64),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=1_000_000),
    ) -> Response:
        data = state_of(request).data
        return JSONBytes(
            {"monitors": data.monitors(status=status, account=account, limit=limit, offset=offset)}
        )

    @api.post(
        "/api/monitors",
        status_code=201,
        tags=["monitors"],
        summary="Create a monitor: validate, place its orders, register, record",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PLAN_SCHEMA, "example": PLAN_EXAMPLE}},
            }
        },
    )
    async def create(
        request: Request,
        idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=64),
    ) -> Response:
        st = state_of(request)
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":  # a form or text/plain post is what a cross-site page can send
            raise ApiError(
                415,
                "unsupported_media_type",
                "send the plan as JSON with Content-Type: application/json",
                "Content-Type",
            )
        if idempotency_key is not None and not _NONCE_RE.match(idempotency_key):
            raise ApiError(422, "invalid", "letters, digits and _.:- only, at most 64", "Idempotency-Key")
        data = parse_body(await request.body())
        monitor = await run_in_threadpool(st.create_monitor, data, idempotency_key)
        return JSONBytes(monitor, status_code=201)

    @api.get("/api/monitors/{monitor_id}", tags=["monitors"], summary="One monitor")
    def get_monitor(request: Request, monitor_id: str = Path(..., max_length=200)) -> Response:
        return JSONBytes(state_of(request).data.monitor(monitor_id))

    @api.delete("/api/monitors/{monitor_id}", tags=["monitors"], summary="Remove a monitor (and its mirrors)")
    def delete_monitor(
        request: Request,
        monitor_id: str = Path(..., max_length=200),
        cancel_orders: bool = Query(True, description="false: leave its orders on the exchange"),
    ) -> Response:
        st = state_of(request)
        return JSONBytes(st.remove_monitor(monitor_id, cancel_orders=cancel_orders))

    @api.get(
        "/api/monitors/{monitor_id}/events", tags=["monitors"], summary="A monitor's events, newest first"
    )
    def monitor_events(
        request: Request,
        monitor_id: str = Path(..., max_length=200),
        limit: int = Query(200, ge=1, le=1000),
        before: float | None = Query(None, allow_inf_nan=False, description="epoch s: only events before"),
    ) -> Response:
        return JSONBytes({"events": state_of(request).data.events(monitor_id, limit=limit, before=before)})

    # ------------------------------------------------------------------------------ accounts

    @api.get("/api/accounts", tags=["accounts"], summary="Configured accounts (no credentials)")
    def accounts(request: Request) -> Response:
        return JSONBytes({"accounts": state_of(request).data.accounts()})

    @api.get("/api/accounts/{account_id}", tags=["accounts"], summary="Balances, positions and open orders")
    def account(request: Request, account_id: str = Path(..., max_length=64)) -> Response:
        return JSONBytes(state_of(request).data.account(account_id))

    # ------------------------------------------------------------------------------- figures

    @api.get("/api/stats", tags=["operations"], summary="Operations figures, fleet-wide")
    def stats(request: Request) -> Response:
        return JSONBytes(state_of(request).ops.snapshot())

    @api.get("/api/insights", tags=["operations"], summary="Outcomes of the monitors closed lately")
    def insights(
        request: Request,
        days: float = Query(
            7.0, gt=0, le=3650, allow_inf_nan=False, description="rounded up to 1, 7, 30, 90, 365 or 3650"
        ),
    ) -> Response:
        return JSONBytes(state_of(request).data.insights(days))

    @api.get("/metrics", tags=["operations"], summary="Prometheus metrics (text format)")
    def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(render(state_of(request).metrics), media_type=CONTENT_TYPE_LATEST)

    return open_router, api
