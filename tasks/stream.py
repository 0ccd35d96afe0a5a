"""The stream process (`tpsl stream`, Procfile `stream`): each configured account's private stream,
and one coalesced critical check for every push that touches a monitor.

It only publishes: the check (`tpsl.stream_check`) runs on the workers like any tier check, reads
the account by REST, and the core decides. The tiers keep scheduling every monitor whatever the
streams do, so a stream that is down only costs the speed it adds (the fallback is today's
polling). `TPSL_STREAMS=false` turns the process into a no-op: the system as it was without it.

Health (`StreamWatch.health`, kept in Redis for /metrics): per account, whether its stream is
connected, pushes seen, gaps (each gap queues a check of every monitor of the account, because what
happened while the stream was down is only in the REST API).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from celery import Celery

from config import keys
from config.queues import TIERS
from core.errors import TpslError
from core.ids import parse_link_id
from core.models import Account, ExchangeOrder, Position, Tier
from exchange.bybit import parse
from exchange.bybit.stream import BybitStreams, StreamEvent, StreamTiming
from workers.checker import stream_view
from workers.position_index import PositionIndex
from workers.runtime import Runtime
from workers.stream_triggers import POSITION_TOPICS, QUEUED_TTL_S, CheckCoalescer, touched

ORDER_TOPICS = frozenset({"order", "order.linear"})
EXECUTION_TOPICS = frozenset({"execution", "execution.linear", "execution.fast", "execution.fast.linear"})

log = logging.getLogger(__name__)

PRIVATE_TOPICS = ("order", "execution", "position")

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
    spec = TIERS[Tier.CRITICAL]
    app.tasks["tpsl.stream_check"].apply_async(
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

    def start(self) -> StreamWatch:
        by_base: dict[str, list[Account]] = {}
        for account in self.rt.accounts.values():
            by_base.setdefault(stream_base(account.base_url), []).append(account)
        for base, accounts in by_base.items():
            streams = BybitStreams(base, self.on_event, timing=self.timing).start()
            self.streams[base] = streams
            for account in accounts:
                self._health[account.id] = _fresh_health()
                streams.add_private(account.id, account.api_key, account.api_secret, PRIVATE_TOPICS)
        log.info("streams: %d accounts on %d stream hosts", len(self._health), len(self.streams))
        return self

    def stop(self) -> None:
        for streams in self.streams.values():
            streams.stop()
        self.streams.clear()

    def __enter__(self) -> StreamWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ events

    def on_event(self, ev: StreamEvent) -> None:
        """On the streams' thread: never raises (a failure is logged; the tiers still poll)."""
        account = ev.account
        if account is None:
            return
        try:
            self._update_view(account, ev)
            ids = self._touched_monitors(account, ev)
            self._note_health(account, ev)
            if ids and self.coalescer.note(account, ids):
                self.publish(account)
                self._bump(account, "checks")
        except Exception:
            log.exception(
                "stream event of %s (%s %s) not handled; the tiers still check it", account, ev.kind, ev.topic
            )

    def _update_view(self, account: str, ev: StreamEvent) -> None:
        """The push into the account's stream view before any check is queued for it (the check
        must see it). A gap marks the view untrusted until a REST read reconciles it."""
        if self.view is None:
            return
        if ev.kind == "gap":
            self.view.mark_gap(account, self.clock())
            self.view.mark_alive(account)
        elif ev.kind == "down":
            self.view.mark_down(account)
        elif ev.kind == "message":
            pushed = pushed_rows(ev.topic, ev.data, received_at=ev.received_at or self.clock())
            if pushed.fills:
                self.view.apply_fills(account, pushed.fills)
            if pushed.orders:
                self.view.apply_orders(account, pushed.orders)
            if pushed.positions:
                self.view.apply_positions(account, pushed.positions)

    def heartbeat(self) -> None:
        """Every second: the views of accounts whose stream is up stay readable."""
        if self.view is None:
            return
        for account, h in self.health().items():
            if h.get("connected"):
                self.view.mark_alive(account)

    def _touched_monitors(self, account: str, ev: StreamEvent) -> set[str]:
        if ev.kind == "gap":
            return set(self.rt.registry.ids(account))
        if ev.kind != "message":
            return set()
        t = touched(ev.topic, ev.data)
        ids = set(t.monitor_ids)
        for symbol, idx in t.positions:
            owner = self.positions.owner(account, symbol, idx)
            if owner is not None:
                ids.add(owner)
        return ids

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
        self.rt.redis.hset(keys.stream_health(self.rt.prefix), account, orjson.dumps(snapshot))

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
        while not stop.wait(1.0):
            watch.heartbeat()


class Pushed(NamedTuple):
    orders: list[ExchangeOrder]  # ours
    positions: list[tuple[Position, int]]  # with their update time, ms
    fills: list[tuple[str, int]]  # (symbol, execution time ms) of every execution pushed


def pushed_rows(topic: str, data: Any, *, received_at: float) -> Pushed:
    """What a push carries into the view; a row that does not parse is skipped (logged): the next
    REST reconciliation sets the view right."""
    rows = data if isinstance(data, list) else [data]
    out = Pushed([], [], [])
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
                out.fills.append(
                    (
                        parse.required_text(row, "symbol"),
                        parse.to_int(row, "execTime") or int(received_at * 1000),
                    )
                )
        except TpslError as e:
            log.warning("stream push on %s not understood (%s); the next reconciliation covers it", topic, e)
    return out
