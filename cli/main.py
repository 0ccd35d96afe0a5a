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


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
