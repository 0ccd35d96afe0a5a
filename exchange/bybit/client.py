"""BybitClient: the ExchangePort over Bybit's v5 REST API (USDT linear), for one exchange host.

The only code that talks to an exchange. Each call: rate-limit token (per account and endpoint group,
shared by every worker through Redis) → request built and signed from the exact bytes sent → pooled
session → answer parsed (exchange.bybit.parse) → HTTP status and retCode mapped to a core error in
one place (exchange.bybit.errors.map_error) → one INFO log line (method, path, account, HTTP status,
retCode, milliseconds).

Reads raise on failure (a failed read is never an empty result). Batch writes never raise for an
exchange failure: every intent gets an `IntentResult` in input order; the idempotent outcomes —
duplicate orderLinkId on create, unknown or already-closed order on cancel, an amend that changes
nothing — are ok=True. When a whole chunk fails (timeout, 5xx, rate limit, credentials), its items
carry that error and later chunks are not sent (their items say so): the next check retries them
under the same orderLinkIds, so nothing is ever placed twice.

Rate-limit patience (`patience`): a call that carries a stop (a stop order placed or amended, the
position's own stop set, a market close) may wait a bounded time for the account's rate window; any
other call is sent at once or not at all (BackOff: "not sent", the next pass sends it). A check
holds its account and a worker for as long as it waits, so a burst of take-profit resizes must not
keep the next fill's stop, or every other account's checks, waiting behind it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

import requests

from core import ids
from core.errors import BackOff, Duplicate, FixInput, InvalidOrder, NotFound, TpslError
from core.models import (
    Account,
    AmendOrder,
    CancelOrder,
    ExchangeOrder,
    Execution,
    Instrument,
    IntentResult,
    PlaceOrder,
    Position,
    SetPositionStop,
    Side,
    Snapshot,
    Stage,
    Ticker,
    WalletBalance,
)
from core.ports import Clock
from exchange.bybit import parse
from exchange.bybit.cache import InstrumentCache
from exchange.bybit.callstats import CallStats
from exchange.bybit.errors import ClockSkew, map_error
from exchange.bybit.options import BybitOptions
from exchange.bybit.parse import MalformedResponse
from exchange.bybit.ratelimit import RateLimiter
from exchange.bybit.session import PooledSession
from exchange.bybit.signing import auth_headers, json_body, query_string

logger = logging.getLogger(__name__)

CATEGORY = "linear"
BATCH_MAX = 20  # Bybit's per-request maximum for linear batch endpoints
POSITIONS_PAGE = 200
ORDERS_PAGE = 50
EXECUTIONS_PAGE = 100
INSTRUMENTS_PAGE = 1000
WEEK_MS = 7 * 24 * 3600 * 1000
EXECUTIONS_MAX_AGE_MS = 730 * 24 * 3600 * 1000  # Bybit keeps two years of executions
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")

P_TICKERS = "/v5/market/tickers"
P_INSTRUMENTS = "/v5/market/instruments-info"
P_POSITIONS = "/v5/position/list"
P_REALTIME = "/v5/order/realtime"
P_EXECUTIONS = "/v5/execution/list"
P_WALLET = "/v5/account/wallet-balance"
P_AMEND = "/v5/order/amend"
P_CREATE_BATCH = "/v5/order/create-batch"
P_AMEND_BATCH = "/v5/order/amend-batch"
P_CANCEL_BATCH = "/v5/order/cancel-batch"
P_TRADING_STOP = "/v5/position/trading-stop"


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful exchange answer."""

    http_status: int
    result: Mapping[str, Any]
    ext: Mapping[str, Any]
    headers: Mapping[str, str]


SingleT = TypeVar("SingleT", AmendOrder, SetPositionStop)


def decimal_text(value: Decimal) -> str:
    """A decimal as Bybit wants it: plain notation, never an exponent ("0.00001", not "1E-5")."""
    return format(value, "f")


