"""`tpsl monitor …`, `tpsl reconcile`, `tpsl dispatch` through typer's CliRunner, against the running
stack (the CLI uses this process's Runtime: the stack's)."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.integration.pipeline.plans import conservative_long

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_logging():
    """The commands set up the process's logging (level, handler): give the next tests theirs back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configured = getattr(root, "_tpsl_configured", False)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    if not configured and hasattr(root, "_tpsl_configured"):
        del root._tpsl_configured


PLAN_TOML = """
account = "main"
symbol = "ETHUSDT"
side = "Sell"
preset = "conservative"
stop_loss = "3150"
breakeven_after = 1
mirror = false

[[entries]]
price = "3000"
qty = "1.00"

[[entries]]
price = "3030"
qty = "1.00"

[[take_profits]]
price = "2900"
fraction = "0.9"

[[take_profits]]
price = "2850"
fraction = "0.1"
"""


def tpsl(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line_error(result, field):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_add_from_a_json_plan_then_list_show_rm(stack, tmp_path):
    stack.prices(BTCUSDT="60500")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(conservative_long()))
    r = tpsl("monitor", "add", "--plan", str(plan), "--json")
    assert r.exit_code == 0, r.output + r.stderr
    view = json.loads(r.stdout)
    assert view["phase"] == "building" and view["symbol"] == "BTCUSDT" and len(view["orders"]) == 3
    mid = view["id"]
    assert stack.monitor(mid) is not None

    r = tpsl("monitor", "list", "--json")
    assert [m["id"] for m in json.loads(r.stdout)["monitors"]] == [mid]
    r = tpsl("monitor", "list")
    assert r.exit_code == 0 and mid in r.stdout and "BTCUSDT" in r.stdout

    r = tpsl("monitor", "show", mid, "--json")
    shown = json.loads(r.stdout)
    assert shown["id"] == mid and "monitor_created" in [e["kind"] for e in shown["events"]]
    r = tpsl("monitor", "show", mid)
    assert r.exit_code == 0 and "TP4" in r.stdout and "tg" + mid in r.stdout

    r = tpsl("monitor", "rm", mid, "--leave-orders")
    assert r.exit_code == 0 and "left on the exchange" in r.stdout
    open_links = {o["orderLinkId"] for o in stack.exchange_orders() if o["orderStatus"] == "New"}
    assert {o["link_id"] for o in view["orders"]} <= open_links

    stack.flush()
    r = tpsl("monitor", "list", "--all", "--json")
    closed = [m for m in json.loads(r.stdout)["monitors"] if m["id"] == mid]
    assert closed and closed[0]["phase"] == "closed" and closed[0]["closed_reason"] == "manual"
    one_line_error(tpsl("monitor", "rm", mid), "id")  # already closed


def test_add_from_a_toml_plan(stack, tmp_path):
    stack.prices(ETHUSDT="2990")
    plan = tmp_path / "short.toml"
    plan.write_text(PLAN_TOML)
    r = tpsl("monitor", "add", "--plan", str(plan), "--json")
    assert r.exit_code == 0, r.output + r.stderr
    view = json.loads(r.stdout)
    assert view["side"] == "Sell" and [Decimal(t["fraction"]) for t in view["take_profits"]] == [
        Decimal("0.9"),
        Decimal("0.1"),
    ]
    assert [Decimal(e["price"]) for e in view["entries"]] == [3000, 3030]


def test_add_from_flags_and_flags_override_the_file(stack, tmp_path):
    stack.prices(BTCUSDT="60500")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(conservative_long(stop_loss="57000")))
    r = tpsl(
        "monitor", "add", "--plan", str(plan), "--sl", "58500", "--entry", "60000:0.02",
        "--tp", "62000", "--tp", "63000", "--tp", "64000", "--tp", "65000", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    view = json.loads(r.stdout)
    assert Decimal(view["stop"]["planned"]) == 58500 and len(view["entries"]) == 1
    assert [Decimal(t["fraction"]) for t in view["take_profits"]] == [
        Decimal(x) for x in ("0.85", "0.05", "0.05", "0.05")
    ]

    r = tpsl(
        "monitor", "add", "--symbol", "SOLUSDT", "--side", "Buy", "--preset", "fast",
        "--market-qty", "5", "--tp", "170", "--sl", "130", "--no-mirror",
    )  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    assert "created: main SOLUSDT Buy" in r.stdout  # the only main account is the default


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--symbol", "BTCUSDT", "--entry", "60000"], "entries[0]"),
        (["--symbol", "BTCUSDT", "--tp", "1:2:3"], "take_profits[0]"),
        (["--symbol", "BTCUSDT", "--entry", "60000:0.01", "--market-qty", "1"], "entries"),
        (["--symbol", "NOPEUSDT", "--side", "Buy", "--entry", "1:1", "--tp", "2", "--sl", "0.5"], "symbol"),
        (["--account", "ghost", "--symbol", "BTCUSDT"], "account"),
        (["--account", "mirror1", "--symbol", "BTCUSDT"], "account"),
        (
            [
                "--symbol",
                "BTCUSDT",
                "--side",
                "Buy",
                "--entry",
                "60000:0.01",
                "--tp",
                "62000",
                "--sl",
                "61000",
            ],
            "stop_loss",
        ),
        (["--plan", "/nonexistent/plan.json"], "plan"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(stack, args, field):
    stack.prices(BTCUSDT="60500")
    one_line_error(tpsl("monitor", "add", *args), field)
    assert stack.exchange_orders() == []


def test_unreadable_plan_files(stack, tmp_path):
    bad_json = tmp_path / "p.json"
    bad_json.write_text('{"account": "main",')
    one_line_error(tpsl("monitor", "add", "--plan", str(bad_json)), "plan")
    bad_toml = tmp_path / "p.toml"
    bad_toml.write_text("account = ")
    one_line_error(tpsl("monitor", "add", "--plan", str(bad_toml)), "plan")
    a_list = tmp_path / "p.json"
    a_list.write_text("[1, 2]")
    one_line_error(tpsl("monitor", "add", "--plan", str(a_list)), "plan")


def test_show_and_rm_of_an_unknown_monitor(stack):
    one_line_error(tpsl("monitor", "show", "zzzzzzzzzz"), "id")
    one_line_error(tpsl("monitor", "rm", "zzzzzzzzzz"), "id")
    one_line_error(tpsl("monitor", "show", "bad id!"), "id")


def test_reconcile_restores_what_redis_lost(stack):
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.rt.registry.remove(m.id)  # Redis lost it; the database still has it open
    r = tpsl("reconcile", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    report = json.loads(r.stdout)
    assert report["restored"] == 1 and report["skipped"] is False
    assert stack.monitor(m.id) is not None
    r = tpsl("reconcile")
    assert r.exit_code == 0 and "0 restored" in r.stdout


def test_dispatch_runs_for_a_while_and_reports(stack):
    stack.prices(BTCUSDT="60500")
    stack.create(conservative_long())
    r = tpsl("dispatch", "--duration", "1")
    assert r.exit_code == 0, r.output + r.stderr
    assert "dispatcher stopped after" in r.stdout and "checks published" in r.stdout


def test_every_command_has_help():
    for args in (
        ["monitor", "--help"],
        ["monitor", "add", "--help"],
        ["monitor", "list", "--help"],
        ["monitor", "show", "--help"],
        ["monitor", "rm", "--help"],
        ["web", "--help"],
        ["reconcile", "--help"],
        ["dispatch", "--help"],
    ):
        r = tpsl(*args)
        assert r.exit_code == 0 and "Usage" in r.stdout, args
