"""Pieces of `tpsl demo` that need no running system: the live view, the plain progress lines,
the children's environment, ports, the fresh database file and the generated credentials."""

from __future__ import annotations

import socket
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from rich.console import Console

from config.queues import POOLS
from core.models import BreakevenState, CloseReason, Monitor, OrderRole, OwnedOrder, Phase, Side, Tier
from core.plan import parse_request
from devtools.demo.env import Credentials, Paths, Ports, child_env, fresh_demo_db
from devtools.demo.scenarios import SCENARIOS, ScriptRunner
from devtools.demo.view import PlainReporter, Urls, render, stop_text, tp_text
from devtools.stack import beat_spec, stream_spec, worker_specs
from exchange.paper.instruments import REAL_INSTRUMENTS
from persistence.queries import StoredEvent

INSTRUMENTS = {s.symbol: s.to_core() for s in REAL_INSTRUMENTS}
BTC = SCENARIOS[0]


def btc_monitor(**kw) -> Monitor:
    plan = parse_request(dict(BTC.plan), instruments=INSTRUMENTS).plan
    return replace(Monitor(id="m1", account="main", plan=plan), **kw)


def stop(trigger: str) -> OwnedOrder:
    return OwnedOrder(
        role=OrderRole.SL,
        level=0,
        generation=1,
        link_id="tgm1-SL-1",
        side=Side.SELL,
        qty=Decimal("0.06"),
        trigger_price=Decimal(trigger),
    )


def test_tp_and_stop_texts() -> None:
    m = btc_monitor(tp_hits=(1, 2), orders=(stop("62500"),))
    assert tp_text(m) == "●●○○ 2/4"
    assert stop_text(m) == "62500"
    pending = replace(m, breakeven=BreakevenState.PENDING, breakeven_price=Decimal("64051.2"))
    assert stop_text(pending) == "62500 →BE 64051.2"
    done = replace(m, breakeven=BreakevenState.DONE, orders=(stop("64051.2"),))
    assert stop_text(done) == "64051.2 BE"


def event(kind: str, **payload) -> StoredEvent:
    return StoredEvent(
        id=f"e-{kind}",
        monitor_id="m1",
        account="main",
        kind=kind,
        critical=kind == "tp_hit",
        at=1_700_000_000.0,
        monitor_version=3,
        payload=payload,
    )


def test_the_live_view_shows_monitors_scenarios_events_and_urls() -> None:
    runner = ScriptRunner(lambda s, p: None)
    runner.add(BTC, ["m1", "m2"], now=0.0)
    main = btc_monitor(
        phase=Phase.PROFIT_TAKING,
        tier=Tier.CRITICAL,
        tp_hits=(1,),
        position_size=Decimal("0.009"),
        breakeven=BreakevenState.DONE,
        orders=(stop("64051.2"),),
        last_price=Decimal("66050"),
    )
    mirror = replace(
        main, id="m2", account="mirror1", phase=Phase.CLOSED, closed_reason=CloseReason.TP_COMPLETE
    )
    urls = Urls("http://127.0.0.1:1/", None, "http://127.0.0.1:2", Path("var/logs"))
    view = render(
        runner.runs,
        {"m1": main, "m2": mirror},
        [event("tp_hit", level=1, price="66000"), event("breakeven_moved", price="64051.2")],
        urls,
        "12 s, scenarios done 0/1",
        height=60,
    )
    console = Console(record=True, width=200, color_system=None)
    console.print(view)
    text = console.export_text()
    for expected in (
        "m1",
        "m2",
        "mirror1",
        "profit_taking",
        "critical",
        "●○○○ 1/4",
        "64051.2 BE",
        "66050",
        "tp_complete",
        "BTC conservative long",
        "tp_hit",
        "level=1 price=66000",
        "breakeven_moved",
        "http://127.0.0.1:1/",
        "flower not running",
        "12 s, scenarios done",
    ):
        assert expected in text, expected


def test_the_live_view_lists_the_random_walk_monitors_after_the_scenarios() -> None:
    runner = ScriptRunner(lambda s, p: None)
    runner.add(BTC, ["m1"], now=0.0)
    walking = replace(btc_monitor(), id="w1", phase=Phase.MONITORING, last_price=Decimal("67012.3"))
    view = render(
        runner.runs,
        {"m1": btc_monitor(), "w1": walking},
        [],
        Urls(None, None, "", Path()),
        "",
        walk=[("walk BTC", ("w1", "w1m")), ("walk SOL", ())],
    )
    console = Console(record=True, width=200, color_system=None)
    console.print(view)
    text = console.export_text()
    assert "walk BTC" in text and "w1" in text and "67012.3" in text
    assert "w1m" in text  # not readable yet: listed, its figures pending
    assert "walk SOL" not in text  # no monitor yet


