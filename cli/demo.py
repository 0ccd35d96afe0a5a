"""`tpsl demo`: the command line of the demo. The demo itself is development tooling
(devtools/demo/, installed by `make install` from a checkout), imported only when the command runs."""

from __future__ import annotations

import typer

from cli.common import require_devtools


def demo_command(
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        min=0.05,
        help="Run this many minutes (after start-up), then stop; exit 0 only if every "
        "scenario reached its expected end, else 1 with one line per scenario.",
    ),
    speed: float = typer.Option(
        1.0, "--speed", min=0.1, max=50.0, help="Compress the price scripts' timing by this factor."
    ),
    live: bool = typer.Option(
        True, "--live/--no-live", help="Live terminal view, or plain progress lines (for CI logs)."
    ),
    port_base: int | None = typer.Option(
        None,
        "--port-base",
        min=1024,
        max=65000,
        help="Paper exchange on this port, dashboard +1, Flower +2, embedded Redis +3 (default: free ports).",
    ),
    until_done: bool = typer.Option(
        False,
        "--until-done",
        help="Stop as soon as every scenario has finished (and exit as --minutes does).",
    ),
) -> None:
    """Run the whole system on this machine: Redis, the paper exchange, workers, beat, dashboard and
    Flower; seed monitors and drive prices so that within about two minutes you see entries fill,
    take-profits hit, breakeven moves, a stop-loss, a breakeven stop and closes. Ctrl-C stops it all."""
    require_devtools("demo")
    from devtools.demo.run import Options, run_demo

    opts = Options(minutes=minutes, speed=speed, live=live, port_base=port_base, until_done=until_done)
    raise typer.Exit(run_demo(opts))
