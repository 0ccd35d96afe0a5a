"""Records → Bybit v5 JSON objects (as Bybit's v5 docs show them): every number a string except positionIdx,
triggerDirection, seq, smpGroup, autoAddMargin, riskId, tradeMode, adlRankIndicator (ints) and
reduceOnly, closeOnTrigger, isMaker, isReduceOnly (bools).

Order, position, execution and ticker objects are cached on their record, as a dict and as
serialised JSON (an orjson.Fragment), and rebuilt only after the record changed (the engine clears
`view`): a list page of unchanged rows costs neither formatting nor serialising.
Unset take-profit / stop-loss prices are "" (what real captures show).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from exchange.paper.decimals import ZERO, fmt_amount, fmt_fixed, round8
from exchange.paper.instruments import LAUNCH_TIME_MS, SETTLE_COIN, InstrumentSpec
from exchange.paper.ledger import unrealised_pnl
from exchange.paper.records import PaperAccount, PaperExecution, PaperOrder, PaperPosition, SymbolMarket

MAINTENANCE_MARGIN_RATE = Decimal("0.005")
FUNDING_INTERVAL_MS = 8 * 3600 * 1000
_INSTRUMENT_VIEWS: dict[InstrumentSpec, orjson.Fragment] = {}

Cached = tuple[dict[str, Any], orjson.Fragment]  # the v5 dict and its serialised JSON


def order_view(o: PaperOrder) -> dict[str, Any]:
    return (o.view or _cache_order(o))[0]


def order_json(o: PaperOrder) -> orjson.Fragment:
    return (o.view or _cache_order(o))[1]


def _cache_order(o: PaperOrder) -> Cached:
    spec = o.spec
    pp, qp = spec.price_places, spec.qty_places
    cum = o.cum_qty
    leaves = o.leaves
    v = {
        "orderId": o.order_id,
        "orderLinkId": o.link_id,
        "blockTradeId": "",
        "symbol": spec.symbol,
        "price": fmt_fixed(o.price, pp),
        "qty": fmt_fixed(o.qty, qp),
        "side": o.side.value,
        "isLeverage": "",
        "positionIdx": o.position_idx,
        "orderStatus": o.status.value,
        "createType": o.create_type,
        "cancelType": o.cancel_type,
        "rejectReason": o.reject_reason,
        "avgPrice": fmt_amount(o.cum_value / cum) if cum else "0",
        "leavesQty": fmt_fixed(leaves, qp),
        "leavesValue": fmt_amount(leaves * o.price),
        "cumExecQty": fmt_fixed(cum, qp),
        "cumExecValue": fmt_amount(o.cum_value),
        "cumExecFee": fmt_amount(o.cum_fee),
        "cumFeeDetail": {SETTLE_COIN: fmt_amount(o.cum_fee)} if cum else {},
        "timeInForce": o.tif,
        "orderType": o.order_type,
        "stopOrderType": o.stop_order_type,
        "orderIv": "",
        "marketUnit": "",
        "triggerPrice": fmt_fixed(o.trigger_price, pp),
        "takeProfit": "",
        "stopLoss": fmt_fixed(o.stop_loss, pp) if o.stop_loss else "",
        "tpslMode": ("Partial" if o.stop_order_type.startswith("Partial") else "Full")
        if o.is_position_tpsl or o.stop_loss
        else "",
        "ocoTriggerBy": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "tpTriggerBy": "",
        "slTriggerBy": o.sl_trigger_by,
        "triggerDirection": o.trigger_direction,
        "triggerBy": o.trigger_by or "UNKNOWN",
        "lastPriceOnCreated": fmt_fixed(o.last_price_on_created, pp),
        "basePrice": fmt_fixed(o.last_price_on_created, pp) if o.is_conditional else "",
        "reduceOnly": o.reduce_only,
        "closeOnTrigger": o.close_on_trigger,
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "parentOrderLinkId": "",
        "createdTime": str(o.created_ms),
        "updatedTime": str(o.updated_ms),
    }
    o.view = cached = (v, orjson.Fragment(orjson.dumps(v)))
    return cached


def maintenance_margin(pos: PaperPosition) -> Decimal:
    return round8(pos.size * pos.avg * MAINTENANCE_MARGIN_RATE)


def position_view(pos: PaperPosition, mark: Decimal) -> dict[str, Any]:
    cached = pos.view
    return (cached if cached is not None and pos.view_mark == mark else _cache_position(pos, mark))[0]


def position_json(pos: PaperPosition, mark: Decimal) -> orjson.Fragment:
    cached = pos.view
    return (cached if cached is not None and pos.view_mark == mark else _cache_position(pos, mark))[1]


def _cache_position(pos: PaperPosition, mark: Decimal) -> Cached:
    spec = pos.spec
    pp = spec.price_places
    flat = pos.size == 0 or pos.side is None
    value = pos.size * pos.avg
    if flat:
        break_even = "0"
    else:
        assert pos.side is not None
        fee = Decimal("0.00055")
        be = pos.avg * (1 + fee) / (1 - fee) if pos.side.sign > 0 else pos.avg * (1 - fee) / (1 + fee)
        break_even = fmt_fixed(be, pp)
    v = {
        "positionIdx": pos.idx,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": spec.symbol,
        "side": "" if flat or pos.side is None else pos.side.value,
        "size": fmt_fixed(pos.size, spec.qty_places),
        "avgPrice": "0" if flat else fmt_amount(pos.avg),
        "positionValue": fmt_amount(value),
        "tradeMode": 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": fmt_amount(pos.leverage),
        "markPrice": fmt_fixed(mark, pp),
        "liqPrice": "",
        "bustPrice": "",
        "positionIM": fmt_amount(pos.im),
        "positionMM": fmt_amount(maintenance_margin(pos)),
        "positionBalance": fmt_amount(pos.im),
        "tpslMode": "Full",
        "takeProfit": fmt_fixed(pos.take_profit, pp) if pos.take_profit else "",
        "stopLoss": fmt_fixed(pos.stop_loss, pp) if pos.stop_loss else "",
        "trailingStop": "0",
        "unrealisedPnl": fmt_amount(unrealised_pnl(pos, mark)),
        "curRealisedPnl": fmt_amount(pos.cur_realised),
        "cumRealisedPnl": fmt_amount(pos.cum_realised),
        "adlRankIndicator": 0 if flat else 2,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "sessionAvgPrice": "",
        "breakEvenPrice": break_even,
        "createdTime": str(pos.created_ms),
        "updatedTime": str(pos.updated_ms),
        "openTime": 0 if flat else pos.opened_ms,
        "seq": pos.seq,
    }
    pos.view = cached = (v, orjson.Fragment(orjson.dumps(v)))
    pos.view_mark = mark
    return cached


def execution_view(e: PaperExecution) -> dict[str, Any]:
    return (e.view or _cache_execution(e))[0]


def execution_json(e: PaperExecution) -> orjson.Fragment:
    return (e.view or _cache_execution(e))[1]


def _cache_execution(e: PaperExecution) -> Cached:
    spec = e.spec
    pp, qp = spec.price_places, spec.qty_places
    v = {
        "symbol": spec.symbol,
        "orderType": e.order_type,
        "underlyingPrice": "",
        "orderLinkId": e.link_id,
        "side": e.side.value,
        "indexPrice": fmt_fixed(e.mark_price, pp),
        "orderId": e.order_id,
        "stopOrderType": e.stop_order_type,
        "leavesQty": fmt_fixed(e.leaves_qty, qp),
        "execTime": str(e.time_ms),
        "feeCurrency": SETTLE_COIN,
        "isMaker": e.is_maker,
        "execFee": fmt_amount(e.fee),
        "feeRate": fmt_amount(e.fee_rate),
        "execId": e.exec_id,
        "tradeIv": "",
        "blockTradeId": "",
        "markPrice": fmt_fixed(e.mark_price, pp),
        "execPrice": fmt_fixed(e.price, pp),
        "markIv": "",
        "orderQty": fmt_fixed(e.order_qty, qp),
        "orderPrice": fmt_fixed(e.order_price, pp),
        "execValue": fmt_amount(e.value),
        "execType": "Trade",
        "execQty": fmt_fixed(e.qty, qp),
        "closedSize": fmt_fixed(e.closed_size, qp),
        "createType": e.create_type,
        "seq": e.seq,
    }
    e.view = cached = (v, orjson.Fragment(orjson.dumps(v)))
    return cached


def fill_view(e: PaperExecution) -> dict[str, Any]:
    """A fill as the admin API reports it: whose it is (account id, key masked), qty and price, then
    the execution's v5 fields."""
    v = execution_view(e)
    return {
        "account": e.account.id,
        "api_key": e.account.masked_key,
        "qty": v["execQty"],
        "price": v["execPrice"],
        **v,
    }


