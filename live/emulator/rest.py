"""The venue's REST API (``/api/v3/...``, ``/sapi/v1/asset/tradeFee``): authentication and endpoints."""

import asyncio
import itertools
import json
import time
import urllib.parse
from collections.abc import Awaitable
from collections.abc import Callable
from decimal import Decimal
from decimal import InvalidOperation
from typing import Any

from aiohttp import web

from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.faults import Faults
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import MatchingEngine
from keel.live.emulator.matching import NewOrder
from keel.live.emulator.matching import VenueEvent
from keel.live.emulator.matching import VenueRejection
from keel.live.emulator.protocol import asset_amount
from keel.live.emulator.protocol import canceled_order_json
from keel.live.emulator.protocol import error_body
from keel.live.emulator.protocol import new_order_json
from keel.live.emulator.protocol import order_json
from keel.live.emulator.protocol import trade_json
from keel.live.emulator.signing import SignatureChecker
from keel.live.emulator.symbols import SymbolSpec

_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
_DEFAULT_RECV_WINDOW_MS = 5000
_MAX_RECV_WINDOW_MS = 60000
# Binance accepts a timestamp up to 1 s ahead of its clock.
_FUTURE_TOLERANCE_MS = 1000

Params = dict[str, str]
Handler = Callable[[Params], Awaitable[Any]]


def now_ms() -> int:
    """Return the venue's clock (wall clock) in ms since epoch."""
    return time.time_ns() // 1_000_000


