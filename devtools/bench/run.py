"""One benchmark profile on the real stack: processes up, workload seeded, prices driven, figures read.

Every figure is measured, none estimated:
- exchange calls per minute: the paper exchange's own request counter (`/paper/stats`);
- account reads (snapshots): the workers' fleet-wide counter; calls per read = calls / reads;
- check lag per tier (claim time − due time) and reaction latency (fill on the exchange → first
  follow-up acknowledged, the stop; and → every follow-up of that pass acknowledged): the workers'
  latency histograms in Redis;
- database transactions and events: the persistence counters;
- critical events lost: the paper exchange's executions compared with the events in the database;
- dashboard latency: HTTP requests against `tpsl web` with a warm cache; hit rate from the cache's
  counters;
- connection reuse: connections the paper exchange accepted vs requests it served;
- RSS and PSS per process type: /proc of every process (the prefork children with their pool).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from config.queues import PERSIST_QUEUE, TIER_QUEUES
from core.models import Tier
from devtools.bench.workload import Workload, build
from devtools.ports import free_port
from devtools.stack import (
    beat_spec,
    fresh_sqlite,
    paper_spec,
    redis_spec,
    stream_spec,
    web_spec,
    with_source_path,
    worker_settings,
    worker_specs,
)
from devtools.supervisor import Child, Supervisor, group_members
from workers.lag import CHECK_LAG, CHECK_START_LAG, REACTION, REACTION_ALL, REACTION_SEEN, STREAM_LAG

PROFILES: dict[str, dict[str, str]] = {
    # the defaults, with the stream process: pushes call checks, checks read the stream view
    "streams": {},
    # the same, while the exchange loses some of its pushes and drops every private connection every
    # 30 s (a tenth of the run in quick mode): reconciliation must catch every lost push
    "streams_faults": {},
    # the defaults with the stop as an order of the monitor's own, amended as the position changes
    # (the default is the position's own stop, which the exchange resizes: docs/protection.md)
    "streams_order": {"TPSL_STOP_MODE": "order"},
    # the polling guard: every optimisation but the streams (no stream process)
    "polling": {"TPSL_STREAMS": "false"},
    # every rollback switch on: the plain behaviour the optimisations are measured against
    "baseline": {
        "TPSL_STOP_MODE": "order",  # the plain system's stop: an order of ours, amended per fill
        "TPSL_FIXED_POLLING": "true",
        "TPSL_PER_MONITOR_CALLS": "true",
        "TPSL_SYNC_SAVES": "true",
        "TPSL_CACHE_ENABLED": "false",
        "TPSL_POOLING": "false",
        "TPSL_STREAMS": "false",
        # the plain system's pool: a process per slot, the former 4/2/2 slots
        "TPSL_WORKER_POOL": "prefork",
        "TPSL_WORKER_FAST_CONCURRENCY": "4",
        "TPSL_WORKER_BULK_CONCURRENCY": "2",
        "TPSL_WORKER_PERSIST_CONCURRENCY": "2",
    },
}
# the worker processes each profile runs (devtools/stack.py): the one-process `worker` for the
# optimised guard at this size (half the pools' memory: docs/benchmarks.md, Worker layouts);
# the plain system's three prefork pools for the baseline. BENCH_WORKER_LAYOUT in the environment,
# then `Options.layout` (the capacity run: the pools, which use both cores), override it
LAYOUTS = {"baseline": "pools"}
DEFAULT_LAYOUT = "single"
WITH_STREAM_PROCESS = {"streams", "streams_faults", "streams_order"}
WITH_STREAM_FAULTS = {"streams_faults"}
LOST_PUSHES = 0.02  # the share of private pushes the faulted profile loses
DROP_EVERY_S = 30.0  # …and how often it drops every private connection
# the paper exchange runs without rate limits (unless --exchange-limits); so must the client's
# fleet-wide buckets, or they would cap what is measured (Bybit's own limits: docs/benchmarks.md)
COMMON_ENV = {
    "TPSL_RATE_READ_PER_S": "100000",
    "TPSL_RATE_TRADE_PER_S": "100000",
    "TPSL_RATE_BATCH_ORDERS_PER_S": "100000",
}
DASHBOARD_REQUESTS = 200  # per endpoint, after warming
WARMUP_S = 20.0  # after seeding, before the measured window (the latency slots are 10 s wide)
START_TIMEOUT_S = 240.0


@dataclass
class Options:
    monitors: int = 1000
    accounts: int = 4
    minutes: float = 5.0
    seed: int = 1
    workdir: Path = Path("var/bench")
    quiet: bool = False
    exchange_limits: bool = False  # the paper exchange enforces Bybit's default per-account limits
    layout: str | None = None  # the worker layout (None: the profile's, LAYOUTS)


@dataclass
class Progress:
    """What the runner tells the user while it works (a callable per event)."""

    say: Callable[[str], None] = print
    step: Callable[[str, float, float], None] = lambda what, done, total: None


@dataclass
class Stack:
    sup: Supervisor
    redis_url: str
    database_url: str
    paper_url: str
    web_url: str
    token: str
    accounts: list[dict[str, str]]
    creds: dict[str, Any]
    env: dict[str, str]
    workers: list[Child] = field(default_factory=list)
    others: list[Child] = field(default_factory=list)  # beat, web and (streams profile) stream


def run_profile(
    name: str, opts: Options, progress: Progress, *, run_dir: str | None = None
) -> dict[str, Any]:
    """Start the stack with profile `name`'s settings, seed, drive, measure, stop. Logs go to
    `<workdir>/<run_dir or name>/logs`."""
    from exchange.paper.instruments import synthetic_instruments

    per = max(1, opts.monitors // opts.accounts)
    workload = build(
        monitors=opts.monitors,
        accounts=opts.accounts,
        seed=opts.seed,
        instruments=list(synthetic_instruments(per)),
    )
    base = opts.workdir / (run_dir or name)
    sup = Supervisor(base / "logs", grace_s=30.0)
    with sup:
        sup.install_signal_handlers(sigint=True)
        stack = _start(name, opts, workload, sup, base, per, progress)
        rt = _runtime(stack)
        try:
            _seed(rt, workload, stack, progress)
            figures = _measure(name, rt, workload, stack, opts, progress)
        finally:
            rt.close()
    return figures


# ---------------------------------------------------------------------------------------------- start


def _start(
    name: str, opts: Options, workload: Workload, sup: Supervisor, base: Path, per: int, progress: Progress
) -> Stack:
    from exchange.paper.runner import PaperAdmin
    from persistence.migrate import upgrade

    env0 = dict(os.environ)
    for var in ("REDIS_URL", "DATABASE_URL", "TPSL_ACCOUNTS", "TPSL_ACCOUNTS_FILE"):
        env0.pop(var, None)
    redis_port, paper_port, web_port = free_port(), free_port(), free_port()
    progress.say(f"{name}: starting redis and the paper exchange ({per} symbols)")
    infra = [
        sup.start(redis_spec(redis_port, base, env0)),
        sup.start(
            paper_spec(
                paper_port,
                env0,
                extra=[
                    "--extra-symbols",
                    str(per),
                    "--seed",
                    str(opts.seed),
                    *([] if opts.exchange_limits else ["--no-rate-limit"]),
                ],
            )
        ),
    ]
    sup.wait_ready(infra, timeout_s=START_TIMEOUT_S)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    paper_url = f"http://127.0.0.1:{paper_port}"
    database_url = fresh_sqlite(base / "tpsl.db")
    upgrade(database_url)
    admin = PaperAdmin(paper_url)
    creds = {a.id: admin.create_account(balance=1_000_000_000) for a in workload.accounts}
    accounts = []
    for a in workload.accounts:
        row = {
            "id": a.id,
            "base_url": paper_url,
            "api_key": creds[a.id].api_key,
            "api_secret": creds[a.id].api_secret,
        }
        if a.mirror_of:
            row.update(mirror_of=a.mirror_of, ratio="0.5")
        accounts.append(row)
    admin.set_prices(workload.prices_at(0.0))
    token = secrets.token_urlsafe(24)
    env = with_source_path(
        {
            **env0,
            **({} if opts.exchange_limits else COMMON_ENV),
            **PROFILES[name],
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "TPSL_ACCOUNTS": json.dumps(accounts),
            "TPSL_DASHBOARD_TOKEN": token,
            "BENCH_WORKER_LAYOUT": os.environ.get("BENCH_WORKER_LAYOUT")
            or opts.layout
            or LAYOUTS.get(name, DEFAULT_LAYOUT),
        }
    )
    progress.say(f"{name}: starting the workers ({env['BENCH_WORKER_LAYOUT']}), beat and the dashboard")
    workers = [sup.start(s) for s in worker_specs(env, node=f"bench-{name}")]
    others = [sup.start(beat_spec(base, env)), sup.start(web_spec(web_port, env))]
    if name in WITH_STREAM_PROCESS:
        others.append(sup.start(stream_spec(env)))
    sup.wait_ready([*workers, *others], timeout_s=START_TIMEOUT_S)
    return Stack(
        sup,
        redis_url,
        database_url,
        paper_url,
        f"http://127.0.0.1:{web_port}",
        token,
        accounts,
        creds,
        env,
        workers,
        others,
    )


def _runtime(stack: Stack) -> Any:
    from config.settings import Settings
    from workers.runtime import build_runtime

    over = {
        k.removeprefix("TPSL_").lower(): v
        for k, v in stack.env.items()
        if k.startswith("TPSL_") and k not in ("TPSL_ACCOUNTS", "TPSL_DASHBOARD_TOKEN")
    }
    settings = Settings(
        redis_url=stack.redis_url,
        database_url=stack.database_url,
        accounts=json.dumps(stack.accounts),
        **over,
    )
    return build_runtime(settings)


# ----------------------------------------------------------------------------------------------- seed


def _seed(rt: Any, workload: Workload, stack: Stack, progress: Progress) -> None:
    """Every monitor through the real creation path (validation, placement, commit), one thread per
    main account (creations of one account are serialised by its lock anyway)."""
    from workers.lifecycle import create_monitor

    total = len(workload.mains) * len(workload.scripts)
    done = Counter[str]()
    errors: list[str] = []
    lock = threading.Lock()

    def seed(account: str) -> None:
        for script in workload.scripts:
            for attempt in range(5):
                try:
                    create_monitor(
                        rt, workload.plan(account, script), nonce=f"bench-{account}-{script.symbol}"
                    )
                    break
                except Exception as e:  # reported below: a benchmark goes on
                    if attempt == 4:
                        with lock:
                            errors.append(f"{account} {script.symbol}: {type(e).__name__}: {e}")
                    time.sleep(0.2)
            with lock:
                done["n"] += 1

    threads = [threading.Thread(target=seed, args=(a.id,), daemon=True) for a in workload.mains]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        progress.step("seeding monitors", done["n"], total)
        stack.sup.check()
        time.sleep(0.5)
    progress.step("seeding monitors", done["n"], total)
    if errors:
        progress.say(f"{len(errors)} monitors could not be created; first: {errors[0]}")


# ------------------------------------------------------------------------------------------- measure


def _measure(
    name: str, rt: Any, workload: Workload, stack: Stack, opts: Options, progress: Progress
) -> dict[str, Any]:
    from exchange.paper.runner import PaperAdmin
    from persistence.stats import persist_stats
    from workers.checker import read_counts, reset_read_counts

    admin = PaperAdmin(stack.paper_url)
    # warm-up at the start prices: the fills seeding caused (market entries) are acted on and the
    # pools settle before anything is measured
    warm_until = time.time() + WARMUP_S
    while (now := time.time()) < warm_until:
        stack.sup.check()
        progress.step(f"{name}: warming up", now - (warm_until - WARMUP_S), WARMUP_S)
        time.sleep(0.5)
    # the window starts now: counters are taken as deltas from here
    admin.reset()
    reset_read_counts(rt)
    persist0 = persist_stats(rt.redis, prefix=rt.prefix)
    divergences0 = _divergences(rt)
    rss = [_rss(stack)]
    series = [(0.0, _rss_by_process(stack))]
    cpu0 = _cpu_s(stack)
    t0 = time.time()
    duration = opts.minutes * 60
    next_rss = t0 + 15
    faulted = name in WITH_STREAM_FAULTS
    drop_every = min(DROP_EVERY_S, duration / 10)
    next_drop = t0 + drop_every
    drops = 0
    if faulted:
        admin.add_fault(endpoint="/v5/private", lose=True, error_rate=LOST_PUSHES, seed=opts.seed)
    while (now := time.time()) < t0 + duration:
        admin.set_prices(workload.prices_at((now - t0) / duration))
        if faulted and now >= next_drop:
            # the next message on each private connection closes it instead (one per account)
            admin.add_fault(endpoint="/v5/private", drop_connection=True, count=len(workload.accounts))
            drops += 1
            next_drop = now + drop_every
        stack.sup.check()
        if now >= next_rss:
            rss.append(_rss(stack))
            series.append((round(now - t0, 1), _rss_by_process(stack)))
            next_rss = now + 15
        progress.step(f"{name}: driving prices", now - t0, duration)
        time.sleep(max(0.0, 1.0 - (time.time() - now)))
    t1 = time.time()
    progress.step(f"{name}: driving prices", duration, duration)
    if faulted:
        admin.clear_faults()  # settling and the loss count below run on a healthy stream
    rss.append(_rss(stack))
    cpu1 = _cpu_s(stack)
    rss_by_process = _rss_by_process(stack)
    pss_by_process = _pss_by_process(stack)
    series.append((round(t1 - t0, 1), rss_by_process))
    window = t1 - t0
    stats = admin.stats()
    stream_stats = admin.streams()
    pushes = stream_stats.get("pushes", 0)
    divergences = _divergences(rt) - divergences0
    reads = read_counts(rt)
    persist1 = persist_stats(rt.redis, prefix=rt.prefix)
    lag = rt.latency.summaries(CHECK_LAG, now=t1, window_s=window)
    reaction = _merged(rt.latency.summaries(REACTION, now=t1, window_s=window).values())
    reaction_all = _merged(rt.latency.summaries(REACTION_ALL, now=t1, window_s=window).values())
    reaction_seen = _merged(rt.latency.summaries(REACTION_SEEN, now=t1, window_s=window).values())
    stream_lag = rt.latency.summaries(STREAM_LAG, now=t1, window_s=window)
    start_lag = rt.latency.summaries(CHECK_START_LAG, now=t1, window_s=window)
    tiers = {t.value: n for t, n in rt.registry.counts_by_tier().items()}
    progress.say(f"{name}: measuring the dashboard")
    dashboard = _dashboard(rt, stack)
    progress.say(f"{name}: settling: every monitor checked once more, everything persisted")
    _settle(rt, stack)
    lost = _lost_critical_events(rt, stack, workload)
    closes = _closes(rt)
    minutes = window / 60
    calls = stats["total"]
    n_reads = sum(reads["reads"].values())
    read_endpoints = ("/v5/position/list", "/v5/order/realtime", "/v5/order/history")
    read_calls = sum(v for k, v in stats["by_endpoint"].items() if k in read_endpoints)
    calls_per_read = per_read(read_calls, n_reads)
    accounts = len(workload.accounts)
    critical_polls = 60 / rt.settings.interval(Tier.CRITICAL)
    tx = persist1["transactions"] - persist0["transactions"]
    received = persist1["events_received"] - persist0["events_received"]
    crit = persist1.get("events_received_critical", 0) - persist0.get("events_received_critical", 0)
    conns = stats.get("connections")
    return {
        "profile": name,
        "worker_pool": worker_settings(stack.env).worker_pool,
        "worker_layout": stack.env["BENCH_WORKER_LAYOUT"],
        "monitors": workload.monitors,
        "accounts": accounts,
        "minutes": round(minutes, 2),
        "exchange_calls_per_min": round(calls / minutes, 1),
        "calls_by_endpoint_per_min": {
            k: round(v / minutes, 1) for k, v in sorted(stats["by_endpoint"].items())
        },
        "account_reads_per_min": round(n_reads / minutes, 1),
        "view_reads_per_min": round(sum(reads.get("view_reads", {}).values()) / minutes, 1),
        "ws_pushes_per_min": round(pushes / minutes, 1),
        "stream_divergences": divergences,
        "stream_faults": {
            "pushes_lost": stream_stats.get("lost", 0),
            "connections_dropped": stream_stats.get("dropped", 0),
            "drops_called": drops,
        }
        if faulted
        else None,
        "exchange_limits": opts.exchange_limits,
        # 0 is a figure (every read of the window came from the stream view); None: no read at all
        "calls_per_read": round(calls_per_read, 2) if calls_per_read is not None else None,
        "target_calls_per_min": round(1.2 * accounts * calls_per_read * critical_polls, 1)
        if calls_per_read is not None
        else None,
        "check_lag": {
            t: {"p50_ms": round(h.p50_s * 1000, 1), "p99_ms": round(h.p99_s * 1000, 1), "n": h.count}
            for t, h in sorted(lag.items())
        },
        "check_start_lag": {
            t: {"p50_ms": round(h.p50_s * 1000, 1), "p99_ms": round(h.p99_s * 1000, 1), "n": h.count}
            for t, h in sorted(start_lag.items())
        },
        "reaction": {
            "p50_ms": round(reaction.p50_s * 1000, 1),
            "p99_ms": round(reaction.p99_s * 1000, 1),
            "n": reaction.count,
        },
        "reaction_seen": _ms(reaction_seen),
        "stream_lag": {kind: _ms(h) for kind, h in sorted(stream_lag.items())},
        "reactions_deferred": sum(reads.get("deferred", {}).values()),
        "reaction_all": {
            "p50_ms": round(reaction_all.p50_s * 1000, 1),
            "p99_ms": round(reaction_all.p99_s * 1000, 1),
            "n": reaction_all.count,
        },
        "db_transactions_per_hour": round(tx / minutes * 60, 1),
        "critical_events_per_hour": round(crit / minutes * 60, 1),
        "events_received_per_hour": round(received / minutes * 60, 1),
        "coalescing_ratio": round(received / tx, 2) if tx else None,
        "critical_events_lost": lost["lost"],
        "critical_fills_checked": lost["expected"],
        "dashboard": dashboard,
        "connection_reuse": round(1 - conns / calls, 5) if conns is not None and calls else None,
        "worker_rss_mb": {"start": rss[0], "end": rss[-1], "max": max(rss)},
        "rss_mb_by_process": rss_by_process,
        "pss_mb_by_process": pss_by_process,
        "total_pss_mb": round(sum(v for k, v in pss_by_process.items() if k != "web"), 1),
        "rss_mb_series": [{"t_s": t, **by} for t, by in series],
        "total_rss_mb": round(sum(v for k, v in rss_by_process.items() if k != "web"), 1),
        "cpu_s_by_process": {k: round(cpu1.get(k, 0.0) - v, 1) for k, v in cpu0.items()},
        "cpu_s_per_1000_monitor_hours": round(
            sum(cpu1.get(k, 0.0) - v for k, v in cpu0.items()) / (workload.monitors * window / 3600) * 1000, 1
        ),
        "monitors_per_tier_at_end": tiers,
        "closes": closes,
    }


def per_read(read_calls: float, reads: float) -> float | None:
    """Read calls per account read: 0 when every read came from the stream view (a figure, not a
    missing one); None only when there was no read at all."""
    return read_calls / reads if reads else None


def _ms(h: Any) -> dict[str, float]:
    return {"p50_ms": round(h.p50_s * 1000, 1), "p99_ms": round(h.p99_s * 1000, 1), "n": h.count}


def _merged(hists: Any) -> Any:
    from workers.lag import Histogram

    counts: Counter[int] = Counter()
    n, total = 0, 0.0
    for h in hists:
        counts.update(h.counts)
        n += h.count
        total += h.total_s
    return Histogram(dict(counts), n, total)


def _rss(stack: Stack) -> float:
    """MB resident in every process of the worker pools (their prefork children included)."""
    kb = 0
    for child in stack.workers:
        for pid in group_members(child.pgid):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        kb += int(line.split()[1])
    return round(kb / 1024, 1)


def _pids(child: Child) -> list[int]:
    return list(group_members(child.pgid))


def _rss_by_process(stack: Stack) -> dict[str, float]:
    """MB resident per process type: each worker pool (its prefork children included), beat, the
    dashboard and, in the streams profile, the stream process."""
    out: dict[str, float] = {}
    for child in [*stack.workers, *stack.others]:
        kind = child.name
        kb = 0
        for pid in _pids(child):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        kb += int(line.split()[1])
        out[kind] = round(out.get(kind, 0.0) + kb / 1024, 1)
    return out


def _pss_by_process(stack: Stack) -> dict[str, float]:
    """MB proportional set size per process type (/proc/<pid>/smaps_rollup): a page shared by n
    processes (a prefork parent and its children share most of theirs) counts 1/n in each, so unlike
    RSS the sum is what the processes take together."""
    out: dict[str, float] = {}
    for child in [*stack.workers, *stack.others]:
        kb = 0
        for pid in _pids(child):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        kb += int(line.split()[1])
        out[child.name] = round(out.get(child.name, 0.0) + kb / 1024, 1)
    return out


def _cpu_s(stack: Stack) -> dict[str, float]:
    """CPU seconds (user + system) used so far per process type (each worker pool on its own),
    children of the pools included."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for child in [*stack.workers, *stack.others]:
        kind = child.name
        for pid in _pids(child):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _divergences(rt: Any) -> int:
    from workers.stream_view import stream_view

    view = stream_view(rt)
    if view is None:
        return 0
    return sum(view.divergences(a) for a in rt.accounts)


