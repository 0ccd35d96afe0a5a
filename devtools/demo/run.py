"""`tpsl demo`: the whole system from one command, on this machine, with nothing to configure.

What it starts (each a child process in its own process group, logging to var/logs/<name>.log):

    redis      an embedded redis-server (unless REDIS_URL is set)
    paper      the paper exchange, with a main and a mirror account (fresh random keys, never shown)
    worker_*   the three Celery worker pools of config/queues.py POOLS (small concurrency)
    beat       Celery beat (flush, maintenance) and its dispatcher thread (the 0.5 s claims)
    web        the dashboard (`tpsl web`), behind a generated token
    flower     Celery's monitoring UI, behind generated basic-auth credentials

The database is a fresh SQLite file var/demo.db (unless DATABASE_URL is set), migrated first. Then
it seeds the scenarios of devtools/demo/scenarios.py through `workers.lifecycle.create_monitor` (like
the API) and drives prices on the paper exchange along their scripts, showing the monitors, the newest
events and the URLs. Once the scripts have ended, a seeded random walk keeps prices moving with fresh
monitors (devtools/demo/walk.py) until the demo stops. Ctrl-C (or SIGTERM) stops every process it
started and exits 0; `--minutes N` stops by itself after N minutes and exits 0 only if every scenario
reached its expected end.

This module orchestrates; devtools/demo/env.py holds ports, paths, credentials and the children's
environment, devtools/demo/view.py the terminal output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.models import Monitor
from devtools.demo import walk
from devtools.demo.env import (
    MAIN_BALANCE,
    MIRROR_BALANCE,
    Credentials,
    Paths,
    Ports,
    accounts_json,
    child_env,
    fresh_demo_db,
)
from devtools.demo.scenarios import SCENARIOS, ScriptRunner, State, start_prices
from devtools.demo.view import EVENTS_PLAIN, EVENTS_SHOWN, PlainReporter, Urls, render
from devtools.demo.walk import Encore
from devtools.stack import (
    beat_spec,
    flower_spec,
    paper_spec,
    redis_spec,
    stream_spec,
    web_spec,
    worker_settings,
    worker_specs,
)
from devtools.supervisor import Child, ProcessDied, ProcessError, StopRequested, Supervisor

log = logging.getLogger(__name__)

TICK_S = 0.5  # view refresh and script step, seconds (~2 refreshes per second)
START_TIMEOUT_S = 180.0  # a process not ready by then has failed to start (2 slow cores, cold caches)
STOP_GRACE_S = 20.0  # SIGTERM → SIGKILL, seconds (Celery's warm shutdown finishes running checks)
LINGER_S = 3.0  # with --until-done: the final state stays on screen this long, seconds
# this demo runs on 2 cores: with the prefork pool (a process per slot) it keeps few slots; threads
# cost no process each, and the settings' slots apply
PREFORK_CONCURRENCY = {"worker_fast": 2, "worker_bulk": 1, "worker_persist": 1}


# ------------------------------------------------------------------------------------------ observing


def _bad_configuration() -> tuple[type[BaseException], ...]:
    """Errors that mean "fix your environment": they name the setting and need no traceback."""
    from pydantic import ValidationError

    from core.errors import FixInput

    return (FixInput, ValidationError)


def _transient() -> tuple[type[BaseException], ...]:
    """Errors of one observation or price move that the next tick simply retries."""
    import redis
    import requests
    from sqlalchemy.exc import SQLAlchemyError

    from exchange.paper.runner import PaperAdminError

    return (redis.RedisError, SQLAlchemyError, requests.RequestException, PaperAdminError)


class Observer:
    """Reads what the view and the scripts need: monitors (live ones from Redis, finished ones from
    the database) and the newest events."""

    def __init__(self, rt: Any) -> None:
        from persistence.db import session_factory
        from workers.store import MonitorStore

        self.rt = rt
        self.store = MonitorStore(rt.registry)
        self.sessions = session_factory(rt.engine)

    def monitors(self, ids: Sequence[str]) -> dict[str, Monitor | None]:
        from core.codec import monitor_from_dict
        from persistence.queries import get_monitor

        out: dict[str, Monitor | None] = {
            mid: item.monitor for mid, item in self.store.load_many(ids).items()
        }
        missing = [mid for mid in ids if mid not in out]
        if missing:
            with self.sessions() as s:
                for mid in missing:
                    row = get_monitor(s, mid)
                    out[mid] = monitor_from_dict(row.state) if row is not None else None
        return out

    def events(self, limit: int = EVENTS_SHOWN) -> list[Any]:
        from persistence.queries import recent_events

        with self.sessions() as s:
            return recent_events(s, limit=limit)


# -------------------------------------------------------------------------------------------- running


@dataclass
class Options:
    minutes: float | None = None
    speed: float = 1.0
    live: bool = True
    port_base: int | None = None
    until_done: bool = False


class Demo:
    def __init__(self, opts: Options, cwd: Path | None = None) -> None:
        from rich.console import Console

        self.paths = Paths.under(cwd or Path.cwd())
        self.console = Console(highlight=False)
        if opts.live and not self.console.is_terminal:  # piped or redirected: plain lines read better
            opts = replace(opts, live=False)
        self.opts = opts
        self.sup = Supervisor(self.paths.logs, grace_s=STOP_GRACE_S)
        self.optional_down: set[str] = set()
        self.urls: Urls | None = None

    # -- output
    def say(self, text: str) -> None:
        if self.opts.live:
            self.console.print(text)
        else:
            PlainReporter.say(text)

    def run(self) -> int:
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.paths.work.mkdir(parents=True, exist_ok=True)
        _log_to_file(self.paths.logs / "demo.log")
        with self.sup:
            self.sup.install_signal_handlers(sigint=True)  # Ctrl-C too, even if inherited as ignored
            try:
                return self._run()
            except (KeyboardInterrupt, StopRequested):
                return 0  # asked to stop: not a failure
            except ProcessError as e:
                self.say(f"error: {e}")
                self.say(f"the logs are in {self.paths.logs}/")
                return 1
            except _bad_configuration() as e:  # a TPSL_… variable, DATABASE_URL, …: named, no traceback
                self.say(f"error: {e}")
                return 2
            finally:
                if self.sup.children:
                    self.say(f"stopping {len(self.sup.children)} processes …")

    def _run(self) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        from config.settings import Settings
        from core.errors import FixInput
        from exchange.paper.runner import PaperAdmin
        from persistence.migrate import upgrade

        Settings()  # every process reads the same environment: a bad TPSL_… variable fails here, named
        base = dict(os.environ)
        external_redis = base.get("REDIS_URL") or base.get("TPSL_REDIS_URL")
        external_db = base.get("DATABASE_URL") or base.get("TPSL_DATABASE_URL")
        ports = Ports.pick(self.opts.port_base, embedded_redis=not external_redis)

        # 1. infrastructure: redis (unless given) and the paper exchange, in parallel
        infra: list[Child] = []
        if ports.redis is not None:
            infra.append(self.sup.start(redis_spec(ports.redis, self.paths.work, base)))
            redis_url = f"redis://127.0.0.1:{ports.redis}/0"
        else:
            redis_url = str(external_redis)
        infra.append(self.sup.start(paper_spec(ports.paper, base)))
        self.say(f"starting: {', '.join(c.name for c in infra)} (logs in {self.paths.logs}/)")
        self.sup.wait_ready(infra, timeout_s=START_TIMEOUT_S)

        # 2. database: fresh SQLite (unless given), migrated
        database_url = str(external_db) if external_db else fresh_demo_db(self.paths)
        try:
            upgrade(database_url)
        except SQLAlchemyError as e:
            from persistence.db import safe_url

            detail = str(getattr(e, "orig", None) or e).strip().splitlines()
            raise FixInput(
                "DATABASE_URL", f"{safe_url(database_url)}: {detail[0] if detail else e}"
            ) from None

        # 3. exchange accounts (random keys, handed to the children through the environment only)
        paper_url = f"http://127.0.0.1:{ports.paper}"
        admin = PaperAdmin(paper_url)  # Bybit's per-account rate limits stay on (the server's default)
        main_acc = admin.create_account(balance=MAIN_BALANCE)
        mirror_acc = admin.create_account(balance=MIRROR_BALANCE)
        admin.set_prices({s: str(p) for s, p in start_prices(SCENARIOS).items()})
        creds = Credentials.generate()
        accounts = accounts_json(paper_url, main_acc, mirror_acc)
        from config.logging import register_secret

        for secret in (main_acc.api_key, main_acc.api_secret, mirror_acc.api_key, mirror_acc.api_secret):
            register_secret(secret)
        env = child_env(base, redis_url=redis_url, database_url=database_url, accounts=accounts, creds=creds)

        # 4. the system: workers, beat and the stream process (needed), dashboard and Flower (shown
        # when they come up)
        needed = [
            self.sup.start(s)
            for s in [
                *worker_specs(
                    env,
                    node="demo",
                    concurrency=PREFORK_CONCURRENCY
                    if worker_settings(env).worker_pool == "prefork"
                    else None,
                ),
                beat_spec(self.paths.work, env),
                stream_spec(env),
            ]
        ]
        extras = [self.sup.start(web_spec(ports.web, env)), self.sup.start(flower_spec(ports.flower, env))]
        self.say(f"starting: {', '.join(c.name for c in needed + extras)}")
        self.sup.wait_ready(needed, timeout_s=START_TIMEOUT_S)
        for child in extras:
            try:
                self.sup.wait_ready([child], timeout_s=START_TIMEOUT_S)
            except ProcessError as e:
                self.optional_down.add(child.name)
                self.say(f"warning: {child.name} is not running; the demo goes on without it.\n{e}")
        self.urls = Urls(
            dashboard=None if "web" in self.optional_down else f"http://127.0.0.1:{ports.web}/",
            flower=None if "flower" in self.optional_down else f"http://127.0.0.1:{ports.flower}/",
            paper=paper_url,
            logs=self.paths.logs,
        )
        self._announce(creds)

        # 5. seed and drive
        settings = Settings(redis_url=redis_url, database_url=database_url, accounts=accounts)
        return self._drive(settings, admin)

    def _announce(self, creds: Credentials) -> None:
        """The URLs and the generated credentials, printed once."""
        assert self.urls is not None
        lines = ["", "tpsl demo is running:"]
        if self.urls.dashboard:
            lines.append(f"  dashboard  {self.urls.dashboard}?token={creds.dashboard_token}")
        else:
            lines.append(f"  dashboard  not running (see {self.paths.logs}/web.log)")
        if self.urls.flower:
            login = f"user {creds.flower_user}, password {creds.flower_password}"
            lines.append(f"  flower     {self.urls.flower}  ({login})")
        else:
            lines.append(f"  flower     not running (see {self.paths.logs}/flower.log)")
        lines += [f"  exchange   {self.urls.paper} (paper)", f"  logs       {self.paths.logs}/", ""]
        if self.opts.live:
            self.console.print("\n".join(lines), markup=False)
        else:
            print("\n".join(lines), flush=True)

    def _drive(self, settings: Any, admin: Any) -> int:
        from tasks.app import create_app
        from tasks.publisher import CeleryPublisher
        from workers.runtime import build_runtime

        rt = build_runtime(settings)
        try:
            rt.publisher = CeleryPublisher(create_app(settings))
            before = rt.registry.count()
            if before:  # only with REDIS_URL set: the embedded server starts empty
                self.say(
                    f"warning: REDIS_URL already holds {before} live monitors; a scenario whose symbol one "
                    "of them guards on account main is refused. Use an empty Redis database for the demo."
                )
            observer = Observer(rt)
            runner = ScriptRunner(
                lambda symbol, price: admin.set_prices({symbol: str(price)}), speed=self.opts.speed
            )
            self._seed(rt, runner)
            return self._loop(runner, observer, Walker(rt, admin, self.say))
        finally:
            rt.close()

    def _seed(self, rt: Any, runner: ScriptRunner) -> None:
        from core import ids
        from workers.store import MonitorStore

        store = MonitorStore(rt.registry)
        for sc in SCENARIOS:
            try:
                main = _create(rt, sc.plan, sc.key)
            except StopRequested:
                raise
            except Exception as e:  # shown as that scenario's failure; the others go on
                log.exception("seeding %s failed", sc.key)
                run = runner.add(sc, [], time.time())
                runner.fail(run, f"could not create its monitor: {e}", time.time())
                self.say(f"scenario {sc.key}: could not create its monitor: {e}")
                continue
            mirrors = [
                ids.mirror_monitor_id(main.id, a.id)
                for a in rt.accounts.values()
                if a.mirror_of == main.account
            ]
            run = runner.add(sc, [main.id, *mirrors], time.time())
            missing = [m for m in mirrors if store.load(m) is None]
            if missing or not mirrors:
                runner.fail(
                    run,
                    f"mirror monitor not created ({', '.join(missing) or 'no mirror account'})",
                    time.time(),
                )
        self.say(f"seeded {len(runner.runs)} scenarios: " + ", ".join(r.scenario.title for r in runner.runs))

    def _loop(self, runner: ScriptRunner, observer: Observer, walker: Walker | None = None) -> int:
        opts = self.opts
        started = time.monotonic()
        deadline = started + opts.minutes * 60 if opts.minutes else None
        ids = [mid for r in runner.runs for mid in r.monitor_ids]
        transient = _transient()
        plain = None if opts.live else PlainReporter()
        done_at: float | None = None
        live_cm: Any = contextlib.nullcontext()
        if opts.live:
            from rich.live import Live

            live_cm = Live(console=self.console, refresh_per_second=2, transient=False, redirect_stdout=False)
        with live_cm as live:
            while True:
                tick = time.monotonic()
                self.sup.check_stop()
                self._watch_children()
                try:
                    monitors = observer.monitors(ids + (walker.monitor_ids if walker else []))
                    events = observer.events(EVENTS_SHOWN if opts.live else EVENTS_PLAIN)
                    changed = runner.advance(monitors, time.time())
                    if walker is not None and runner.all_finished and not opts.until_done:
                        left = None if deadline is None else deadline - tick
                        walker.tick(monitors, time.time(), left_s=left)
                except transient as e:  # a busy database, a slow exchange: the next tick tries again
                    log.warning("observing or moving a price failed (%s); retrying", e)
                    time.sleep(TICK_S)
                    continue
                footer = self._footer(runner, started, deadline, walker)
                if live is not None:
                    urls = self.urls or Urls(None, None, "", Path())
                    walk_rows = walker.rows() if walker is not None else ()
                    live.update(
                        render(runner.runs, monitors, events, urls, footer, self.console.height, walk_rows)
                    )
                elif plain is not None:
                    plain.update(changed, monitors, events)
                if runner.all_finished and done_at is None:
                    done_at = tick
                    if plain is not None:
                        self.say(
                            "every scenario has finished"
                            + ("" if opts.minutes else "; Ctrl-C stops the demo")
                        )
                if deadline is not None and tick >= deadline:
                    break
                if opts.until_done and done_at is not None and tick - done_at >= LINGER_S:
                    break
                time.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))
        return self._report(runner)

    def _footer(
        self, runner: ScriptRunner, started: float, deadline: float | None, walker: Walker | None = None
    ) -> str:
        elapsed = time.monotonic() - started
        done = sum(r.state is State.DONE for r in runner.runs)
        text = f"{elapsed:.0f} s, scenarios done {done}/{len(runner.runs)}"
        if deadline is not None:
            text += f", stops in {max(0.0, deadline - time.monotonic()):.0f} s"
        if runner.all_finished and deadline is None:
            text += " — every scenario has finished"
        if walker is not None and walker.encore is not None:
            text += f"; random walk: {walker.encore.opened} monitors opened"
        return text + "   (Ctrl-C stops the demo)"

    def _watch_children(self) -> None:
        for child in self.sup.dead():
            if child.spec.layer == 2 or child.name in self.optional_down:  # dashboard, Flower
                if child.name not in self.optional_down:
                    self.optional_down.add(child.name)
                    self.say(
                        f"warning: {child.name} exited with code {child.returncode}; see {child.log_path}"
                    )
                continue
            raise ProcessDied(child.name, child.popen.returncode, child.log_tail())

    def _report(self, runner: ScriptRunner) -> int:
        ok = runner.all_done
        if self.opts.minutes is None:
            return 0
        lines = [r.summary() for r in runner.runs]
        self.say("scenarios:\n" + "\n".join(f"  {line}" for line in lines))
        self.say(
            "all scenarios reached their expected end" if ok else "some scenarios did not reach their end"
        )
        return 0 if ok else 1


class Walker:
    """The demo after its scripts (devtools/demo/walk.py): starts the paper exchange's seeded random
    walk on the scenarios' symbols once, then opens a fresh monitor on each symbol whose monitors have
    closed. `tick` is called by the loop; a failure to open one is retried a few seconds later."""

    def __init__(self, rt: Any, admin: Any, say: Any) -> None:
        self.rt = rt
        self.admin = admin
        self.say = say
        self.encore: Encore | None = None

    @property
    def monitor_ids(self) -> list[str]:
        return self.encore.monitor_ids if self.encore is not None else []

    def rows(self) -> list[tuple[str, tuple[str, ...]]]:
        return self.encore.rows() if self.encore is not None else []

    def tick(self, monitors: Mapping[str, Monitor | None], now: float, *, left_s: float | None) -> None:
        if self.encore is None:
            if left_s is not None and left_s < walk.MIN_LEFT_S:
                return
            self.encore = self._start()
        for symbol in self.encore.due(monitors, now):
            try:
                price = Decimal(self.admin.prices(symbol)[symbol]["last"])
                plan = self.encore.plan(symbol, price)
                main = _create(self.rt, plan, f"walk-{symbol.lower()}", attempts=1)
                ids = [main.id, *_mirror_ids(self.rt, main)]
            except StopRequested:  # Ctrl-C / SIGTERM while opening one: stop, as anywhere else
                raise
            except Exception as e:  # shown in the log; the symbol is tried again shortly
                log.warning("random walk: opening a monitor on %s failed (%s); retrying", symbol, e)
                self.encore.failed(symbol, now)
                continue
            self.encore.open(symbol, ids)
            self.say(
                f"random walk: monitor {main.id} opened on {symbol} ({plan['side']} {plan['qty']} at "
                f"{price}, TP {plan['take_profits'][0]}, stop {plan['stop_loss']})"
            )

    def _start(self) -> Encore:
        from exchange.paper.instruments import REAL_INSTRUMENTS

        symbols = [sc.symbol for sc in SCENARIOS]
        ticks = {s.symbol: s.tick_size for s in REAL_INSTRUMENTS}
        encore = Encore(symbols, ticks, seed=walk.SEED)
        self.admin.start_walk(
            encore.symbols, seed=walk.SEED, volatility=walk.VOLATILITY, interval_ms=walk.INTERVAL_MS
        )
        self.say(
            f"random walk: the scripts have ended; the paper exchange now walks {', '.join(encore.symbols)} "
            "and a fresh monitor opens on each as the last one closes, until the demo stops"
        )
        return encore


def _mirror_ids(rt: Any, main: Monitor) -> list[str]:
    """The mirror monitors created with `main` (those that exist)."""
    from core import ids
    from workers.store import MonitorStore

    store = MonitorStore(rt.registry)
    wanted = [
        ids.mirror_monitor_id(main.id, a.id) for a in rt.accounts.values() if a.mirror_of == main.account
    ]
    return [mid for mid in wanted if store.load(mid) is not None]


def _create(rt: Any, plan: Mapping[str, Any], key: str, attempts: int = 5) -> Monitor:
    """create_monitor, retried while the account is busy (RetryLater)."""
    from core.errors import RetryLater
    from workers.lifecycle import create_monitor

    for i in range(attempts):
        try:
            return create_monitor(rt, dict(plan), nonce=f"demo-{key}-{secrets.token_hex(4)}")
        except RetryLater:
            if i == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _log_to_file(path: Path) -> None:
    """The demo's own log goes to var/logs/demo.log: the terminal belongs to the view."""
    from config.logging import FORMAT, RedactFilter, RedactingFormatter

    root = logging.getLogger()
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root._tpsl_configured = True  # type: ignore[attr-defined]  # setup_logging must not add a stderr handler
    for noisy in ("urllib3.connectionpool", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_demo(opts: Options) -> int:
    """Run the demo with these options; the exit code (0 ok, 1 a process failed or a scenario did
    not reach its end, 2 bad configuration)."""
    if opts.until_done and opts.minutes is None:
        opts = replace(opts, minutes=60.0)  # a generous bound: never run forever unattended
    return Demo(opts).run()


__all__ = ["Demo", "Observer", "Options", "run_demo"]
