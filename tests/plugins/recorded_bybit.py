"""A small real HTTP server that answers with Bybit v5 responses recorded from Bybit's API docs.

Every answer is built from a file in tests/fixtures/bybit/ (each names the documentation page it was
taken from): list rows are the documented rows with only the scenario's values replaced, so every
other field, and every quirk of the real format ("" / "0.00" for unset prices, triggerPrice "0.00"
on plain orders, "UNKNOWN" enums, cumFeeDetail, cursors such as `page_args%3D…%26`), reaches the
client as Bybit documents it. The client therefore runs its real HTTP path (pooled session, signing,
parsing, error mapping) against the real format.

It is a replay, not an exchange: no matching, no positions moving, no balances. What a test seeds is
what it serves; created orders are echoed into the open list as documented rows (so a read after a
write shows what the client sent), cancels move them to history, amends change the fields sent.
The only refusals it makes by itself are the documented ones a replay can know: bad key (10003),
bad signature (10004, echoing the signed text as real servers do), timestamp outside recv_window
(10002), duplicate orderLinkId (110072), unknown order on cancel (170213) or amend (110001), an
amend that changes nothing (10001 "remains unchanged"), a cursor it did not issue (10001).
Everything else (rate limits, 5xx, dropped connections, slow answers, item rejections) is scripted
by the test (`fail`, `reject_item`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bybit"
TEST_KEY = "rEcOrDeDkEy0123456789"
TEST_SECRET = "rEcOrDeDsEcReT0123456789abcdefABCDEF"


def load_fixture(name: str) -> dict[str, Any]:
    """One recorded answer: {"source", "method", "path", "case", "http_status", "headers"?, "body"}."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_body(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_fixture(name)["body"])