def _dashboard(rt: Any, stack: Stack) -> dict[str, Any]:
    from workers.ttl_cache import TTLCache

    cache = TTLCache(rt.redis, rt.settings, prefix=rt.prefix)
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {stack.token}"
    some = rt.registry.ids()
    endpoints = ["/api/monitors", "/api/stats", f"/api/accounts/{stack.accounts[0]['id']}", "/api/insights"]
    if some:
        endpoints.append(f"/api/monitors/{some[0]}")
    before = cache.stats()
    out: dict[str, Any] = {}
    for path in endpoints:
        s.get(stack.web_url + path, timeout=30)  # warm
        times = []
        for _ in range(DASHBOARD_REQUESTS):
            t = time.perf_counter()
            r = s.get(stack.web_url + path, timeout=30)
            times.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
        times.sort()
        out[path.replace(some[0], "{id}") if some else path] = {
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        }
    after = cache.stats()
    hits = sum(c.get("hits", 0) for c in after.values()) - sum(c.get("hits", 0) for c in before.values())
    misses = sum(c.get("misses", 0) for c in after.values()) - sum(
        c.get("misses", 0) for c in before.values()
    )
    out["hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else None
    return out


def _drained(rt: Any) -> bool:
    return all(rt.redis.llen(q) == 0 for q in (*TIER_QUEUES, PERSIST_QUEUE))


def _settle(rt: Any, stack: Stack, timeout_s: float = 180.0) -> None:
    """Prices frozen; every monitor made due now twice (fills that happened late are seen), then the
    coalesced buffer flushed and the persist queue drained."""
    for _ in range(2):
        now = time.time()
        for mid in rt.registry.ids():
            stored = rt.registry.get(mid)
            if stored is not None:
                rt.registry.schedule(mid, stored.account, stored.tier, now)
        deadline = time.time() + timeout_s
        time.sleep(2.0)
        while not _drained(rt) and time.time() < deadline:
            stack.sup.check()
            time.sleep(0.5)
        time.sleep(2.0)
    rt.writer.flush()
    deadline = time.time() + timeout_s
    while rt.redis.llen(PERSIST_QUEUE) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)


