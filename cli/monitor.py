"""`tpsl monitor add|list|show|rm`: monitors from the command line, straight through the same code
as the API (workers.lifecycle), reading fresh (no dashboard cache). `--json` prints the API's shapes.

    tpsl monitor add --plan plan.toml
    tpsl monitor add --symbol BTCUSDT --side Buy --preset conservative \\
        --entry 60000:0.01 --entry 59500:0.01 --entry 59000:0.01 \\
        --tp 62000 --tp 63000 --tp 64000 --tp 65000 --sl 58000
    tpsl monitor list [--all] [--account main] [--json]
    tpsl monitor show ID [--json]
    tpsl monitor rm ID [--leave-orders]

Flags override what the plan file says. Bad input: one line naming the field, exit code 2.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.common import echo_json, fail, fail_for, open_runtime, quiet_logging
from core.errors import FixInput, NotFound

if TYPE_CHECKING:
    from rich.console import JustifyMethod

    from workers.runtime import Runtime

app = typer.Typer(
    name="monitor",
    help="Create, list, show and remove monitors (the guards of positions).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

JSON_HELP = "Print JSON (the API's shape) instead of a table."


# -------------------------------------------------------------------------------- the request


def load_plan_file(path: Path) -> dict[str, Any]:
    """A monitor request from a JSON or TOML file (by suffix; anything else: JSON, then TOML)."""
    if not path.is_file():
        raise FixInput("plan", f"{path} does not exist (or is not a file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FixInput("plan", f"{path} cannot be read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        data = _toml(text, path)
    elif suffix == ".json":
        data = _json(text, path)
    else:
        try:
            data = _json(text, path)
        except FixInput:
            data = _toml(text, path)
    if not isinstance(data, dict):
        raise FixInput(
            "plan", f"{path} must hold one object (the monitor request), not {type(data).__name__}"
        )
    return data


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise FixInput(
            "plan", f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise FixInput("plan", f"{path} cannot be read as JSON: {str(exc)[:120]}") from None


def _toml(text: str, path: Path) -> Any:
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise FixInput("plan", f"{path} is not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        raise FixInput("plan", f"{path} cannot be read as TOML: {str(exc)[:120]}") from None


def _pair(text: str, field: str, what: str, *, second_optional: bool) -> tuple[str, str | None]:
    first, sep, second = text.partition(":")
    first, second = first.strip(), second.strip()
    if not first or (sep and not second) or (not sep and not second_optional) or ":" in second:
        raise FixInput(field, f"must be {what}, got {text!r}")
    return first, (second or None)


def build_request(
    base: dict[str, Any],
    *,
    account: str | None,
    symbol: str | None,
    side: str | None,
    preset: str | None,
    entries: list[str],
    market_qty: str | None,
    tps: list[str],
    sl: str | None,
    breakeven_after: int | None,
    adopt: bool,
    no_mirror: bool,
) -> dict[str, Any]:
    """The plan file's request with the flags laid over it (pure: no I/O)."""
    data = dict(base)
    for key, value in (("account", account), ("symbol", symbol), ("side", side), ("preset", preset)):
        if value is not None:
            data[key] = value
    if entries and market_qty is not None:
        raise FixInput("entries", "give --entry (limit entries) or --market-qty, not both")
    if entries:
        data["entries"] = []
        for i, raw in enumerate(entries):
            price, qty = _pair(raw, f"entries[{i}]", "PRICE:QTY (e.g. 60000:0.01)", second_optional=False)
            data["entries"].append({"price": price, "qty": qty})
        data.pop("entry_price", None)
        data.pop("qty", None)
    if market_qty is not None:
        data["entries"] = {"type": "market", "qty": market_qty}
        data.pop("entry_price", None)
        data.pop("qty", None)
    if tps:
        levels: list[Any] = []
        for i, raw in enumerate(tps):
            price, fraction = _pair(
                raw, f"take_profits[{i}]", "PRICE or PRICE:FRACTION", second_optional=True
            )
            levels.append({"price": price} if fraction is None else {"price": price, "fraction": fraction})
        data["take_profits"] = levels
    if sl is not None:
        data["stop_loss"] = sl
    if breakeven_after is not None:
        data["breakeven_after"] = breakeven_after
    if adopt:
        data["adopt"] = True
        data.pop("entries", None)
    if no_mirror:
        data["mirror"] = False
    return data


def _default_account(rt: Runtime, data: dict[str, Any]) -> None:
    """No account given: the only main account, when there is exactly one."""
    if data.get("account") is not None:
        return
    mains = sorted(a.id for a in rt.accounts.values() if not a.is_mirror)
    if len(mains) == 1:
        data["account"] = mains[0]
    else:
        known = ", ".join(mains) or "none configured (TPSL_ACCOUNTS)"
        raise FixInput("account", f'required: --account or "account" in the plan (main accounts: {known})')


# ------------------------------------------------------------------------------------ printing


def _console() -> Any:
    """Rich output; piped or captured (no terminal), tables get 200 columns instead of 80."""
    import sys

    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    s = str(value)
    if "." in s and "e" not in s.lower():
        s = s.rstrip("0").rstrip(".")
    return s


