"""Placements checked against the read the decision came from, before anything is sent.

A create whose orderLinkId the account's read already shows open was placed before — by a pass
whose state was lost (Redis flushed and the registry rebuilt from an older database row, a check
killed after it placed and before it saved). The exchange would refuse it as a duplicate, which the
client counts as success; answering it from the read gives the same outcome without the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from core.models import Account, Intent, IntentResult, PlaceOrder, Snapshot
from core.ports import ExchangePort
from workers.executor import Outcome, execute

log = logging.getLogger(__name__)


def execute_unless_known(
    client: ExchangePort,
    account: Account,
    intents: Sequence[Intent],
    snap: Snapshot,
    clock: Callable[[], float] | None = None,
) -> list[Outcome]:
    """`execute`, except creates of orders the read shows open: answered as the duplicate they are
    (no call, so no answer time)."""
    known, send = split_known(intents, snap)
    if known:
        log.info(
            "account %s: %d orders already on the exchange not sent again: %s",
            account.id,
            len(known),
            ", ".join(i.link_id for i, _ in known[:5]),
        )
    return known + (execute(client, account, send, clock) if send else [])


def split_known(intents: Sequence[Intent], snap: Snapshot) -> tuple[list[Outcome], list[Intent]]:
    """(creates the read already shows open, answered as accepted with their order id; the intents
    still to send), each in the given order."""
    known: list[Outcome] = []
    send: list[Intent] = []
    for intent in intents:
        seen = snap.open_orders.get(intent.link_id) if isinstance(intent, PlaceOrder) else None
        if seen is not None:
            known.append((intent, IntentResult(intent.link_id, True, order_id=seen.order_id)))
        else:
            send.append(intent)
    return known, send