class RestApi:
    """
    Answers REST requests like Binance spot: signed endpoints need the ``X-MBX-APIKEY`` header and an
    HMAC-SHA256 (or Ed25519) ``signature`` over the query string before it, sent last; errors are
    Binance bodies ``{"code", "msg"}`` with codes from nautilus's ``BinanceErrorCode``.

    Parameters
    ----------
    api_key : str
        The account's API key.
    checker : SignatureChecker
        Verifies signatures with the account's secret.
    specs : dict[str, SymbolSpec]
        Listed symbols.
    engine : MatchingEngine
        Orders and fills.
    balances : SpotBalances
        The account's balances.
    market : MarketStreams
        Books and update ids (for ``depth``).
    faults : Faults
        Fault knobs (order latency).
    publish : Callable[[list[VenueEvent]], None]
        Sends the events an order request caused to the user-data and market streams.
    """

    def __init__(
        self,
        api_key: str,
        checker: SignatureChecker,
        specs: dict[str, SymbolSpec],
        engine: MatchingEngine,
        balances: SpotBalances,
        market: MarketStreams,
        faults: Faults,
        publish: Callable[[list[VenueEvent]], None],
    ) -> None:
        self._api_key = api_key
        self._checker = checker
        self._specs = specs
        self._engine = engine
        self._balances = balances
        self._market = market
        self._faults = faults
        self._publish = publish
        self._client_order_ids = itertools.count(1)
        # (method, path) -> (signed, handler)
        self._routes: dict[tuple[str, str], tuple[bool, Handler]] = {
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/api/v3/time"): (False, self._time),
            ("GET", "/api/v3/ping"): (False, self._ping),
            ("GET", "/api/v3/depth"): (False, self._depth),
            ("GET", "/sapi/v1/asset/tradeFee"): (True, self._trade_fee),
            ("GET", "/api/v3/account"): (True, self._account),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("DELETE", "/api/v3/openOrders"): (True, self._cancel_open_orders),
            ("GET", "/api/v3/allOrders"): (True, self._all_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
            ("POST", "/api/v3/order"): (True, self._new_order),
            ("GET", "/api/v3/order"): (True, self._query_order),
            ("DELETE", "/api/v3/order"): (True, self._cancel_order),
        }

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one REST request."""
        route = self._routes.get((request.method, request.path))
        if route is None:
            return _error(VenueRejection(-1099, f"Not found: {request.method} {request.path}", http_status=404))
        signed, handler = route
        raw_query = request.query_string
        try:
            if signed:
                self._authenticate(request, raw_query)
            params = {key: values[-1] for key, values in urllib.parse.parse_qs(raw_query, keep_blank_values=True).items()}
            body = await handler(params)
        except VenueRejection as rejection:
            return _error(rejection)
        return web.Response(text=json.dumps(body, separators=(",", ":")), content_type="application/json")

    def _authenticate(self, request: web.Request, raw_query: str) -> None:
        if request.headers.get("X-MBX-APIKEY") != self._api_key:
            raise VenueRejection(-2015, "Invalid API-key, IP, or permissions for action.", http_status=401)
        payload, separator, signature = raw_query.rpartition("&signature=")
        if not separator or not signature:
            raise VenueRejection(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        if not self._checker.verify(payload, urllib.parse.unquote(signature)):
            raise VenueRejection(-1022, "Signature for this request is not valid.")
        params = urllib.parse.parse_qs(payload)
        try:
            timestamp = int(params["timestamp"][-1])
            recv_window = int(params.get("recvWindow", [_DEFAULT_RECV_WINDOW_MS])[-1])
        except (KeyError, ValueError):
            raise VenueRejection(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
        if not 0 < recv_window <= _MAX_RECV_WINDOW_MS:
            raise VenueRejection(-1130, "Invalid data sent for a parameter: recvWindow must be 1..60000.")
        now = now_ms()
        if timestamp > now + _FUTURE_TOLERANCE_MS or now - timestamp > recv_window:
            raise VenueRejection(-1021, "Timestamp for this request is outside of the recvWindow.")

    # -- public --------------------------------------------------------------------------------------------

    async def _exchange_info(self, params: Params) -> Any:
        symbols = self._requested_symbols(params)
        return {
            "timezone": "UTC",
            "serverTime": now_ms(),
            "rateLimits": _RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [self._specs[symbol].exchange_info for symbol in symbols],
        }

    async def _time(self, params: Params) -> Any:
        return {"serverTime": now_ms()}

    async def _ping(self, params: Params) -> Any:
        return {}

    async def _depth(self, params: Params) -> Any:
        symbol = self._symbol(params)
        limit = _int_param(params, "limit", default=100)
        if not 1 <= limit <= 5000:
            raise VenueRejection(-1100, "Illegal characters found in parameter 'limit'; legal range is '1' to '5000'.")
        return self._market.snapshot(symbol, limit)

    # -- account -------------------------------------------------------------------------------------------

    async def _trade_fee(self, params: Params) -> Any:
        symbols = [self._symbol(params)] if "symbol" in params else list(self._specs)
        return [
            {"symbol": s, "makerCommission": str(self._specs[s].maker_fee), "takerCommission": str(self._specs[s].taker_fee)}
            for s in symbols
        ]

    async def _account(self, params: Params) -> Any:
        spec = next(iter(self._specs.values()))
        # Binance quotes commissions in basis points here (10 = 0.1%).
        maker_bps, taker_bps = int(spec.maker_fee * 10_000), int(spec.taker_fee * 10_000)
        return {
            "makerCommission": maker_bps,
            "takerCommission": taker_bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": str(spec.maker_fee), "taker": str(spec.taker_fee), "buyer": "0", "seller": "0"},
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": asset_amount(self._balances.free(asset)), "locked": asset_amount(self._balances.locked(asset))}
                for asset in self._balances.assets()
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        }

    async def _open_orders(self, params: Params) -> Any:
        symbol = self._symbol(params) if "symbol" in params else None
        return [order_json(order, self._specs[order.symbol]) for order in self._engine.open_orders(symbol)]

    async def _all_orders(self, params: Params) -> Any:
        symbol = self._symbol(params)
        orders = self._engine.orders(symbol)
        start, end = _int_param(params, "startTime", default=None), _int_param(params, "endTime", default=None)
        from_id = _int_param(params, "orderId", default=None)
        orders = [
            o for o in orders
            if (start is None or o.created_ms >= start) and (end is None or o.created_ms <= end) and (from_id is None or o.order_id >= from_id)
        ]
        limit = _int_param(params, "limit", default=500)
        orders = orders[:limit] if from_id is not None else orders[-limit:]
        return [order_json(order, self._specs[symbol]) for order in orders]

    async def _my_trades(self, params: Params) -> Any:
        symbol = self._symbol(params)
        fills = self._engine.fills(symbol)
        start, end = _int_param(params, "startTime", default=None), _int_param(params, "endTime", default=None)
        order_id = _int_param(params, "orderId", default=None)
        fills = [
            f for f in fills
            if (start is None or f.time_ms >= start) and (end is None or f.time_ms <= end) and (order_id is None or f.order_id == order_id)
        ]
        limit = _int_param(params, "limit", default=500)
        return [trade_json(fill, self._specs[symbol]) for fill in fills[-limit:]]

    # -- orders --------------------------------------------------------------------------------------------

    async def _new_order(self, params: Params) -> Any:
        symbol = self._symbol(params)
        request = NewOrder(
            symbol=symbol,
            side=params.get("side", ""),
            order_type=params.get("type", ""),
            client_order_id=params.get("newClientOrderId") or f"emu{next(self._client_order_ids)}",
            quantity=_decimal_param(params, "quantity"),
            price=_decimal_param(params, "price"),
            time_in_force=params.get("timeInForce"),
            quote_order_qty=_decimal_param(params, "quoteOrderQty"),
        )
        await self._latency()
        order, events = self._engine.submit(request, now_ms())
        self._publish(events)
        fills = [e.fill for e in events if isinstance(e, ExecutionEvent) and e.fill is not None and e.order.order_id == order.order_id]
        return new_order_json(order, fills, self._specs[symbol])

    async def _query_order(self, params: Params) -> Any:
        symbol = self._symbol(params)
        order = self._engine.find_order(symbol, _int_param(params, "orderId", default=None), params.get("origClientOrderId"))
        if order is None:
            raise VenueRejection(-2013, "Order does not exist.")
        return order_json(order, self._specs[symbol])

    async def _cancel_order(self, params: Params) -> Any:
        symbol = self._symbol(params)
        order_id = _int_param(params, "orderId", default=None)
        client_order_id = params.get("origClientOrderId")
        if order_id is None and not client_order_id:
            raise VenueRejection(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        await self._latency()
        order, events = self._engine.cancel(symbol, order_id, client_order_id, now_ms())
        self._publish(events)
        (canceled,) = [e for e in events if isinstance(e, ExecutionEvent)]
        return canceled_order_json(order, self._specs[symbol], canceled.cancel_client_order_id)

    async def _cancel_open_orders(self, params: Params) -> Any:
        symbol = self._symbol(params)
        await self._latency()
        orders, events = self._engine.cancel_all(symbol, now_ms())
        self._publish(events)
        cancel_ids = [e.cancel_client_order_id for e in events if isinstance(e, ExecutionEvent) and e.execution_type == "CANCELED"]
        return [canceled_order_json(order, self._specs[symbol], cancel_id) for order, cancel_id in zip(orders, cancel_ids, strict=True)]

    # -- helpers -------------------------------------------------------------------------------------------

    async def _latency(self) -> None:
        if self._faults.order_latency_ms > 0:
            await asyncio.sleep(self._faults.order_latency_ms / 1000)

    def _symbol(self, params: Params) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise VenueRejection(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in self._specs:
            raise VenueRejection(-1121, "Invalid symbol.")
        return symbol

    def _requested_symbols(self, params: Params) -> list[str]:
        if "symbol" in params:
            return [self._symbol(params)]
        if "symbols" in params:
            try:
                symbols = json.loads(params["symbols"])
            except json.JSONDecodeError:
                raise VenueRejection(-1100, "Illegal characters found in parameter 'symbols'.") from None
            if not isinstance(symbols, list) or any(s not in self._specs for s in symbols):
                raise VenueRejection(-1121, "Invalid symbol.")
            return symbols
        return list(self._specs)


def _error(rejection: VenueRejection) -> web.Response:
    return web.Response(
        status=rejection.http_status,
        text=json.dumps(error_body(rejection.code, rejection.msg)),
        content_type="application/json",
    )


def _int_param(params: Params, name: str, default: int | None) -> int | None:
    if name not in params:
        return default
    try:
        return int(params[name])
    except ValueError:
        raise VenueRejection(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None


def _decimal_param(params: Params, name: str) -> Decimal | None:
    if name not in params:
        return None
    try:
        value = Decimal(params[name])
    except InvalidOperation:
        raise VenueRejection(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.") from None
    if not value.is_finite() or value <= 0:
        raise VenueRejection(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")
    return value