def _stop(m: dict[str, Any]) -> str:
    stop = m["stop"]
    tag = " (BE)" if stop["at_breakeven"] else (" (BE…)" if stop["breakeven"] == "pending" else "")
    return _num(stop["price"]) + tag


def _ladder(m: dict[str, Any]) -> str:
    return " ".join(f"TP{t['level']}{'✓' if t['status'] == 'hit' else ''}" for t in m["take_profits"])


def _next(m: dict[str, Any]) -> str:
    import time

    nc = m.get("next_check")
    if not nc:
        return "—"
    d = nc["at"] - time.time()
    return "due" if d <= 0 else f"{d:.1f} s"


def print_monitors(monitors: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(monitors)} monitor{'' if len(monitors) == 1 else 's'}", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("id", "left"),
        ("account", "left"),
        ("symbol", "left"),
        ("side", "left"),
        ("phase", "left"),
        ("tier", "left"),
        ("next", "right"),
        ("size", "right"),
        ("avg entry", "right"),
        ("stop", "right"),
        ("ladder", "left"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify, no_wrap=True)
    for m in monitors:
        phase = m["phase"] + (f" ({m['closed_reason']})" if m["closed_reason"] else "")
        table.add_row(
            m["id"],
            m["account"],
            m["symbol"],
            m["side"],
            phase,
            m["tier"] if m["live"] else "—",
            _next(m),
            _num(m["position_size"]),
            _num(m["avg_entry"]),
            _stop(m),
            _ladder(m),
        )
    _console().print(table)


