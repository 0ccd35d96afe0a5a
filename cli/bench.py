"""`tpsl bench`: the command line of the stack benchmark. The benchmark itself is development tooling
(devtools/bench/, installed by `make install` from a checkout), imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import require_devtools


def bench_command(
    monitors: Annotated[int, typer.Option(help="Monitors in all (mirror monitors included).")] = 1000,
    accounts: Annotated[int, typer.Option(help="Accounts (one of them a mirror of the first).")] = 4,
    minutes: Annotated[float, typer.Option(help="Measured minutes per profile.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Workload seed: plans and price scripts.")] = 1,
    profile: Annotated[
        str,
        typer.Option(
            help="streams | streams_faults | streams_order | polling | baseline, a comma list of "
            "them, all, or none (only the capacity run)"
        ),
    ] = "all",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write every figure to this file.")] = None,
    quick: Annotated[bool, typer.Option(help="200 monitors, half a minute per profile (CI).")] = False,
    capacity: Annotated[
        str | None,
        typer.Option(help="Comma list of monitor counts for the capacity run, e.g. 2500,5000,10000."),
    ] = None,
    capacity_minutes: Annotated[float, typer.Option(help="Minutes per capacity step.")] = 2.0,
    capacity_profile: Annotated[str, typer.Option(help="The profile the capacity run measures.")] = "streams",
    docs: Annotated[bool, typer.Option(help="Write the results into docs/benchmarks.md.")] = False,
    exchange_limits: Annotated[
        bool,
        typer.Option(
            help="The paper exchange enforces Bybit's default per-account rate limits (and the client "
            "keeps its default budgets): what a real account at the default level allows."
        ),
    ] = False,
) -> None:
    """Run the real stack (Redis, worker pools, beat, paper exchange over HTTP and WebSocket,
    persistence, dashboard) once per profile on the same workload: streams (the defaults, with the
    stream process), polling (every optimisation but the streams) and the plain baseline (every
    rollback switch on); print them side by side with each one's ratio to the baseline."""
    require_devtools("bench")
    from devtools.bench import run_bench

    run_bench(
        monitors=monitors,
        accounts=accounts,
        minutes=minutes,
        seed=seed,
        profile=profile,
        json_path=json_path,
        quick=quick,
        capacity=capacity,
        capacity_minutes=capacity_minutes,
        capacity_profile=capacity_profile,
        docs=docs,
        exchange_limits=exchange_limits,
    )
