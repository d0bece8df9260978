"""A real nautilus TradingNode with the Binance spot data and exec clients, trading the emulator on loopback."""

import asyncio
import secrets
import time
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.adapters.binance import BinanceAccountType
from nautilus_trader.adapters.binance import BinanceDataClientConfig
from nautilus_trader.adapters.binance import BinanceExecClientConfig
from nautilus_trader.adapters.binance import BinanceInstrumentProviderConfig
from nautilus_trader.adapters.binance import BinanceLiveDataClientFactory
from nautilus_trader.adapters.binance import BinanceLiveExecClientFactory
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.events import OrderAccepted
from nautilus_trader.model.events import OrderCanceled
from nautilus_trader.model.events import OrderEvent
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.orders import LimitOrder
from nautilus_trader.model.orders import MarketOrder
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from keel.live.emulator import EmulatorConfig
from keel.live.emulator import EmulatorThread

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")
_DEADLINE_S = 45.0


class VenueProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the venue probe.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to probe.
    limit_quantity : Decimal
        Quantity of the passive limit buy (placed 2% under the bid, then cancelled).
    market_quantity : Decimal
        Quantity of the market buy sent once the limit is cancelled.
    """

    instrument_id: InstrumentId
    limit_quantity: Decimal
    market_quantity: Decimal


class VenueProbe(Strategy):
    """Subscribe to trades, quotes and the book; on the first quote place a limit, cancel it, then buy at market."""

    def __init__(self, config: VenueProbeConfig) -> None:
        super().__init__(config)
        self.trades: list[TradeTick] = []
        self.quotes: list[QuoteTick] = []
        self.book_updates = 0
        self.order_events: list[OrderEvent] = []
        self.limit_order: LimitOrder | None = None
        self.market_order: MarketOrder | None = None

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.config.instrument_id)
        self.subscribe_quote_ticks(self.config.instrument_id)
        self.subscribe_order_book_deltas(self.config.instrument_id, book_type=BookType.L2_MBP)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.trades.append(tick)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.book_updates += 1

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.quotes.append(tick)
        if self.limit_order is None:
            instrument = self.cache.instrument(self.config.instrument_id)
            price = instrument.make_price(tick.bid_price.as_double() * 0.98)
            self.limit_order = self.order_factory.limit(self.config.instrument_id, OrderSide.BUY, instrument.make_qty(self.config.limit_quantity), price)
            self.submit_order(self.limit_order)

    def on_order_event(self, event: OrderEvent) -> None:
        self.order_events.append(event)

    def on_order_accepted(self, event: OrderAccepted) -> None:
        if self.limit_order is not None and event.client_order_id == self.limit_order.client_order_id:
            self.cancel_order(self.limit_order)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        instrument = self.cache.instrument(self.config.instrument_id)
        self.market_order = self.order_factory.market(self.config.instrument_id, OrderSide.BUY, instrument.make_qty(self.config.market_quantity))
        self.submit_order(self.market_order)

    def on_stop(self) -> None:
        self.unsubscribe_trade_ticks(self.config.instrument_id)
        self.unsubscribe_quote_ticks(self.config.instrument_id)
        self.unsubscribe_order_book_deltas(self.config.instrument_id)


def run_node_against(emulator_config: EmulatorConfig, probe: VenueProbe) -> list[str]:
    """Run a TradingNode on the emulator until every stream delivered and the market order closed (or the deadline); return request paths."""
    with EmulatorThread(emulator_config) as emulator:
        provider = BinanceInstrumentProviderConfig(load_ids=frozenset({BTCUSDT}))
        common = {
            "account_type": BinanceAccountType.SPOT,
            "base_url_http": emulator.http_url,
            "api_key": emulator_config.api_key,
            "api_secret": emulator_config.api_secret,
            "instrument_provider": provider,
        }
        node_config = TradingNodeConfig(
            trader_id="EMULATOR-001",
            logging=LoggingConfig(log_level="ERROR"),
            exec_engine=LiveExecEngineConfig(reconciliation=True),
            data_clients={"BINANCE": BinanceDataClientConfig(**common, base_url_ws=emulator.ws_stream_url)},
            exec_clients={"BINANCE": BinanceExecClientConfig(**common, base_url_ws=emulator.ws_api_url)},
            timeout_connection=15.0,
            timeout_reconciliation=10.0,
            timeout_portfolio=5.0,
            timeout_disconnection=3.0,
            timeout_post_stop=1.0,
        )
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        node = TradingNode(config=node_config, loop=loop)
        node.trader.add_strategy(probe)
        node.add_data_client_factory("BINANCE", BinanceLiveDataClientFactory)
        node.add_exec_client_factory("BINANCE", BinanceLiveExecClientFactory)
        node.build()
        started = time.monotonic()

        def stop_when_done() -> None:
            # Every stream must have delivered too: the order round trip can finish before the first trade is replayed.
            streamed = bool(probe.quotes and probe.trades) and probe.book_updates > 0
            done = streamed and probe.market_order is not None and probe.market_order.is_closed
            if done or time.monotonic() - started > _DEADLINE_S:
                node.stop()
            else:
                loop.call_later(0.2, stop_when_done)

        loop.call_later(0.5, stop_when_done)
        try:
            node.run()
        finally:
            node.dispose()
            loop.close()
        return [record.path for record in emulator.request_log]


@pytest.mark.slow
def test_trading_node_trades_the_emulator_end_to_end(sample_catalog: Path) -> None:
    config = EmulatorConfig(
        catalog_path=str(sample_catalog),
        instrument_ids=["BTCUSDT.BINANCE"],
        api_key=secrets.token_hex(32),
        api_secret=secrets.token_hex(32),
        starting_balances={"USDT": "10000"},
    )
    probe = VenueProbe(VenueProbeConfig(instrument_id=BTCUSDT, limit_quantity=Decimal("0.001"), market_quantity=Decimal("0.0005")))

    paths = run_node_against(config, probe)

    assert probe.quotes and probe.trades and probe.book_updates > 0
    assert probe.limit_order is not None and probe.limit_order.status == OrderStatus.CANCELED
    assert probe.market_order is not None and probe.market_order.status == OrderStatus.FILLED
    kinds = [type(event).__name__ for event in probe.order_events if event.client_order_id == probe.market_order.client_order_id]
    assert kinds.index("OrderAccepted") < kinds.index("OrderFilled")
    fills = [event for event in probe.order_events if isinstance(event, OrderFilled)]
    assert sum(fill.last_qty.as_decimal() for fill in fills) == Decimal("0.0005")
    assert all(fill.commission.currency.code == "BTC" for fill in fills)
    # The node used the venue the way the protocol notes say: fees, instruments, account, WS-API, streams, depth.
    for path in ("/sapi/v1/asset/tradeFee", "/api/v3/exchangeInfo", "/api/v3/account", "/ws-api/v3", "/stream", "/api/v3/depth", "/api/v3/order"):
        assert path in paths
