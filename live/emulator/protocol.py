"""Binance spot JSON shapes the venue sends: orders, trades, executionReport, outboundAccountPosition, errors."""

from decimal import Decimal
from typing import Any

from keel.live.emulator.matching import BalanceEvent
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import Fill
from keel.live.emulator.matching import Order
from keel.live.emulator.symbols import SymbolSpec

_ASSET_DECIMALS = 8


def asset_amount(value: Decimal) -> str:
    """Format a balance, commission or quote amount with Binance's 8 asset decimals."""
    return f"{value:.{_ASSET_DECIMALS}f}"


def error_body(code: int, msg: str) -> dict[str, Any]:
    """Return a Binance error body."""
    return {"code": code, "msg": msg}


def order_json(order: Order, spec: SymbolSpec) -> dict[str, Any]:
    """Return ``order`` as ``GET /api/v3/order`` / ``openOrders`` / ``allOrders`` show it."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": spec.format_price(order.price),
        "origQty": spec.format_qty(order.quantity),
        "executedQty": spec.format_qty(order.executed_qty),
        "cummulativeQuoteQty": asset_amount(order.cumulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.order_type,
        "side": order.side,
        "stopPrice": spec.format_price(Decimal(0)),
        "icebergQty": spec.format_qty(Decimal(0)),
        "time": order.created_ms,
        "updateTime": order.updated_ms,
        "isWorking": order.is_open,
        "workingTime": order.working_ms,
        "origQuoteOrderQty": asset_amount(order.quote_order_qty),
        "selfTradePreventionMode": "NONE",
    }


def new_order_json(order: Order, fills: list[Fill], spec: SymbolSpec) -> dict[str, Any]:
    """Return the ``POST /api/v3/order`` reply (``newOrderRespType=FULL``)."""
    body = order_json(order, spec)
    body.pop("time")
    body.pop("updateTime")
    body.pop("isWorking")
    body["transactTime"] = order.updated_ms
    body["fills"] = [
        {
            "price": spec.format_price(fill.price),
            "qty": spec.format_qty(fill.quantity),
            "commission": asset_amount(fill.commission),
            "commissionAsset": fill.commission_asset,
            "tradeId": fill.trade_id,
        }
        for fill in fills
    ]
    return body


def canceled_order_json(order: Order, spec: SymbolSpec, cancel_client_order_id: str) -> dict[str, Any]:
    """Return the ``DELETE /api/v3/order`` reply for a cancelled ``order``."""
    body = order_json(order, spec)
    for key in ("time", "updateTime", "isWorking", "workingTime", "stopPrice", "icebergQty"):
        body.pop(key)
    body["origClientOrderId"] = order.client_order_id
    body["clientOrderId"] = cancel_client_order_id
    body["transactTime"] = order.updated_ms
    return body


def trade_json(fill: Fill, spec: SymbolSpec) -> dict[str, Any]:
    """Return ``fill`` as a ``GET /api/v3/myTrades`` row."""
    return {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": spec.format_price(fill.price),
        "qty": spec.format_qty(fill.quantity),
        "quoteQty": asset_amount(fill.quote_quantity),
        "commission": asset_amount(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time_ms,
        "isBuyer": fill.side == "BUY",
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def execution_report(event: ExecutionEvent, spec: SymbolSpec) -> dict[str, Any]:
    """Return ``event`` as a spot ``executionReport`` with every field nautilus requires."""
    order = event.order
    fill = event.fill
    canceled = event.execution_type == "CANCELED"
    return {
        "e": "executionReport",
        "E": event.time_ms,
        "s": order.symbol,
        "c": event.cancel_client_order_id if canceled else order.client_order_id,
        "S": order.side,
        "o": order.order_type,
        "f": order.time_in_force,
        "q": spec.format_qty(order.quantity),
        "p": spec.format_price(order.price),
        "P": spec.format_price(Decimal(0)),
        "F": spec.format_qty(Decimal(0)),
        "g": -1,
        "C": order.client_order_id if canceled else "",
        "x": event.execution_type,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": spec.format_qty(fill.quantity if fill else Decimal(0)),
        "z": spec.format_qty(order.executed_qty),
        "L": spec.format_price(fill.price if fill else Decimal(0)),
        "n": asset_amount(fill.commission) if fill else "0",
        "N": fill.commission_asset if fill else None,
        "T": event.time_ms,
        "t": fill.trade_id if fill else -1,
        "I": order.order_id * 2,
        "w": order.is_open,
        "m": fill.is_maker if fill else False,
        "M": fill is not None,
        "O": order.created_ms,
        "Z": asset_amount(order.cumulative_quote_qty),
        "Y": asset_amount(fill.quote_quantity if fill else Decimal(0)),
        "Q": asset_amount(order.quote_order_qty),
        "W": order.working_ms,
        "V": "NONE",
    }


def account_position(event: BalanceEvent) -> dict[str, Any]:
    """Return ``event`` as an ``outboundAccountPosition``."""
    return {
        "e": "outboundAccountPosition",
        "E": event.time_ms,
        "u": event.time_ms,
        "B": [{"a": asset, "f": asset_amount(free), "l": asset_amount(locked)} for asset, free, locked in event.balances],
    }
