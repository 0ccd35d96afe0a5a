"""The accounts table: which accounts exist, their role and mirror ratio — never their credentials."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from persistence.db import write_transaction
from persistence.records import AccountRow, check_account_row
from persistence.upserts import upsert_account_rows

log = logging.getLogger(__name__)


def upsert_accounts(engine: Engine, accounts: Iterable[tuple[Any, ...]], *, now: float | None = None) -> int:
    """Insert or update `(id, role, mirror_of, ratio, base_url)` rows in one committed transaction
    (an existing account keeps its created_at). Every row is checked first: a bad one raises
    FixInput naming the account and field, and nothing is written. Returns rows written."""
    rows: list[AccountRow] = [check_account_row(tuple(a)) for a in accounts]
    if not rows:
        return 0
    with write_transaction(engine) as conn:
        n = upsert_account_rows(conn, rows, time.time() if now is None else now)
    log.info("accounts stored: %s", ", ".join(sorted(r.id for r in rows)))
    return n