def ticker_json(m: SymbolMarket, now_ms: int) -> orjson.Fragment:
    funding = str((now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS)
    cached = m.view
    if cached is not None and cached[0]["nextFundingTime"] == funding:
        return cached[1]
    return _cache_ticker(m, funding)[1]


def _cache_ticker(m: SymbolMarket, funding: str) -> Cached:
    spec = m.spec
    pp, qp = spec.price_places, spec.qty_places
    tick = spec.tick_size
    change = (m.last - m.prev_24h) / m.prev_24h if m.prev_24h else ZERO
    v = {
        "symbol": spec.symbol,
        "lastPrice": fmt_fixed(m.last, pp),
        "indexPrice": fmt_fixed(m.mark, pp),
        "markPrice": fmt_fixed(m.mark, pp),
        "prevPrice24h": fmt_fixed(m.prev_24h, pp),
        "price24hPcnt": f"{change:.6f}",
        "highPrice24h": fmt_fixed(m.high, pp),
        "lowPrice24h": fmt_fixed(m.low, pp),
        "prevPrice1h": fmt_fixed(m.prev_24h, pp),
        "openInterest": "0",
        "openInterestValue": "0",
        "turnover24h": fmt_amount(m.turnover),
        "volume24h": fmt_fixed(m.volume, qp),
        "fundingRate": "0.0001",
        "nextFundingTime": funding,
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "deliveryFeeRate": "",
        "deliveryTime": "0",
        "ask1Size": fmt_fixed(spec.max_mkt_qty, qp),
        "bid1Price": fmt_fixed(max(m.last - tick, tick), pp),
        "ask1Price": fmt_fixed(m.last + tick, pp),
        "bid1Size": fmt_fixed(spec.max_mkt_qty, qp),
        "basis": "",
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
    }
    m.view = cached = (v, orjson.Fragment(orjson.dumps(v)))
    return cached


def instrument_json(spec: InstrumentSpec) -> orjson.Fragment:
    known = _INSTRUMENT_VIEWS.get(spec)
    if known is not None:
        return known
    pp, qp = spec.price_places, spec.qty_places
    v: dict[str, Any] = {
        "symbol": spec.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": spec.base_coin,
        "quoteCoin": SETTLE_COIN,
        "launchTime": LAUNCH_TIME_MS,
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(pp),
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": f"{spec.max_leverage:.2f}",
            "leverageStep": "0.01",
        },
        "priceFilter": {
            "minPrice": fmt_fixed(spec.min_price, pp),
            "maxPrice": fmt_fixed(spec.top_price, pp),
            "tickSize": fmt_fixed(spec.tick_size, pp),
        },
        "lotSizeFilter": {
            "maxOrderQty": fmt_fixed(spec.max_qty, qp),
            "minOrderQty": fmt_fixed(spec.min_qty, qp),
            "qtyStep": fmt_fixed(spec.qty_step, qp),
            "postOnlyMaxOrderQty": fmt_fixed(spec.max_qty, qp),
            "maxMktOrderQty": fmt_fixed(spec.max_mkt_qty, qp),
            "minNotionalValue": fmt_amount(spec.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": SETTLE_COIN,
        "copyTrading": "both",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "displayName": "",
    }
    fragment = _INSTRUMENT_VIEWS[spec] = orjson.Fragment(orjson.dumps(v))
    return fragment


def wallet_view(acct: PaperAccount, upl: Decimal, mm: Decimal, coins: set[str] | None) -> dict[str, Any]:
    """The UNIFIED wallet with its one coin (USDT = 1 USD). Available balance = wallet − position
    IM − order IM (unrealised PnL is not counted: the engine's margin rule)."""
    wallet = acct.wallet
    equity = wallet + upl
    available = wallet - acct.pos_im - acct.order_im
    im = acct.pos_im + acct.order_im
    cum_realised = sum((p.cum_realised for p in acct.positions.values()), ZERO)
    coin_rows = []
    if coins is None or SETTLE_COIN in coins:
        coin_rows.append(
            {
                "coin": SETTLE_COIN,
                "equity": fmt_amount(equity),
                "usdValue": fmt_amount(equity),
                "walletBalance": fmt_amount(wallet),
                "free": "",
                "locked": "0",
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "availableToBorrow": "",
                "accruedInterest": "0",
                "totalOrderIM": fmt_amount(acct.order_im),
                "totalPositionIM": fmt_amount(acct.pos_im),
                "totalPositionMM": fmt_amount(mm),
                "unrealisedPnl": fmt_amount(upl),
                "cumRealisedPnl": fmt_amount(cum_realised),
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
            }
        )
    return {
        "accountType": "UNIFIED",
        "accountLTV": "0",
        "accountIMRate": fmt_amount(im / equity) if equity > 0 else "0",
        "accountMMRate": fmt_amount(mm / equity) if equity > 0 else "0",
        "totalEquity": fmt_amount(equity),
        "totalWalletBalance": fmt_amount(wallet),
        "totalMarginBalance": fmt_amount(equity),
        "totalAvailableBalance": fmt_amount(available),
        "totalPerpUPL": fmt_amount(upl),
        "totalInitialMargin": fmt_amount(im),
        "totalMaintenanceMargin": fmt_amount(mm),
        "coin": coin_rows,
    }
