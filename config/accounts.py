"""Accounts from the environment: `TPSL_ACCOUNTS` (a JSON list) or `TPSL_ACCOUNTS_FILE` (TOML or JSON).

    [{"id": "main", "base_url": "http://127.0.0.1:8080", "api_key": "…", "api_secret": "…"},
     {"id": "mirror1", "base_url": "…", "api_key": "…", "api_secret": "…",
      "mirror_of": "main", "ratio": "0.5"}]

`ratio` is a fixed fraction of the main account's size, or "equity" (mirror equity / main equity,
read when a mirror monitor is created). Keys and secrets become `Secret`s and are registered with the
log redaction filter; an error names the field, never the value of a credential.
"""

from __future__ import annotations

import json
import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from config.logging import register_secret
from config.settings import Settings
from core.errors import FixInput
from core.models import Account, AccountRole, Secret

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # the one rule for account ids
_KNOWN = {"id", "base_url", "api_key", "api_secret", "mirror_of", "ratio"}


def load_accounts(settings: Settings) -> dict[str, Account]:
    """The configured accounts by id (empty when none are configured)."""
    if settings.accounts:
        try:
            raw: Any = json.loads(settings.accounts.get_secret_value())
        except json.JSONDecodeError as e:
            raise FixInput("TPSL_ACCOUNTS", f"not valid JSON ({e.msg} at position {e.pos})") from None
        return parse_accounts(raw, source="TPSL_ACCOUNTS")
    if settings.accounts_file:
        path = Path(settings.accounts_file)
        if not path.exists():
            raise FixInput("TPSL_ACCOUNTS_FILE", f"{path} does not exist")
        text = path.read_text()
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
                raw = data.get("accounts", data)
            else:
                raw = json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise FixInput("TPSL_ACCOUNTS_FILE", f"{path}: cannot parse: {e}") from None
        return parse_accounts(raw, source=str(path))
    return {}


def parse_accounts(raw: Any, *, source: str = "accounts") -> dict[str, Account]:
    if not isinstance(raw, list):
        raise FixInput(source, "must be a list of accounts")
    out: dict[str, Account] = {}
    for i, item in enumerate(raw):
        where = f"{source}[{i}]"
        if not isinstance(item, dict):
            raise FixInput(where, "must be an object")
        unknown = set(item) - _KNOWN
        if unknown:
            raise FixInput(f"{where}.{sorted(unknown)[0]}", "unknown field")
        acc_id = item.get("id")
        if not isinstance(acc_id, str) or not ACCOUNT_ID.match(acc_id):
            raise FixInput(f"{where}.id", "must be 1-32 letters, digits, '-' or '_'")
        if acc_id in out:
            raise FixInput(f"{where}.id", f"duplicate account id {acc_id!r}")
        base_url = item.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise FixInput(f"{where}.base_url", "must be an http(s) URL")
        creds = {}
        for field in ("api_key", "api_secret"):
            value = item.get(field)
            if not isinstance(value, str) or not value:
                raise FixInput(f"{where}.{field}", "missing or empty")
            register_secret(value)
            creds[field] = Secret(value)
        mirror_of = item.get("mirror_of")
        ratio = Decimal(1)
        by_equity = False
        if mirror_of is not None:
            if not isinstance(mirror_of, str):
                raise FixInput(f"{where}.mirror_of", "must be an account id")
            raw_ratio = item.get("ratio", "1")
            if raw_ratio == "equity":
                by_equity = True
            else:
                try:
                    ratio = Decimal(str(raw_ratio))
                except InvalidOperation:
                    raise FixInput(f"{where}.ratio", f"not a number: {raw_ratio!r}") from None
                if not ratio.is_finite() or ratio <= 0:
                    raise FixInput(f"{where}.ratio", f"must be a positive number, got {raw_ratio!r}")
        elif "ratio" in item:
            raise FixInput(f"{where}.ratio", "only a mirror account (with mirror_of) has a ratio")
        out[acc_id] = Account(
            id=acc_id,
            base_url=base_url.rstrip("/"),
            api_key=creds["api_key"],
            api_secret=creds["api_secret"],
            role=AccountRole.MIRROR if mirror_of else AccountRole.MAIN,
            mirror_of=mirror_of,
            ratio=ratio,
            ratio_by_equity=by_equity,
        )
    for i, acc in enumerate(out.values()):
        if acc.mirror_of is not None:
            main = out.get(acc.mirror_of)
            if main is None:
                raise FixInput(f"{source}[{i}].mirror_of", f"no account {acc.mirror_of!r}")
            if main.is_mirror:
                raise FixInput(f"{source}[{i}].mirror_of", f"{acc.mirror_of!r} is itself a mirror")
    return out


def mirrors_of(accounts: dict[str, Account], main_id: str) -> list[Account]:
    return [a for a in accounts.values() if a.mirror_of == main_id]
