"""`python -m exchange.paper --port P [--seed N] [--account KEY:SECRET[:BALANCE]]… [--walk]
[--extra-symbols N] [--no-rate-limit] [--fault-hold-s S]`: a paper exchange in its own process."""

from __future__ import annotations

import argparse
import sys

from config.logging import setup_logging
from core.errors import FixInput
from exchange.paper.runner import serve_forever
from exchange.paper.server import AccountSeed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exchange.paper", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--account", action="append", default=[], metavar="KEY:SECRET[:BALANCE]")
    ap.add_argument("--walk", action="store_true", help="random walk on the real symbols")
    ap.add_argument("--extra-symbols", type=int, default=0)
    ap.add_argument("--no-rate-limit", action="store_true")
    ap.add_argument("--fault-hold-s", type=float, default=30.0)
    ap.add_argument("--stream-idle-s", type=float, default=600.0, help="WebSocket idle cut-off")
    args = ap.parse_args(argv)
    try:
        accounts = [AccountSeed.parse(a) for a in args.account]
    except FixInput as err:
        ap.error(str(err))
    if args.extra_symbols < 0:
        ap.error("--extra-symbols: must be >= 0")
    if args.stream_idle_s <= 0:
        ap.error("--stream-idle-s: must be > 0")
    setup_logging()
    serve_forever(
        host=args.host,
        port=args.port,
        seed=args.seed,
        extra_symbols=args.extra_symbols,
        rate_limits=not args.no_rate_limit,
        accounts=accounts,
        walk=args.walk,
        fault_hold_s=args.fault_hold_s,
        stream_idle_s=args.stream_idle_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
