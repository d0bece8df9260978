"""
``BinanceSpotEmulator``: a loopback Binance spot venue on one aiohttp port.

Routes: ``/stream`` market streams, ``/ws-api/v3`` the WebSocket API (user data), ``/_emulator/faults``
the admin endpoint (no such path exists on the real venue), everything else REST. The market is a replay of
catalog data re-stamped to the wall clock; the account's orders match against the freshest book the replayed
depth, bookTicker and trades reveal (``keel.live.emulator.venue_view``).
"""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType
from aiohttp import web

from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.book import L2Book
from keel.live.emulator.config import EmulatorConfig
from keel.live.emulator.faults import Faults
from keel.live.emulator.feed import DepthChange
from keel.live.emulator.feed import FeedEvent
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.feed import load_market_feed
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.matching import BalanceEvent
from keel.live.emulator.matching import BookLevelEvent
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import MatchingEngine
from keel.live.emulator.matching import VenueEvent
from keel.live.emulator.protocol import account_position
from keel.live.emulator.protocol import execution_report
from keel.live.emulator.rest import RestApi
from keel.live.emulator.rest import now_ms
from keel.live.emulator.signing import SignatureChecker
from keel.live.emulator.sockets import MarketSocket
from keel.live.emulator.symbols import SymbolSpec
from keel.live.emulator.symbols import symbol_spec
from keel.live.emulator.ws_api import WsApi

ADMIN_FAULTS_PATH = "/_emulator/faults"
# Replay yields to the event loop at least this often when it runs behind, so sockets keep flowing.
_YIELD_EVERY_EVENTS = 200
_SLOW_DEPTH_INTERVAL_S = 1.0
# Query parameters never written to the request log.
_SECRET_PARAMS = frozenset({"signature", "apiKey"})


@dataclass(frozen=True)
class RequestRecord:
    """
    One request the venue received (for protocol tests). Signatures and keys are never recorded.

    Parameters
    ----------
    time_ns : int
        Wall-clock receive time.
    method : str
        HTTP method, WS-API method (``session.logon``) or stream command (``SUBSCRIBE``).
    path : str
        Request path (``/api/v3/order``, ``/ws-api/v3``, ``/stream``).
    params : dict[str, Any]
        Parameters without ``signature`` and ``apiKey``.
    """

    time_ns: int
    method: str
    path: str
    params: dict[str, Any]


