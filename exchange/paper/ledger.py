"""Position and wallet accounting of one fill: size, average price, realised PnL, fees, margin."""

from __future__ import annotations

from decimal import Decimal

from core.models import Side
from exchange.paper.decimals import round8
from exchange.paper.records import ZERO, PaperPosition


def unrealised_pnl(pos: PaperPosition, mark: Decimal) -> Decimal:
    if pos.side is None or pos.size == 0:
        return ZERO
    return round8((mark - pos.avg) * pos.size * pos.side.sign)


def refresh_margin(pos: PaperPosition) -> None:
    """Re-compute the initial margin the position holds (size × avg / leverage) in its account."""
    acct = pos.account
    im = round8(pos.size * pos.avg / pos.leverage) if pos.size else ZERO
    acct.pos_im += im - pos.im
    pos.im = im


def apply_fill(
    pos: PaperPosition, side: Side, qty: Decimal, price: Decimal, fee: Decimal, now_ms: int
) -> tuple[Decimal, Decimal]:
    """Book a fill of `qty` at `price` on `side` into the position and its account's wallet.

    Returns (closed size, realised PnL before fees). A fill larger than an opposite position flips it
    (one-way mode, non-reducing orders only; the engine caps reducing orders beforehand)."""
    closed = ZERO
    pnl = ZERO
    if pos.size == 0 or pos.side is None:
        pos.side, pos.size, pos.avg = side, qty, price
        pos.cur_realised = ZERO
        pos.opened_ms = now_ms
    elif pos.side is side:
        total = pos.size + qty
        pos.avg = round8((pos.size * pos.avg + qty * price) / total)
        pos.size = total
    else:
        closed = min(qty, pos.size)
        pnl = round8((price - pos.avg) * closed * pos.side.sign)
        pos.size -= closed
        if pos.size == 0:
            _book(pos, pnl, ZERO)  # the closed position's PnL stays with it
            rest = qty - closed
            if rest > 0:  # flipped through zero: a new position on the other side
                pos.side, pos.size, pos.avg = side, rest, price
                pos.cur_realised = ZERO
                pos.opened_ms = now_ms
            else:
                pos.side, pos.avg = None, ZERO
            _book(pos, ZERO, fee)
            refresh_margin(pos)
            _touch(pos, now_ms)
            return closed, pnl
    _book(pos, pnl, fee)
    refresh_margin(pos)
    _touch(pos, now_ms)
    return closed, pnl


def _book(pos: PaperPosition, pnl: Decimal, fee: Decimal) -> None:
    net = pnl - fee
    pos.cur_realised += net
    pos.cum_realised += net
    pos.account.wallet += net


def _touch(pos: PaperPosition, now_ms: int) -> None:
    pos.updated_ms = now_ms
    pos.seq += 1
    pos.view = None