def _lost_critical_events(rt: Any, stack: Stack, workload: Workload) -> dict[str, int]:
    """Every take-profit order the exchange filled completely must have its tp_hit in the database,
    every stop that filled its sl_hit: a stop order of ours by its orderLinkId, a position's own
    stop-loss (no orderLinkId) by its account and symbol (the workload guards one position per
    account and symbol). Returns {"expected": n, "lost": k}."""
    from core import ids
    from core.models import ExchangeOrderStatus, OrderRole
    from persistence.db import session_factory
    from persistence.models import DbEvent

    expected: set[tuple[str, str, int]] = set()
    position_stops: set[tuple[str, str]] = set()  # (account, symbol) a position's own stop closed
    for acc in workload.accounts:
        account = rt.account(acc.id)
        client = rt.client_for(account)
        fills = client.executions(account, since_ms=0)
        filled: dict[str, Decimal] = {}
        for e in fills:
            if ids.is_ours(e.link_id):
                filled[e.link_id] = filled.get(e.link_id, Decimal(0)) + e.qty
            elif e.by_position_stop:
                position_stops.add((acc.id, e.symbol))
        tp_links = [lid for lid in filled if ids.parse_link_id(lid)[1] is OrderRole.TP]
        final = client.lookup_orders(account, tp_links) if tp_links else {}
        for lid in filled:
            mid, role, level, _ = ids.parse_link_id(lid)
            if role is OrderRole.SL:
                expected.add((mid, "sl_hit", 0))
            elif role is OrderRole.TP and lid in final and final[lid].status is ExchangeOrderStatus.FILLED:
                expected.add((mid, "tp_hit", level))
    recorded: set[tuple[str, str, int]] = set()
    recorded_on_position: set[tuple[str, str]] = set()
    with session_factory(rt.engine)() as s:
        for e in s.query(DbEvent).filter(DbEvent.kind.in_(["tp_hit", "sl_hit"])):
            level = int(e.payload.get("level", 0)) if e.kind == "tp_hit" else 0
            recorded.add((e.monitor_id, e.kind, level))
            if e.kind == "sl_hit" and e.payload.get("on_position"):
                recorded_on_position.add((e.account, str(e.payload.get("symbol"))))
    lost = len(expected - recorded) + len(position_stops - recorded_on_position)
    return {"expected": len(expected) + len(position_stops), "lost": lost}


def _closes(rt: Any) -> dict[str, int]:
    """Closed monitors by reason (what the run reached: TPs, stops, breakeven stops, …)."""
    from sqlalchemy import func, select

    from persistence.db import session_factory
    from persistence.models import DbMonitor

    with session_factory(rt.engine)() as s:
        rows = s.execute(
            select(DbMonitor.closed_reason, func.count())
            .where(DbMonitor.closed_reason.is_not(None))
            .group_by(DbMonitor.closed_reason)
        )
        return {str(reason): int(n) for reason, n in rows}
