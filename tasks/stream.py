"""The stream process (`tpsl stream`, Procfile `stream`): each configured account's private stream,
the public ticker stream of every monitored symbol, and one coalesced critical check for every push
that touches a monitor.

Public tickers (`tickers.{SYMBOL}`): the symbols of the monitors in the registry, refreshed every
`BANDS_REFRESH_S` (new symbols subscribed, symbols no monitor has any more unsubscribed). Each push
writes the symbol's price into Redis (workers/stream_prices.py), where checks read it instead of
GET /v5/market/tickers while it is fresh; and a pushed mark that enters a monitor's proximity band
(the core's rule, workers/stream_triggers.py `BandWatch`) queues a check of that monitor's account
through the same coalescer as the private pushes.

It only publishes: the check (`tpsl.stream_check`) runs on the workers like any tier check, reads
the account by REST, and the core decides. The tiers keep scheduling every monitor whatever the
streams do, so a stream that is down only costs the speed it adds (the fallback is today's
polling). `TPSL_STREAMS=false` turns the process into a no-op: the system as it was without it.

Health (`StreamWatch.health`, kept in Redis for /metrics): per account, whether its stream is
connected, pushes seen, gaps (each gap queues a check of every monitor of the account, because what
happened while the stream was down is only in the REST API). A stream still down
`DOWN_CHECK_AFTER_S` after it went down queues one too: that check reads REST, and the monitors are
polled by their tiers from then on.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson
from celery import Celery

from config import keys
from config.queues import TIERS
from core.errors import TpslError
from core.ids import parse_link_id
from core.models import POSITION_STOP_LOSS, Account, ExchangeOrder, Position, Side, Ticker, Tier
from exchange.bybit import parse
from exchange.bybit.stream import BybitStreams, StreamEvent, StreamTiming
from workers.lag import STREAM_LAG
from workers.position_index import PositionIndex
from workers.runtime import Runtime
from workers.store import decoded
from workers.stream_prices import StreamPrices
from workers.stream_triggers import POSITION_TOPICS, QUEUED_TTL_S, BandWatch, CheckCoalescer, touched
from workers.stream_view import stream_view

ORDER_TOPICS = frozenset({"order", "order.linear"})
EXECUTION_TOPICS = frozenset({"execution", "execution.linear", "execution.fast", "execution.fast.linear"})

log = logging.getLogger(__name__)

PRIVATE_TOPICS = ("order", "execution", "position")
TICKER_PREFIX = "tickers."
HEARTBEAT_S = 1.0
BANDS_REFRESH_S = 2.0  # the monitored symbols and their proximity targets, read again this often
# a private stream still down this long after it went down gets its account checked (by REST); one
# that is back sooner has its gap's check instead (the client reconnects within about a second)
DOWN_CHECK_AFTER_S = 2.0
MAX_BATCH = 2_000  # events handled as one batch at most (a burst larger than this takes several)

_BYBIT_STREAM_HOSTS = {
    "api.bybit.com": "stream.bybit.com",
    "api.bytick.com": "stream.bybit.com",
    "api-testnet.bybit.com": "stream-testnet.bybit.com",
    "api-demo.bybit.com": "stream-demo.bybit.com",
}


def stream_base(rest_base_url: str) -> str:
    """The WebSocket base of an account's REST base URL: Bybit's REST hosts map to their stream
    hosts; any other host (a paper exchange) serves its streams on the REST port."""
    url = rest_base_url.rstrip("/")
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if host in _BYBIT_STREAM_HOSTS:
        return f"wss://{_BYBIT_STREAM_HOSTS[host]}"
    ws = {"https": "wss", "http": "ws"}.get(scheme, scheme)
    return f"{ws}://{host}{slash}{path}"


def publish_stream_check(app: Celery, account: str, *, countdown: float | None = None) -> None:
    """By name: the stream process's app has no task registered (tasks/base.py), so this module
    never imports the check it queues (tasks/checks.py)."""
    spec = TIERS[Tier.CRITICAL]
    app.send_task(
        "tpsl.stream_check",
        args=(account,),
        queue=spec.queue,
        routing_key=spec.queue,
        countdown=countdown,
        expires=QUEUED_TTL_S,
        soft_time_limit=spec.soft_time_limit_s,
        time_limit=spec.time_limit_s,
    )


class StreamWatch:
    """The private streams of every configured account, turned into coalesced checks."""

    def __init__(
        self,
        rt: Runtime,
        publish: Callable[[str], None],
        *,
        timing: StreamTiming | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rt = rt
        self.publish = publish
        self.timing = timing
        self.clock = clock
        self.coalescer = CheckCoalescer(rt.redis, prefix=rt.prefix)
        self.positions = PositionIndex(rt.redis, prefix=rt.prefix)
        self.view = stream_view(rt)
        self.streams: dict[str, BybitStreams] = {}
        self._health: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        # the public ticker streams: on the first account's stream host (prices are shared by every
        # account, as the REST ticker cache is)
        self.public: BybitStreams | None = None
        self.prices = StreamPrices(rt.redis, prefix=rt.prefix)
        self.bands = BandWatch(rt.policy.proximity_band)
        self._tickers: dict[str, Ticker] = {}  # the last price pushed per symbol held
        self._versions: dict[str, int] = {}  # monitor id → the version its bands were built from
        self._price_lock = threading.Lock()  # a push and the heartbeat's confirmation write in turn
        self._public_health: dict[str, Any] = {"pushes": 0, "entered": 0, "checks": 0, "gaps": 0, "downs": 0}
        self._down_since: dict[str, float] = {}  # private streams down: since when (inf: checked)
        self._next_refresh = 0.0
        # pushes, from the streams' asyncio thread to the handler thread (`feed` → `_drain`)
        self._inbox: queue.SimpleQueue[StreamEvent | None] = queue.SimpleQueue()
        self._handler: threading.Thread | None = None

    def start(self) -> StreamWatch:
        self._handler = threading.Thread(target=self._drain, daemon=True, name="stream-handler")
        self._handler.start()
        by_base: dict[str, list[Account]] = {}
        for account in sorted(self.rt.accounts.values(), key=lambda a: a.id):
            by_base.setdefault(stream_base(account.base_url), []).append(account)
        for base, accounts in by_base.items():
            streams = BybitStreams(base, self.feed, timing=self.timing).start()
            self.streams[base] = streams
            if self.public is None:
                self.public = streams
            for account in accounts:
                self._health[account.id] = _fresh_health()
                streams.add_private(account.id, account.api_key, account.api_secret, PRIVATE_TOPICS)
        self.refresh_symbols()
        log.info(
            "streams: %d accounts on %d stream hosts; tickers of %d symbols",
            len(self._health),
            len(self.streams),
            len(self.bands.symbols()),
        )
        return self

    def stop(self) -> None:
        """Close every stream; the views and prices it kept are no longer read (checks read REST)."""
        for streams in self.streams.values():
            streams.stop()
        self.streams.clear()
        self.public = None
        if self._handler is not None:
            self._inbox.put(None)  # what was fed before is handled first
            self._handler.join(5)
            self._handler = None
        try:
            if self.view is not None:
                for account in self._health:
                    self.view.mark_down(account)
            with self._price_lock:
                self.prices.drop(list(self._tickers))
                self._tickers.clear()
        except Exception:
            log.exception("stream views and prices not marked down at stop; they expire on their own")

    def __enter__(self) -> StreamWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ events

    def feed(self, ev: StreamEvent) -> None:
        """The streams' callback, on their asyncio thread: hand the event over and return at once,
        so the sockets are read (and `received_at` stamped) while the Redis work of earlier pushes
        is done on the handler thread."""
        self._inbox.put(ev)

    def _drain(self) -> None:
        """The handler thread: every event waiting is handled as one batch (`handle`), so a burst
        of pushes (a price step fills many orders at once) costs a few Redis round trips per
        account instead of a few per push, and the last push of a burst does not wait behind
        the round trips of all the others."""
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            done = False
            while len(batch) < MAX_BATCH:
                try:
                    ev = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if ev is None:
                    done = True
                    break
                batch.append(ev)
            try:
                self.handle(batch)
            except Exception:  # never expected (`handle` logs its own); the thread must live on
                log.exception("%d stream events not handled; the tiers still check", len(batch))
            if done:
                return

    def handle(self, events: Sequence[StreamEvent]) -> None:
        """Events in the order they came: a run of pushes as one batch, a connection's state change
        (gap, down) on its own between them. Never raises (a failure is logged; the tiers still
        poll)."""
        run: list[StreamEvent] = []
        for ev in events:
            if ev.kind == "message":
                run.append(ev)
                continue
            self._handle_pushes(run)
            run = []
            if ev.account is None:
                self._on_public(ev)
            else:
                self._on_private_state(ev.account, ev)
        self._handle_pushes(run)

    def _on_private_state(self, account: str, ev: StreamEvent) -> None:
        try:
            self._update_view(account, ev)
            # a gap touches every monitor of the account: what happened meanwhile is only in REST
            ids = set(self.rt.registry.ids(account)) if ev.kind == "gap" else set()
            with self._lock:
                if ev.kind == "down":
                    self._down_since.setdefault(account, self.clock())
                elif ev.kind == "gap":
                    self._down_since.pop(account, None)
            self._note_health(account, ev)
            self._queue_check(account, ids)
        except Exception:
            log.exception("stream %s of %s not handled; the tiers still check it", ev.kind, account)

    def _queue_check(self, account: str, ids: set[str]) -> bool:
        """These monitors into the account's next check; the check published unless one is queued
        already (coalesced). True when one was published."""
        if not ids or not self.coalescer.note(account, ids):
            return False
        self.publish(account)
        self._bump(account, "checks")
        return True

    def check_streams_down(self) -> list[str]:
        """The accounts whose private stream has been down for `DOWN_CHECK_AFTER_S`: a check of
        every monitor of each, once per outage. That check reads REST (the view is unread while the
        stream is down), and the tiers poll the account from then on, rather than from each
        monitor's next tier check (up to a minute for an idle one). A stream back sooner has its
        gap's check instead, so a quick reconnect costs one REST read, not two."""
        now = self.clock()
        with self._lock:
            due = [a for a, since in self._down_since.items() if now - since >= DOWN_CHECK_AFTER_S]
            for account in due:
                self._down_since[account] = math.inf  # checked; the next gap clears it
        for account in due:
            try:
                self._queue_check(account, set(self.rt.registry.ids(account)))
            except Exception:
                log.exception(
                    "the check of %s, its stream down, not queued; the tiers still poll it", account
                )
        return due

    def _handle_pushes(self, pushes: Sequence[StreamEvent]) -> None:
        """A batch of pushes: each account's into its view (one write per kind of row), the
        tickers into the prices, then one coalesced check per account they touch."""
        if not pushes:
            return
        private: dict[str, list[StreamEvent]] = defaultdict(list)
        tickers: list[StreamEvent] = []
        for ev in pushes:
            if ev.account is None:
                tickers.append(ev)
            else:
                private[ev.account].append(ev)
        for account, evs in private.items():
            try:
                self._queue_check(account, self._apply_private(account, evs))
            except Exception:
                log.exception(
                    "%d stream pushes of %s not handled; the tiers still check it", len(evs), account
                )
        if tickers:
            self._on_tickers(tickers)
        handled_at = self.clock()
        lags = [
            ("private" if ev.account is not None else "ticker", max(0.0, handled_at - ev.created_ms / 1000))
            for ev in pushes
            if ev.created_ms
        ]
        try:
            self.rt.latency.record_many(STREAM_LAG, lags, now=handled_at)
        except Exception:
            log.exception("stream lag not recorded")

    def _apply_private(self, account: str, evs: Sequence[StreamEvent]) -> set[str]:
        """An account's pushes into its view (before any check is queued for it: the check must
        see them); the monitors they touch."""
        orders: list[ExchangeOrder] = []
        positions: list[tuple[Position, int]] = []
        fills: list[tuple[str, int]] = []
        stop_fills: list[tuple[str, Side, int]] = []
        ids: set[str] = set()
        held: set[tuple[str, int]] = set()
        for ev in evs:
            pushed = pushed_rows(ev.topic, ev.data, received_at=ev.received_at or self.clock())
            orders.extend(pushed.orders)
            positions.extend(pushed.positions)
            fills.extend(pushed.fills)
            stop_fills.extend(pushed.stop_fills)
            t = touched(ev.topic, ev.data)
            ids |= t.monitor_ids
            held |= t.positions
        if self.view is not None:
            # the fills first: a check between these writes sees a fill without its position and
            # reads REST (`positions_behind`), never a position without the fill's order
            self.view.apply_fills(account, fills)
            if stop_fills:
                self.view.apply_stop_fills(account, stop_fills)
            self.view.apply_orders(account, orders)
            # received when the batch was: a moment late for its first pushes, which only makes
            # a check take a row as newer than it is (it sends a stop again, harmless)
            seen_at = max((ev.received_at for ev in evs if ev.received_at), default=0.0) or self.clock()
            self.view.apply_positions(account, positions, seen_at=seen_at)
        if held:
            ids |= set(self.positions.owners(account, held).values())
        for ev in evs:
            self._note_health(account, ev)
        return ids

    def _update_view(self, account: str, ev: StreamEvent) -> None:
        """A connection's state into the account's view: a gap marks the view untrusted until a
        REST read reconciles it; down, unread."""
        if self.view is None:
            return
        if ev.kind == "gap":
            self.view.mark_gap(account, self.clock())
            self.view.mark_alive(account)
        elif ev.kind == "down":
            self.view.mark_down(account)

    def run(self, stop: threading.Event) -> None:
        """The process's loop once started: a heartbeat every second until `stop` is set."""
        while not stop.wait(HEARTBEAT_S):
            try:
                self.heartbeat()
            except Exception:
                log.exception("stream heartbeat failed; next one in %.0f s", HEARTBEAT_S)

    def heartbeat(self) -> None:
        """Every second: the views of accounts whose stream is up stay readable, accounts whose
        stream stays down get a check (`check_streams_down`), the prices of symbols whose ticker
        connection is up are confirmed, and every `BANDS_REFRESH_S` the monitored symbols and their
        bands are read again."""
        if self.view is not None:
            for account, h in self.health().items():
                if h.get("connected"):
                    self.view.mark_alive(account)
        self.check_streams_down()
        self.confirm_prices()
        if self.clock() >= self._next_refresh:
            self.refresh_symbols()

    # ------------------------------------------------------------------------- public tickers

    def refresh_symbols(self) -> None:
        """Read the registry's monitors again (only those whose version changed are decoded): their
        bands, and the ticker subscriptions (new symbols subscribed, abandoned ones dropped)."""
        self._next_refresh = self.clock() + BANDS_REFRESH_S
        try:
            registry = self.rt.registry
            versions = registry.versions(registry.ids())
            gone = [mid for mid in self._versions if mid not in versions]
            stale = [mid for mid, v in versions.items() if self._versions.get(mid) != v]
            changed = []
            for mid, stored in registry.get_many(stale).items():
                try:
                    changed.append(decoded(mid, stored.state_json))
                except Exception:
                    log.exception("monitor %s: unreadable state; no price trigger for it", mid)
                    continue
                self._versions[mid] = stored.version
            for mid in gone:
                self._versions.pop(mid, None)
            before = self.bands.symbols()
            self.bands.update(changed, gone)
            after = self.bands.symbols()
            if self.public is not None:
                if after - before:
                    self.public.add_public(sorted(after - before))
                if before - after:
                    self.public.remove_public(sorted(before - after))
            if before - after:
                with self._price_lock:
                    for symbol in before - after:
                        self._tickers.pop(symbol, None)
                    self.prices.drop(before - after)
        except Exception:
            log.exception("ticker subscriptions not refreshed; tried again in %.0f s", BANDS_REFRESH_S)

    def confirm_prices(self) -> None:
        """The prices of every symbol whose public connection is up, confirmed now: the exchange
        pushes each change, so a quiet symbol's last push is still its price."""
        if self.public is None:
            return
        up = {
            name for name, st in self.public.stats().items() if name.startswith("public:") and st["connected"]
        }
        symbols = [s for name, held in self.public.public_symbols().items() if name in up for s in held]
        with self._price_lock:
            held_now = [self._tickers[s] for s in symbols if s in self._tickers]
            self.prices.put(held_now, self.clock())

    def _on_tickers(self, pushes: Sequence[StreamEvent]) -> None:
        """A batch of public pushes: the prices that changed into Redis (one write), then one
        coalesced check per account whose monitors a price brought into their band. Every push's
        price is judged against the bands in turn, so a batch misses no entry."""
        try:
            due: dict[str, set[str]] = defaultdict(set)
            changed: dict[str, Ticker] = {}
            at = float("inf")
            handled = 0
            with self._price_lock:
                for ev in pushes:
                    if not ev.topic.startswith(TICKER_PREFIX):
                        continue
                    ticker = parse.ticker(ev.data) if isinstance(ev.data, dict) else None
                    if ticker is None:
                        continue
                    handled += 1
                    before = self._tickers.get(ticker.symbol)
                    self._tickers[ticker.symbol] = ticker
                    if before == ticker:
                        # a delta of other fields (volume, bid/ask…): the price and the bands
                        # stand, and the heartbeat confirms the price
                        continue
                    changed[ticker.symbol] = ticker
                    at = min(at, ev.received_at or self.clock())
                    for account, ids in self.bands.entered(ticker.symbol, ticker.mark_price).items():
                        if account in self.rt.accounts:  # else: nothing can check it any more
                            due[account] |= ids
                            self._public_health["entered"] += len(ids)
                if changed:
                    self.prices.put(changed.values(), at)  # confirmed as of the batch's first
            for account, ids in due.items():
                if self._queue_check(account, ids):
                    self._public_health["checks"] += 1
            self._public_health["pushes"] += handled  # counted once handled (tests wait on it)
        except Exception:
            log.exception("%d public pushes not handled; the tiers still check", len(pushes))

    def _on_public(self, ev: StreamEvent) -> None:
        """A public connection's state: never raises."""
        try:
            if ev.kind == "down":
                self._public_health["downs"] += 1
                held = self.public.public_symbols().get(ev.connection, []) if self.public else []
                with self._price_lock:
                    for symbol in held:
                        self._tickers.pop(symbol, None)
                    self.prices.drop(held)  # not current any more: checks read REST meanwhile
                self.bands.forget(held)
            elif ev.kind == "gap":
                self._public_health["gaps"] += 1
        except Exception:
            log.exception("public stream event (%s %s) not handled; the tiers still check", ev.kind, ev.topic)

    def public_health(self) -> dict[str, Any]:
        """Of the ticker streams: pushes handled, monitors whose band a price entered, checks that
        queued (fewer: coalesced), gaps, downs, symbols held, connections (up)."""
        out = dict(self._public_health)
        out["symbols"] = len(self.bands.symbols())
        stats = self.public.stats() if self.public is not None else {}
        ups = [st["connected"] for name, st in stats.items() if name.startswith("public:")]
        out["connections"], out["connections_up"] = len(ups), sum(ups)
        return out

    def _bump(self, account: str, field: str) -> None:
        with self._lock:
            h = self._health.setdefault(account, _fresh_health())
            h[field] = h.get(field, 0) + 1

    def _note_health(self, account: str, ev: StreamEvent) -> None:
        with self._lock:
            h = self._health.setdefault(account, _fresh_health())
            if ev.kind == "message":
                h["pushes"] += 1
                h["last_push_at"] = ev.received_at or self.clock()
                if h["connected"]:
                    return  # the common case: no Redis write per push
                h["connected"] = True
            elif ev.kind == "gap":
                h["gaps"] += 1
                h["connected"] = True
            elif ev.kind == "down":
                h["connected"] = False
                h["down_reason"] = ev.reason
            snapshot = dict(h, at=self.clock())
        self.rt.redis.hset(keys.stream_health(self.rt.prefix), account, orjson.dumps(snapshot).decode())

    def health(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {a: dict(h) for a, h in self._health.items()}


def _fresh_health() -> dict[str, Any]:
    return {"connected": False, "pushes": 0, "gaps": 0, "checks": 0}


def run_stream_process(app: Celery, rt: Runtime, stop: threading.Event) -> None:
    """The `stream` process's body: run until `stop` is set."""
    if not rt.settings.streams:
        log.info("streams are off (TPSL_STREAMS=false): the tiers poll every account, as before")
        stop.wait()
        return
    settle = rt.settings.stream_settle_s or None
    with StreamWatch(rt, lambda account: publish_stream_check(app, account, countdown=settle)) as watch:
        watch.run(stop)


class Pushed(NamedTuple):
    orders: list[ExchangeOrder]  # ours
    positions: list[tuple[Position, int]]  # with their update time, ms
    fills: list[tuple[str, int]]  # (symbol, execution time ms) of every execution pushed
    stop_fills: list[tuple[str, Side, int]]  # (symbol, side, ms) of fills of positions' own stop-losses


def pushed_rows(topic: str, data: Any, *, received_at: float) -> Pushed:
    """What a push carries into the view; a row that does not parse is skipped (logged): the next
    REST reconciliation sets the view right."""
    rows = data if isinstance(data, list) else [data]
    out = Pushed([], [], [], [])
    for row in rows:
        if not isinstance(row, dict):
            continue
        try:
            if topic in ORDER_TOPICS and parse_link_id(str(row.get("orderLinkId") or "")) is not None:
                out.orders.append(parse.order(row))
            elif topic in POSITION_TOPICS:
                stamp = parse.to_int(row, "updatedTime") or int(received_at * 1000)
                out.positions.append((parse.position(row), stamp))
            elif topic in EXECUTION_TOPICS:
                # any execution on the symbol moves its position, ours or not
                symbol = parse.required_text(row, "symbol")
                ms = parse.to_int(row, "execTime") or int(received_at * 1000)
                out.fills.append((symbol, ms))
                if row.get("stopOrderType") == POSITION_STOP_LOSS:
                    side = parse.side(row)
                    if side is not None:
                        out.stop_fills.append((symbol, side, ms))
        except TpslError as e:
            log.warning("stream push on %s not understood (%s); the next reconciliation covers it", topic, e)
    return out
