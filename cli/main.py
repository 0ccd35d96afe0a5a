"""The `tpsl` command. Each sub-command group lives in its own module of this package."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tpsl",
    help="tpsl-guard: keeps the TP/SL orders of Bybit futures positions right.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)


def _register() -> None:
    """Sub-command groups register here (one import line each)."""
    from cli.paper import paper_app

    app.add_typer(paper_app, name="paper")
    from cli.db import app as db_app

    app.add_typer(db_app, name="db")
    from cli.demo import demo_command

    app.command("demo")(demo_command)
    from cli.monitor import app as monitor_app

    app.add_typer(monitor_app, name="monitor")
    from cli.web import web_cmd

    app.command("web")(web_cmd)
    from cli.flower import flower_cmd

    app.command("flower")(flower_cmd)
    from cli.ops import beat_cmd, dispatch_cmd, reconcile_cmd, stream_cmd, worker_cmd

    app.command("reconcile")(reconcile_cmd)
    app.command("dispatch")(dispatch_cmd)
    app.command("stream")(stream_cmd)
    app.command("beat")(beat_cmd)
    # every argument, --help included, is Celery's worker command's
    app.command(
        "worker",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(worker_cmd)
    from cli.bench import bench_command

    app.command("bench")(bench_command)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
