"""The stack benchmark behind `tpsl bench`: the real stack once per profile (streams, polling and the
plain baseline), on the same workload. The other benchmarks: paper_http, paper_streams, bybit_client
(`tpsl paper …`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from devtools.bench import report
from devtools.bench.run import PROFILES, Options, run_profile
from devtools.bench.run import Progress as RunProgress

console = Console(stderr=True)


def run_bench(
    *,
    monitors: int = 1000,
    accounts: int = 4,
    minutes: float = 5.0,
    seed: int = 1,
    profile: str = "all",
    json_path: Path | None = None,
    quick: bool = False,
    capacity: str | None = None,
    capacity_minutes: float = 2.0,
    capacity_profile: str = "streams",
    docs: bool = False,
    exchange_limits: bool = False,
) -> None:
    """Run the real stack (Redis, worker pools, beat, paper exchange over HTTP, persistence,
    dashboard; the stream process in the streams profile) once per profile on the same workload, and
    print them side by side with each one's ratio to the plain baseline."""
    if quick:
        monitors, minutes = 200, 0.5
    names = {"all": list(PROFILES), "none": []}.get(profile, profile.split(","))
    for n in [*names, capacity_profile]:
        if n not in PROFILES:
            raise typer.BadParameter(
                f"{n!r}: {', '.join(PROFILES)}, a comma list of them, all or none", param_hint="--profile"
            )
    sizes = _sizes(capacity)
    if not names and not sizes:
        raise typer.BadParameter("none: give --capacity N,N,… to run", param_hint="--profile")
    if monitors < accounts or accounts < 1:
        raise typer.BadParameter("need at least one monitor per account", param_hint="--monitors")
    results: dict[str, Any] = {}
    cap: list[dict[str, Any]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def step(what: str, done: float, total: float) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        options = {
            "monitors": monitors,
            "accounts": accounts,
            "minutes": minutes,
            "seed": seed,
            "exchange_limits": exchange_limits,
        }
        machine = report.machine()

        def save() -> None:  # after every run: a long capacity walk keeps what it measured so far
            if json_path:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                doc = {"machine": machine, "options": options, "profiles": results, "capacity": cap}
                json_path.write_text(json.dumps(doc, indent=2))

        progress = RunProgress(say=lambda text: bar.console.print(text), step=step)
        for n in names:
            results[n] = run_profile(
                n,
                Options(
                    monitors=monitors,
                    accounts=accounts,
                    minutes=minutes,
                    seed=seed,
                    exchange_limits=exchange_limits,
                ),
                progress,
            )
            save()
        for size in sizes:
            c = run_profile(
                capacity_profile,
                Options(
                    monitors=size,
                    accounts=accounts,
                    minutes=capacity_minutes,
                    seed=seed,
                    exchange_limits=exchange_limits,
                    layout="pools",  # at this size both cores: a process per pool
                ),
                progress,
                run_dir=f"capacity-{size}",
            )
            cap.append(c)
            save()
            lag = (c.get("check_lag") or {}).get("critical") or {}
            progress.say(
                f"capacity {c['monitors']} monitors: critical lag p50 {lag.get('p50_ms')} ms, "
                f"p99 {lag.get('p99_ms')} ms"
            )
    if results:
        Console().print(report.table(results))
    if cap:
        largest, _ = report.capacity_verdict(cap)
        Console().print(f"largest monitor count with critical p99 lag < 1 s: {largest}")
    if docs:
        if results:
            report.write_docs(Path("docs/benchmarks.md"), report.markdown(results, options, machine))
        if cap:
            report.write_docs(
                Path("docs/benchmarks.md"), report.capacity_markdown(cap, machine), block="capacity"
            )
    missing = {n: report.missing_figures(r) for n, r in results.items()}
    if any(missing.values()):
        console.print(f"figures not produced: {missing}")
        sys.exit(1)


def _sizes(capacity: str | None) -> list[int]:
    if not capacity:
        return []
    try:
        sizes = [int(x) for x in capacity.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"{capacity!r}: a comma list of monitor counts", param_hint="--capacity"
        ) from None
    if any(n < 1 for n in sizes):
        raise typer.BadParameter(f"{capacity!r}: counts must be positive", param_hint="--capacity")
    return sizes
