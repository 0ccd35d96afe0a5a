"""Stream benchmark of the paper exchange (`tpsl paper stream-bench`).

Starts a paper exchange in its own process (rate limits off), gives `--accounts` accounts
`--orders` resting limit orders in total (spread over synthetic symbols), opens the guard's stream
client (exchange/bybit/stream.py: one private connection per account, topics order, execution,
position, wallet) and then:

1. throughput: `--drivers` processes amend those orders in batches of 20 (amend-batch, prices
   moving one tick up and back) as fast as the server answers, for `--seconds`; reported: push
   messages/s and order rows/s the client received, amend requests/s, server CPU;
2. latency: one order amended every 20 ms on an otherwise quiet server, `--samples` times;
   reported: push latency p50/p99 = client receive time − the push's creationTime (the server's
   clock at the engine change, whole milliseconds: each figure is up to 1 ms high).
The same latency is also reported for the pushes of the throughput run (under load).

This is a benchmark, not a test: it prints figures and never asserts on them.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from core.models import Secret
from devtools.bench.paper_http import BATCH, cpu_seconds, machine, signed_post, start_server
from devtools.ports import free_port
from exchange.bybit.stream import BybitStreams, StreamEvent, StreamTiming
from exchange.paper.runner import PaperAdmin, PaperCredentials

SYMBOLS_PER_ACCOUNT = 25  # at most 500 active orders per symbol and account


class Recorder:
    """The stream client's event handler: counts messages and rows, keeps latencies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages = 0
        self.order_rows = 0
        self.latencies_ms: list[float] = []
        self.gaps = 0
        self.down = 0

    def __call__(self, event: StreamEvent) -> None:
        with self.lock:
            if event.kind == "gap":
                self.gaps += 1
                return
            if event.kind == "down":
                self.down += 1
                return
            self.messages += 1
            if event.topic == "order":
                self.order_rows += len(event.data)
            if event.created_ms is not None:
                self.latencies_ms.append(event.received_at * 1000 - event.created_ms)

    def take(self) -> tuple[int, int, list[float]]:
        with self.lock:
            out = (self.messages, self.order_rows, self.latencies_ms)
            self.messages, self.order_rows, self.latencies_ms = 0, 0, []
            return out


