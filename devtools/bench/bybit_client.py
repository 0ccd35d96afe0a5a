"""Benchmark of the Bybit client against a paper exchange (`tpsl paper client-bench`).

Starts a paper exchange in its own process (rate limits off), then measures, through BybitClient's
real path (signing, pooled session, parsing):

- pooled: `--calls` sequential signed GET /v5/position/list on one pooled session — latency per
  call, new connections vs reused (pool statistics and the exchange's own connection count);
- unpooled baseline: the same calls, each on a fresh session (a new TCP connection every call);
- snapshot cost: exchange calls and latency of one account snapshot with 1 and with 50 positions;
- a burst of stop calls: four passes side by side, each setting the own stop-loss of 50 positions
  (`/v5/position/trading-stop`, one call each, on the client's `stop_calls_in_flight` threads), as a
  burst of fills on four accounts asks of one worker process: wall time, and the client's CPU time
  per call (every thread of this process, the kernel's share of its sockets included).

A benchmark, not a test: it prints figures (JSON) and asserts nothing.
"""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import requests

from config.settings import Settings
from core.models import Account, PlaceOrder, Position, Secret, SetPositionStop, Side
from devtools.ports import free_port
from exchange.bybit.factory import build_client
from exchange.bybit.session import SessionPool


def _start_paper(key: str, secret: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "cli.main", "paper", "serve", "--port", str(port), "--no-rate-limit"]
    cmd += ["--extra-symbols", "50", "--account", f"{key}:{secret}:10000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v5/market/time", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the paper exchange did not start")


def _summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "mean_ms": round(statistics.fmean(ms), 3),
        "p50_ms": round(ms[len(ms) // 2], 3),
        "p95_ms": round(ms[int(len(ms) * 0.95) - 1], 3),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3),
    }


def _paper_stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/paper/stats", timeout=5).json()


STOP_PASSES = 4  # passes side by side (the bench's four accounts)
STOP_ROUNDS = 5  # bursts measured, the median reported


def _stop_burst(client: Any, acct: Account, positions: list[Position], in_flight: int) -> dict[str, Any]:
    """STOP_PASSES threads each send one stop-loss per position (`set_position_stop`, as a pass
    does), all at once; each round moves every stop (a stop the exchange already has would be
    answered "not modified" without the work)."""

    ticks = {p.symbol: client.instruments()[p.symbol].tick_size for p in positions}

    def stops(round_: int, pass_: int) -> list[SetPositionStop]:
        factor = Decimal("0.90") - Decimal(round_ * STOP_PASSES + pass_) / 1000
        return [
            SetPositionStop(
                account=acct.id, monitor_id="bench", link_id=f"bench-sl-{p.symbol}", symbol=p.symbol,
                trigger_price=(p.avg_price * factor // ticks[p.symbol]) * ticks[p.symbol],
            )
            for p in positions
        ]  # fmt: skip

    walls, cpus, refused = [], [], 0
    for round_ in range(STOP_ROUNDS):
        passes = [stops(round_, k) for k in range(STOP_PASSES)]
        answers: list[list[Any]] = []

        def send(group: list[SetPositionStop], out: list[list[Any]] = answers) -> None:
            out.append(client.set_position_stop(acct, group))

        threads = [threading.Thread(target=send, args=(g,)) for g in passes]
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
        refused += sum(1 for a in answers for r in a if not r.ok)
    n = STOP_PASSES * len(positions)
    return {
        "calls_per_burst": n,
        "stop_calls_in_flight": in_flight,
        "wall_ms": round(statistics.median(walls), 1),
        "client_cpu_ms": round(statistics.median(cpus), 1),
        "client_cpu_ms_per_call": round(statistics.median(cpus) / n, 3),
        "refused": refused,
    }


def run(calls: int) -> dict[str, Any]:
    key, secret = f"bench{secrets.token_hex(6)}", secrets.token_hex(16)
    proc, url = _start_paper(key, secret)
    try:
        settings = Settings(rate_read_per_s=1e6, rate_trade_per_s=1e6, rate_batch_orders_per_s=1e6)
        acct = Account(id="bench", base_url=url, api_key=Secret(key), api_secret=Secret(secret))
        pool = SessionPool(settings)
        client = build_client(url, settings, pool=pool)
        client.positions(acct)  # warm-up: first connection, imports

        conns0 = _paper_stats(url)["connections"]
        lat = []
        for _ in range(calls):
            t0 = time.perf_counter()
            client.positions(acct)
            lat.append((time.perf_counter() - t0) * 1000)
        stats = pool.stats()
        pooled = {
            **_summary(lat),
            "calls": calls,
            "new_connections_pool": stats["new_connections"] - 1,
            "new_connections_exchange": _paper_stats(url)["connections"] - conns0,
            "reuse_rate": stats["reuse_rate"],
        }

        lat = []
        for _ in range(calls):
            fresh = build_client(url, settings, pool=SessionPool(settings))
            t0 = time.perf_counter()
            fresh.positions(acct)
            lat.append((time.perf_counter() - t0) * 1000)
            fresh.session.close()
        unpooled = {**_summary(lat), "calls": calls, "new_connections": calls}

        snapshots: dict[str, Any] = {}
        symbols = [f"SYN{i:04d}USDT" for i in range(1, 51)]
        for n in (1, 50):
            have = len(client.positions(acct))
            if n > have:
                orders = [
                    PlaceOrder(
                        account="bench", monitor_id="bench", link_id=f"bench-{s}", symbol=s, side=Side.BUY,
                        qty=Decimal("1"), order_type="Market",
                    )
                    for s in symbols[have:n]
                ]  # fmt: skip
                client.place(acct, orders)
            client.snapshot(acct)  # instruments cached
            before = _paper_stats(url)["by_endpoint"]
            lat = []
            for _ in range(50):
                t0 = time.perf_counter()
                snap = client.snapshot(acct)
                lat.append((time.perf_counter() - t0) * 1000)
            after = _paper_stats(url)["by_endpoint"]
            per = {
                k: (after.get(k, 0) - before.get(k, 0)) / 50
                for k in after
                if after.get(k, 0) != before.get(k, 0)
            }
            snapshots[f"{len(snap.positions)}_positions"] = {**_summary(lat), "calls_per_snapshot": per}
        stops = _stop_burst(client, acct, client.positions(acct), settings.stop_calls_in_flight)
        return {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "pooled": pooled,
            "unpooled_baseline": unpooled,
            "snapshot": snapshots,
            "stop_burst": stops,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
