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
from typing import Any

import orjson
from celery import Celery

from config import keys
from config.queues import TIERS
from core.models import Account, Tier
from exchange.bybit.stream import BybitStreams, StreamEvent, StreamTiming
from workers.position_index import PositionIndex
from workers.runtime import Runtime
from workers.stream_triggers import QUEUED_TTL_S, CheckCoalescer, touched

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


def publish_stream_check(app: Celery, account: str) -> None:
    spec = TIERS[Tier.CRITICAL]
    app.tasks["tpsl.stream_check"].apply_async(
        args=(account,),
        queue=spec.queue,
        routing_key=spec.queue,
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
                self._health[account.id] = {"connected": False, "pushes": 0, "gaps": 0, "checks": 0}
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
            ids = self._touched_monitors(account, ev)
            self._note_health(account, ev)
            if ids and self.coalescer.note(account, ids):
                self.publish(account)
                self._bump(account, "checks")
        except Exception:
            log.exception(
                "stream event of %s (%s %s) not handled; the tiers still check it", account, ev.kind, ev.topic
            )

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
            h = self._health.setdefault(account, {"connected": False, "pushes": 0, "gaps": 0, "checks": 0})
            h[field] = h.get(field, 0) + 1

    def _note_health(self, account: str, ev: StreamEvent) -> None:
        with self._lock:
            h = self._health.setdefault(account, {"connected": False, "pushes": 0, "gaps": 0, "checks": 0})
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


def run_stream_process(app: Celery, rt: Runtime, stop: threading.Event) -> None:
    """The `stream` process's body: run until `stop` is set."""
    if not rt.settings.streams:
        log.info("streams are off (TPSL_STREAMS=false): the tiers poll every account, as before")
        stop.wait()
        return
    with StreamWatch(rt, lambda account: publish_stream_check(app, account)):
        while not stop.wait(1.0):
            pass
