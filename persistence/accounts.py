"""The accounts table: which accounts exist, their role and mirror ratio — never their credentials."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from sqlalchemy import Engine

from core.models import Account
from persistence.db import write_transaction
from persistence.records import AccountRow
from persistence.upserts import upsert_account_rows

log = logging.getLogger(__name__)


def row_of(account: Account) -> AccountRow:
    ratio = "equity" if account.ratio_by_equity else str(account.ratio)
    return AccountRow(account.id, account.role.value, account.mirror_of, ratio, account.base_url)


def upsert_accounts(engine: Engine, accounts: Iterable[Account], *, now: float | None = None) -> int:
    """Insert or update the accounts (as config/accounts.py parsed and checked them) in one committed
    transaction; an existing account keeps its created_at. Returns rows written."""
    rows = [row_of(a) for a in accounts]
    if not rows:
        return 0
    with write_transaction(engine) as conn:
        n = upsert_account_rows(conn, rows, time.time() if now is None else now)
    log.info("accounts stored: %s", ", ".join(sorted(r.id for r in rows)))
    return n