class BybitClient:
    """ExchangePort for one host. Cheap to build (see `exchange.bybit.build_client`): the session,
    the instrument cache and the rate limiter are shared by every client of the process."""

    def __init__(
        self,
        base_url: str,
        settings: BybitOptions,
        *,
        session: PooledSession,
        limiter: RateLimiter,
        instruments: InstrumentCache | None = None,
        clock: Clock = time.time,
        closed_pages: int = 10,
        max_pages: int = 1000,
        settle_coin: str = "USDT",
        calls: CallStats | None = None,
        singles: Executor | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # the process's threads for calls that have no batch form (stop amends, trading-stops):
        # sent side by side, so a pass's tenth stop is not answered ten round trips after its first
        # (None: one after another)
        self.singles = singles
        self.calls = calls or CallStats()
        self.settings = settings
        self.session = session
        self.limiter = limiter
        self.instrument_cache = instruments or InstrumentCache(settings.instruments_cache_s)
        self.clock = clock
        self.closed_pages = closed_pages  # pages of recent closed orders per look-up (50 rows each)
        # a guard against a cursor that never ends, not a size limit: 1,000 pages are 50,000 open
        # orders or 200,000 positions (a repeated cursor is caught at once, see _pages)
        self.max_pages = max_pages
        self.settle_coin = settle_coin

    def __repr__(self) -> str:
        return f"BybitClient({self.base_url!r})"

    # ------------------------------------------------------------------------------- transport

    def _request(
        self,
        method: str,
        path: str,
        account: Account | None,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        cost: int = 1,
        max_wait_s: float | None = None,
    ) -> Answer:
        """One exchange call. Raises the core error map_error names; a 10002 clock-window refusal
        is re-signed with a fresh timestamp and sent once more (the exchange did nothing with it).
        `max_wait_s`: how long to wait for the rate window (None: the limiter's bound)."""
        if account is not None:
            self.limiter.acquire(account.id, path, cost, max_wait_s=max_wait_s)
        for attempt in (1, 2):
            now = self.clock()
            data: bytes | None = None
            if method == "GET":
                qs = query_string(params or {})
                payload: str | bytes = qs
                target = f"{path}?{qs}" if qs else path
            else:
                data = json_body(body or {})
                payload = data
                target = path
            headers = {"Content-Type": "application/json"}
            if account is not None:
                headers.update(auth_headers(account, payload, int(now * 1000), self.settings.recv_window_ms))
            t0 = time.perf_counter()
            try:
                resp = self.session.request(method, target, data=data, headers=headers)
            except requests.RequestException as exc:
                err = map_error(None, None, "", {}, self.clock(), transport_error=exc)
                assert err is not None
                self._log(method, path, account, None, None, t0, err)
                raise err from exc
            env = parse.envelope(resp.content)
            if account is not None:
                self.limiter.observe(account.id, path, resp.headers)
            ret_msg = _scrub(env.ret_msg, account)
            err = map_error(
                resp.status_code,
                env.ret_code,
                ret_msg,
                resp.headers,
                self.clock(),
                attempts=_attempts(resp),
            )
            self._log(method, path, account, resp.status_code, env.ret_code, t0, err)
            if err is None:
                return Answer(resp.status_code, env.result, env.ext, resp.headers)
            self.session.stats.error(err.kind.value)
            if isinstance(err, BackOff) and account is not None:
                self.limiter.back_off(account.id, path, err.until)
            if isinstance(err, ClockSkew) and attempt == 1:
                continue
            raise err
        raise AssertionError("unreachable")  # pragma: no cover

    def _log(
        self,
        method: str,
        path: str,
        account: Account | None,
        status: int | None,
        ret_code: int | None,
        t0: float,
        err: TpslError | None,
    ) -> None:
        ms = (time.perf_counter() - t0) * 1000
        self.calls.record(account.id if account is not None else None, path, err is None)
        logger.info(
            "%s %s account=%s status=%s retCode=%s ms=%.1f%s",
            method,
            path,
            account.id if account is not None else "-",
            status if status is not None else "-",
            ret_code if ret_code is not None else "-",
            ms,
            f" error={err.kind.value}: {err.message}" if err is not None else "",
        )

    def _pages(
        self,
        path: str,
        account: Account | None,
        params: Mapping[str, Any],
        *,
        max_pages: int | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Every page's `result`, following nextPageCursor untouched. Without `max_pages` the walk
        must end within self.max_pages pages (else the answer is treated as malformed); with it,
        the walk simply stops there (newest pages first)."""
        limit = max_pages if max_pages is not None else self.max_pages
        cursor = ""
        seen: set[str] = set()
        for _ in range(limit):
            page_params = dict(params)
            if cursor:
                page_params["cursor"] = cursor
            result = self._request("GET", path, account, params=page_params).result
            yield result
            cursor = parse.next_cursor(result)
            if not cursor or not parse.rows(result):
                return
            if cursor in seen:
                raise MalformedResponse(f"{path}: the exchange sent the same cursor twice")
            seen.add(cursor)
        if max_pages is None:
            raise MalformedResponse(f"{path}: more than {limit} pages")

    # ------------------------------------------------------------------------------------ reads

    def snapshot(self, account: Account, *, symbol: str | None = None) -> Snapshot:
        """Positions (size > 0) and open orders of the account, every page, as core types: one
        position/list page per 200 positions and one order/realtime page per 50 open orders (so
        2 calls below that), plus the shared instrument cache."""
        taken_at = self.clock()
        positions = self.positions(account, symbol=symbol)
        orders = self.open_orders(account, symbol=symbol)
        return Snapshot(
            account=account.id,
            taken_at=taken_at,
            positions={(p.symbol, p.position_idx): p for p in positions},
            open_orders={o.link_id: o for o in orders if o.link_id},
            instruments=self.instrument_filters(),
        )

    def positions(self, account: Account, *, symbol: str | None = None) -> list[Position]:
        params: dict[str, Any] = {"category": CATEGORY, "limit": POSITIONS_PAGE}
        params.update({"symbol": symbol} if symbol else {"settleCoin": self.settle_coin})
        out = []
        for result in self._pages(P_POSITIONS, account, params):
            for row in parse.rows(result):
                p = parse.position(row)
                if p.size > 0:  # a symbol-filtered read also lists flat rows
                    out.append(p)
        return out

    def hedge_mode(self, account: Account, symbol: str) -> bool:
        params: dict[str, Any] = {"category": CATEGORY, "symbol": symbol, "limit": POSITIONS_PAGE}
        for result in self._pages(P_POSITIONS, account, params):
            for row in parse.rows(result):
                if parse.position(row).position_idx in (1, 2):
                    return True
        return False

    def open_orders(self, account: Account, *, symbol: str | None = None) -> list[ExchangeOrder]:
        """Every open order (plain and conditional), including those without an orderLinkId (not
        ours: the snapshot leaves them out, a dashboard may show them)."""
        params: dict[str, Any] = {"category": CATEGORY, "openOnly": 0, "limit": ORDERS_PAGE}
        params.update({"symbol": symbol} if symbol else {"settleCoin": self.settle_coin})
        out = []
        for result in self._pages(P_REALTIME, account, params):
            for row in parse.rows(result):
                o = parse.order(row)
                if o.status.is_open:
                    out.append(o)
        return out

    def lookup_orders(self, account: Account, link_ids: Iterable[str]) -> dict[str, ExchangeOrder]:
        """Final state of orders that left the open list: the pages of the account's most recent
        closed orders (order/realtime?openOnly=1: up to 500, newest first), then
        order/realtime?orderLinkId= one by one for those still missing. Every id is looked up, so
        an id absent from the answer was not found. Calls ≤ closed_pages + ids not found in them.

        Not order/history: it lists orders newest-*created* first, so an entry placed an hour ago
        that filled a second ago sits behind every order created since (measured: a fill burst
        across 100 symbols left most look-ups to the one-by-one path and delayed reactions by
        up to 20 s); the recent-closed list holds it near the top whatever its age."""
        found, _ = self.lookup_some(account, link_ids, max_single=None)
        return found

    def lookup_some(
        self, account: Account, link_ids: Iterable[str], *, max_single: int | None = 20
    ) -> tuple[dict[str, ExchangeOrder], frozenset[str]]:
        """lookup_orders with a bound on the one-by-one look-ups. Returns (found, looked_up):
        an id in looked_up but not in found was not found; an id in neither was not looked up
        this time (Snapshot.closed_orders / Snapshot.looked_up)."""
        wanted = {lid for lid in link_ids if lid}
        found: dict[str, ExchangeOrder] = {}
        if not wanted:
            return found, frozenset()
        params = {"category": CATEGORY, "settleCoin": self.settle_coin, "openOnly": 1, "limit": ORDERS_PAGE}
        for result in self._pages(P_REALTIME, account, params, max_pages=self.closed_pages):
            for row in parse.rows(result):
                lid = row.get("orderLinkId")
                if lid in wanted and lid not in found:  # newest first: the first seen is the latest
                    found[lid] = parse.order(row)
            if wanted <= found.keys():
                break
        missing = sorted(wanted - found.keys(), key=ids.look_up_priority)
        singles = missing if max_single is None else missing[:max_single]
        for lid in singles:
            params = {"category": CATEGORY, "settleCoin": self.settle_coin, "orderLinkId": lid}
            for row in parse.rows(self._request("GET", P_REALTIME, account, params=params).result):
                if row.get("orderLinkId") == lid:
                    found[lid] = parse.order(row)
                    break
        return found, frozenset(found) | frozenset(singles)

    def tickers(self) -> dict[str, Ticker]:
        result = self._request("GET", P_TICKERS, None, params={"category": CATEGORY}).result
        out = {}
        for row in parse.rows(result):
            t = parse.ticker(row)
            if t is not None:
                out[t.symbol] = t
        return out

    def instruments(self) -> dict[str, Instrument]:
        """Filters of every linear symbol (all pages), cached settings.instruments_cache_s.
        A copy: callers may keep or change it without touching the cache."""
        return dict(self.instrument_filters())

    def instrument_filters(self) -> Mapping[str, Instrument]:
        """The cached filters themselves, read-only (what snapshots carry, without a copy)."""
        return self.instrument_cache.get(self.clock(), self._load_instruments)

    def _load_instruments(self) -> Mapping[str, Instrument]:
        out: dict[str, Instrument] = {}
        params = {"category": CATEGORY, "limit": INSTRUMENTS_PAGE}
        for result in self._pages(P_INSTRUMENTS, None, params):
            for row in parse.rows(result):
                try:
                    inst = parse.instrument(row)
                except MalformedResponse as exc:  # one odd listing must not hide every other one
                    logger.warning("instrument skipped: %s", exc.message)
                    continue
                out[inst.symbol] = inst
        return MappingProxyType(out)

    def wallet_balance(self, account: Account) -> WalletBalance:
        result = self._request("GET", P_WALLET, account, params={"accountType": "UNIFIED"}).result
        return parse.wallet(result, account.id, coin=self.settle_coin)

    def executions(self, account: Account, *, since_ms: int, symbol: str | None = None) -> list[Execution]:
        """Every fill since `since_ms` (of one symbol, or of every symbol settled in the settle coin),
        oldest first. Bybit answers at most 7 days per query, so older starts are read window by
        window (up to two years back)."""
        now_ms = int(self.clock() * 1000)
        start = max(int(since_ms), now_ms - EXECUTIONS_MAX_AGE_MS)
        seen: dict[str, Execution] = {}
        while start <= now_ms:
            end = min(start + WEEK_MS - 1, now_ms)
            params = {
                "category": CATEGORY,
                **({"symbol": symbol} if symbol else {"settleCoin": self.settle_coin}),
                "startTime": start,
                "endTime": end,
                "limit": EXECUTIONS_PAGE,
            }
            for result in self._pages(P_EXECUTIONS, account, params):
                for row in parse.rows(result):
                    e = parse.execution(row)
                    if e is not None and e.exec_time_ms >= since_ms:
                        seen.setdefault(e.exec_id, e)
            start = end + 1
        return sorted(seen.values(), key=lambda e: (e.exec_time_ms, e.exec_id))

    # ----------------------------------------------------------------------------------- writes

    def place(self, account: Account, orders: Sequence[PlaceOrder]) -> list[IntentResult]:
        return self._batch(account, orders, P_CREATE_BATCH, _create_item, idempotent=(Duplicate,))

    def amend(self, account: Account, orders: Sequence[AmendOrder]) -> list[IntentResult]:
        """Plain orders through amend-batch; conditional ones (stops) one by one through
        /v5/order/amend, first, since amend-batch does not take them."""
        results: list[IntentResult | None] = [None] * len(orders)
        singles = [i for i, o in enumerate(orders) if o.conditional]
        plain = [i for i, o in enumerate(orders) if not o.conditional]
        answers, stop = self._each([orders[i] for i in singles], lambda o: self._amend_one(account, o))
        for i, r in zip(singles, answers, strict=True):
            results[i] = r
        if plain:
            if stop is not None:
                for i in plain:
                    results[i] = _not_sent(orders[i].link_id, stop)
            else:
                batch = self._batch(account, [orders[i] for i in plain], P_AMEND_BATCH, _amend_item)
                for i, r in zip(plain, batch, strict=True):
                    results[i] = r
        return [r for r in results if r is not None]

    def cancel(self, account: Account, orders: Sequence[CancelOrder]) -> list[IntentResult]:
        return self._batch(account, orders, P_CANCEL_BATCH, _cancel_item, idempotent=(NotFound,))

    def set_position_stop(self, account: Account, stops: Sequence[SetPositionStop]) -> list[IntentResult]:
        """The position's own Full-mode stop-loss, one /v5/position/trading-stop call each (there is
        no batch form). "Not modified" (34040) is ok; a stop on the wrong side of its trigger price
        source is TriggerPassed (breached); a flat position is NoPosition. A call that failed for
        the account or the exchange (rate limit, transport) answers the calls not started yet "not
        sent" (they go side by side: `_each`)."""
        return self._each(stops, lambda intent: self._trading_stop(account, intent))[0]

    def _trading_stop(
        self, account: Account, intent: SetPositionStop
    ) -> tuple[IntentResult, TpslError | None]:
        try:
            _check_account(intent, account)
            body = _trading_stop_body(intent)
        except FixInput as exc:
            return _failed(intent.link_id, exc), None
        try:
            self._request("POST", P_TRADING_STOP, account, body=body, max_wait_s=patience([intent]))
        except TpslError as exc:
            return _failed(intent.link_id, exc), exc
        return IntentResult(intent.link_id, True), None

    def _each(
        self, intents: Sequence[SingleT], one: Callable[[SingleT], tuple[IntentResult, TpslError | None]]
    ) -> tuple[list[IntentResult], TpslError | None]:
        """One call per intent (`one`: its answer, and the error if it failed), side by side on the
        process's `singles` threads when there are any. Each answer is stamped when its own call
        returned. A failure about the account or the exchange (`_stops_the_rest`) answers the
        calls not started yet "not sent"; it is returned with the answers."""
        failed: list[TpslError] = []

        def run(intent: SingleT) -> IntentResult:
            if failed:
                return _not_sent(intent.link_id, failed[0])
            result, failure = one(intent)
            if failure is not None and _stops_the_rest(failure):
                failed.append(failure)
            return replace(result, answered_at=self.clock())

        if self.singles is None or len(intents) < 2:
            answers = [run(i) for i in intents]
        else:
            answers = list(self.singles.map(run, intents))
        return answers, (failed[0] if failed else None)

    def _amend_one(self, account: Account, intent: AmendOrder) -> tuple[IntentResult, TpslError | None]:
        try:
            _check_account(intent, account)
            body = {"category": CATEGORY, **_amend_item(intent)}
        except FixInput as exc:
            return _failed(intent.link_id, exc), None
        try:
            answer = self._request("POST", P_AMEND, account, body=body, max_wait_s=patience([intent]))
        except TpslError as exc:
            return _failed(intent.link_id, exc), exc
        return IntentResult(intent.link_id, True, order_id=parse.text(answer.result, "orderId")), None

    def _batch(
        self,
        account: Account,
        intents: Sequence[PlaceOrder | AmendOrder | CancelOrder],
        path: str,
        build: Callable[[Any], dict[str, Any]],
        *,
        idempotent: tuple[type[TpslError], ...] = (),
    ) -> list[IntentResult]:
        results: list[IntentResult | None] = [None] * len(intents)
        sendable: list[tuple[int, Any, dict[str, Any]]] = []
        for i, intent in enumerate(intents):
            try:
                _check_account(intent, account)
                sendable.append((i, intent, build(intent)))
            except FixInput as exc:
                results[i] = _failed(intent.link_id, exc)
        stop: TpslError | None = None
        # never more items in one request than the per-second budget: the exchange would refuse
        # the rest of a larger batch (10006 per item) however the requests are paced
        size = max(1, min(BATCH_MAX, self.limiter.budget(path) or BATCH_MAX))
        for start in range(0, len(sendable), size):
            chunk = sendable[start : start + size]
            if stop is not None:
                for i, intent, _ in chunk:
                    results[i] = _not_sent(intent.link_id, stop)
                continue
            body = {"category": CATEGORY, "request": [item for _, _, item in chunk]}
            try:
                answer = self._request(
                    "POST",
                    path,
                    account,
                    body=body,
                    cost=len(chunk),
                    max_wait_s=patience([intent for _, intent, _ in chunk]),
                )
                items = parse.batch_items(answer.result, answer.ext, len(chunk))
                for (_, intent, _), item in zip(chunk, items, strict=True):
                    if item.link_id and item.link_id != intent.link_id:
                        raise MalformedResponse(
                            f"batch answer out of order: {item.link_id!r} where {intent.link_id!r} was sent"
                        )
            except TpslError as exc:
                for i, intent, _ in chunk:
                    results[i] = _failed(intent.link_id, exc)
                stop = exc
                continue
            now = self.clock()
            for (i, intent, _), item in zip(chunk, items, strict=True):
                err = map_error(200, item.code, _scrub(item.msg, account), answer.headers, now)
                if err is None or isinstance(err, idempotent):
                    results[i] = IntentResult(intent.link_id, True, order_id=item.order_id)
                    continue
                results[i] = IntentResult(
                    intent.link_id, False, err.kind, err.message, order_id=item.order_id
                )
                self.session.stats.error(err.kind.value)
                if isinstance(err, BackOff):  # the items beyond Bybit's per-second budget
                    self.limiter.back_off(account.id, path, err.until)
        return [r for r in results if r is not None]


# ---------------------------------------------------------------------------------- helpers


def patience(intents: Iterable[PlaceOrder | AmendOrder | CancelOrder | SetPositionStop]) -> float | None:
    """How long a write may wait for its rate window: a call carrying a stop (`Stage.STOP`) the
    limiter's bound (None); any other none at all (0.0): it is sent now or left to the next pass."""
    return None if any(i.stage == Stage.STOP for i in intents) else 0.0


def _attempts(resp: requests.Response) -> int:
    retries = getattr(resp.raw, "retries", None)
    history = getattr(retries, "history", None) or ()
    return len(history) + 1


def _scrub(msg: str, account: Account | None) -> str:
    """An exchange message with this account's credentials masked (10004 echoes the signed text)."""
    if account is not None and msg:
        for secret in (account.api_key.reveal(), account.api_secret.reveal()):
            if secret and secret in msg:
                msg = msg.replace(secret, "***")
    return msg


def _failed(link_id: str, exc: TpslError) -> IntentResult:
    return IntentResult(link_id, False, exc.kind, exc.message)


def _not_sent(link_id: str, cause: TpslError) -> IntentResult:
    return IntentResult(link_id, False, cause.kind, f"not sent: an earlier request failed ({cause.message})")


def _stops_the_rest(exc: TpslError) -> bool:
    """A verdict on one order (invalid, gone) does not stop the others; anything about the
    account or the exchange (rate limit, credentials, transport, outage) does."""
    return not isinstance(exc, InvalidOrder | NotFound | Duplicate)


def _check_account(intent: PlaceOrder | AmendOrder | CancelOrder | SetPositionStop, account: Account) -> None:
    if intent.account != account.id:
        raise FixInput(
            "account",
            f"intent {intent.link_id!r} belongs to account {intent.account!r}, not {account.id!r}",
        )
    if not _LINK_ID.match(intent.link_id or ""):
        raise FixInput("link_id", f"{intent.link_id!r}: 1-36 characters of [A-Za-z0-9_-]")
    if not intent.symbol:
        raise FixInput("symbol", f"missing (order {intent.link_id})")


def _positive(value: Decimal | None, field: str, link_id: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise FixInput(field, f"must be a finite Decimal (order {link_id}, got {value!r})")
    if value < 0 or (value == 0 and not allow_zero):
        raise FixInput(field, f"must be > 0 (order {link_id}, got {value})")


def _create_item(o: PlaceOrder) -> dict[str, Any]:
    lid = o.link_id
    if not isinstance(o.side, Side):
        raise FixInput("side", f"must be Buy or Sell (order {lid}, got {o.side!r})")
    if o.order_type not in ("Limit", "Market"):
        raise FixInput("order_type", f"must be Limit or Market (order {lid}, got {o.order_type!r})")
    # qty "0" with reduceOnly + closeOnTrigger closes the whole position (Bybit's documented idiom)
    _positive(o.qty, "qty", lid, allow_zero=o.reduce_only and o.close_on_trigger)
    if o.qty is None:
        raise FixInput("qty", f"missing (order {lid})")
    if o.position_idx not in (0, 1, 2):
        raise FixInput("position_idx", f"must be 0, 1 or 2 (order {lid}, got {o.position_idx})")
    item: dict[str, Any] = {
        "symbol": o.symbol,
        "side": o.side.value,
        "orderType": o.order_type,
        "qty": decimal_text(o.qty),
        "positionIdx": o.position_idx,
        "orderLinkId": lid,
        "reduceOnly": bool(o.reduce_only),
        "closeOnTrigger": bool(o.close_on_trigger),
    }
    if o.order_type == "Limit":
        if o.price is None:
            raise FixInput("price", f"a Limit order needs a price (order {lid})")
        _positive(o.price, "price", lid)
        item["price"] = decimal_text(o.price)
        if o.time_in_force not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise FixInput("time_in_force", f"must be GTC, IOC, FOK or PostOnly (order {lid})")
        item["timeInForce"] = o.time_in_force
    if o.trigger_price is not None:
        _positive(o.trigger_price, "trigger_price", lid)
        if o.trigger_direction not in (1, 2):
            raise FixInput(
                "trigger_direction", f"must be 1 (rises to) or 2 (falls to) for a conditional order ({lid})"
            )
        if o.trigger_by not in ("LastPrice", "MarkPrice", "IndexPrice"):
            raise FixInput("trigger_by", f"must be LastPrice, MarkPrice or IndexPrice (order {lid})")
        item["triggerPrice"] = decimal_text(o.trigger_price)
        item["triggerDirection"] = o.trigger_direction
        item["triggerBy"] = o.trigger_by
    if o.stop_loss is not None:
        if o.reduce_only or o.close_on_trigger:
            raise FixInput("stop_loss", f"cannot be attached to an order that reduces a position ({lid})")
        _positive(o.stop_loss, "stop_loss", lid)
        if o.stop_loss_by not in ("LastPrice", "MarkPrice", "IndexPrice"):
            raise FixInput("stop_loss_by", f"must be LastPrice, MarkPrice or IndexPrice (order {lid})")
        item["stopLoss"] = decimal_text(o.stop_loss)
        item["slTriggerBy"] = o.stop_loss_by
        item["tpslMode"] = "Full"
    return item


def _amend_item(o: AmendOrder) -> dict[str, Any]:
    lid = o.link_id
    item: dict[str, Any] = {"symbol": o.symbol, "orderLinkId": lid}
    for field, key, value in (
        ("qty", "qty", o.qty),
        ("price", "price", o.price),
        ("trigger_price", "triggerPrice", o.trigger_price),
    ):
        if value is not None:
            _positive(value, field, lid)
            item[key] = decimal_text(value)
    if len(item) == 2:
        raise FixInput("qty/price/trigger_price", f"nothing to change (order {lid})")
    return item


def _trading_stop_body(o: SetPositionStop) -> dict[str, Any]:
    lid = o.link_id
    _positive(o.trigger_price, "trigger_price", lid)
    if o.trigger_by not in ("LastPrice", "MarkPrice", "IndexPrice"):
        raise FixInput("trigger_by", f"must be LastPrice, MarkPrice or IndexPrice (stop {lid})")
    if o.position_idx not in (0, 1, 2):
        raise FixInput("position_idx", f"must be 0, 1 or 2 (stop {lid}, got {o.position_idx})")
    return {
        "category": CATEGORY,
        "symbol": o.symbol,
        "tpslMode": "Full",
        "stopLoss": decimal_text(o.trigger_price),
        "slTriggerBy": o.trigger_by,
        "positionIdx": o.position_idx,
    }


def _cancel_item(o: CancelOrder) -> dict[str, Any]:
    return {"symbol": o.symbol, "orderLinkId": o.link_id}
