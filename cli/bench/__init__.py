"""`tpsl bench`: the real stack, twice (optimized and the plain baseline), on the same workload."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli.bench import report
from cli.bench.run import Options, run_profile
from cli.bench.run import Progress as RunProgress

console = Console(stderr=True)


def bench_command(
    monitors: Annotated[int, typer.Option(help="Monitors in all (mirror monitors included).")] = 1000,
    accounts: Annotated[int, typer.Option(help="Accounts (one of them a mirror of the first).")] = 4,
    minutes: Annotated[float, typer.Option(help="Measured minutes per profile.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Workload seed: plans and price scripts.")] = 1,
    profile: Annotated[
        str, typer.Option(help="optimized | baseline | both | none (only the capacity run)")
    ] = "both",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write every figure to this file.")] = None,
    quick: Annotated[bool, typer.Option(help="200 monitors, half a minute per profile (CI).")] = False,
    capacity: Annotated[
        str | None,
        typer.Option(help="Comma list of monitor counts for the capacity run, e.g. 2500,5000,10000."),
    ] = None,
    capacity_minutes: Annotated[float, typer.Option(help="Minutes per capacity step.")] = 2.0,
    docs: Annotated[bool, typer.Option(help="Write the results into docs/benchmarks.md.")] = False,
) -> None:
    """Run the real stack (Redis, worker pools, beat, paper exchange over HTTP, persistence,
    dashboard) with the optimized settings and with every rollback switch on, on the same workload,
    and print both side by side with their ratio."""
    if quick:
        monitors, minutes = 200, 0.5
    names = {"both": ["optimized", "baseline"], "none": []}.get(profile, [profile])
    for n in names:
        if n not in ("optimized", "baseline"):
            raise typer.BadParameter(
                f"{profile!r}: optimized, baseline, both or none", param_hint="--profile"
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

        options = {"monitors": monitors, "accounts": accounts, "minutes": minutes, "seed": seed}
        machine = report.machine()

        def save() -> None:  # after every run: a long capacity walk keeps what it measured so far
            if json_path:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                doc = {"machine": machine, "options": options, "profiles": results, "capacity": cap}
                json_path.write_text(json.dumps(doc, indent=2))

        progress = RunProgress(say=lambda text: bar.console.print(text), step=step)
        for n in names:
            results[n] = run_profile(
                n, Options(monitors=monitors, accounts=accounts, minutes=minutes, seed=seed), progress
            )
            save()
        for size in sizes:
            c = run_profile(
                "optimized",
                Options(monitors=size, accounts=accounts, minutes=capacity_minutes, seed=seed),
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
