"""The v5 REST subset: one handler per endpoint, from parsed parameters to the `result` object.

Handlers run with the engine lock held and raise PaperError for business errors; the server wraps
what they return in the envelope. Batch handlers report per-item outcomes in `retExtInfo.list`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exchange.paper import errors as E
from exchange.paper import queries as Q
from exchange.paper.engine import PaperEngine
from exchange.paper.errors import PaperError, params_error
from exchange.paper.instruments import SETTLE_COIN
from exchange.paper.params import (
    CATEGORY,
    Params,
    amend_request,
    cancel_target,
    order_request,
    trading_stop_request,
)
from exchange.paper.records import PaperAccount, PaperOrder

MAX_BATCH = 20
ORDER_FILTERS = ("Order", "StopOrder", "tpslOrder", "OpenOrder")
RATE_LIMITED_ITEM = (E.RATE_LIMIT, "Too many visits. Exceeded the API Rate Limit.")


@dataclass(slots=True)
class Call:
    engine: PaperEngine
    params: Params
    account: PaperAccount | None
    granted: int = 1  # batch items the rate limit lets through

    @property
    def acct(self) -> PaperAccount:
        assert self.account is not None
        return self.account


Result = tuple[Any, dict[str, Any]]
Handler = Callable[[Call], Result]


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    method: str
    handler: Handler
    private: bool
    batch: bool = False


# ------------------------------------------------------------------------------------- market


def market_time(c: Call) -> Result:
    ns = int(c.engine.clock() * 1_000_000_000)
    return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}, {}


def market_tickers(c: Call) -> Result:
    if not c.params.listed_category():
        return {"category": c.params.raw["category"], "list": []}, {}
    return {"category": CATEGORY, "list": Q.tickers(c.engine, c.params.text("symbol"))}, {}


def market_instruments(c: Call) -> Result:
    p = c.params
    if not p.listed_category():
        return {"category": p.raw["category"], "list": [], "nextPageCursor": ""}, {}
    rows, nxt = Q.instruments(
        c.engine,
        symbol=p.text("symbol"),
        base_coin=p.text("baseCoin"),
        status=p.text("status"),
        limit=p.limit(500, 1000),
        cursor=p.text("cursor"),
    )
    return {"category": CATEGORY, "list": rows, "nextPageCursor": nxt}, {}


# ------------------------------------------------------------------------------------- reads


def position_list(c: Call) -> Result:
    p = c.params
    p.category()
    rows, nxt = Q.positions(
        c.engine,
        c.acct,
        symbol=p.text("symbol"),
        settle_coin=p.text("settleCoin"),
        limit=p.limit(20, 200),
        cursor=p.text("cursor"),
    )
    return {"list": rows, "nextPageCursor": nxt, "category": CATEGORY}, {}


def order_realtime(c: Call) -> Result:
    p = c.params
    p.category()
    symbol, base, settle = p.text("symbol"), p.text("baseCoin"), p.text("settleCoin")
    if not (symbol or base or settle):
        raise params_error("symbol", "is required: one of symbol, baseCoin or settleCoin")
    limit = p.limit(20, 50)
    if settle and not symbol and not base and settle != SETTLE_COIN:
        return {"list": [], "nextPageCursor": "", "category": CATEGORY}, {}
    rows, nxt = Q.open_orders(
        c.engine,
        c.acct,
        symbol=symbol,
        base_coin=base,
        order_id=p.text("orderId"),
        link_id=p.text("orderLinkId"),
        open_only=p.integer("openOnly", default=0, lo=0, hi=2) or 0,
        order_filter=p.text("orderFilter", choices=ORDER_FILTERS),
        limit=limit,
        cursor=p.text("cursor"),
    )
    return {"list": rows, "nextPageCursor": nxt, "category": CATEGORY}, {}


def order_history(c: Call) -> Result:
    p = c.params
    p.category()
    settle = p.text("settleCoin")
    limit = p.limit(20, 50)
    if settle and settle != SETTLE_COIN:
        return {"list": [], "nextPageCursor": "", "category": CATEGORY}, {}
    rows, nxt = Q.order_history(
        c.engine,
        c.acct,
        symbol=p.text("symbol"),
        base_coin=p.text("baseCoin"),
        order_id=p.text("orderId"),
        link_id=p.text("orderLinkId"),
        status=p.text("orderStatus"),
        order_filter=p.text("orderFilter", choices=ORDER_FILTERS),
        start_ms=p.integer("startTime"),
        end_ms=p.integer("endTime"),
        limit=limit,
        cursor=p.text("cursor"),
    )
    return {"list": rows, "nextPageCursor": nxt, "category": CATEGORY}, {}


def execution_list(c: Call) -> Result:
    p = c.params
    p.category()
    settle = p.text("settleCoin")
    limit = p.limit(50, 100)
    if settle and settle != SETTLE_COIN:
        return {"list": [], "nextPageCursor": "", "category": CATEGORY}, {}
    rows, nxt = Q.executions(
        c.engine,
        c.acct,
        symbol=p.text("symbol"),
        base_coin=p.text("baseCoin"),
        order_id=p.text("orderId"),
        link_id=p.text("orderLinkId"),
        exec_type=p.text("execType"),
        start_ms=p.integer("startTime"),
        end_ms=p.integer("endTime"),
        limit=limit,
        cursor=p.text("cursor"),
    )
    return {"list": rows, "nextPageCursor": nxt, "category": CATEGORY}, {}


def wallet_balance(c: Call) -> Result:
    p = c.params
    if p.text("accountType", required=True) != "UNIFIED":
        raise params_error("accountType", "invalid: only UNIFIED is supported")
    coin = p.text("coin")
    coins = {x.strip() for x in coin.split(",") if x.strip()} if coin else None
    return {"list": [Q.wallet(c.engine, c.acct, coins)]}, {}


def fee_rate(c: Call) -> Result:
    p = c.params
    p.category()
    symbol = p.text("symbol")
    specs = [c.engine.spec(symbol)] if symbol else list(c.engine.specs.values())
    maker, taker = str(c.engine.maker_fee), str(c.engine.taker_fee)
    return {"list": [{"symbol": s.symbol, "takerFeeRate": taker, "makerFeeRate": maker} for s in specs]}, {}


# ------------------------------------------------------------------------------------ trading


def _ack(o: PaperOrder) -> dict[str, Any]:
    return {"orderId": o.order_id, "orderLinkId": o.link_id}


def order_create(c: Call) -> Result:
    c.params.category()
    return _ack(c.engine.place_order(c.acct, order_request(c.params))), {}


def order_amend(c: Call) -> Result:
    c.params.category()
    return _ack(c.engine.amend_order(c.acct, amend_request(c.params))), {}


def order_cancel(c: Call) -> Result:
    c.params.category()
    symbol, order_id, link_id = cancel_target(c.params)
    return _ack(c.engine.cancel_order(c.acct, symbol, order_id, link_id)), {}


def order_cancel_all(c: Call) -> Result:
    p = c.params
    p.category()
    cancelled = c.engine.cancel_all(
        c.acct,
        symbol=p.text("symbol"),
        base_coin=p.text("baseCoin"),
        settle_coin=p.text("settleCoin"),
        order_filter=p.text("orderFilter", choices=ORDER_FILTERS),
        stop_order_type=p.text("stopOrderType"),
    )
    return {"list": [_ack(o) for o in cancelled], "success": "1"}, {}


def batch_items(params: Params) -> list[Any]:
    items = params.raw.get("request")
    if not isinstance(items, list) or not items:
        raise params_error("request", "must be a non-empty list")
    if len(items) > MAX_BATCH:
        raise params_error("request", f"at most {MAX_BATCH} orders per batch")
    return items


def _batch(c: Call, run: Callable[[Params], PaperOrder], with_time: bool) -> Result:
    c.params.category()
    rows, ext = [], []
    for i, item in enumerate(batch_items(c.params)):
        raw = item if isinstance(item, dict) else {}
        symbol = raw.get("symbol") if isinstance(raw.get("symbol"), str) else ""
        link = raw.get("orderLinkId") if isinstance(raw.get("orderLinkId"), str) else ""
        row: dict[str, Any] = {"category": CATEGORY, "symbol": symbol, "orderId": "", "orderLinkId": link}
        if with_time:
            row["createAt"] = ""
        try:
            if i >= c.granted:
                raise PaperError(*RATE_LIMITED_ITEM)
            if not isinstance(item, dict):
                raise params_error(f"request[{i}]", "must be an object")
            order = run(Params(item))
            row["orderId"], row["orderLinkId"] = order.order_id, order.link_id
            if with_time:
                row["createAt"] = str(order.created_ms)
            ext.append({"code": 0, "msg": "OK"})
        except PaperError as err:
            ext.append({"code": err.code, "msg": err.message})
        rows.append(row)
    return {"list": rows}, {"list": ext}


def order_create_batch(c: Call) -> Result:
    return _batch(c, lambda p: c.engine.place_order(c.acct, order_request(p)), True)


def order_amend_batch(c: Call) -> Result:
    return _batch(c, lambda p: c.engine.amend_order(c.acct, amend_request(p), allow_conditional=False), False)


def order_cancel_batch(c: Call) -> Result:
    def cancel(p: Params) -> PaperOrder:
        symbol, order_id, link_id = cancel_target(p)
        return c.engine.cancel_order(c.acct, symbol, order_id, link_id)

    return _batch(c, cancel, False)


# ---------------------------------------------------------------------------------- positions


def trading_stop(c: Call) -> Result:
    c.params.category()
    c.engine.set_trading_stop(c.acct, trading_stop_request(c.params))
    return {}, {}


def switch_mode(c: Call) -> Result:
    p = c.params
    p.category()
    mode = p.integer("mode")
    if mode is None:
        raise params_error("mode", "is required")
    c.engine.switch_mode(c.acct, symbol=p.text("symbol"), coin=p.text("coin"), mode=mode)
    return {}, {}


def set_leverage(c: Call) -> Result:
    p = c.params
    p.category()
    symbol = p.text("symbol", required=True)
    buy = p.decimal("buyLeverage", required=True)
    sell = p.decimal("sellLeverage", required=True)
    assert symbol is not None and buy is not None and sell is not None
    c.engine.set_leverage(c.acct, symbol, buy, sell)
    return {}, {}


# ---------------------------------------------------------------------- account, key, coins
# What ccxt's `bybit` asks before anything else (load_markets: coin info; then whether the
# account is unified). A paper account is a Unified Trading Account with a trade-and-read key.


def coin_info(c: Call) -> Result:
    wanted = c.params.text("coin")
    coins = [SETTLE_COIN, *sorted({s.base_coin for s in c.engine.specs.values()} - {SETTLE_COIN})]
    rows = [
        {"name": coin, "coin": coin, "remainAmount": "0", "chains": []}
        for coin in coins
        if wanted is None or coin == wanted
    ]
    return {"rows": rows}, {}


def api_key_info(c: Call) -> Result:
    acct = c.acct
    created = _iso(acct.created_ms)
    return {
        "id": str(_uid(acct) + 1),
        "note": "paper",
        "apiKey": acct.api_key,
        "readOnly": 0,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": [],
            "Wallet": [],
            "Options": [],
            "Derivatives": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
            "Affiliate": [],
            "Earn": [],
        },
        "ips": ["*"],
        "type": 1,
        "deadlineDay": -1,
        "expiredAt": "",
        "createdAt": created,
        "unified": 0,
        "uta": 1,
        "userID": _uid(acct),
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
    }, {}


def account_info(c: Call) -> Result:
    return {
        "marginMode": "REGULAR_MARGIN",
        "updatedTime": str(c.acct.created_ms),
        "unifiedMarginStatus": 6,  # Unified Trading Account 2.0 (Pro): what new accounts get
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
    }, {}


def _uid(acct: PaperAccount) -> int:
    return 10_000_000 + zlib.crc32(acct.id.encode()) % 90_000_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _routes() -> dict[str, Route]:
    table = [
        ("/v5/market/time", "GET", market_time, False, False),
        ("/v5/market/tickers", "GET", market_tickers, False, False),
        ("/v5/market/instruments-info", "GET", market_instruments, False, False),
        ("/v5/position/list", "GET", position_list, True, False),
        ("/v5/order/realtime", "GET", order_realtime, True, False),
        ("/v5/order/history", "GET", order_history, True, False),
        ("/v5/execution/list", "GET", execution_list, True, False),
        ("/v5/account/wallet-balance", "GET", wallet_balance, True, False),
        ("/v5/account/fee-rate", "GET", fee_rate, True, False),
        ("/v5/order/create", "POST", order_create, True, False),
        ("/v5/order/amend", "POST", order_amend, True, False),
        ("/v5/order/cancel", "POST", order_cancel, True, False),
        ("/v5/order/cancel-all", "POST", order_cancel_all, True, False),
        ("/v5/order/create-batch", "POST", order_create_batch, True, True),
        ("/v5/order/amend-batch", "POST", order_amend_batch, True, True),
        ("/v5/order/cancel-batch", "POST", order_cancel_batch, True, True),
        ("/v5/position/trading-stop", "POST", trading_stop, True, False),
        ("/v5/position/switch-mode", "POST", switch_mode, True, False),
        ("/v5/position/set-leverage", "POST", set_leverage, True, False),
        ("/v5/asset/coin/query-info", "GET", coin_info, True, False),
        ("/v5/user/query-api", "GET", api_key_info, True, False),
        ("/v5/account/info", "GET", account_info, True, False),
    ]
    return {
        path: Route(path, method, handler, private, batch) for path, method, handler, private, batch in table
    }


ROUTES: dict[str, Route] = _routes()
