"""Sends a pass's intents through the batch endpoints of the account's own client.

Order matters: places first (a new stop is on the exchange before anything is cancelled), then
amends, then cancels. If a whole call fails (transport, rate limit), nothing after it is sent in
this pass and every unsent intent is answered with that failure, so the monitors retry next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.errors import TpslError
from core.models import Account, AmendOrder, CancelOrder, Intent, IntentResult, PlaceOrder
from core.ports import ExchangePort

log = logging.getLogger(__name__)

Outcome = tuple[Intent, IntentResult]


def execute(client: ExchangePort, account: Account, intents: Sequence[Intent]) -> list[Outcome]:
    for intent in intents:
        if intent.account != account.id:  # every action goes through its monitor's own account
            raise ValueError(f"intent for account {intent.account!r} sent through {account.id!r}")
    groups: list[tuple[str, list[Intent]]] = [
        ("place", [i for i in intents if isinstance(i, PlaceOrder)]),
        ("amend", [i for i in intents if isinstance(i, AmendOrder)]),
        ("cancel", [i for i in intents if isinstance(i, CancelOrder)]),
    ]
    out: list[Outcome] = []
    failure: TpslError | None = None
    for name, group in groups:
        if not group:
            continue
        if failure is not None:
            out.extend((i, _failed(i, failure, sent=False)) for i in group)
            continue
        try:
            if name == "place":
                results = client.place(account, group)  # type: ignore[arg-type]
            elif name == "amend":
                results = client.amend(account, group)  # type: ignore[arg-type]
            else:
                results = client.cancel(account, group)  # type: ignore[arg-type]
        except TpslError as e:
            log.warning("account %s: %s of %d orders failed: %s", account.id, name, len(group), e)
            failure = e
            out.extend((i, _failed(i, e, sent=True)) for i in group)
            continue
        if len(results) != len(group):
            raise RuntimeError(f"{name}: {len(results)} results for {len(group)} intents")
        out.extend(zip(group, results, strict=True))
    return out


def _failed(intent: Intent, error: TpslError, *, sent: bool) -> IntentResult:
    prefix = "" if sent else "not sent: "
    return IntentResult(intent.link_id, False, error.kind, f"{prefix}{error.message}"[:300])
