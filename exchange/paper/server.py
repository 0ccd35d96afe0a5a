"""The paper exchange's HTTP face: a raw ASGI app (no framework: one dict lookup, one HMAC, one
orjson dump per request) serving the Bybit v5 subset under /v5/ and the admin API under /paper/,
and on the same port the WebSocket streams /v5/private and /v5/public/linear (streams.py).

Every /v5 request is counted, then faults are drawn, then (private routes) the signature is
verified, the rate limit spent and the handler run under the engine lock. Business errors are
HTTP 200 + retCode (missing auth headers: 401; unknown path: 404).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from core.errors import FixInput
from core.ports import Clock
from exchange.paper.auth import api_key_of, auth_headers, verify
from exchange.paper.engine import PaperEngine
from exchange.paper.errors import RATE_LIMIT, PaperError
from exchange.paper.faults import FaultAction, FaultBook
from exchange.paper.params import Params, parse_body, parse_query
from exchange.paper.ratelimit import Quota, RateLimiter
from exchange.paper.stats import RequestStats
from exchange.paper.streams import StreamConfig, StreamHub
from exchange.paper.v5_routes import MAX_BATCH, ROUTES, Call, Route

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

RATE_LIMIT_MSG = "Too many visits. Exceeded the API Rate Limit."


@dataclass(frozen=True, slots=True)
class AccountSeed:
    """An account the server creates at start (and again after a full reset)."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    balance: Decimal = Decimal(100_000)
    hedge_mode: bool = False
    id: str | None = None

    @classmethod
    def parse(cls, text: str) -> AccountSeed:
        """`KEY:SECRET[:BALANCE]` (the CLI's --account)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise FixInput("account", "expected KEY:SECRET[:BALANCE]")
        balance = Decimal(100_000)
        if len(parts) == 3:
            try:
                balance = Decimal(parts[2])
            except InvalidOperation:
                raise FixInput("account", "BALANCE must be a number") from None
            if not balance.is_finite() or balance < 0:
                raise FixInput("account", "BALANCE must be >= 0")
        return cls(api_key=parts[0], api_secret=parts[1], balance=balance)


@dataclass(frozen=True, slots=True)
class PaperConfig:
    seed: int = 0
    extra_symbols: int = 0
    rate_limits: bool = True
    rate_limit_overrides: dict[str, int] | None = None
    fault_hold_s: float = 30.0  # how long a `timeout` fault holds a request, seconds
    accounts: Sequence[AccountSeed] = ()
    stream_idle_s: float = 600.0  # a WebSocket that sent nothing for this long is closed


class ServerClock:
    """Wall clock plus an adjustable offset (POST /paper/clock simulates a skewed server)."""

    def __init__(self, base: Clock = time.time) -> None:
        self.base = base
        self.offset_s = 0.0

    def __call__(self) -> float:
        return self.base() + self.offset_s


class PaperApp:
    """The ASGI application. `engine`, `faults`, `limiter` and `stats` are its state."""

    def __init__(self, config: PaperConfig | None = None, *, clock: Clock | None = None) -> None:
        from exchange.paper.admin import AdminApi  # the admin API drives this app's state

        self.config = config or PaperConfig()
        self.clock = ServerClock(clock or time.time)
        self.engine = PaperEngine(
            clock=self.clock, extra_symbols=self.config.extra_symbols, seed=self.config.seed
        )
        self.limiter = RateLimiter(self.config.rate_limit_overrides, enabled=self.config.rate_limits)
        self.faults = FaultBook(hold_s=self.config.fault_hold_s)
        self.stats = RequestStats()
        self.streams = StreamHub(self.engine, self.faults, StreamConfig(idle_s=self.config.stream_idle_s))
        self.admin = AdminApi(self)
        self.seed_accounts()

    def seed_accounts(self) -> None:
        for seed in self.config.accounts:
            self.engine.create_account(
                seed.api_key,
                seed.api_secret,
                balance=seed.balance,
                hedge_mode=seed.hedge_mode,
                account_id=seed.id,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            client = scope.get("client")
            if client:
                self.stats.connection((client[0], client[1]))
            path = scope["path"]
            if path.startswith("/v5/"):
                await self._v5(scope, receive, send, path)
            elif path.startswith("/paper/") or path == "/paper":
                await self.admin.handle(scope, receive, send, path)
            else:
                await send_json(send, 404, {"error": {"code": "not_found", "message": f"no route {path}"}})
        elif kind == "websocket":
            await self.streams.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.admin.stop_tasks()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --------------------------------------------------------------------------------------- v5

    async def _v5(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        route = ROUTES.get(path)
        headers = auth_headers(scope["headers"]) if route is not None and route.private else None
        self.stats.count(path, api_key_of(headers) if headers else None)
        try:
            if (declared_length(scope) or 0) > V5_MAX_BODY:
                raise BodyTooLarge(V5_MAX_BODY)
            body = await read_body(receive) if scope["method"] != "GET" else b""
        except BodyTooLarge:
            now = self.engine.now_ms()
            await send_bytes(
                send, 413, envelope(10001, "request body too large", {}, {}, now), b"application/json"
            )
            return
        action: FaultAction | None = self.faults.pick(path) if self.faults else None
        if action is not None:
            if action.latency_s:
                await asyncio.sleep(action.latency_s)
            kind = action.kind
            if kind == "http":
                await send_bytes(
                    send,
                    action.http_status,
                    f"paper fault: HTTP {action.http_status}".encode(),
                    b"text/plain",
                )
                return
            if kind == "ret_code":
                await self._send_fault_code(send, action, path, headers)
                return
            if kind in ("timeout", "drop") and not action.execute:
                if kind == "timeout":
                    await asyncio.sleep(action.hold_s)
                await drop_connection(send)
                return
        status, payload, extra = self._answer(route, scope, path, headers, body)
        if action is not None and action.kind == "timeout":
            await asyncio.sleep(action.hold_s)
        if action is not None and action.kind == "drop":
            await drop_connection(send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _answer(
        self, route: Route | None, scope: Scope, path: str, headers: dict[bytes, bytes] | None, body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        now = self.engine.now_ms()
        extra: list[tuple[bytes, bytes]] = [(b"timenow", str(now).encode())]
        if route is None:
            return 404, envelope(10001, f"path not found: {path}", {}, {}, now), extra
        if scope["method"] != route.method:
            return 405, envelope(10001, f"{path} takes {route.method}", {}, {}, now), extra
        status = 200
        try:
            acct = None
            get = route.method == "GET"
            raw = scope["query_string"] if get else body
            if route.private:
                assert headers is not None
                acct = verify(headers, raw, now, self.engine.accounts_by_key.get)
            params = Params(parse_query(raw) if get else parse_body(raw))
            granted = 1
            if acct is not None:
                units = 1
                if route.batch:
                    items = params.raw.get("request")
                    units = max(1, min(len(items), MAX_BATCH)) if isinstance(items, list) else 1
                quota = self.limiter.take(acct.api_key, path, now, units)
                extra.extend(quota.headers())
                self.stats.limited(path, units - quota.granted)
                if quota.granted == 0:
                    raise PaperError(RATE_LIMIT, RATE_LIMIT_MSG)
                granted = quota.granted
            with self.engine.lock:
                result, ext = route.handler(Call(self.engine, params, acct, granted))
            return status, envelope(0, "OK", result, ext, now), extra
        except PaperError as err:
            return err.http_status, envelope(err.code, err.message, {}, {}, now), extra

    async def _send_fault_code(
        self, send: Send, action: FaultAction, path: str, headers: dict[bytes, bytes] | None
    ) -> None:
        now = self.engine.now_ms()
        extra = [(b"timenow", str(now).encode())]
        if action.ret_code == RATE_LIMIT:
            route = ROUTES.get(path)
            limit = self.limiter.limit_of(path) if route is not None else 50
            extra.extend(Quota(limit, 0, now + action.reset_after_ms, 0).headers())
        payload = envelope(action.ret_code, action.ret_msg, {}, {}, now)
        await send_bytes(send, 200, payload, b"application/json", extra)


def envelope(code: int, msg: str, result: Any, ext: Any, now_ms: int) -> bytes:
    return orjson.dumps({"retCode": code, "retMsg": msg, "result": result, "retExtInfo": ext, "time": now_ms})


V5_MAX_BODY = 1024 * 1024  # a batch of 20 orders is a few KiB, bytes
ADMIN_MAX_BODY = 16 * 1024 * 1024  # a replay CSV, bytes


class BodyTooLarge(Exception):
    pass


def declared_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def read_body(receive: Receive, cap: int = V5_MAX_BODY) -> bytes:
    """The request body; BodyTooLarge as soon as it passes `cap` bytes (never read whole first)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > cap:
                raise BodyTooLarge(cap)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_bytes(
    send: Send,
    status: int,
    payload: bytes,
    content_type: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_json(send: Send, status: int, data: Any) -> None:
    await send_bytes(send, status, orjson.dumps(data), b"application/json")


async def drop_connection(send: Send) -> None:
    """Close the client's socket without answering (uvicorn: the transport behind `send`)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not uvicorn: the best a plain ASGI app can do is fail the request
        raise ConnectionAbortedError("paper fault: drop_connection")
    transport.abort()
    for _ in range(10):  # let the server see the connection go before this request returns
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)
    else:
        cycle.disconnected = True  # type: ignore[union-attr]
