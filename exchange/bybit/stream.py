"""A Bybit v5 WebSocket stream client for the guard, on the `websockets` package (asyncio).

    streams = BybitStreams("wss://stream.bybit.com", on_event=handle)   # or ws://127.0.0.1:PORT
    streams.start()                                                     # its own thread and loop
    streams.add_private("acct-1", Secret(key), Secret(secret), ["order", "execution", "position"])
    streams.add_public(["BTCUSDT", "ETHUSDT"])                          # tickers.{symbol}
    streams.remove_public(["ETHUSDT"])                                  # unsubscribed
    ...
    streams.stats()    # per connection: messages, reconnects, gaps, last message age (for /metrics)
    streams.stop()

One private connection per account and shared public connections (at most `public_topics_per_conn`
tickers each). Every connection keeps itself alive: it authenticates (private), subscribes in
requests of at most 10 topics, sends `{"op":"ping"}` every `ping_interval_s` (20 s, as Bybit asks),
and treats silence for `stall_timeout_s` after a ping as a stall. On a drop, a close, a stall or a
refused auth it reconnects after a jittered exponential backoff, authenticates again and restores
its subscriptions.

Events (`StreamEvent`, handed to `on_event` on the client's thread):
- `message`: a push (topic, data; tickers are merged: every ticker event carries the whole ticker,
  like pybit does);
- `down`: the connection was lost or stalled (reason: dropped, closed, stall, auth, connect);
  pushes may be missing from now on;
- `gap`: the connection is subscribed again (reason: start, or the reason it went down). What
  happened while it was down is only in the REST API: the consumer must reconcile by REST now,
  and from this point on every change is pushed again.
A push the network or the exchange lost without a disconnect cannot be seen here; only the
consumer's periodic REST reconciliation catches that.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from core.models import Secret

log = logging.getLogger(__name__)

PRIVATE_PATH = "/v5/private"
PUBLIC_LINEAR_PATH = "/v5/public/linear"
ARGS_PER_REQUEST = 10  # Bybit: at most 10 args per subscribe request
AUTH_EXPIRES_MS = 10_000


@dataclass(frozen=True, slots=True)
class StreamEvent:
    kind: str  # "message" | "down" | "gap"
    connection: str  # the connection's name: "private:<account>" or "public:<n>"
    topic: str = ""
    data: Any = None
    reason: str = ""
    account: str | None = None
    received_at: float = 0.0  # time.time() when it arrived
    created_ms: int | None = None  # the exchange's time of the push (creationTime, or ts for tickers)


@dataclass(frozen=True, slots=True)
class StreamTiming:
    ping_interval_s: float = 20.0
    stall_timeout_s: float = 10.0  # no message at all this long after a ping: stalled
    reply_timeout_s: float = 10.0  # auth / subscribe acks
    connect_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(slots=True)
class StreamCounters:
    messages: int = 0
    reconnects: int = 0
    gaps: int = 0
    auth_failures: int = 0
    connected: bool = False
    last_message_at: float | None = None  # time.monotonic()

    def public(self) -> dict[str, Any]:
        age = None if self.last_message_at is None else round(time.monotonic() - self.last_message_at, 3)
        return {
            "messages": self.messages,
            "reconnects": self.reconnects,
            "gaps": self.gaps,
            "auth_failures": self.auth_failures,
            "connected": self.connected,
            "last_message_age_s": age,
        }


class _Down(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class StreamConnection:
    """One WebSocket kept alive: connect, (auth), subscribe, ping, read; reconnect on trouble."""

    name: str
    url: str
    topics: list[str]
    on_event: Callable[[StreamEvent], None]
    timing: StreamTiming = field(default_factory=StreamTiming)
    api_key: Secret | None = None
    api_secret: Secret | None = None
    account: str | None = None
    rng: random.Random = field(default_factory=random.Random)
    counters: StreamCounters = field(default_factory=StreamCounters)
    _tickers: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ws: ClientConnection | None = None
    _stopping: bool = False
    _req: int = 0
    _last_reason: str = "start"

    async def run(self) -> None:
        attempt = 0
        first = True
        while not self._stopping:
            reason = "connect"
            try:
                async with connect(
                    self.url,
                    open_timeout=self.timing.connect_timeout_s,
                    ping_interval=None,  # JSON pings, as Bybit asks (and they prove the stream moves)
                    close_timeout=1,
                    max_size=2**24,
                ) as ws:
                    self._ws = ws
                    if self.api_key is not None:
                        await self._auth(ws)
                    await self._subscribe(ws, self.topics)
                    attempt = 0
                    self.counters.connected = True
                    self.counters.gaps += 1
                    self._emit(
                        StreamEvent(
                            "gap",
                            self.name,
                            reason="start" if first else self._last_reason,
                            account=self.account,
                        )
                    )
                    first = False
                    await self._read(ws)
            except _Down as down:
                reason = down.reason
            except ConnectionClosed:
                reason = "dropped"
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as err:
                reason = "connect"
                log.debug("stream %s: connect failed: %s", self.name, type(err).__name__)
            finally:
                self._ws = None
            if self._stopping:
                return
            was_connected = self.counters.connected
            self.counters.connected = False
            self._last_reason = reason
            self._tickers.clear()
            if was_connected or reason in ("auth", "stall"):
                self._emit(StreamEvent("down", self.name, reason=reason, account=self.account))
            self.counters.reconnects += 1
            delay = min(self.timing.backoff_max_s, self.timing.backoff_base_s * 2**attempt)
            attempt = min(attempt + 1, 16)
            await asyncio.sleep(delay * self.rng.uniform(0.5, 1.0))

    async def stop(self) -> None:
        self._stopping = True
        ws = self._ws
        if ws is not None:
            await ws.close()

    def _emit(self, event: StreamEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a consumer's bug must not kill the connection
            log.exception("stream %s: event handler failed", self.name)

    def _next_req(self) -> str:
        self._req += 1
        return f"{self.name}-{self._req}"

    async def _request(self, ws: ClientConnection, op: str, args: list[Any], what: str) -> dict[str, Any]:
        req_id = self._next_req()
        await ws.send(orjson.dumps({"op": op, "req_id": req_id, "args": args}).decode())
        deadline = time.monotonic() + self.timing.reply_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Down("stall")
            try:
                raw = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                raise _Down("stall") from None
            message: dict[str, Any] = orjson.loads(raw)
            if message.get("op") == op and message.get("req_id", req_id) == req_id:
                if message.get("success") is not True:
                    if op == "auth":
                        self.counters.auth_failures += 1
                        raise _Down("auth")
                    raise _Down(f"{what} refused: {message.get('ret_msg')}")
                return message
            self._on_message(message)  # a push that came before the ack

    async def _auth(self, ws: ClientConnection) -> None:
        assert self.api_key is not None and self.api_secret is not None
        expires = int(time.time() * 1000) + AUTH_EXPIRES_MS
        signature = hmac.new(
            self.api_secret.reveal().encode(), f"GET/realtime{expires}".encode(), hashlib.sha256
        ).hexdigest()
        await self._request(ws, "auth", [self.api_key.reveal(), expires, signature], "auth")

    async def _subscribe(self, ws: ClientConnection, topics: Sequence[str]) -> None:
        for i in range(0, len(topics), ARGS_PER_REQUEST):
            await self._request(ws, "subscribe", list(topics[i : i + ARGS_PER_REQUEST]), "subscribe")

    async def add_topics(self, topics: Sequence[str]) -> None:
        new = [t for t in topics if t not in self.topics]
        self.topics.extend(new)
        await self._send_ops("subscribe", new)

    async def remove_topics(self, topics: Sequence[str]) -> None:
        gone = [t for t in topics if t in self.topics]
        for t in gone:
            self.topics.remove(t)
            self._tickers.pop(t, None)
        await self._send_ops("unsubscribe", gone)

    async def _send_ops(self, op: str, topics: Sequence[str]) -> None:
        """`op` (subscribe | unsubscribe) of `topics` on the live connection, if any, in requests of
        at most ARGS_PER_REQUEST topics; their acks are read by `_read`."""
        ws = self._ws
        if ws is None or not topics or not self.counters.connected:
            return
        for i in range(0, len(topics), ARGS_PER_REQUEST):
            args = list(topics[i : i + ARGS_PER_REQUEST])
            await ws.send(orjson.dumps({"op": op, "req_id": self._next_req(), "args": args}).decode())

    async def _read(self, ws: ClientConnection) -> None:
        timing = self.timing
        next_ping = time.monotonic() + timing.ping_interval_s
        ping_sent_at: float | None = None
        while True:
            now = time.monotonic()
            wait = next_ping - now
            if ping_sent_at is not None:
                wait = min(wait, ping_sent_at + timing.stall_timeout_s - now)
            if wait <= 0:
                if ping_sent_at is not None and now >= ping_sent_at + timing.stall_timeout_s:
                    raise _Down("stall")
                await ws.send('{"op":"ping"}')
                if ping_sent_at is None:
                    ping_sent_at = now
                next_ping = now + timing.ping_interval_s
                continue
            try:
                raw = await asyncio.wait_for(ws.recv(), wait)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                raise _Down("closed" if closed.rcvd is not None else "dropped") from None
            ping_sent_at = None  # anything arriving proves the stream moves
            self._on_message(orjson.loads(raw))

    def _on_message(self, message: dict[str, Any]) -> None:
        self.counters.messages += 1
        self.counters.last_message_at = time.monotonic()
        topic = message.get("topic")
        if not isinstance(topic, str):
            if message.get("op") == "subscribe" and message.get("success") is False:
                log.warning("stream %s: subscribe refused: %s", self.name, message.get("ret_msg"))
            return  # pong and acks
        data = message.get("data")
        if topic.startswith("tickers."):
            if message.get("type") == "snapshot" or topic not in self._tickers:
                self._tickers[topic] = dict(data or {})
            else:
                self._tickers[topic].update(data or {})
            data = dict(self._tickers[topic])
        created = message.get("creationTime", message.get("ts"))
        self._emit(
            StreamEvent(
                "message",
                self.name,
                topic=topic,
                data=data,
                account=self.account,
                received_at=time.time(),
                created_ms=created if isinstance(created, int) else None,
            )
        )


class BybitStreams:
    """The guard's stream connections: one private per account, shared public ones; run on their
    own thread and event loop."""

    def __init__(
        self,
        base_url: str,
        on_event: Callable[[StreamEvent], None],
        *,
        timing: StreamTiming | None = None,
        public_topics_per_conn: int = 200,
        seed: int | None = None,
    ) -> None:
        """`base_url`: wss://stream.bybit.com, or a paper exchange's http(s)/ws URL."""
        self.base_url = _ws_base(base_url)
        self.on_event = on_event
        self.timing = timing or StreamTiming()
        self.public_topics_per_conn = public_topics_per_conn
        self.rng = random.Random(seed)
        self.connections: dict[str, StreamConnection] = {}
        self._public: list[StreamConnection] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> BybitStreams:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="bybit-streams", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            for conn in self.connections.values():
                await conn.stop()
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        loop.close()
        self._loop = self._thread = None
        self._tasks.clear()

    def __enter__(self) -> BybitStreams:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], Any]) -> Any:
        if self._loop is None:
            raise RuntimeError("BybitStreams.start() first")

        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _launch(self, conn: StreamConnection) -> None:
        self.connections[conn.name] = conn
        assert self._loop is not None
        self._tasks[conn.name] = self._loop.create_task(conn.run())

    # ---------------------------------------------------------------------------- connections

    def add_private(
        self,
        account: str,
        api_key: Secret,
        api_secret: Secret,
        topics: Sequence[str] = ("order", "execution", "position", "wallet"),
    ) -> StreamConnection:
        """Open (once) the private connection of `account`; returns it."""
        name = f"private:{account}"

        def make() -> StreamConnection:
            existing = self.connections.get(name)
            if existing is not None:
                return existing
            conn = StreamConnection(
                name=name,
                url=self.base_url + PRIVATE_PATH,
                topics=list(topics),
                on_event=self.on_event,
                timing=self.timing,
                api_key=api_key,
                api_secret=api_secret,
                account=account,
                rng=random.Random(self.rng.random()),
            )
            self._launch(conn)
            return conn

        started: StreamConnection = self._call(make)
        return started

    def remove(self, name: str) -> None:
        async def drop() -> None:
            conn = self.connections.pop(name, None)
            task = self._tasks.pop(name, None)
            if conn is not None:
                await conn.stop()
                if conn in self._public:
                    self._public.remove(conn)
            if task is not None:
                task.cancel()

        self._call(drop)

    def add_public(self, symbols: Sequence[str]) -> None:
        """Subscribe tickers.{symbol} on the shared public connections (new ones as they fill)."""

        async def add() -> None:
            held = {t for conn in self._public for t in conn.topics}
            wanted = [f"tickers.{s}" for s in symbols if f"tickers.{s}" not in held]
            while wanted:
                conn = next((c for c in self._public if len(c.topics) < self.public_topics_per_conn), None)
                if conn is None:
                    conn = StreamConnection(
                        name=f"public:{len(self._public) + 1}",
                        url=self.base_url + PUBLIC_LINEAR_PATH,
                        topics=[],
                        on_event=self.on_event,
                        timing=self.timing,
                        rng=random.Random(self.rng.random()),
                    )
                    self._public.append(conn)
                    room = self.public_topics_per_conn
                    conn.topics.extend(wanted[:room])
                    wanted = wanted[room:]
                    self._launch(conn)
                    continue
                room = self.public_topics_per_conn - len(conn.topics)
                await conn.add_topics(wanted[:room])
                wanted = wanted[room:]

        self._call(add)

    def remove_public(self, symbols: Sequence[str]) -> None:
        """Unsubscribe tickers.{symbol} (the connections stay open; their room is reused)."""

        async def remove() -> None:
            topics = [f"tickers.{s}" for s in symbols]
            for conn in self._public:
                await conn.remove_topics(topics)

        self._call(remove)

    def public_symbols(self) -> dict[str, list[str]]:
        """Public connection name → the symbols it holds tickers of."""
        return {c.name: [t.removeprefix("tickers.") for t in c.topics] for c in list(self._public)}

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per connection: messages, reconnects, gaps, auth failures, connected, last message age."""
        return {name: conn.counters.public() for name, conn in list(self.connections.items())}


def _ws_base(url: str) -> str:
    url = url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url
