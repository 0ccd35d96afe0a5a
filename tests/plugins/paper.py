"""The paper exchange for tests: one real server per test session, reset before every test.

Fixtures:
- `paper_server` (session): a `PaperServer` (uvicorn + httptools in a background thread, real
  loopback HTTP) with the real symbols plus 50 synthetic ones (SYN0001USDT…SYN0050USDT), Bybit's
  default rate limits on, and a short hold for `timeout` faults (2 s).
- `paper` (function): wipes accounts, orders, positions, prices, faults, stats, clock skew and
  rate-limit settings, then returns a `PaperHandle`:
      paper.base_url              "http://127.0.0.1:<port>", give it to any v5 client
      paper.admin                 PaperAdmin: set_prices, add_fault, stats, account, set_rate_limits…
      paper.new_account(balance=10_000, hedge_mode=False) -> PaperCredentials(id, api_key, api_secret)
                                  (a fresh random key and secret each call)

    def test_something(paper):
        creds = paper.new_account()
        session = HTTP(api_key=creds.api_key, api_secret=creds.api_secret, retry_delay=0.05)
        session.endpoint = paper.base_url
        paper.admin.set_prices({"BTCUSDT": "64000"})

Rate limits are per account and endpoint (10/s for order writes): tests that burst more should
call `paper.admin.set_rate_limits(enabled=False)` (undone by the next reset).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from exchange.paper.runner import PaperAdmin, PaperCredentials, PaperServer

SESSION_EXTRA_SYMBOLS = 50


@dataclass(frozen=True)
class PaperHandle:
    base_url: str
    admin: PaperAdmin

    def new_account(
        self, *, balance: Decimal | float | str = 100_000, hedge_mode: bool = False
    ) -> PaperCredentials:
        return self.admin.create_account(balance=balance, hedge_mode=hedge_mode)


@pytest.fixture(scope="session")
def paper_server() -> Iterator[PaperServer]:
    server = PaperServer(extra_symbols=SESSION_EXTRA_SYMBOLS, fault_hold_s=2.0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def paper(paper_server: PaperServer) -> Iterator[PaperHandle]:
    admin = PaperAdmin(paper_server.base_url)
    admin.reset(all=True)
    yield PaperHandle(base_url=paper_server.base_url, admin=admin)
    admin.session.close()