def build_accounts(url: str, n_accounts: int, n_orders: int) -> list[tuple[PaperCredentials, list[dict]]]:
    """`n_orders` resting limit buys spread over `n_accounts` accounts; returns each account's
    orders as amend items (orderId, symbol, price)."""
    admin = PaperAdmin(url)
    prices = admin.prices()
    out = []
    per_account = n_orders // n_accounts
    for a in range(n_accounts):
        creds = admin.create_account(balance=Decimal(10**9))
        symbols = [f"SYN{a * SYMBOLS_PER_ACCOUNT + i + 1:04d}USDT" for i in range(SYMBOLS_PER_ACCOUNT)]
        items = []
        for i in range(per_account):
            s = symbols[i % len(symbols)]
            step = Decimal("0.05") * (i // len(symbols))  # distinct prices, all above 5 USDT notional
            limit = (Decimal(prices[s]["last"]) * Decimal("0.5")).quantize(Decimal("0.01")) - step
            items.append({"symbol": s, "side": "Buy", "orderType": "Limit", "qty": "1", "price": str(limit)})
        orders = []
        with requests.Session() as session:
            for k in range(0, len(items), BATCH):
                chunk = items[k : k + BATCH]
                answer = signed_post(
                    session, url, creds, "/v5/order/create-batch", {"category": "linear", "request": chunk}
                )
                for item, row, ext in zip(
                    chunk, answer["result"]["list"], answer["retExtInfo"]["list"], strict=True
                ):
                    if ext["code"] != 0:
                        raise RuntimeError(f"setup order refused: {ext}")
                    orders.append(
                        {"orderId": row["orderId"], "symbol": item["symbol"], "price": item["price"]}
                    )
        out.append((creds, orders))
    return out


def drive(url: str, creds: PaperCredentials, orders: list[dict], go: Any, window: Any, out: Any) -> None:
    """Amend `orders` in batches of 20, one tick up then back, from `go` until window[1]
    (time.time()); counts the requests answered inside [window[0], window[1]]."""
    requests_done = 0
    up = True
    out.put("ready")
    go.wait()
    start, deadline = window[0], window[1]
    with requests.Session() as session:
        while time.time() < deadline:
            for k in range(0, len(orders), BATCH):
                if time.time() >= deadline:
                    break
                batch = [
                    {
                        "symbol": o["symbol"],
                        "orderId": o["orderId"],
                        "price": str(Decimal(o["price"]) + (Decimal("0.01") if up else 0)),
                    }
                    for o in orders[k : k + BATCH]
                ]
                signed_post(
                    session, url, creds, "/v5/order/amend-batch", {"category": "linear", "request": batch}
                )
                if start <= time.time() <= deadline:
                    requests_done += 1
            up = not up
    out.put(requests_done)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Params:
    accounts: int = 4
    orders: int = 10_000  # open orders over all accounts
    seconds: float = 10.0  # throughput run length
    drivers: int = 2  # amending processes
    samples: int = 500  # quiet latency samples
    json: str | None = None  # also write the results to this file


def run(args: Params) -> int:
    """Measure and print the figures (JSON)."""
    port = free_port()
    proc = start_server(port, extra_symbols=args.accounts * SYMBOLS_PER_ACCOUNT)
    url = f"http://127.0.0.1:{port}"
    recorder = Recorder()
    streams = BybitStreams(url, recorder, timing=StreamTiming(), seed=1).start()
    try:
        t0 = time.perf_counter()
        accounts = build_accounts(url, args.accounts, args.orders)
        print(
            f"setup: {args.accounts} accounts, {sum(len(o) for _, o in accounts)} open orders "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        for creds, _ in accounts:
            streams.add_private(creds.id, Secret(creds.api_key), Secret(creds.api_secret))
        deadline = time.monotonic() + 30
        while recorder.gaps < args.accounts:  # every connection authenticated and subscribed
            if time.monotonic() > deadline:
                raise RuntimeError("the stream connections did not come up")
            time.sleep(0.05)

        # 1. throughput under amend load
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        go = ctx.Event()
        window = ctx.Array("d", 2)
        drivers = [
            ctx.Process(target=drive, args=(url, creds, orders, go, window, out))
            for i in range(args.drivers)
            for creds, orders in [accounts[i % len(accounts)]]
        ]
        for p in drivers:
            p.start()
        for _ in drivers:
            if out.get(timeout=60) != "ready":
                raise RuntimeError("a driver failed to start")
        window[0] = time.time() + 1.0  # 1 s warm-up
        window[1] = window[0] + args.seconds
        end = window[1]
        go.set()
        time.sleep(max(0.0, window[0] - time.time()))
        recorder.take()
        cpu0 = cpu_seconds(proc.pid)
        started = time.time()
        time.sleep(max(0.0, end - time.time()))
        elapsed = time.time() - started
        cpu1 = cpu_seconds(proc.pid)
        messages, rows, loaded_latencies = recorder.take()
        amends = sum(out.get(timeout=60) for _ in drivers)
        for p in drivers:
            p.join(timeout=10)
        time.sleep(0.5)
        recorder.take()

        # 2. latency on a quiet server
        creds, orders = accounts[0]
        with requests.Session() as session:
            for i in range(args.samples):
                o = orders[i % len(orders)]
                # the drivers left it at its price or one tick above: two or three ticks differ
                price = str(
                    Decimal(o["price"]) + Decimal("0.02") + Decimal("0.01") * ((i // len(orders)) % 2)
                )
                signed_post(
                    session,
                    url,
                    creds,
                    "/v5/order/amend",
                    {"category": "linear", "symbol": o["symbol"], "orderId": o["orderId"], "price": price},
                )
                time.sleep(0.02)
        time.sleep(0.3)
        _, _, quiet = recorder.take()

        result = {
            "machine": machine(),
            "accounts": args.accounts,
            "open_orders": sum(len(o) for _, o in accounts),
            "seconds": round(elapsed, 2),
            "drivers": args.drivers,
            "push_messages_per_s": round(messages / elapsed, 1),
            "order_rows_per_s": round(rows / elapsed, 1),
            "amend_batch_requests_per_s": round(amends / elapsed, 1),
            "server_cpu": None if cpu0 is None or cpu1 is None else round((cpu1 - cpu0) / elapsed, 3),
            "latency_under_load_ms": {
                "p50": round(percentile(loaded_latencies, 0.5), 2),
                "p99": round(percentile(loaded_latencies, 0.99), 2),
                "n": len(loaded_latencies),
            },
            "latency_quiet_ms": {
                "p50": round(percentile(quiet, 0.5), 2),
                "p99": round(percentile(quiet, 0.99), 2),
                "mean": round(statistics.fmean(quiet), 2) if quiet else None,
                "n": len(quiet),
            },
            "reconnects": sum(s["reconnects"] for s in streams.stats().values()),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result, indent=2))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    finally:
        streams.stop()
        proc.terminate()
        proc.wait(timeout=10)
