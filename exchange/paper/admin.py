"""The admin API under /paper/ (JSON; tests and tools outside the project rely on it).

It has NO authentication, by design: whoever reaches it can create accounts, move prices and read
every account. Bind the paper exchange to loopback (the default); `tpsl paper serve` warns loudly on
any other address. What it refuses: requests a browser marks as coming from another site (`Origin`
of another host, or `Sec-Fetch-Site: cross-site`/`same-site`: a web page cannot drive it), and
bodies over 16 MiB (413). Account keys are masked in every answer; stats are keyed by account id.

    POST   /paper/accounts        {"api_key", "api_secret", "balance": {"USDT": n}, "hedge_mode": bool, "id"?}
    GET    /paper/accounts        every account (keys masked)
    GET    /paper/accounts/{key}  one account by API key (or id): balance, positions, open orders
    POST   /paper/prices          {"prices": {"BTCUSDT": "65000.5"}, "mark_prices"?, "max_fill_qty"?}
                                  → {"fills": […], "prices": …} (max_fill_qty: partial fills)
    GET    /paper/prices          {"prices": {symbol: {"last", "mark"}}} (?symbols=A,B to narrow)
    POST   /paper/walk            {"symbols"?, "seed"?, "volatility"?, "interval_ms"?}; DELETE; GET
    POST   /paper/replay          CSV body `ts,symbol,price` (?speed=N, or JSON {"csv", "speed"}); DELETE; GET
    POST   /paper/faults          a fault (see faults.py); GET lists; DELETE clears all
    GET    /paper/stats           {"total", "by_endpoint", "by_account" (by account id), "connections",
                                  "rate_limited"}
    GET    /paper/streams         WebSocket counters: connections, pushes, lost, delayed, dropped…
    POST   /paper/reset           stats only; {"all": true} wipes accounts, orders, positions, prices, faults
    POST   /paper/clock           {"offset_ms": int} skews the server clock; GET shows it
    POST   /paper/rate-limits     {"enabled"?: bool, "limits"?: {path: n}, "window_ms"?: n}; GET shows them
    GET    /paper/health          {"ok": true}

Bad input: HTTP 400 `{"error": {"code": "bad_request", "message", "field"}}`; unknown route: 404.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from core.errors import FixInput
from exchange.paper.decimals import fmt_fixed
from exchange.paper.errors import PaperError
from exchange.paper.feeds import RandomWalk, ReplayStep, parse_replay_csv
from exchange.paper.instruments import REAL_INSTRUMENTS
from exchange.paper.params import parse_query
from exchange.paper.queries import wallet
from exchange.paper.ratelimit import DEFAULT_LIMITS, WINDOW_MS
from exchange.paper.records import PaperAccount, mask_key
from exchange.paper.views import fill_view, order_view, position_view

if TYPE_CHECKING:
    from exchange.paper.server import PaperApp, Receive, Scope, Send

log = logging.getLogger(__name__)

DEFAULT_BALANCE = Decimal(100_000)


class NotFound(Exception):
    pass


def cross_site(scope: Scope) -> str | None:
    """Why a request must be refused as coming from another site (None: it may pass)."""
    headers = {k.lower(): v for k, v in scope.get("headers") or ()}
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if site in ("cross-site", "same-site"):
        return "the paper exchange's admin API does not answer requests from web pages of other sites"
    origin = headers.get(b"origin")
    if origin is not None:
        host = headers.get(b"host", b"").decode("latin-1").strip().lower()
        o = origin.decode("latin-1").strip().lower()
        if o == "null" or o.split("://", 1)[-1] != host:
            return "the paper exchange's admin API does not answer requests from other origins"
    return None


class AdminApi:
    def __init__(self, app: PaperApp) -> None:
        self.app = app
        self._walk: asyncio.Task[None] | None = None
        self._walk_info: dict[str, Any] = {"running": False, "steps": 0, "symbols": []}
        self._replay: asyncio.Task[None] | None = None
        self._replay_info: dict[str, Any] = {"running": False, "applied": 0, "total": 0}

    async def handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        from exchange.paper.server import ADMIN_MAX_BODY, BodyTooLarge, declared_length, read_body, send_json

        method = scope["method"]
        refusal = cross_site(scope)
        if refusal is not None:
            await send_json(send, 403, {"error": {"code": "cross_site", "message": refusal, "field": None}})
            return
        try:
            if (declared_length(scope) or 0) > ADMIN_MAX_BODY:
                raise BodyTooLarge(ADMIN_MAX_BODY)
            body = await read_body(receive, ADMIN_MAX_BODY) if method != "GET" else b""
        except BodyTooLarge:
            message = f"the request body is over {ADMIN_MAX_BODY // (1024 * 1024)} MiB"
            await send_json(send, 413, {"error": {"code": "too_large", "message": message, "field": None}})
            return
        try:
            status, data = self.dispatch(method, path.rstrip("/"), body, scope.get("query_string", b""))
        except FixInput as err:
            status, data = 400, {"error": {"code": "bad_request", "message": str(err), "field": err.field}}
        except NotFound as err:
            status, data = 404, {"error": {"code": "not_found", "message": str(err), "field": None}}
        await send_json(send, status, data)

    def dispatch(self, method: str, path: str, body: bytes, query: bytes) -> tuple[int, Any]:
        parts = path.split("/")[2:]  # "/paper/x/y" → ["x", "y"]
        name = parts[0] if parts else ""
        key = (method, name, len(parts))
        if key == ("GET", "health", 1):
            return 200, {"ok": True}
        if key == ("POST", "accounts", 1):
            return 201, self.create_account(_json(body))
        if key == ("GET", "accounts", 1):
            return 200, {
                "accounts": [self._account_summary(a) for a in self.app.engine.accounts_by_id.values()]
            }
        if key == ("GET", "accounts", 2):
            return 200, self.account_detail(parts[1])
        if key == ("POST", "prices", 1):
            return 200, self.set_prices(_json(body))
        if key == ("GET", "prices", 1):
            return 200, self.prices(parse_query(query).get("symbols"))
        if name == "walk" and len(parts) == 1:
            if method == "POST":
                return 200, self.start_walk(_json(body))
            if method == "DELETE":
                self._stop_walk()
            return 200, dict(self._walk_info)
        if name == "replay" and len(parts) == 1:
            if method == "POST":
                return 200, self.start_replay(body, parse_query(query))
            if method == "DELETE":
                self._stop_replay()
            return 200, dict(self._replay_info)
        if name == "faults" and len(parts) == 1:
            if method == "POST":
                return 201, self.app.faults.add(_json(body)).public()
            if method == "DELETE":
                self.app.faults.clear()
            return 200, {"faults": self.app.faults.list()}
        if key == ("GET", "stats", 1):
            return 200, self.app.stats.snapshot(self._account_label)
        if key == ("GET", "streams", 1):
            return 200, self.app.streams.snapshot()
        if key == ("POST", "reset", 1):
            return 200, self.reset(_json(body))
        if name == "clock" and len(parts) == 1:
            if method == "POST":
                offset = _json(body).get("offset_ms")
                if not isinstance(offset, int) or isinstance(offset, bool):
                    raise FixInput("offset_ms", "must be an integer (milliseconds)")
                self.app.clock.offset_s = offset / 1000
            return 200, {
                "offset_ms": round(self.app.clock.offset_s * 1000),
                "now_ms": self.app.engine.now_ms(),
            }
        if name == "rate-limits" and len(parts) == 1:
            if method == "POST":
                self.configure_rate_limits(_json(body))
            limiter = self.app.limiter
            return 200, {
                "enabled": limiter.enabled,
                "window_ms": limiter.window_ms,
                "limits": dict(limiter.limits),
            }
        raise NotFound(f"no admin route {method} {path}")

    # ------------------------------------------------------------------------------ accounts

    def _account_label(self, api_key: str) -> str:
        """How stats name the account of a presented key: its id, never the key."""
        acct = self.app.engine.accounts_by_key.get(api_key)
        return acct.id if acct is not None else f"unknown {mask_key(api_key)}"

    def create_account(self, data: dict[str, Any]) -> dict[str, Any]:
        api_key = data.get("api_key")
        api_secret = data.get("api_secret")
        if not isinstance(api_key, str) or not api_key:
            raise FixInput("api_key", "must be a non-empty string")
        if not isinstance(api_secret, str) or not api_secret:
            raise FixInput("api_secret", "must be a non-empty string")
        balance = DEFAULT_BALANCE
        raw_balance = data.get("balance")
        if raw_balance is not None:
            if not isinstance(raw_balance, dict) or set(raw_balance) - {"USDT"}:
                raise FixInput("balance", 'must be {"USDT": number}')
            if "USDT" in raw_balance:
                balance = _decimal(raw_balance["USDT"], "balance.USDT")
        hedge = data.get("hedge_mode", False)
        if not isinstance(hedge, bool):
            raise FixInput("hedge_mode", "must be true or false")
        account_id = data.get("id")
        if account_id is not None and (not isinstance(account_id, str) or not account_id):
            raise FixInput("id", "must be a non-empty string")
        with self.app.engine.lock:
            acct = self.app.engine.create_account(
                api_key, api_secret, balance=balance, hedge_mode=hedge, account_id=account_id
            )
            return self._account_summary(acct)

    @staticmethod
    def _account_summary(acct: PaperAccount) -> dict[str, Any]:
        return {
            "id": acct.id,
            "api_key": acct.masked_key,
            "hedge_mode": acct.hedge_default,
            "balance": {"USDT": str(acct.wallet)},
        }

    def account_detail(self, key: str) -> dict[str, Any]:
        engine = self.app.engine
        with engine.lock:
            acct = engine.accounts_by_key.get(key) or engine.accounts_by_id.get(key)
            if acct is None:
                raise NotFound("no such account")
            positions = [
                position_view(acct.positions[k], engine.markets[k[0]].mark)
                for k in acct.open_positions.after(None)
            ]
            return {
                **self._account_summary(acct),
                "wallet": wallet(engine, acct, None),
                "positions": positions,
                "orders": [order_view(o) for o in acct.open_orders.newest_first()],
                "executions": len(acct.executions),
            }

    # -------------------------------------------------------------------------------- prices

    def set_prices(self, data: dict[str, Any]) -> dict[str, Any]:
        prices = _price_table(data.get("prices", {}), "prices")
        marks = _price_table(data.get("mark_prices", {}), "mark_prices")
        max_fill = _price_table(data.get("max_fill_qty", {}), "max_fill_qty")
        if not prices and not marks:
            raise FixInput("prices", "give at least one price")
        fills = self.app.engine.set_prices(prices, marks, max_fill=max_fill)
        with self.app.engine.lock:
            return {
                "fills": [fill_view(f) for f in fills],
                "prices": self._price_rows(list({**prices, **marks})),
            }

    def prices(self, symbols: str | None) -> dict[str, Any]:
        engine = self.app.engine
        names = [s for s in symbols.split(",") if s] if symbols else list(engine.symbols)
        for s in names:
            if s not in engine.specs:
                raise FixInput("symbols", f"unknown symbol {s!r}")
        with engine.lock:
            return {"prices": self._price_rows(names)}

    def _price_rows(self, symbols: list[str]) -> dict[str, dict[str, str]]:
        out = {}
        for s in symbols:
            m = self.app.engine.markets[s]
            pp = m.spec.price_places
            out[s] = {"last": fmt_fixed(m.last, pp), "mark": fmt_fixed(m.mark, pp)}
        return out

    # ------------------------------------------------------------------------- feeds (tasks)

    def start_walk(self, data: dict[str, Any]) -> dict[str, Any]:
        engine = self.app.engine
        symbols = data.get("symbols") or [s.symbol for s in REAL_INSTRUMENTS]
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise FixInput("symbols", "must be a list of symbols")
        for s in symbols:
            if s not in engine.specs:
                raise FixInput("symbols", f"unknown symbol {s!r}")
        seed = data.get("seed", self.app.config.seed)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise FixInput("seed", "must be an integer")
        volatility = data.get("volatility", 0.001)
        if isinstance(volatility, bool) or not isinstance(volatility, (int, float)):
            raise FixInput("volatility", "must be a number")
        interval_ms = data.get("interval_ms", 1000)
        if not isinstance(interval_ms, int) or isinstance(interval_ms, bool) or interval_ms < 1:
            raise FixInput("interval_ms", "must be an integer >= 1")
        with engine.lock:
            start = {s: engine.markets[s].last for s in symbols}
        walk = RandomWalk(
            start, {s: engine.specs[s].tick_size for s in symbols}, seed=seed, volatility=volatility
        )
        self._stop_walk()
        self._walk_info = {"running": True, "steps": 0, "symbols": list(symbols), "interval_ms": interval_ms}
        self._walk = asyncio.get_running_loop().create_task(self._run_walk(walk, interval_ms / 1000))
        return dict(self._walk_info)

    async def _run_walk(self, walk: RandomWalk, interval_s: float) -> None:
        try:
            while True:
                self.app.engine.set_prices(walk.step())
                self._walk_info["steps"] += 1
                await asyncio.sleep(interval_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("paper random walk stopped by an error")
        finally:
            self._walk_info["running"] = False

    def _stop_walk(self) -> None:
        if self._walk is not None:
            self._walk.cancel()
            self._walk = None
        self._walk_info["running"] = False

    def start_replay(self, body: bytes, query: dict[str, str]) -> dict[str, Any]:
        speed_raw: Any = query.get("speed")
        text: Any
        stripped = body.lstrip()
        if stripped.startswith(b"{"):
            data = _json(body)
            text = data.get("csv")
            speed_raw = data.get("speed", speed_raw)
            if not isinstance(text, str):
                raise FixInput("csv", "must be a string of ts,symbol,price rows")
        else:
            text = body.decode("utf-8", "replace")
        speed = float(_decimal(speed_raw, "speed")) if speed_raw is not None else 1.0
        if speed <= 0:
            raise FixInput("speed", "must be > 0")
        steps = parse_replay_csv(text, set(self.app.engine.specs))
        self._stop_replay()
        self._replay_info = {"running": True, "applied": 0, "total": len(steps), "speed": speed}
        self._replay = asyncio.get_running_loop().create_task(self._run_replay(steps, speed))
        return dict(self._replay_info)

    async def _run_replay(self, steps: list[ReplayStep], speed: float) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            for step in steps:
                delay = t0 + step.offset_ms / 1000 / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.app.engine.set_prices(step.prices)
                self._replay_info["applied"] += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("paper replay stopped by an error")
        finally:
            self._replay_info["running"] = False

    def _stop_replay(self) -> None:
        if self._replay is not None:
            self._replay.cancel()
            self._replay = None
        self._replay_info["running"] = False

    def stop_tasks(self) -> None:
        self._stop_walk()
        self._stop_replay()

    # ------------------------------------------------------------------------------ settings

    def configure_rate_limits(self, data: dict[str, Any]) -> None:
        enabled = data.get("enabled")
        if enabled is not None:
            if not isinstance(enabled, bool):
                raise FixInput("enabled", "must be true or false")
            self.app.limiter.enabled = enabled
        limits = data.get("limits")
        if limits is not None:
            if not isinstance(limits, dict):
                raise FixInput("limits", "must be an object {path: requests per window}")
            self.app.limiter.configure(limits)
        window = data.get("window_ms")
        if window is not None:
            if not isinstance(window, int) or isinstance(window, bool) or window < 1:
                raise FixInput("window_ms", "must be an integer >= 1 (milliseconds)")
            self.app.limiter.window_ms = window
        self.app.limiter.reset()

    def reset(self, data: dict[str, Any]) -> dict[str, Any]:
        wipe = data.get("all", False)
        if not isinstance(wipe, bool):
            raise FixInput("all", "must be true or false")
        app = self.app
        app.stats.reset()
        app.streams.reset_counters()
        if wipe:
            self.stop_tasks()
            app.faults.clear()
            app.clock.offset_s = 0.0
            app.limiter.enabled = app.config.rate_limits
            app.limiter.limits = dict(DEFAULT_LIMITS)
            app.limiter.window_ms = WINDOW_MS
            if app.config.rate_limit_overrides:
                app.limiter.configure(app.config.rate_limit_overrides)
            app.limiter.reset()
            app.streams.close_all()
            app.engine.reset()
            app.seed_accounts()
        return {"reset": "all" if wipe else "stats"}


def _json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FixInput("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise FixInput("body", "must be a JSON object")
    return data


def _decimal(value: Any, field: str) -> Decimal:
    from exchange.paper.decimals import to_decimal

    try:
        d = to_decimal(value, field)
    except PaperError:
        raise FixInput(field, "must be a number") from None
    return d


def _price_table(table: Any, field: str) -> dict[str, Decimal]:
    if not isinstance(table, dict):
        raise FixInput(field, "must be an object {symbol: price}")
    return {symbol: _decimal(value, f"{field}.{symbol}") for symbol, value in table.items()}