def fixture_row(name: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(load_fixture(name)["body"]["result"]["list"][index])


@dataclass
class Fault:
    """A scripted answer for the next `times` calls to `path` ("*": any private path)."""

    path: str
    times: int
    kind: str  # "envelope" | "status" | "drop" | "delay"
    fixture: str | None = None
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset_in_ms: int | None = None


class RecordedBybit:
    """The server and its (seeded) state. Thread-safe; one per test."""

    def __init__(
        self,
        *,
        api_key: str = TEST_KEY,
        api_secret: str = TEST_SECRET,
        clock: Callable[[], float] = time.time,
        verify_window: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.clock = clock
        self.verify_window = verify_window
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.connections = 0
        self.requests: list[tuple[str, str, str, Any]] = []  # method, path, raw query, JSON body
        self.faults: list[Fault] = []
        self.item_rejections: dict[str, str] = {}  # orderLinkId → error fixture name (one shot)
        self.page_cap: int | None = None  # serve at most this many rows per page (pagination tests)
        # called with the path of every request before it is answered, outside the lock (a test
        # holds requests there, e.g. until several are in flight at once)
        self.before_answer: Callable[[str], None] | None = None
        self._ids = itertools.count(1)
        self._templates = {
            "position": fixture_row("position_list_linear"),
            "order": fixture_row("order_realtime"),
            "history": fixture_row("order_history"),
            "execution": fixture_row("execution_list"),
            "ticker": fixture_row("market_tickers"),
            "instrument": fixture_row("market_instruments_linear"),
            "create": fixture_row("order_create_batch"),
            "amend": fixture_row("order_amend_batch"),
            "cancel": fixture_row("order_cancel_batch"),
        }
        # what the server starts with: the documented rows themselves
        self.tickers: list[dict[str, Any]] = [fixture_row("market_tickers")]
        self.instruments: list[dict[str, Any]] = [
            fixture_row("market_instruments_linear_prelisting"),
            fixture_row("market_instruments_linear"),
        ]
        self.positions: list[dict[str, Any]] = []
        self.open_orders: list[dict[str, Any]] = []  # newest first
        self.history: list[dict[str, Any]] = []  # newest first
        self.executions: list[dict[str, Any]] = []  # newest first
        self.wallet: dict[str, Any] = fixture_body("account_wallet_balance")["result"]
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="recorded-bybit",
            daemon=True,
        )

    # ------------------------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordedBybit:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --------------------------------------------------------------------------------- seeding
    def _order_id(self) -> str:
        n = next(self._ids)
        return f"{n:08x}-7847-404e-b947-b46980a4d140"

    def add_position(self, **wire: Any) -> dict[str, Any]:
        row = {**self._templates["position"], "updatedTime": str(self.now_ms()), **wire}
        with self.lock:
            self.positions.append(row)
        return row

    def add_order(self, **wire: Any) -> dict[str, Any]:
        """An open order: the documented row with these fields (wire names and formats)."""
        row = {**self._templates["order"], "orderId": self._order_id(), "orderLinkId": "", **wire}
        row.setdefault("createdTime", str(self.now_ms()))
        with self.lock:
            self.open_orders.insert(0, row)
        return row

    def add_history(self, **wire: Any) -> dict[str, Any]:
        row = {**self._templates["history"], "orderId": self._order_id(), **wire}
        with self.lock:
            self.history.insert(0, row)
        return row

    def add_execution(self, **wire: Any) -> dict[str, Any]:
        row = {**self._templates["execution"], "execId": self._order_id(), **wire}
        with self.lock:
            self.executions.insert(0, row)
        return row

    def set_ticker(self, symbol: str, last: str, mark: str | None = None) -> None:
        row = {**self._templates["ticker"], "symbol": symbol, "lastPrice": last, "markPrice": mark or last}
        with self.lock:
            self.tickers = [t for t in self.tickers if t["symbol"] != symbol] + [row]

    def add_instrument(self, symbol: str, *, tick: str, step: str, min_qty: str, max_qty: str) -> None:
        row = copy.deepcopy(self._templates["instrument"])
        row["symbol"] = symbol
        row["priceFilter"]["tickSize"] = tick
        row["lotSizeFilter"].update({"qtyStep": step, "minOrderQty": min_qty, "maxOrderQty": max_qty})
        with self.lock:
            self.instruments.append(row)

    # ------------------------------------------------------------------------------- scripting
    def fail(
        self,
        path: str,
        fixture: str | None = None,
        *,
        times: int = 1,
        status: int = 200,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        kind: str | None = None,
        delay_s: float = 0.0,
        reset_in_ms: int | None = None,
    ) -> None:
        """Answer the next `times` calls to `path` with a recorded error envelope (`fixture`), an
        HTTP status (`status` + `body`), a dropped connection (kind="drop") or a slow answer
        (kind="delay", then the normal answer). `reset_in_ms` rewrites X-Bapi-Limit-Reset-Timestamp
        to the serving clock's now + that many ms."""
        if kind is None:
            kind = "envelope" if fixture else "status"
        with self.lock:
            self.faults.append(
                Fault(path, times, kind, fixture, status, body, dict(headers or {}), delay_s, reset_in_ms)
            )

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reject_item(self, link_id: str, fixture: str) -> None:
        """The next batch item with this orderLinkId fails with the fixture's code and message."""
        with self.lock:
            self.item_rejections[link_id] = fixture

    def _take_fault(self, path: str, private: bool) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and (f.path == path or (f.path == "*" and private)):
                    f.times -= 1
                    return f
        return None

    # ------------------------------------------------------------------------------- answering
    def envelope(self, result: Any, ext: Any = None, *, code: int = 0, msg: str = "OK") -> dict[str, Any]:
        return {
            "retCode": code,
            "retMsg": msg,
            "result": result,
            "retExtInfo": ext or {},
            "time": self.now_ms(),
        }

    def error_envelope(self, fixture: str, **fmt: str) -> dict[str, Any]:
        body = fixture_body(fixture)
        if fmt:
            body["retMsg"] = body["retMsg"].format(**fmt)
        body["time"] = self.now_ms()
        return body

    def limit_headers(self) -> dict[str, str]:
        hdr = dict(load_fixture("rate_limit_headers")["headers"])
        hdr.pop("Content-Type", None)
        hdr["X-Bapi-Limit-Reset-Timestamp"] = str(self.now_ms())
        return hdr

    def check_auth(self, headers: Any, payload: str) -> dict[str, Any] | None:
        key = headers.get("X-BAPI-API-KEY", "")
        ts = headers.get("X-BAPI-TIMESTAMP", "")
        sign = headers.get("X-BAPI-SIGN", "")
        window = headers.get("X-BAPI-RECV-WINDOW", "5000")
        if not key or key != self.api_key:
            return self.error_envelope("error_10003")
        origin = f"{ts}{key}{window}{payload}"
        expected = hmac.new(self.api_secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sign):
            return self.error_envelope("error_10004_origin", origin=origin)
        if self.verify_window:
            now = self.now_ms()
            try:
                t, w = int(ts), int(window)
            except ValueError:
                return self.error_envelope("error_10002_window")
            if not (now - w <= t < now + 1000):
                return self.error_envelope("error_10002_window")
        return None

    def page(
        self, rows: list[dict[str, Any]], params: dict[str, str], raw_query: str
    ) -> dict[str, Any] | None:
        """A page of `rows` (limit, cursor) in Bybit's shape: `{"list", "nextPageCursor"}`.
        None: the cursor was not one this server issued (sent re-encoded or altered)."""
        limit = int(params.get("limit") or 20)
        if self.page_cap:
            limit = min(limit, self.page_cap)
        start = 0
        m = re.search(r"(?:^|&)cursor=([^&]*)", raw_query)
        if m:
            token = re.fullmatch(r"page_args%3D(\d+)%26", m.group(1))
            if token is None:
                return None
            start = int(token.group(1))
        chunk = rows[start : start + limit]
        more = start + limit < len(rows)
        return {"list": chunk, "nextPageCursor": f"page_args%3D{start + limit}%26" if more else ""}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, state: RecordedBybit) -> None:
        self.state = state
        super().__init__(addr, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (timeout tests) is not a server failure


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.state.lock:
            self.server.state.connections += 1

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, method: str) -> None:
        st = self.server.state
        path, _, raw_query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        body = json.loads(raw_body) if raw_body else None
        private = not path.startswith("/v5/market/")
        with st.lock:
            st.calls[path] += 1
            st.requests.append((method, path, raw_query, body))
        if st.before_answer is not None:
            st.before_answer(path)
        extra = st.limit_headers() if private else {}
        fault = st._take_fault(path, private)
        if fault is not None:
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.kind == "delay":
                time.sleep(fault.delay_s)
            elif fault.kind == "status":
                self._send(fault.status, fault.body, fault.headers)
                return
            else:
                answer = st.error_envelope(fault.fixture or "error_10016")
                headers = {**extra, **load_fixture(fault.fixture or "error_10016").get("headers", {})}
                headers.update(fault.headers)
                if fault.reset_in_ms is not None:
                    headers["X-Bapi-Limit-Reset-Timestamp"] = str(st.now_ms() + fault.reset_in_ms)
                self._send(200, json.dumps(answer).encode(), headers)
                return
        if private:
            payload = raw_query if method == "GET" else raw_body.decode()
            refused = st.check_auth(self.headers, payload)
            if refused is not None:
                self._send(200, json.dumps(refused).encode(), extra)
                return
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        route = ROUTES.get((method, path))
        if route is None:
            self._send(404, b"", {})
            return
        answer = route(st, params, raw_query, body)
        self._send(200, json.dumps(answer).encode(), extra)


