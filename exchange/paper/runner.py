"""Running the paper exchange: in this process (`PaperServer`, uvicorn in a background thread through
config/serving.py), as the main program of a process (`serve_forever`, used by `tpsl paper serve`),
and driving it (`PaperAdmin`, a small requests client of /paper/).

    with PaperServer(extra_symbols=50) as server:
        creds = server.admin.create_account(balance=10_000)
        server.admin.set_prices({"BTCUSDT": "64000"})
        ... HTTP(api_key=creds.api_key, api_secret=creds.api_secret); session.endpoint = server.base_url
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
import uvicorn

from config.serving import ServerThread
from exchange.paper.records import mask_key
from exchange.paper.server import AccountSeed, PaperApp, PaperConfig

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0


def uvicorn_config(app: PaperApp, *, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    """The fast setup: uvloop, httptools, no access log, no Server header, keep-alive like a real
    exchange front (60 s), logging left to the host process."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        access_log=False,
        server_header=False,
        log_config=None,
        log_level=log_level,
        timeout_keep_alive=60,
        timeout_graceful_shutdown=1,
        backlog=2048,
    )


class PaperServer:
    """A paper exchange served from a background thread of this process."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        extra_symbols: int = 0,
        rate_limits: bool = True,
        accounts: Sequence[AccountSeed | str] = (),
        fault_hold_s: float = 30.0,
        stream_idle_s: float = 600.0,
    ) -> None:
        """`accounts`: AccountSeed or "KEY:SECRET[:BALANCE]" strings, created at start and again
        after every full reset."""
        self.host = host
        self.port = port
        self.app = PaperApp(
            PaperConfig(
                seed=seed,
                extra_symbols=extra_symbols,
                rate_limits=rate_limits,
                fault_hold_s=fault_hold_s,
                accounts=tuple(a if isinstance(a, AccountSeed) else AccountSeed.parse(a) for a in accounts),
                stream_idle_s=stream_idle_s,
            )
        )
        self._runner = ServerThread(uvicorn_config(self.app, host=host, port=port), name="paper exchange")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin(self) -> PaperAdmin:
        return PaperAdmin(self.base_url)

    def start(self) -> PaperServer:
        if self._runner.running:
            return self
        self._runner.config.port = self.port
        self.port = self._runner.start(START_TIMEOUT_S)
        requests.get(f"{self.base_url}/v5/market/time", timeout=5).raise_for_status()
        log.info("paper exchange listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        self._runner.stop()

    def __enter__(self) -> PaperServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    seed: int = 0,
    extra_symbols: int = 0,
    rate_limits: bool = True,
    accounts: Sequence[AccountSeed] = (),
    walk: bool = False,
    fault_hold_s: float = 30.0,
    stream_idle_s: float = 600.0,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (one process; uvloop + httptools)."""
    app = PaperApp(
        PaperConfig(
            seed=seed,
            extra_symbols=extra_symbols,
            rate_limits=rate_limits,
            fault_hold_s=fault_hold_s,
            accounts=tuple(accounts),
            stream_idle_s=stream_idle_s,
        )
    )
    server = uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level="info"))
    if walk:
        # start the walk from inside the loop once it runs (the admin API needs a running loop)
        original = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original(sockets=sockets)
            app.admin.start_walk({})

        server.startup = startup  # type: ignore[method-assign]
    log.info(
        "paper exchange on http://%s:%d (symbols: %d, rate limits %s, accounts: %d)",
        host,
        port,
        len(app.engine.symbols),
        "on" if rate_limits else "off",
        len(accounts),
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled gracefully: a clean exit
        log.info("paper exchange stopped")


# ----------------------------------------------------------------------------- admin client


class PaperAdminError(RuntimeError):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"paper admin HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class PaperCredentials:
    """An account created on a paper exchange. Its repr shows neither the key nor the secret."""

    id: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    base_url: str = ""

    def __repr__(self) -> str:
        key = mask_key(self.api_key)
        return f"PaperCredentials(id={self.id!r}, api_key={key!r}, base_url={self.base_url!r})"


class PaperAdmin:
    """A requests client of the admin API (/paper/…)."""

    def __init__(
        self, base_url: str, *, session: requests.Session | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The admin API's answer (always a JSON object), or PaperAdminError."""
        r = self.session.request(
            method, f"{self.base_url}/paper/{path}", json=json, data=data, params=params, timeout=self.timeout
        )
        try:
            body = r.json() if r.content else {}
        except ValueError:
            body = None
        if r.status_code >= 400 or not isinstance(body, dict):
            err = body.get("error", {}) if isinstance(body, dict) else {}
            raise PaperAdminError(r.status_code, err.get("message", r.text[:200]), err.get("field"))
        return body

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def create_account(
        self,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        balance: Decimal | float | str = 100_000,
        hedge_mode: bool = False,
        account_id: str | None = None,
    ) -> PaperCredentials:
        """Create an account (fresh random key and secret unless given) and return its credentials."""
        api_key = api_key or f"pk{secrets.token_hex(8)}"
        api_secret = api_secret or secrets.token_hex(16)
        payload: dict[str, Any] = {
            "api_key": api_key,
            "api_secret": api_secret,
            "balance": {"USDT": str(balance)},
            "hedge_mode": hedge_mode,
        }
        if account_id is not None:
            payload["id"] = account_id
        created = self._call("POST", "accounts", payload)
        return PaperCredentials(
            id=created["id"], api_key=api_key, api_secret=api_secret, base_url=self.base_url
        )

    def accounts(self) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = self._call("GET", "accounts")["accounts"]
        return accounts

    def account(self, api_key_or_id: str) -> dict[str, Any]:
        return self._call("GET", f"accounts/{api_key_or_id}")

    def set_prices(
        self,
        prices: Mapping[str, Any],
        mark_prices: Mapping[str, Any] | None = None,
        *,
        max_fill_qty: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Set last (and mark) prices; returns the fills they caused. `max_fill_qty` {symbol: qty}
        caps each crossed resting order's fill (partial fills)."""
        payload: dict[str, Any] = {"prices": {k: str(v) for k, v in prices.items()}}
        if mark_prices:
            payload["mark_prices"] = {k: str(v) for k, v in mark_prices.items()}
        if max_fill_qty:
            payload["max_fill_qty"] = {k: str(v) for k, v in max_fill_qty.items()}
        fills: list[dict[str, Any]] = self._call("POST", "prices", payload)["fills"]
        return fills

    def prices(self, *symbols: str) -> dict[str, dict[str, str]]:
        params = {"symbols": ",".join(symbols)} if symbols else None
        prices: dict[str, dict[str, str]] = self._call("GET", "prices", params=params)["prices"]
        return prices

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        return self._call("POST", "faults", spec)

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._call("GET", "faults")["faults"]
        return faults

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def streams(self) -> dict[str, Any]:
        """WebSocket counters: connections, auth_ok/refused, pushes, lost, delayed, dropped…"""
        return self._call("GET", "streams")

    def reset(self, all: bool = False) -> None:
        self._call("POST", "reset", {"all": all})

    def start_walk(
        self,
        symbols: Sequence[str] | None = None,
        *,
        seed: int | None = None,
        volatility: float = 0.001,
        interval_ms: int = 1000,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"volatility": volatility, "interval_ms": interval_ms}
        if symbols:
            payload["symbols"] = list(symbols)
        if seed is not None:
            payload["seed"] = seed
        return self._call("POST", "walk", payload)

    def stop_walk(self) -> dict[str, Any]:
        return self._call("DELETE", "walk")

    def walk(self) -> dict[str, Any]:
        return self._call("GET", "walk")

    def replay(self, csv_text: str, *, speed: float = 1.0) -> dict[str, Any]:
        return self._call("POST", "replay", data=csv_text.encode(), params={"speed": str(speed)})

    def replay_status(self) -> dict[str, Any]:
        return self._call("GET", "replay")

    def stop_replay(self) -> dict[str, Any]:
        return self._call("DELETE", "replay")

    def set_clock_offset(self, offset_ms: int) -> dict[str, Any]:
        return self._call("POST", "clock", {"offset_ms": offset_ms})

    def set_rate_limits(
        self,
        *,
        enabled: bool | None = None,
        limits: Mapping[str, int] | None = None,
        window_ms: int | None = None,
    ) -> dict[str, Any]:
        """Switch the per-account limits on/off, change some (requests per window), or the window
        (default 1000 ms). The next reset(all=True) restores the server's start configuration."""
        payload: dict[str, Any] = {}
        if enabled is not None:
            payload["enabled"] = enabled
        if limits is not None:
            payload["limits"] = dict(limits)
        if window_ms is not None:
            payload["window_ms"] = window_ms
        return self._call("POST", "rate-limits", payload)

    def rate_limits(self) -> dict[str, Any]:
        return self._call("GET", "rate-limits")