def test_a_short_terminal_shows_fewer_events() -> None:
    runner = ScriptRunner(lambda s, p: None)
    runner.add(BTC, ["m1"], now=0.0)
    events = [replace(event("tp_hit"), id=f"e{i}", payload={"level": i}) for i in range(1, 30)]
    console = Console(record=True, width=200, color_system=None)
    console.print(
        render(runner.runs, {"m1": btc_monitor()}, events, Urls(None, None, "", Path()), "", height=24)
    )
    text = console.export_text()
    assert "level=1" in text and "level=20" not in text


def test_plain_lines_report_each_change_once(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = PlainReporter()
    m = btc_monitor(phase=Phase.BUILDING)
    reporter.update([], {"m1": m}, [event("monitor_created", symbol="BTCUSDT")])
    reporter.update([], {"m1": m}, [event("monitor_created", symbol="BTCUSDT")])
    reporter.update([], {"m1": replace(m, phase=Phase.MONITORING)}, [])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "monitor m1 main BTCUSDT Buy: building" in lines[0]
    assert "event monitor_created m1 main symbol=BTCUSDT" in lines[1]
    assert ": monitoring" in lines[2]


def test_children_get_services_accounts_and_credentials_through_the_environment() -> None:
    creds = Credentials("tok" * 10, "demo", "pw" * 8)
    env = child_env(
        {"PATH": "/bin", "TPSL_COALESCE_WINDOW_S": "12"},
        redis_url="redis://r",
        database_url="sqlite:///x",
        accounts="[]",
        creds=creds,
    )
    assert (
        env["REDIS_URL"] == "redis://r"
        and env["DATABASE_URL"] == "sqlite:///x"
        and env["TPSL_ACCOUNTS"] == "[]"
    )
    assert env["TPSL_DASHBOARD_TOKEN"] == creds.dashboard_token
    assert env["FLOWER_BASIC_AUTH"] == f"demo:{creds.flower_password}"
    assert env["TPSL_COALESCE_WINDOW_S"] == "12"  # the user's setting wins over the demo's 5 s
    assert env["PATH"] == "/bin"
    root = Path(__file__).resolve().parents[3]
    assert env["PYTHONPATH"].split(":")[0] == str(root)
    assert (
        child_env({}, redis_url="r", database_url="d", accounts="[]", creds=creds)["TPSL_COALESCE_WINDOW_S"]
        == "5"
    )
    # secrets stay out of reprs
    assert creds.dashboard_token not in repr(creds) and creds.flower_password not in repr(creds)


def test_workers_read_the_pools_of_the_tier_table() -> None:
    specs = worker_specs({}, node="demo")
    assert [s.name for s in specs] == list(POOLS)
    for spec in specs:
        argv = list(spec.argv)
        assert argv[argv.index("-Q") + 1] == ",".join(POOLS[spec.name])
        assert spec.env == {} and spec.layer == 1


def test_the_stack_starts_the_procfile_commands(tmp_path: Path) -> None:
    """The demo and the bench start the workers, beat and the stream process as the Procfile does:
    `tpsl <command>` (as `python -m cli.main <command>`), never `celery -A tasks …`."""
    from tests.unit.test_procfile import procfile

    procs = procfile()
    for spec in [*worker_specs({}, node="demo"), beat_spec(tmp_path, {}), stream_spec({})]:
        argv = list(spec.argv)
        assert argv[1:3] == ["-m", "cli.main"], argv
        assert procs[spec.name].split()[:2] == ["tpsl", argv[3]], (spec.name, argv)


def test_port_base_must_be_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(typer.BadParameter, match=f"port {busy} is in use"):
            Ports.pick(busy - 1, embedded_redis=True)
    ports = Ports.pick(None, embedded_redis=False)
    assert ports.redis is None and len({ports.paper, ports.web, ports.flower}) == 3


def test_the_demo_database_is_fresh_each_run(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    paths.var.mkdir()
    for name in ("demo.db", "demo.db-wal", "demo.db-shm"):
        (paths.var / name).write_text("old")
    url = fresh_demo_db(paths)
    assert url == f"sqlite:///{(paths.var / 'demo.db').resolve()}"
    assert list(paths.var.iterdir()) == []


def test_workers_take_the_pool_type_and_slots_from_the_environment() -> None:
    env = {"TPSL_WORKER_POOL": "prefork", "TPSL_WORKER_BULK_CONCURRENCY": "3"}
    specs = {s.name: list(s.argv) for s in worker_specs(env, node="demo")}
    for argv in specs.values():
        assert argv[argv.index("--pool") + 1] == "prefork"
    slots = {name: argv[argv.index("--concurrency") + 1] for name, argv in specs.items()}
    assert slots == {"worker_fast": "8", "worker_bulk": "3", "worker_persist": "2"}
    # an explicit count (the demo's, on 2 cores) wins; a bad value is refused naming the field
    demo = worker_specs(env, node="demo", concurrency={"worker_fast": 2})
    assert demo[0].argv[list(demo[0].argv).index("--concurrency") + 1] == "2"
    with pytest.raises(ValueError, match="worker_pool"):
        worker_specs({"TPSL_WORKER_POOL": "gevent"}, node="demo")