# ------------------------------------------------------------------------------------ routes


def _paged(st: RecordedBybit, rows: list[dict[str, Any]], params: dict, raw: str, **extra: Any) -> dict:
    page = st.page(rows, params, raw)
    if page is None:
        return st.envelope({}, code=10001, msg="params error: cursor invalid")
    return st.envelope({**page, **extra, "category": "linear"})


def _tickers(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        rows = [t for t in st.tickers if params.get("symbol") in (None, t["symbol"])]
    return st.envelope({"category": params.get("category", "linear"), "list": rows})


def _instruments(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        rows = [i for i in st.instruments if params.get("symbol") in (None, i["symbol"])]
    return _paged(st, rows, params, raw)


def _positions(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        if "symbol" in params:
            rows = [p for p in st.positions if p["symbol"] == params["symbol"]]
        else:
            rows = [p for p in st.positions if p.get("size") not in ("0", "", None)]
    return _paged(st, rows, params, raw)


def _realtime(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        if params.get("orderLinkId"):
            lid = params["orderLinkId"]
            rows = [o for o in st.open_orders + st.history if o["orderLinkId"] == lid][:1]
        elif str(params.get("openOnly", "0")) == "1":  # the 500 most recent closed, newest first
            rows = [o for o in st.history if _symbol_ok(params, o)][:500]
        else:
            sym = params.get("symbol")
            rows = [o for o in st.open_orders if sym in (None, o["symbol"])]
    return _paged(st, rows, params, raw)


def _symbol_ok(params: dict, row: dict) -> bool:
    return params.get("symbol") in (None, row["symbol"])


def _history(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        rows = list(st.history)
    return _paged(st, rows, params, raw)


def _executions(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    start = int(params.get("startTime") or 0)
    end = int(params.get("endTime") or 1 << 62)
    with st.lock:
        rows = [e for e in st.executions if start <= int(e["execTime"]) <= end]
    return _paged(st, rows, params, raw)


def _wallet(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        return st.envelope(copy.deepcopy(st.wallet))


def _known_link(st: RecordedBybit, lid: str) -> bool:
    return any(o["orderLinkId"] == lid for o in st.open_orders + st.history)


def _open(st: RecordedBybit, lid: str) -> dict[str, Any] | None:
    return next((o for o in st.open_orders if o["orderLinkId"] == lid), None)


def _create_one(st: RecordedBybit, item: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, str]]:
    lid = item.get("orderLinkId", "")
    result = {**st._templates["create"], "category": "linear", "symbol": item.get("symbol", "")}
    result.update({"orderId": "", "orderLinkId": lid, "createAt": str(st.now_ms())})
    rejection = st.item_rejections.pop(lid, None)
    if rejection is not None:
        err = fixture_body(rejection)
        return result, (err["retCode"], err["retMsg"])
    if lid and _known_link(st, lid):
        err = fixture_body("error_110072")
        return result, (err["retCode"], err["retMsg"])
    conditional = "triggerPrice" in item
    row = st.add_order(
        orderLinkId=lid,
        symbol=item["symbol"],
        side=item["side"],
        orderType=item["orderType"],
        qty=item["qty"],
        price=item.get("price", "0"),
        leavesQty=item["qty"],
        cumExecQty="0",
        positionIdx=item.get("positionIdx", 0),
        timeInForce=item.get("timeInForce", "IOC" if item["orderType"] == "Market" else "GTC"),
        reduceOnly=item.get("reduceOnly", False),
        closeOnTrigger=item.get("closeOnTrigger", False),
        orderStatus="Untriggered" if conditional else "New",
        stopOrderType="Stop" if conditional else "UNKNOWN",
        triggerPrice=item.get("triggerPrice", "0.00"),
        triggerDirection=item.get("triggerDirection", 0),
        triggerBy=item.get("triggerBy", "UNKNOWN"),
        takeProfit="0.00",
        stopLoss="0.00",
        updatedTime=str(st.now_ms()),
    )
    result["orderId"] = row["orderId"]
    return result, (0, "OK")


def _amend_one(st: RecordedBybit, item: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, str]]:
    lid = item.get("orderLinkId", "")
    result = {**st._templates["amend"], "category": "linear", "symbol": item.get("symbol", "")}
    result.update({"orderId": "", "orderLinkId": lid})
    rejection = st.item_rejections.pop(lid, None)
    if rejection is not None:
        err = fixture_body(rejection)
        return result, (err["retCode"], err["retMsg"])
    row = _open(st, lid)
    if row is None:
        err = fixture_body("error_110001_replace")
        return result, (err["retCode"], err["retMsg"])
    changes = {k: item[k] for k in ("qty", "price", "triggerPrice") if k in item and item[k] != row.get(k)}
    if not changes:
        err = fixture_body("error_10001_unchanged")
        return result, (err["retCode"], err["retMsg"])
    row.update(changes, updatedTime=str(st.now_ms()))
    if "qty" in changes:
        row["leavesQty"] = changes["qty"]
    result["orderId"] = row["orderId"]
    return result, (0, "OK")


def _cancel_one(st: RecordedBybit, item: dict[str, Any]) -> tuple[dict[str, Any], tuple[int, str]]:
    lid = item.get("orderLinkId", "")
    result = {**st._templates["cancel"], "category": "linear", "symbol": item.get("symbol", "")}
    result.update({"orderId": "", "orderLinkId": lid})
    rejection = st.item_rejections.pop(lid, None)
    if rejection is not None:
        err = fixture_body(rejection)
        return result, (err["retCode"], err["retMsg"])
    row = _open(st, lid)
    if row is None:  # the documented batch-cancel answer for an unknown order
        ext = fixture_body("order_cancel_batch")["retExtInfo"]["list"][1]
        return result, (ext["code"], ext["msg"])
    st.open_orders.remove(row)
    st.history.insert(0, {**row, "orderStatus": "Cancelled", "cancelType": "CancelByUser"})
    result["orderId"] = row["orderId"]
    return result, (0, "OK")


def _batch(one: Callable[..., tuple[dict, tuple[int, str]]]) -> Callable[..., dict]:
    def route(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
        items = (body or {}).get("request") or []
        if not 1 <= len(items) <= 20:
            return st.envelope({}, code=10001, msg="params error: request size must be 1-20")
        results, infos = [], []
        with st.lock:
            for item in items:
                res, (code, msg) = one(st, item)
                results.append(res)
                infos.append({"code": code, "msg": msg})
        return st.envelope({"list": results}, {"list": infos})

    return route


def _amend_single(st: RecordedBybit, params: dict, raw: str, body: Any) -> dict:
    with st.lock:
        res, (code, msg) = _amend_one(st, body or {})
    if code:
        return st.envelope({}, code=code, msg=msg)
    template = fixture_body("order_amend")["result"]
    return st.envelope({**template, "orderId": res["orderId"], "orderLinkId": res["orderLinkId"]})


ROUTES: dict[tuple[str, str], Callable[..., dict]] = {
    ("GET", "/v5/market/tickers"): _tickers,
    ("GET", "/v5/market/instruments-info"): _instruments,
    ("GET", "/v5/position/list"): _positions,
    ("GET", "/v5/order/realtime"): _realtime,
    ("GET", "/v5/order/history"): _history,
    ("GET", "/v5/execution/list"): _executions,
    ("GET", "/v5/account/wallet-balance"): _wallet,
    ("POST", "/v5/order/create-batch"): _batch(_create_one),
    ("POST", "/v5/order/amend-batch"): _batch(_amend_one),
    ("POST", "/v5/order/cancel-batch"): _batch(_cancel_one),
    ("POST", "/v5/order/amend"): _amend_single,
}


@pytest.fixture
def recorded_bybit() -> Iterator[RecordedBybit]:
    """A RecordedBybit on a free loopback port (real clock), stopped after the test."""
    server = RecordedBybit().start()
    yield server
    server.stop()
