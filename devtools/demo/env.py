"""The demo's environment: ports, paths, the fresh database file, the generated credentials and
what every child process reads (12-factor: services, accounts and credentials through the environment
only)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from devtools.demo.scenarios import MIRROR_RATIO
from devtools.ports import free_port, port_free
from devtools.stack import fresh_sqlite, with_source_path

MAIN_BALANCE = 1_000_000
MIRROR_BALANCE = 500_000
DEMO_COALESCE_WINDOW_S = "5"  # non-critical events reach the database within 5 s instead of 30
FLOWER_USER = "demo"


@dataclass(frozen=True, slots=True)
class Ports:
    paper: int
    web: int
    flower: int
    redis: int | None  # None: REDIS_URL is set, no embedded server

    @classmethod
    def pick(cls, base: int | None, *, embedded_redis: bool) -> Ports:
        """`base`, base+1, base+2 (, base+3) when given (each must be free), else any free ports."""
        if base is None:
            return cls(free_port(), free_port(), free_port(), free_port() if embedded_redis else None)
        wanted = [base, base + 1, base + 2] + ([base + 3] if embedded_redis else [])
        for port in wanted:
            if not port_free(port):
                raise typer.BadParameter(
                    f"port {port} is in use (ports {base}..{wanted[-1]} are needed)", param_hint="--port-base"
                )
        return cls(base, base + 1, base + 2, base + 3 if embedded_redis else None)


@dataclass(frozen=True, slots=True)
class Paths:
    var: Path
    logs: Path
    work: Path  # beat's schedule, the embedded redis' directory

    @classmethod
    def under(cls, cwd: Path) -> Paths:
        var = cwd / "var"
        return cls(var=var, logs=var / "logs", work=var / "demo")


@dataclass(frozen=True, slots=True)
class Credentials:
    """Generated for this run; shown once on the terminal, never logged."""

    dashboard_token: str = field(repr=False)
    flower_user: str
    flower_password: str = field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        from config.logging import register_secret

        c = cls(secrets.token_urlsafe(24), FLOWER_USER, secrets.token_urlsafe(12))
        register_secret(c.dashboard_token)
        register_secret(c.flower_password)
        return c

    @property
    def flower_basic_auth(self) -> str:
        return f"{self.flower_user}:{self.flower_password}"


def fresh_demo_db(paths: Paths) -> str:
    """var/demo.db, deleted (with its WAL files) so every run starts empty."""
    return fresh_sqlite(paths.var / "demo.db")


def accounts_json(paper_url: str, main: Any, mirror: Any) -> str:
    return json.dumps(
        [
            {"id": "main", "base_url": paper_url, "api_key": main.api_key, "api_secret": main.api_secret},
            {
                "id": "mirror1",
                "base_url": paper_url,
                "api_key": mirror.api_key,
                "api_secret": mirror.api_secret,
                "mirror_of": "main",
                "ratio": str(MIRROR_RATIO),
            },
        ]
    )


def child_env(
    base: Mapping[str, str], *, redis_url: str, database_url: str, accounts: str, creds: Credentials
) -> dict[str, str]:
    """What every child reads (12-factor): services, accounts, the generated credentials."""
    env = dict(base)
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        TPSL_ACCOUNTS=accounts,
        TPSL_DASHBOARD_TOKEN=creds.dashboard_token,
        FLOWER_BASIC_AUTH=creds.flower_basic_auth,
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("TPSL_COALESCE_WINDOW_S", DEMO_COALESCE_WINDOW_S)
    return with_source_path(env)
