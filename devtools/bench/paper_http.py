"""Throughput benchmark of the paper exchange (`tpsl paper bench`).

Starts a paper exchange in its own process (one uvicorn worker, uvloop + httptools, rate limits
off), gives one account `--positions` open positions (one per synthetic symbol) and `--orders`
resting limit orders, then measures requests/s of

    GET /v5/position/list?category=linear&settleCoin=USDT   (default page: 20 rows)
    GET /v5/order/realtime?category=linear&settleCoin=USDT  (default page: 20 rows)

with `--clients` load-generating processes × `--connections` keep-alive connections each, every
request signed (HMAC verified by the server) and every answer read and checked (retCode 0).
This is a benchmark, not a test: it prints figures and never asserts on them.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import requests

from devtools.bench.loadgen import Target, run_worker
from devtools.ports import free_port
from exchange.paper.auth import signature
from exchange.paper.runner import PaperAdmin, PaperCredentials

ENDPOINTS = (
    ("/v5/position/list", "category=linear&settleCoin=USDT"),
    ("/v5/order/realtime", "category=linear&settleCoin=USDT"),
)
BATCH = 20
HEADER = f"{'endpoint':<22} {'req/s':>9} {'requests':>9} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7} server CPU"
WARMUP_S = 1.0


@dataclass
class Result:
    endpoint: str
    seconds: float
    requests: int
    errors: int
    latencies_ms: list[float] = field(repr=False)
    server_cpu: float | None = None  # CPU seconds the server process used per wall second

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]


def start_server(port: int, extra_symbols: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "paper",
            "serve",
            "--port",
            str(port),
            "--extra-symbols",
            str(extra_symbols),
            "--no-rate-limit",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the paper exchange process exited at start")
        try:
            requests.get(f"{url}/v5/market/time", timeout=1).raise_for_status()
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the paper exchange did not start within 30 s")


def signed_post(session: requests.Session, url: str, creds: PaperCredentials, path: str, body: dict) -> dict:
    raw = json.dumps(body)
    ts = str(int(time.time() * 1000))
    headers = {
        "Content-Type": "application/json",
        "X-BAPI-API-KEY": creds.api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": signature(creds.api_secret, ts, creds.api_key, "5000", raw.encode()),
    }
    answer = session.post(f"{url}{path}", data=raw, headers=headers, timeout=30).json()
    if answer["retCode"] != 0:
        raise RuntimeError(f"{path}: {answer['retCode']} {answer['retMsg']}")
    return answer


def build_account(url: str, n_positions: int, n_orders: int) -> PaperCredentials:
    """One account with `n_positions` open positions and `n_orders` resting limit buys."""
    admin = PaperAdmin(url)
    creds = admin.create_account(balance=Decimal(100_000_000))
    symbols = [f"SYN{i:0{max(4, len(str(n_positions)))}d}USDT" for i in range(1, n_positions + 1)]
    prices = admin.prices()
    items: list[dict[str, Any]] = [
        {"symbol": s, "side": "Buy", "orderType": "Market", "qty": "1"} for s in symbols
    ]
    for i in range(n_orders):
        s = symbols[i % len(symbols)]
        limit = (Decimal(prices[s]["last"]) * Decimal("0.5")).quantize(Decimal("0.01")) - i // len(symbols)
        items.append({"symbol": s, "side": "Buy", "orderType": "Limit", "qty": "1", "price": str(limit)})
    with requests.Session() as session:
        for k in range(0, len(items), BATCH):
            answer = post_batch(session, url, creds, items[k : k + BATCH])
            failed = [e for e in answer["retExtInfo"]["list"] if e["code"] != 0]
            if failed:
                raise RuntimeError(f"setup order refused: {failed[0]}")
    detail = admin.account(creds.api_key)
    if len(detail["positions"]) != n_positions or len(detail["orders"]) != n_orders:
        raise RuntimeError(f"setup: {len(detail['positions'])} positions, {len(detail['orders'])} orders")
    return creds


def post_batch(session: requests.Session, url: str, creds: PaperCredentials, batch: list[dict]) -> dict:
    return signed_post(
        session, url, creds, "/v5/order/create-batch", {"category": "linear", "request": batch}
    )


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), None when unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def measure(
    url: str,
    creds: PaperCredentials,
    path: str,
    query: str,
    *,
    clients: int,
    connections: int,
    seconds: float,
    server_pid: int | None = None,
) -> Result:
    host, port = url.removeprefix("http://").split(":")
    target = Target(host, int(port), path, query, creds.api_key, creds.api_secret)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    window = ctx.Array("d", 2)
    procs = [
        ctx.Process(target=run_worker, args=(target, connections, window, go, out)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        if out.get(timeout=60) != "ready":
            raise RuntimeError("a load process failed to start")
    window[0] = time.time() + WARMUP_S
    window[1] = window[0] + seconds
    go.set()
    time.sleep(max(0.0, window[0] - time.time()))
    cpu0 = cpu_seconds(server_pid)
    time.sleep(max(0.0, window[1] - time.time()))
    cpu1 = cpu_seconds(server_pid)
    parts = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return Result(
        endpoint=path,
        seconds=seconds,
        requests=sum(p["requests"] for p in parts),
        errors=sum(p["errors"] for p in parts),
        latencies_ms=[x for p in parts for x in p["latencies_ms"]],
        server_cpu=(cpu1 - cpu0) / seconds if cpu0 is not None and cpu1 is not None else None,
    )


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def _row(r: Result) -> dict[str, Any]:
    return {
        "endpoint": r.endpoint,
        "rps": round(r.rps, 1),
        "requests": r.requests,
        "errors": r.errors,
        "p50_ms": round(r.percentile(0.5), 3),
        "p99_ms": round(r.percentile(0.99), 3),
        "mean_ms": round(statistics.fmean(r.latencies_ms), 3) if r.latencies_ms else 0.0,
        "server_cpu": None if r.server_cpu is None else round(r.server_cpu, 3),
    }


@dataclass(frozen=True, slots=True)
class Params:
    seconds: float = 5.0  # measuring time per endpoint and round
    rounds: int = 3  # rounds per endpoint; the median is reported
    clients: int = 3  # load-generating processes
    connections: int = 2  # keep-alive connections per process
    positions: int = 500
    orders: int = 2000
    url: str | None = None  # use this running paper exchange (started with --no-rate-limit)
    json: str | None = None  # also write the results to this file


def run(args: Params) -> int:
    """Measure, print, and return 1 if any request failed (else 0)."""
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc = start_server(port, extra_symbols=args.positions)
        url = f"http://127.0.0.1:{port}"
    rounds: dict[str, list[Result]] = {path: [] for path, _ in ENDPOINTS}
    load_before = os.getloadavg()[0]
    try:
        t0 = time.perf_counter()
        creds = build_account(url, args.positions, args.orders)
        setup_s = time.perf_counter() - t0
        print(
            f"account: {args.positions} positions, {args.orders} open orders (set up in {setup_s:.1f} s); "
            f"load: {args.clients} processes x {args.connections} connections, {args.seconds:g} s x "
            f"{args.rounds} rounds per endpoint; load average before: {load_before:.2f}"
        )
        print(HEADER)
        for _ in range(args.rounds):
            for path, query in ENDPOINTS:
                r = measure(
                    url,
                    creds,
                    path,
                    query,
                    clients=args.clients,
                    connections=args.connections,
                    seconds=args.seconds,
                    server_pid=proc.pid if proc is not None else None,
                )
                rounds[path].append(r)
                cpu = f"{r.server_cpu:.0%}" if r.server_cpu is not None else "n/a"
                print(
                    f"{r.endpoint:<22} {r.rps:>9.0f} {r.requests:>9} {r.errors:>6} "
                    f"{r.percentile(0.5):>7.2f} {r.percentile(0.99):>7.2f} {cpu:>10}"
                )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    summary = {}
    for path, results in rounds.items():
        rates = sorted(r.rps for r in results)
        summary[path] = {
            "median_rps": round(statistics.median(rates), 1),
            "min_rps": round(rates[0], 1),
            "max_rps": round(rates[-1], 1),
        }
        median = summary[path]["median_rps"]
        print(f"{path:<22} median {median:>7.0f} req/s (min {rates[0]:.0f}, max {rates[-1]:.0f})")
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "params": asdict(args),
        "summary": summary,
        "rounds": [_row(r) for results in rounds.values() for r in results],
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 1 if any(r.errors for results in rounds.values() for r in results) else 0
