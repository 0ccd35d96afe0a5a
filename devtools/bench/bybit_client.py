"""Benchmark of the Bybit client against a paper exchange (`tpsl paper client-bench`).

Starts a paper exchange in its own process (rate limits off), then measures, through BybitClient's
real path (signing, pooled session, parsing):

- pooled: `--calls` sequential signed GET /v5/position/list on one pooled session — latency per
  call, new connections vs reused (pool statistics and the exchange's own connection count);
- unpooled baseline: the same calls, each on a fresh session (a new TCP connection every call);
- snapshot cost: exchange calls and latency of one account snapshot with 1 and with 50 positions.

A benchmark, not a test: it prints figures (JSON) and asserts nothing.
"""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import requests

from config.settings import Settings
from core.models import Account, PlaceOrder, Secret, Side
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
        return {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "pooled": pooled,
            "unpooled_baseline": unpooled,
            "snapshot": snapshots,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
