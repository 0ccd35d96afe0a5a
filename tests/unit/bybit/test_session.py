"""Pooled sessions over real loopback HTTP (the recorded Bybit server): reuse, keep-alive expiry,
GET-only retries, the per-call budget, re-creation, the process-wide connection cap, the registry."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
import threading

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from config.settings import Settings
from devtools.ports import free_port
from exchange.bybit.session import PooledSession, SessionPool, get_session_pool, reset_for_fork
from exchange.bybit.session_stats import LatencyHistogram
from exchange.bybit.tracking import ConnectionBudget
from tests.plugins.recorded_bybit import RecordedBybit

TICKERS = "/v5/market/tickers?category=linear"
BATCH = "/v5/order/create-batch"


class IdleClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_session(server: RecordedBybit, clock=None, **overrides) -> PooledSession:
    settings = Settings(**overrides)
    return PooledSession(
        server.base_url, settings, ConnectionBudget(settings.pool_total), idle_clock=clock or IdleClock()
    )


def pooled_connections(session: PooledSession) -> list:
    adapter = session._session.get_adapter("http://")
    conns = []
    for pool in list(adapter.poolmanager.pools._container.values()):
        conns += [c for c in pool.pool.queue if c is not None and c.sock is not None]
    return conns


def test_sequential_calls_reuse_one_connection(recorded_bybit: RecordedBybit) -> None:
    s = make_session(recorded_bybit)
    for _ in range(50):
        assert s.request("GET", TICKERS).status_code == 200
    stats = s.stats.as_dict()
    assert (stats["calls"], stats["attempts"], stats["new_connections"]) == (50, 50, 1)
    assert stats["reuse_rate"] == 0.98
    assert recorded_bybit.connections == 1
    assert stats["latency"]["count"] == 50


@pytest.mark.parametrize(("pooling", "new_connections"), [(True, 1), (False, 6)])
def test_pooling_off_opens_a_new_connection_per_call(paper, pooling: bool, new_connections: int) -> None:
    """TPSL_POOLING=false, the basic HTTP client: every call opens its own connection (counted where
    urllib3 opens a socket) and none stays open; pooled, one connection serves all six calls."""
    settings = Settings(pooling=pooling)
    budget = ConnectionBudget(settings.pool_total)
    s = PooledSession(paper.base_url, settings, budget)
    for _ in range(6):
        assert s.request("GET", TICKERS).status_code == 200
    stats = s.stats.as_dict()
    assert (stats["calls"], stats["attempts"], stats["new_connections"]) == (6, 6, new_connections)
    assert budget.open_connections == (1 if pooling else 0)
    assert s._session.headers["Connection"] == ("keep-alive" if pooling else "close")
    s.close()


def test_sockets_have_nodelay_and_keepalive(recorded_bybit: RecordedBybit) -> None:
    s = make_session(recorded_bybit)
    s.request("GET", TICKERS)
    (conn,) = pooled_connections(s)
    assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0


def test_connection_idle_past_keepalive_is_not_reused(recorded_bybit: RecordedBybit) -> None:
    clock = IdleClock()
    s = make_session(recorded_bybit, clock, keepalive_s=45)
    s.request("GET", TICKERS)
    clock.t += 30
    s.request("GET", TICKERS)
    assert s.stats.new_connections == 1
    clock.t += 46
    s.request("GET", TICKERS)
    assert (s.stats.new_connections, s.stats.expired_idle) == (2, 1)
    assert recorded_bybit.connections == 2


def test_health_check_closes_idle_connections(recorded_bybit: RecordedBybit) -> None:
    clock = IdleClock()
    s = make_session(recorded_bybit, clock, keepalive_s=45, session_health_check_s=60)
    s.request("GET", TICKERS)
    assert s._budget.open_connections == 1
    clock.t += 50
    s.health_check()
    assert s._budget.open_connections == 0 and s.stats.expired_idle == 1
    clock.t += 100  # the next request runs the periodic check by itself first
    s.request("GET", TICKERS)
    assert s.stats.new_connections == 2


def test_get_is_retried_on_502(recorded_bybit: RecordedBybit) -> None:
    recorded_bybit.fail("/v5/market/tickers", status=502, times=1)
    s = make_session(recorded_bybit)
    assert s.request("GET", TICKERS).status_code == 200
    assert recorded_bybit.calls["/v5/market/tickers"] == 2
    assert s.stats.attempts == 2


def test_get_gives_up_after_its_retries(recorded_bybit: RecordedBybit) -> None:
    recorded_bybit.fail("/v5/market/tickers", status=503, times=10)
    s = make_session(recorded_bybit)
    resp = s.request("GET", TICKERS)
    assert resp.status_code == 503 and resp.raw.retries.history
    assert recorded_bybit.calls["/v5/market/tickers"] == 3


def test_post_is_never_retried_on_502(recorded_bybit: RecordedBybit) -> None:
    recorded_bybit.fail(BATCH, status=502, times=1)
    s = make_session(recorded_bybit)
    assert s.request("POST", BATCH, data=b"{}").status_code == 502
    assert recorded_bybit.calls[BATCH] == 1


def test_dropped_connection_retries_a_get_but_not_a_post(recorded_bybit: RecordedBybit) -> None:
    s = make_session(recorded_bybit)
    recorded_bybit.fail("/v5/market/tickers", kind="drop", times=1)
    assert s.request("GET", TICKERS).status_code == 200
    assert recorded_bybit.calls["/v5/market/tickers"] == 2
    recorded_bybit.fail(BATCH, kind="drop", times=1)
    with pytest.raises(requests.ConnectionError):
        s.request("POST", BATCH, data=b"{}")
    assert recorded_bybit.calls[BATCH] == 1


def test_refused_connection_retries_a_get_but_not_a_post() -> None:
    settings = Settings(connect_timeout_s=1)
    url = f"http://127.0.0.1:{free_port()}"
    get = PooledSession(url, settings, ConnectionBudget(5))
    with pytest.raises(requests.ConnectionError):
        get.request("GET", TICKERS)
    assert get.stats.attempts == 3
    post = PooledSession(url, settings, ConnectionBudget(5))
    with pytest.raises(requests.ConnectionError):
        post.request("POST", BATCH, data=b"{}")
    assert post.stats.attempts == 1
    assert post.stats.errors["connection_error"] == 1


def test_a_retry_starts_only_if_the_call_budget_fits_it(recorded_bybit: RecordedBybit) -> None:
    recorded_bybit.fail("/v5/market/tickers", kind="delay", delay_s=0.5, times=1)
    tight = make_session(recorded_bybit, read_timeout_s=0.2, total_timeout_s=0.4)
    with pytest.raises(requests.exceptions.RequestException):
        tight.request("GET", TICKERS)
    assert tight.stats.attempts == 1  # 0.2 s left after the timeout: too little for another try
    assert tight.stats.errors in ({"read_timeout": 1}, {"connection_error": 1})

    recorded_bybit.fail("/v5/market/tickers", kind="delay", delay_s=0.6, times=1)
    roomy = make_session(recorded_bybit, read_timeout_s=0.4, total_timeout_s=25)
    assert roomy.request("GET", TICKERS).status_code == 200
    assert roomy.stats.attempts == 2


def test_session_is_rebuilt_after_consecutive_transport_failures(recorded_bybit: RecordedBybit) -> None:
    s = make_session(recorded_bybit, session_recreate_after=3)
    s.request("GET", TICKERS)
    recorded_bybit.fail(BATCH, kind="drop", times=3)
    old = s._session
    for i in range(3):
        with pytest.raises(requests.ConnectionError):
            s.request("POST", BATCH, data=b"{}")
        assert s.stats.recreations == (1 if i == 2 else 0)
    assert s._session is not old
    assert s.request("GET", TICKERS).status_code == 200
    assert s.stats.consecutive_failures == 0


def test_success_resets_the_failure_count(recorded_bybit: RecordedBybit) -> None:
    s = make_session(recorded_bybit, session_recreate_after=2)
    recorded_bybit.fail(BATCH, kind="drop", times=1)
    with pytest.raises(requests.ConnectionError):
        s.request("POST", BATCH, data=b"{}")
    s.request("GET", TICKERS)
    recorded_bybit.fail(BATCH, kind="drop", times=1)
    with pytest.raises(requests.ConnectionError):
        s.request("POST", BATCH, data=b"{}")
    assert s.stats.recreations == 0


def test_process_cap_evicts_an_idle_connection_of_another_host() -> None:
    a, b = RecordedBybit().start(), RecordedBybit().start()
    try:
        pool = SessionPool(Settings(pool_total=1))
        sa, sb = pool.session(a.base_url), pool.session(b.base_url)
        sa.request("GET", TICKERS)
        sb.request("GET", TICKERS)
        assert pool.budget.open_connections == 1
        sa.request("GET", TICKERS)
        assert pool.budget.open_connections == 1
        assert (a.connections, b.connections) == (2, 1)
        stats = pool.stats()
        assert stats["new_connections"] == 3 and set(stats["hosts"]) == {a.base_url, b.base_url}
    finally:
        a.stop()
        b.stop()


def test_a_busy_pool_makes_the_caller_wait_a_bounded_time(recorded_bybit: RecordedBybit) -> None:
    import threading

    recorded_bybit.fail("/v5/market/tickers", kind="delay", delay_s=0.6, times=1)
    s = make_session(recorded_bybit, pool_per_host=1, connect_timeout_s=0.1)
    outcomes: list[str] = []

    def call() -> None:
        try:
            s.request("GET", TICKERS)
            outcomes.append("ok")
        except requests.ConnectionError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes.count("ok") == 1
    assert any("pooled connections stayed busy" in o for o in outcomes)
    assert s.stats.errors["pool_exhausted"] == 1 and s.stats.consecutive_failures == 0
    assert recorded_bybit.connections == 1


def test_budget_exhausted_by_busy_connections_times_out() -> None:
    budget = ConnectionBudget(1)

    class Conn:
        sock = object()

        def close(self) -> None:
            budget.release(self)

    c1, c2 = Conn(), Conn()
    budget.acquire(c1, 0.1)
    with pytest.raises(NewConnectionError, match="budget of 1"):
        budget.acquire(c2, 0.05)
    c1.close()
    budget.acquire(c2, 0.05)
    assert budget.open_connections == 1


def test_latency_histogram() -> None:
    h = LatencyHistogram()
    for ms in [1] * 90 + [30] * 9 + [20000]:
        h.add(ms)
    d = h.as_dict()
    assert (d["p50_ms"], d["p95_ms"], d["p99_ms"]) == (5, 50, 50)
    assert h.percentile(1.0) == 25000
    assert d["buckets"]["le_5"] == 90 and d["count"] == 100


def test_base_url_is_checked() -> None:
    with pytest.raises(ValueError, match="base_url"):
        PooledSession("127.0.0.1:80", Settings(), ConnectionBudget(1))


def test_importing_creates_no_session() -> None:
    code = (
        "import sys, exchange.bybit as b, exchange.bybit.session as s;assert s._registry is None;print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_registry_is_lazy_per_process_and_reset_by_fork() -> None:
    reset_for_fork()
    first = get_session_pool(Settings())
    assert get_session_pool() is first
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def child() -> None:
        import os

        from exchange.bybit import session

        fresh = session._registry is None  # the at-fork hook dropped the parent's registry
        q.put((fresh, session.get_session_pool(Settings()).pid == os.getpid()))

    p = ctx.Process(target=child)
    p.start()
    assert q.get(timeout=30) == (True, True)
    p.join(timeout=30)
    reset_for_fork()
    assert get_session_pool(Settings()) is not first
    reset_for_fork()


class HeadCapture:
    """A loopback HTTP/1.1 server that keeps every request it gets as (request line, headers with
    lower-case names, body), answering each one 200 with a small JSON body on the same connection."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn, reader:
            while line := reader.readline():
                headers: dict[str, str] = {}
                while (h := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0")))
                self.seen.append((line.decode().strip(), headers, body))
                answer = b'{"retCode":0,"retMsg":"OK","result":{},"time":1}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )

    def close(self) -> None:
        self._sock.close()


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/v5/order/realtime?category=linear&settleCoin=USDT&cursor=page%3D2%26x", None),
        ("POST", "/v5/position/trading-stop", b'{"category":"linear","symbol":"BTCUSDT","stopLoss":"58000"}'),
    ],
)
def test_a_call_sends_what_requests_session_would_send(method: str, path: str, data: bytes | None) -> None:
    # the session prepares its calls itself, without requests' general preparation; on the wire
    # they must be what Session.request sent
    server = HeadCapture()
    try:
        s = PooledSession(server.base_url, Settings(), ConnectionBudget(4))
        headers = {"Content-Type": "application/json", "X-BAPI-API-KEY": "k", "X-BAPI-SIGN": "s"}
        assert s.request(method, path, data=data, headers=headers).json()["retCode"] == 0
        plain = s._session.request(
            method, server.base_url + path, data=data, headers=headers, allow_redirects=False
        )
        assert plain.status_code == 200
        ours, theirs = server.seen
        assert ours == theirs
        assert ours[0] == f"{method} {path} HTTP/1.1" and ours[2] == (data or b"")
    finally:
        server.close()
