"""The paper exchange's WebSocket streams, on the REST port (the raw ASGI `websocket` scope):
Bybit v5's private stream `/v5/private` and public linear stream `/v5/public/linear`.

Private: `{"op":"auth","args":[key, expires_ms, hex HMAC-SHA256(secret, "GET/realtime"+expires)]}`,
then `subscribe`/`unsubscribe` (req_id echoed) to `order`, `execution`, `execution.fast`,
`position`, `wallet` or the categorised `order.linear`, `execution.linear`, `position.linear` (an
all-in-one topic and its categorised twin in one request are refused). Public: `tickers.{SYMBOL}`,
a snapshot on subscribe, then deltas carrying only the fields that changed. Both answer
`{"op":"ping"}` the way Bybit does (private: op "pong" with the server time; public: ret_msg
"pong") and cut a connection with no message either way for `idle_s` (Bybit: 10 minutes; a
private URL may ask for 30 s to 10 min with `?max_active_time=`).

Pushes come from the engine's change journal: every operation (an order placed, amended,
cancelled; a price update with the triggers and fills it caused; a trading stop; a leverage change)
hands its changes to `on_changes` under the engine lock, and each account's subscribed connections
get, per operation and in this order: the fast executions, the executions, the orders (each once,
in its state at the end of the operation, after any passing Triggered state), the positions, the
wallet. An execution is pushed before the order push that reflects it, as Bybit's execution
streams are its fastest. Messages of one connection go out in the order they were made. Subscribe
acks wait `ack_delay_ms` (pybit registers a subscription's callback only after it has sent the
request), and the pushes made meanwhile wait behind the ack.

Stream faults (faults.py) are drawn per outgoing message: drop the connection, stall it, lose or
delay pushes, refuse auth.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from exchange.paper.decimals import fmt_amount
from exchange.paper.engine import Change, PaperEngine
from exchange.paper.faults import FaultBook
from exchange.paper.queries import wallet
from exchange.paper.records import PaperAccount, PaperExecution, PaperOrder, PaperPosition, SymbolMarket
from exchange.paper.views import execution_view, order_view, position_view, ticker_json

if TYPE_CHECKING:
    from exchange.paper.server import Receive, Scope, Send

log = logging.getLogger(__name__)

PRIVATE_PATH = "/v5/private"
PUBLIC_PATH = "/v5/public/linear"
# the private topics, in the order of their pushes within one operation
PRIVATE_TOPICS = ("execution.fast", "execution", "order", "position", "wallet")
CATEGORISED = {f"{t}.linear": t for t in ("execution", "order", "position")}
JOURNAL_KINDS = ("execution", "order", "position", "wallet")
FAST_FIELDS = (
    "category",
    "symbol",
    "orderId",
    "orderLinkId",
    "execId",
    "execPrice",
    "execQty",
    "side",
    "execTime",
    "seq",
)
MAX_ACTIVE_RANGE_S = (30.0, 600.0)
CATEGORY = "linear"

NOT_AUTHORIZED = "Request not authorized"
ALREADY_AUTHORIZED = "Request already authorized"
PARAMS_ERROR = "Params Error"
MIXED_TOPICS = "error:all-in-one topic and categorised topic cannot be subscribed together,topic:{}"


@dataclass(frozen=True, slots=True)
class StreamConfig:
    idle_s: float = 600.0  # a connection that sent nothing for this long is closed
    ack_delay_ms: int = 50  # subscribe acks (and what follows them) wait this long


@dataclass(slots=True)
class _Out:
    payload: bytes
    push: bool
    delay_s: float = 0.0
    topic: str | None = None  # a push's base topic (what a stream fault can be limited to)


@dataclass(eq=False, slots=True)
class StreamConn:
    conn_id: str
    path: str
    send: Send
    loop: asyncio.AbstractEventLoop
    account: PaperAccount | None = None
    topics: dict[str, str] = field(default_factory=dict)  # name subscribed → its base topic
    idle_s: float = 600.0
    outbox: deque[_Out] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_active: float = 0.0  # loop time of the last message either way
    stalled_until: float | None = None  # loop time; inf = until closed
    closed: bool = False
    pushes: int = 0
    lost: int = 0

    @property
    def private(self) -> bool:
        return self.path == PRIVATE_PATH


class StreamHub:
    """Connections, subscriptions and pushes of both streams; registered as an engine listener."""

    def __init__(self, engine: PaperEngine, faults: FaultBook, config: StreamConfig | None = None) -> None:
        self.engine = engine
        self.faults = faults
        self.config = config or StreamConfig()
        self.conns: set[StreamConn] = set()
        self.by_account: dict[PaperAccount, list[StreamConn]] = {}
        self.ticker_subs: dict[str, list[StreamConn]] = {}
        self.ticker_state: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._cs = itertools.count(1)
        self._loop_thread: int | None = None
        self.counters: dict[str, int] = {}
        self.reset_counters()

    def _listen(self) -> None:
        """Be the engine's listener only while someone could receive a push (under the engine
        lock): with no authenticated or ticker connection the engine keeps no journal at all."""
        wanted = bool(self.by_account or self.ticker_subs)
        listening = self.on_changes in self.engine.listeners
        if wanted and not listening:
            self.engine.listeners.append(self.on_changes)
        elif listening and not wanted:
            self.engine.listeners.remove(self.on_changes)

    def reset_counters(self) -> None:
        self.counters = {
            "connections": 0,
            "auth_ok": 0,
            "auth_refused": 0,
            "pushes": 0,
            "lost": 0,
            "delayed": 0,
            "dropped": 0,
            "stalled": 0,
            "idle_closed": 0,
        }

    # ------------------------------------------------------------------------- connections

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        if path not in (PRIVATE_PATH, PUBLIC_PATH):
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        await send({"type": "websocket.accept"})
        loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        suffix = "p" if path == PRIVATE_PATH else "l"
        conn = StreamConn(f"{secrets.token_hex(10)}-{suffix}", path, send, loop, last_active=loop.time())
        conn.idle_s = self.config.idle_s
        if path == PRIVATE_PATH:
            conn.idle_s = _max_active_time(scope.get("query_string", b""), conn.idle_s)
        self.conns.add(conn)
        self.counters["connections"] += 1
        sender = loop.create_task(self._sender(conn))
        try:
            while not conn.closed:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    break
                if kind == "websocket.receive":
                    conn.last_active = loop.time()
                    raw = message.get("text")
                    if raw is None:
                        raw = message.get("bytes") or b""
                    self._on_request(conn, raw)
        finally:
            self._forget(conn)
            sender.cancel()

    def _forget(self, conn: StreamConn) -> None:
        conn.closed = True
        conn.wake.set()
        with self.engine.lock:
            self.conns.discard(conn)
            if conn.account is not None:
                peers = self.by_account.get(conn.account)
                if peers is not None and conn in peers:
                    peers.remove(conn)
                    if not peers:
                        del self.by_account[conn.account]
            for topic in list(conn.topics):
                self._drop_ticker_sub(conn, topic)
            conn.topics.clear()
            self._listen()

    def close_all(self) -> None:
        """Close every connection (a full reset: the accounts behind them are gone)."""
        for conn in list(self.conns):
            conn.closed = True
            conn.loop.call_soon_threadsafe(conn.wake.set)
        with self.engine.lock:
            self.ticker_state.clear()

    async def _sender(self, conn: StreamConn) -> None:
        loop = conn.loop
        try:
            while True:
                if not conn.outbox and not conn.closed:
                    conn.wake.clear()
                    remaining = conn.last_active + conn.idle_s - loop.time()
                    if remaining <= 0:
                        self.counters["idle_closed"] += 1
                        conn.closed = True
                    else:
                        try:
                            await asyncio.wait_for(conn.wake.wait(), remaining)
                        except TimeoutError:
                            continue
                if conn.closed:
                    await self._close(conn, 1000)
                    return
                out = conn.outbox.popleft()
                if out.delay_s:
                    await asyncio.sleep(out.delay_s)
                if not await self._send_one(conn, out):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away under us: the receive side cleans up
            log.debug("stream sender of %s stopped", conn.conn_id, exc_info=True)

    async def _send_one(self, conn: StreamConn, out: _Out) -> bool:
        loop = conn.loop
        if conn.stalled_until is not None:
            if loop.time() < conn.stalled_until:
                conn.lost += 1
                self.counters["lost"] += out.push
                return True
            conn.stalled_until = None
        effect, latency_s, stall_s = self.faults.pick_stream(
            conn.path, "push" if out.push else "reply", out.topic
        )
        if effect == "drop":
            self.counters["dropped"] += 1
            await _abort(conn)
            return False
        if effect == "stall":
            self.counters["stalled"] += 1
            conn.stalled_until = float("inf") if stall_s is None else loop.time() + stall_s
            conn.lost += 1
            self.counters["lost"] += out.push
            return True
        if effect == "lose":
            conn.lost += 1
            self.counters["lost"] += 1
            return True
        if latency_s:
            self.counters["delayed"] += 1
            await asyncio.sleep(latency_s)
        await conn.send({"type": "websocket.send", "text": out.payload.decode()})
        conn.last_active = loop.time()
        if out.push:
            conn.pushes += 1
            self.counters["pushes"] += 1
        return True

    async def _close(self, conn: StreamConn, code: int) -> None:
        try:
            await conn.send({"type": "websocket.close", "code": code})
        except Exception:  # already gone
            pass

    def _queue(
        self, conn: StreamConn, payload: bytes, *, push: bool, delay_s: float = 0.0, topic: str | None = None
    ) -> None:
        """Append to a connection's outbox, from any thread: pushes are appended under the engine
        lock, so the outbox keeps the engine's order whichever thread ran the operation (deque
        appends are thread-safe); only the wake-up is handed to the loop."""
        conn.outbox.append(_Out(payload, push, delay_s, topic))
        if threading.get_ident() == self._loop_thread:
            conn.wake.set()
        else:
            try:
                conn.loop.call_soon_threadsafe(conn.wake.set)
            except RuntimeError:  # the server's loop has stopped: nobody to push to
                pass

    # ---------------------------------------------------------------------------- requests

    def _reply(self, conn: StreamConn, data: dict[str, Any], delay_s: float = 0.0) -> None:
        self._queue(conn, orjson.dumps(data), push=False, delay_s=delay_s)

    def _on_request(self, conn: StreamConn, raw: str | bytes) -> None:
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            self._reply(
                conn,
                {
                    "success": False,
                    "ret_msg": f"error:unrecognized request: {str(raw)[:64]}",
                    "conn_id": conn.conn_id,
                },
            )
            return
        op = request["op"]
        req_id = request.get("req_id")
        # linear public replies always carry req_id ("" when none was sent); private ones echo it
        base: dict[str, Any] = {"req_id": req_id} if isinstance(req_id, str) and req_id else {}
        if not conn.private:
            base = {"req_id": req_id if isinstance(req_id, str) else ""}
        if op == "ping":
            if conn.private:
                reply = {**base, "op": "pong", "args": [str(self.engine.now_ms())], "conn_id": conn.conn_id}
            else:
                reply = {**base, "success": True, "ret_msg": "pong", "conn_id": conn.conn_id, "op": "ping"}
            self._reply(conn, reply)
        elif op == "auth":
            ok, msg = self._auth(conn, request.get("args"))
            self._reply(conn, {**base, "success": ok, "ret_msg": msg, "op": "auth", "conn_id": conn.conn_id})
        elif op in ("subscribe", "unsubscribe"):
            args = request.get("args")
            if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
                ok, msg = False, PARAMS_ERROR
            elif op == "subscribe":
                ok, msg = self._subscribe(conn, args)
            else:
                ok, msg = self._unsubscribe(conn, args)
            reply = {"success": ok, "ret_msg": msg, "conn_id": conn.conn_id, **base, "op": op}
            self._reply(conn, reply, delay_s=self.config.ack_delay_ms / 1000 if op == "subscribe" else 0.0)
            if ok and op == "subscribe" and not conn.private and isinstance(args, list):
                self._snapshots(conn, args)
        else:
            self._reply(
                conn,
                {
                    **base,
                    "success": False,
                    "ret_msg": f"error:invalid op:{op}",
                    "op": op,
                    "conn_id": conn.conn_id,
                },
            )

    def _auth(self, conn: StreamConn, args: Any) -> tuple[bool, str]:
        if not conn.private:
            return False, f"error:auth is not supported on {PUBLIC_PATH}"
        if conn.account is not None:
            return False, ALREADY_AUTHORIZED
        if not isinstance(args, list) or len(args) != 3:
            return False, PARAMS_ERROR
        key, expires, signature = args
        try:
            expires_ms = int(expires)
        except (TypeError, ValueError):
            return False, PARAMS_ERROR
        if not isinstance(key, str) or not isinstance(signature, str):
            return False, PARAMS_ERROR
        effect, _, _ = self.faults.pick_stream(conn.path, "auth")
        if effect == "refuse_auth":
            self.counters["auth_refused"] += 1
            return False, NOT_AUTHORIZED
        if expires_ms <= self.engine.now_ms():
            self.counters["auth_refused"] += 1
            return False, PARAMS_ERROR  # what Bybit answers an expired auth
        with self.engine.lock:
            acct = self.engine.accounts_by_key.get(key)
            if acct is None:
                self.counters["auth_refused"] += 1
                return False, NOT_AUTHORIZED
            expected = hmac.new(
                acct.api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(expected, signature.lower()):
                self.counters["auth_refused"] += 1
                return False, NOT_AUTHORIZED
            conn.account = acct
            self.by_account.setdefault(acct, []).append(conn)
            self._listen()
        self.counters["auth_ok"] += 1
        return True, ""

    def _subscribe(self, conn: StreamConn, args: list[str]) -> tuple[bool, str]:
        with self.engine.lock:
            if conn.private:
                if conn.account is None:
                    return False, NOT_AUTHORIZED
                wanted: dict[str, str] = {}
                for name in args:
                    base = name if name in PRIVATE_TOPICS else CATEGORISED.get(name)
                    if base is None:
                        return False, f"error:handler not found,topic:{name}"
                    if name in conn.topics or name in wanted:
                        return False, f"error:already subscribed,topic:{name}"
                    if base in wanted.values():  # its twin in the same request
                        return False, MIXED_TOPICS.format(name)
                    wanted[name] = base
                conn.topics.update(wanted)
                return True, ""
            for name in args:
                kind, _, symbol = name.partition(".")
                if kind != "tickers":
                    return False, f"error:handler not found,topic:{name}"
                if symbol not in self.engine.specs:
                    return False, f"Invalid symbol :[{name}]"
                if name in conn.topics:
                    return False, f"error:already subscribed,topic:{name}"
            for name in args:
                conn.topics[name] = name
                self.ticker_subs.setdefault(name.partition(".")[2], []).append(conn)
            self._listen()
            return True, ""

    def _unsubscribe(self, conn: StreamConn, args: list[str]) -> tuple[bool, str]:
        with self.engine.lock:
            for name in args:
                if name not in conn.topics:
                    return False, f"error:not subscribed,topic:{name}"
            for name in args:
                del conn.topics[name]
                self._drop_ticker_sub(conn, name)
            self._listen()
            return True, ""

    def _drop_ticker_sub(self, conn: StreamConn, topic: str) -> None:
        if not topic.startswith("tickers."):
            return
        symbol = topic.partition(".")[2]
        subs = self.ticker_subs.get(symbol)
        if subs and conn in subs:
            subs.remove(conn)
            if not subs:
                del self.ticker_subs[symbol]

    def _snapshots(self, conn: StreamConn, topics: list[str]) -> None:
        with self.engine.lock:
            now = self.engine.now_ms()
            for name in topics:
                symbol = name.partition(".")[2]
                market = self.engine.markets[symbol]
                view = self._ticker_now(market, now)
                self.ticker_state[symbol] = view
                message = {"topic": name, "type": "snapshot", "data": view, "cs": next(self._cs), "ts": now}
                self._queue(conn, orjson.dumps(message), push=True)

    # ------------------------------------------------------------------------------- pushes

    def on_changes(self, changes: list[Change]) -> None:
        """The engine's listener: one operation's changes become pushes (under the engine lock)."""
        if not self.by_account and not self.ticker_subs:
            return
        try:
            self._push(changes)
        except Exception:  # a push must never fail the engine operation that caused it
            log.exception("paper stream: building pushes failed")

    def _push(self, changes: list[Change]) -> None:
        now = self.engine.now_ms()
        per_account: dict[PaperAccount, dict[str, dict[int, Any]]] = {}
        markets: dict[str, SymbolMarket] = {}
        by_account, ticker_subs = self.by_account, self.ticker_subs
        for kind, record in changes:
            if kind == "ticker":
                assert isinstance(record, SymbolMarket)
                if record.spec.symbol in ticker_subs:
                    markets[record.spec.symbol] = record
                continue
            if kind == "order_state":  # a row taken as it was (a passing state)
                assert isinstance(record, tuple)
                acct, row = record
                kind = "order"
            else:
                acct = record if kind == "wallet" else record.account  # type: ignore[attr-defined]
                row = record
            if acct not in by_account:
                continue
            table = per_account.get(acct)
            if table is None:
                table = per_account[acct] = {t: {} for t in JOURNAL_KINDS}
            table[kind].setdefault(id(row), row)
        for acct, table in per_account.items():
            conns = by_account[acct]
            for topic in PRIVATE_TOPICS:
                records = table["execution" if topic == "execution.fast" else topic]
                if not records:
                    continue
                rows: list[dict[str, Any]] | None = None
                msg_id = ""
                payloads: dict[str, bytes] = {}
                for conn in conns:
                    for name, base in conn.topics.items():
                        if base != topic:
                            continue
                        if rows is None:
                            rows = self._rows(topic, records.values())
                            msg_id = f"{next(self._ids):x}-{acct.id}"
                        payload = payloads.get(name)
                        if payload is None:
                            message: dict[str, Any] = {
                                "id": msg_id,
                                "topic": name,
                                "creationTime": now,
                                "data": rows,
                            }
                            if topic == "execution.fast":
                                del message["id"]  # Bybit's fast executions carry no message id
                            payload = payloads[name] = orjson.dumps(message)
                        self._queue(conn, payload, push=True, topic=topic)
        for symbol, market in markets.items():
            view = self._ticker_now(market, now)
            previous = self.ticker_state.get(symbol, {})
            delta = {k: v for k, v in view.items() if previous.get(k) != v}
            self.ticker_state[symbol] = view
            if not delta:
                continue
            delta["symbol"] = symbol
            topic = f"tickers.{symbol}"
            payload = orjson.dumps(
                {"topic": topic, "type": "delta", "data": delta, "cs": next(self._cs), "ts": now}
            )
            for conn in ticker_subs[symbol]:
                self._queue(conn, payload, push=True, topic="tickers")

    def _rows(self, topic: str, records: Any) -> list[dict[str, Any]]:
        engine = self.engine
        if topic == "order":
            return [{"category": CATEGORY, **o} if isinstance(o, dict) else order_row(o) for o in records]
        if topic == "execution":
            return [execution_row(e) for e in records]
        if topic == "execution.fast":
            return [fast_execution_row(e) for e in records]
        if topic == "position":
            return [position_row(p, engine.markets[p.symbol].mark) for p in records]
        return [wallet(engine, acct, None) for acct in records]

    @staticmethod
    def _ticker_now(market: SymbolMarket, now: int) -> dict[str, Any]:
        ticker_json(market, now)
        assert market.view is not None
        return dict(market.view[0])

    def snapshot(self) -> dict[str, Any]:
        with self.engine.lock:
            return {
                **self.counters,
                "open": {
                    "private": sum(1 for c in self.conns if c.private),
                    "public": sum(1 for c in self.conns if not c.private),
                },
                "authenticated": sum(len(v) for v in self.by_account.values()),
                "subscriptions": sum(len(c.topics) for c in self.conns),
            }


def order_row(o: PaperOrder) -> dict[str, Any]:
    return {"category": CATEGORY, **order_view(o)}


def execution_row(e: PaperExecution) -> dict[str, Any]:
    return {"category": CATEGORY, **execution_view(e), "execPnl": fmt_amount(e.pnl), "isLeverage": ""}


def fast_execution_row(e: PaperExecution) -> dict[str, Any]:
    """Bybit's `execution.fast`: fewer fields; orderLinkId only on taker fills."""
    row = execution_row(e)
    fast = {k: row[k] for k in FAST_FIELDS}
    if e.is_maker:
        del fast["orderLinkId"]
    return fast


def _max_active_time(query: bytes, default: float) -> float:
    """`?max_active_time=45s` / `2m` on the private URL: the idle cut-off, 30 s to 10 min."""
    from urllib.parse import parse_qs

    values = parse_qs(query.decode("latin-1")).get("max_active_time")
    if not values:
        return default
    text = values[0].strip().lower()
    try:
        seconds = (
            float(text[:-1]) * (60 if text.endswith("m") else 1) if text[-1:] in ("s", "m") else float(text)
        )
    except ValueError:
        return default
    lo, hi = MAX_ACTIVE_RANGE_S
    return min(hi, max(lo, seconds))


def position_row(p: PaperPosition, mark: Any) -> dict[str, Any]:
    v = position_view(p, mark)
    return {"category": CATEGORY, **v, "entryPrice": v["avgPrice"]}


async def _abort(conn: StreamConn) -> None:
    """Close the socket with no close frame (what a dropped network connection looks like)."""
    protocol = getattr(conn.send, "__self__", None)
    transport = getattr(protocol, "transport", None)
    conn.closed = True
    if transport is not None:
        transport.abort()
    else:
        await conn.send({"type": "websocket.close", "code": 1011})