class BinanceSpotEmulator:
    """
    A loopback Binance spot venue replaying a catalog; see ``EmulatorConfig`` for the knobs.

    After ``start()``: ``http_url`` is the REST base (``base_url_http``), ``ws_stream_url`` the market
    stream base (data client ``base_url_ws``; the adapter appends ``/stream``) and ``ws_api_url`` the
    WS-API URL (exec client ``base_url_ws``, used verbatim). ``feed_finished`` is set when the replay has
    sent its last event; the venue keeps serving (orders match against the last book) until ``stop()``.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = Faults(
            slippage_bps=config.slippage_bps,
            drop_fill_every=config.drop_fill_every,
            order_latency_ms=config.order_latency_ms,
            extra_fee_bps=config.extra_fee_bps,
        )
        self.feed_finished = asyncio.Event()
        self._market_watched = asyncio.Event()
        self._request_log: list[RequestRecord] = []
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._port: int | None = None
        self.specs: dict[str, SymbolSpec] = {}
        self.books: dict[str, L2Book] = {}
        self.engine: MatchingEngine | None = None
        self.market: MarketStreams | None = None
        self._ws_api: WsApi | None = None
        self._rest: RestApi | None = None

    # -- interface -----------------------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self._url_host()}:{self._bound_port()}"

    @property
    def ws_stream_url(self) -> str:
        """Market stream base URL, e.g. ``ws://127.0.0.1:PORT``."""
        return f"ws://{self._url_host()}:{self._bound_port()}"

    @property
    def ws_api_url(self) -> str:
        """WS-API URL, e.g. ``ws://127.0.0.1:PORT/ws-api/v3``."""
        return f"ws://{self._url_host()}:{self._bound_port()}/ws-api/v3"

    @property
    def request_log(self) -> list[RequestRecord]:
        """Return a copy of the requests received so far, oldest first."""
        return list(self._request_log)

    async def start(self) -> None:
        """Load the replay, bind the port and start replaying (at the first market subscription if so configured); raise on a bad catalog or a bind failure."""
        config = self.config
        feed = await asyncio.to_thread(load_market_feed, config.catalog_path, list(config.instrument_ids), config.start_ns, config.end_ns)
        self.specs = {spec.symbol: spec for spec in map(symbol_spec, feed.instruments)}
        self.books = {symbol: L2Book() for symbol in self.specs}
        balances = SpotBalances({asset: Decimal(amount) for asset, amount in config.starting_balances.items()})
        self.engine = MatchingEngine(self.specs, self.books, balances, self.faults)
        self.market = MarketStreams(self.specs, self.books)
        for change in feed.warmup:
            self.market.apply(change)
            self.engine.on_depth_changed(change.symbol, change.ts_init, now_ms())
        checker = SignatureChecker(config.api_secret)
        self._ws_api = WsApi(config.api_key, checker, config.require_ed25519_logon, now_ms, self._log)
        self._rest = RestApi(config.api_key, checker, self.specs, self.engine, balances, self.market, self.faults, self._publish)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self._port = self._runner.addresses[0][1]
        if not config.replay_on_first_subscription:
            self._market_watched.set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._replay(feed.events)), loop.create_task(self._flush_slow_depth())]

    async def stop(self) -> None:
        """Stop the replay, close every connection and release the port."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        sockets = [*(self.market.sockets if self.market else ()), *(self._ws_api.sockets if self._ws_api else ())]
        for socket in sockets:
            with contextlib.suppress(Exception):
                await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- routing -------------------------------------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.StreamResponse:
        params = {key: value for key, value in request.query.items() if key not in _SECRET_PARAMS}
        self._log(request.method, request.path, params)
        if request.path == "/stream" or request.path.startswith("/stream/"):
            return await self._serve_market_socket(request)
        if request.path == "/ws-api/v3":
            assert self._ws_api is not None
            return await self._ws_api.handle(request)
        if request.path == ADMIN_FAULTS_PATH:
            return await self._admin_faults(request)
        assert self._rest is not None
        return await self._rest.handle(request)

    async def _admin_faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ValueError("faults: expected a JSON object such as {\"slippage_bps\": 5}")
                self.faults.update(changes)
            except (ValueError, json.JSONDecodeError) as error:
                return web.json_response({"error": str(error)}, status=400)
        elif request.method != "GET":
            return web.json_response({"error": f"{request.method} not allowed; use GET or POST"}, status=405)
        return web.json_response(self.faults.as_dict())

    async def _serve_market_socket(self, request: web.Request) -> web.WebSocketResponse:
        assert self.market is not None
        websocket = web.WebSocketResponse(autoping=True, heartbeat=None)
        await websocket.prepare(request)
        streams = {name for name in request.query.get("streams", "").split("/") if name}
        socket = MarketSocket(websocket, streams)
        self.market.sockets.add(socket)
        if streams:
            self._market_watched.set()
        try:
            async for message in websocket:
                if message.type == WSMsgType.TEXT:
                    socket.send(json.dumps(self._stream_command(socket, message.data), separators=(",", ":")))
        finally:
            self.market.sockets.discard(socket)
            await socket.close()
        return websocket

    def _stream_command(self, socket: MarketSocket, text: str) -> dict[str, Any]:
        try:
            command = json.loads(text)
            method, params, command_id = command["method"], command.get("params") or [], command.get("id")
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected {\"method\", \"params\", \"id\"}"}}
        self._log(str(method), "/stream", {"params": params})
        if method == "SUBSCRIBE":
            socket.streams.update(str(name) for name in params)
            if socket.streams:
                self._market_watched.set()
            return {"result": None, "id": command_id}
        if method == "UNSUBSCRIBE":
            socket.streams.difference_update(str(name) for name in params)
            return {"result": None, "id": command_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(socket.streams), "id": command_id}
        return {"error": {"code": 1, "msg": f"Unknown method {method!r}"}, "id": command_id}

    # -- market replay -------------------------------------------------------------------------------------

    async def _replay(self, events: list[FeedEvent]) -> None:
        await self._market_watched.wait()
        loop = asyncio.get_running_loop()
        speed = self.config.speed
        data_start = events[0].ts_init
        wall_start = loop.time()
        behind = 0
        for event in events:
            delay = wall_start + (event.ts_init - data_start) / 1e9 / speed - loop.time()
            if delay > 0:
                behind = 0
                await asyncio.sleep(delay)
            else:
                behind += 1
                if behind % _YIELD_EVERY_EVENTS == 0:
                    await asyncio.sleep(0)
            self._play(event)
        assert self.market is not None
        self.market.flush_slow_diffs(now_ms())
        self.feed_finished.set()

    def _play(self, event: FeedEvent) -> None:
        assert self.market is not None and self.engine is not None
        now = now_ms()
        if isinstance(event, TradePrint):
            self.market.publish_trade(event, now)
            self._publish(self.engine.on_trade(event, now))
        elif isinstance(event, QuotePrint):
            self.market.publish_quote(event)
            self._publish(self.engine.on_quote(event, now))
        elif isinstance(event, DepthChange):
            self.market.publish_depth(event.symbol, self.market.apply(event), now)
            self._publish(self.engine.on_depth_changed(event.symbol, event.ts_init, now))

    async def _flush_slow_depth(self) -> None:
        assert self.market is not None
        while True:
            await asyncio.sleep(_SLOW_DEPTH_INTERVAL_S)
            self.market.flush_slow_diffs(now_ms())

    # -- user data -----------------------------------------------------------------------------------------

    def _publish(self, events: list[VenueEvent]) -> None:
        """Send the events of one venue action in order; liquidity taken goes out as one diff per symbol."""
        assert self.market is not None and self._ws_api is not None
        taken: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
        for event in events:
            if isinstance(event, ExecutionEvent):
                self._ws_api.push(execution_report(event, self.specs[event.order.symbol]))
            elif isinstance(event, BalanceEvent):
                self._ws_api.push(account_position(event))
            elif isinstance(event, BookLevelEvent):
                taken.setdefault(event.symbol, []).append((event.side, event.price, event.quantity))
        for symbol, levels in taken.items():
            self.market.publish_depth(symbol, levels, now_ms())

    # -- helpers -------------------------------------------------------------------------------------------

    def _log(self, method: str, path: str, params: dict[str, Any]) -> None:
        self._request_log.append(RequestRecord(time.time_ns(), method, path, params))

    def _bound_port(self) -> int:
        if self._port is None:
            raise RuntimeError("BinanceSpotEmulator: the URLs are known only after start()")
        return self._port

    def _url_host(self) -> str:
        host = self.config.host
        return f"[{host}]" if ":" in host else host