def print_monitor(m: dict[str, Any], events: list[dict[str, Any]]) -> None:
    from rich.table import Table

    console = _console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    phase = m["phase"] + (f" ({m['closed_reason']})" if m["closed_reason"] else "")
    for key, value in (
        (
            "monitor",
            m["id"] + (f"  mirror of {m['mirror_of']} × {_num(m['ratio'])}" if m["mirror_of"] else ""),
        ),
        ("position", f"{m['account']}  {m['symbol']}  {m['side']}  (positionIdx {m['position_idx']})"),
        ("phase", phase),
        ("tier", f"{m['tier']}  next check {_next(m)}" if m["live"] else "— (not live)"),
        (
            "size",
            f"{_num(m['position_size'])} of {_num(m['built_qty'])} built, avg entry {_num(m['avg_entry'])}",
        ),
        ("stop", _stop(m) + f"  (planned {_num(m['stop']['planned'])})"),
        ("last price", _num(m["last_price"])),
    ):
        facts.add_row(key, value)
    console.print(facts)
    ladder = Table(title="take-profits", title_justify="left")
    for col in ("level", "price", "fraction", "qty", "filled", "status"):
        ladder.add_column(col, justify="left" if col in ("level", "status") else "right")
    for t in m["take_profits"]:
        ladder.add_row(
            f"TP{t['level']}",
            _num(t["price"]),
            _num(t["fraction"]),
            _num(t["qty"]),
            _num(t["filled"]),
            t["status"],
        )
    console.print(ladder)
    orders = Table(title="orders", title_justify="left")
    for col in ("orderLinkId", "qty", "price", "trigger", "filled", "status"):
        orders.add_column(col, justify="left" if col in ("orderLinkId", "status") else "right", no_wrap=True)
    for o in m["orders"]:
        orders.add_row(
            o["link_id"],
            _num(o["qty"]),
            _num(o["price"]),
            _num(o["trigger_price"]),
            _num(o["filled"]),
            o["status"],
        )
    console.print(orders)
    if events:
        from datetime import UTC, datetime

        ev = Table(title=f"last {len(events)} events", title_justify="left")
        for col in ("at (UTC)", "kind", "payload"):
            ev.add_column(col)
        for e in events:
            at = datetime.fromtimestamp(e["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
            payload = ", ".join(f"{k}={v}" for k, v in e["payload"].items() if not isinstance(v, list | dict))
            ev.add_row(at, e["kind"] + (" *" if e["critical"] else ""), payload)
        console.print(ev)


# ------------------------------------------------------------------------------------ commands


@app.command("add")
def add(
    plan: Path | None = typer.Option(
        None, "--plan", help="A JSON or TOML file with the monitor request (the POST /api/monitors shape)."
    ),
    account: str | None = typer.Option(
        None, "--account", help="Account id (default: the only main account)."
    ),
    symbol: str | None = typer.Option(None, "--symbol", help="e.g. BTCUSDT"),
    side: str | None = typer.Option(None, "--side", help="Buy (long) or Sell (short)."),
    preset: str | None = typer.Option(None, "--preset", help="conservative or fast: fills what is left out."),
    entry: list[str] = typer.Option([], "--entry", help="A limit entry PRICE:QTY; repeat, nearest first."),
    market_qty: str | None = typer.Option(None, "--market-qty", help="One market entry of this quantity."),
    tp: list[str] = typer.Option([], "--tp", help="A take-profit PRICE[:FRACTION]; repeat, nearest first."),
    sl: str | None = typer.Option(None, "--sl", help="Stop-loss trigger price."),
    breakeven_after: int | None = typer.Option(
        None, "--breakeven-after", help="Move the stop to breakeven once this TP has filled (1-based)."
    ),
    adopt: bool = typer.Option(False, "--adopt", help="Guard the position already open (no entries)."),
    no_mirror: bool = typer.Option(False, "--no-mirror", help="Do not follow on mirror accounts."),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="The same key again returns the same monitor instead of a second one."
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log the exchange calls (INFO)."),
) -> None:
    """Create a monitor from a plan file and/or flags (flags override the file).

    The plan is validated first (nothing is placed for a bad one); then its orders are placed, it
    is registered and `monitor_created` is recorded.
    """
    from readmodel.reads import created_view
    from workers.lifecycle import create_monitor

    quiet_logging(verbose)
    try:
        base = load_plan_file(plan) if plan is not None else {}
        data = build_request(
            base,
            account=account,
            symbol=symbol,
            side=side,
            preset=preset,
            entries=list(entry),
            market_qty=market_qty,
            tps=list(tp),
            sl=sl,
            breakeven_after=breakeven_after,
            adopt=adopt,
            no_mirror=no_mirror,
        )
    except FixInput as exc:
        fail(exc.field, exc.problem)
    rt = open_runtime()
    try:
        _default_account(rt, data)
        monitor = create_monitor(rt, data, nonce=idempotency_key)
        view = created_view(rt, monitor)
    except Exception as exc:
        fail_for(exc)
    if json_out:
        echo_json(view)
        return
    live = sum(1 for o in view["orders"] if o["status"] in ("placing", "open"))
    typer.echo(
        f"monitor {view['id']} created: {view['account']} {view['symbol']} {view['side']}, "
        f"phase {view['phase']}, tier {view['tier']}, {live} order{'' if live == 1 else 's'} working"
    )


@app.command("list")
def list_cmd(
    all_: bool = typer.Option(False, "--all", "-a", help="Closed monitors too (from the database)."),
    account: str | None = typer.Option(None, "--account", help="Only this account's monitors."),
    limit: int = typer.Option(200, "--limit", min=1, max=1000, help="At most this many."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """List the live monitors (fresh from the registry), most urgent first; --all adds closed ones."""
    from readmodel.reads import DashboardData

    quiet_logging(False)
    rt = open_runtime(publisher=False)
    try:
        monitors = DashboardData(rt, None).monitors(
            status="all" if all_ else "open", account=account, limit=limit
        )
    except Exception as exc:
        fail_for(exc)
    if json_out:
        echo_json({"monitors": monitors})
        return
    print_monitors(monitors)


@app.command("show")
def show(
    monitor_id: str = typer.Argument(..., metavar="ID", help="Monitor id (see tpsl monitor list)."),
    events: int = typer.Option(15, "--events", min=0, max=1000, help="Show this many latest events."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP + ' Events under "events".'),
) -> None:
    """Show one monitor: phase, tier, next check, size, stop, ladder, orders and latest events.

    Live monitors come from the registry, closed ones from the database.
    """
    from readmodel.errors import ApiError
    from readmodel.reads import DashboardData

    quiet_logging(False)
    rt = open_runtime(publisher=False)
    data = DashboardData(rt, None)
    try:
        view = data.monitor(monitor_id)
        history = data.events(monitor_id, limit=events) if events else []
    except (NotFound, ApiError):
        fail("id", f"no monitor {monitor_id!r}")
    except Exception as exc:
        fail_for(exc)
    if json_out:
        echo_json({**view, "events": history})
        return
    print_monitor(view, history)


@app.command("rm")
def rm(
    monitor_id: str = typer.Argument(..., metavar="ID", help="Monitor id (see tpsl monitor list)."),
    leave_orders: bool = typer.Option(
        False, "--leave-orders", help="Leave its orders on the exchange (default: cancel them)."
    ),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Remove a monitor (and its mirrors); its orders are cancelled unless --leave-orders."""
    from readmodel.errors import ApiError
    from readmodel.reads import DashboardData, removed_view
    from workers.lifecycle import remove_monitor

    quiet_logging(False)
    rt = open_runtime()
    try:
        monitor = remove_monitor(rt, monitor_id, cancel_orders=not leave_orders)
        view = removed_view(rt, monitor)
    except NotFound:
        try:
            closed = DashboardData(rt, None).stored_monitor(monitor_id)
        except (NotFound, ApiError):
            fail("id", f"no monitor {monitor_id!r}")
        fail("id", f"monitor {monitor_id} is already closed ({closed.get('closed_reason') or 'closed'})")
    except ValueError as exc:  # an id the registry refuses (control characters…)
        fail("id", str(exc))
    except Exception as exc:
        fail_for(exc)
    if json_out:
        echo_json(view)
        return
    what = "its orders left on the exchange" if leave_orders else "its orders cancelled"
    typer.echo(f"monitor {view['id']} removed ({view['symbol']} on {view['account']}), {what}")
