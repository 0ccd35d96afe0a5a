"""`tpsl paper …`: run the paper exchange (a local Bybit v5 look-alike) and benchmark it (the
benchmarks are development tooling, devtools/bench/, imported only when their command runs)."""

from __future__ import annotations

import logging

import typer

from cli.common import echo_json, require_devtools

paper_app = typer.Typer(
    name="paper",
    help="The paper exchange: a local Bybit v5 look-alike (REST and WebSocket streams).",
    no_args_is_help=True,
)


@paper_app.command("serve")
def serve(
    host: str = typer.Option(
        "127.0.0.1", help="Interface to listen on. The admin API has no authentication: keep it on loopback."
    ),
    port: int = typer.Option(8080, help="TCP port."),
    seed: int = typer.Option(0, help="Seed of ids and random walks (same seed, same run)."),
    account: list[str] = typer.Option(
        [], "--account", help="KEY:SECRET[:BALANCE] (USDT, default 100000); repeat for more accounts."
    ),
    walk: bool = typer.Option(False, "--walk", help="Random-walk the real symbols' prices (1 s steps)."),
    extra_symbols: int = typer.Option(0, "--extra-symbols", min=0, help="Synthetic symbols SYN0001USDT…"),
    no_rate_limit: bool = typer.Option(
        False, "--no-rate-limit", help="Switch Bybit's per-account limits off."
    ),
    fault_hold_s: float = typer.Option(30.0, help="How long a `timeout` fault holds a request, seconds."),
    stream_idle_s: float = typer.Option(
        600.0, min=0.001, help="Close a WebSocket that sent nothing for this long, seconds."
    ),
) -> None:
    """Serve the paper exchange in the foreground (uvloop + httptools, one process).

    Its admin API (/paper/…) has NO authentication: whoever reaches it can create accounts, move
    prices and read every account. Keep --host on loopback (the default); any other address is
    warned about loudly. Requests from web pages of other sites are refused.
    """
    from config.logging import setup_logging
    from core.errors import FixInput
    from exchange.paper.runner import serve_forever
    from exchange.paper.server import AccountSeed

    try:
        seeds = [AccountSeed.parse(a) for a in account]
    except FixInput as err:
        raise typer.BadParameter(err.problem, param_hint="--account") from None
    setup_logging()
    if host not in ("127.0.0.1", "localhost", "::1"):
        warning = (
            f"WARNING: the paper exchange listens on {host}: its admin API (/paper/) has no "
            "authentication — anyone who reaches this address can create accounts, move prices and "
            "read every account. Use --host 127.0.0.1 unless this network is yours alone."
        )
        typer.echo(warning, err=True)
        logging.getLogger("exchange.paper").warning("%s", warning)
    serve_forever(
        host=host,
        port=port,
        seed=seed,
        extra_symbols=extra_symbols,
        rate_limits=not no_rate_limit,
        accounts=seeds,
        walk=walk,
        fault_hold_s=fault_hold_s,
        stream_idle_s=stream_idle_s,
    )


@paper_app.command("bench")
def bench(
    seconds: float = typer.Option(5.0, min=0.5, help="Measuring time per endpoint and round, seconds."),
    rounds: int = typer.Option(3, min=1, help="Rounds per endpoint; the median is reported."),
    clients: int = typer.Option(3, min=1, help="Load-generating processes."),
    connections: int = typer.Option(2, min=1, help="Keep-alive connections per process."),
    positions: int = typer.Option(500, min=1, help="Open positions of the benchmark account."),
    orders: int = typer.Option(2000, min=0, help="Open orders of the benchmark account."),
    url: str | None = typer.Option(
        None, help="Measure this running paper exchange (started with --no-rate-limit) instead."
    ),
    json_path: str | None = typer.Option(None, "--json", help="Also write the results to this file."),
) -> None:
    """Requests/s of /v5/position/list and /v5/order/realtime (signed, keep-alive, loopback).

    Development tooling: needs a checkout after `make install`."""
    require_devtools("paper bench")
    from devtools.bench.paper_http import Params, run

    raise typer.Exit(
        run(
            Params(
                seconds=seconds,
                rounds=rounds,
                clients=clients,
                connections=connections,
                positions=positions,
                orders=orders,
                url=url,
                json=json_path,
            )
        )
    )


@paper_app.command("stream-bench")
def stream_bench(
    accounts: int = typer.Option(4, min=1, help="Accounts, one private stream connection each."),
    orders: int = typer.Option(10_000, min=20, help="Open orders over all accounts."),
    seconds: float = typer.Option(10.0, min=1.0, help="Throughput run length, seconds."),
    drivers: int = typer.Option(2, min=1, help="Processes amending the orders."),
    samples: int = typer.Option(500, min=10, help="Quiet latency samples (one amend every 20 ms)."),
    json_path: str | None = typer.Option(None, "--json", help="Also write the results to this file."),
) -> None:
    """Stream pushes/s under amend load and push latency (engine change → client), p50/p99.

    Development tooling: needs a checkout after `make install`."""
    require_devtools("paper stream-bench")
    from devtools.bench.paper_streams import Params, run

    raise typer.Exit(
        run(
            Params(
                accounts=accounts,
                orders=orders,
                seconds=seconds,
                drivers=drivers,
                samples=samples,
                json=json_path,
            )
        )
    )


@paper_app.command("client-bench")
def client_bench(
    calls: int = typer.Option(1000, min=10, help="Sequential signed calls per measurement."),
) -> None:
    """The Bybit client against a paper exchange: pooled vs unpooled latency, account snapshot cost.

    Prints JSON. Development tooling: needs a checkout after `make install`."""
    require_devtools("paper client-bench")
    from devtools.bench.bybit_client import run

    echo_json(run(calls))
