"""Test strategies that probe the fill model at regular points of the real tape, and the variants that run them."""

from decimal import Decimal

import msgspec
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from keel.variant import Variant


def probe_variant(strategy: str, config: dict[str, object]) -> Variant:
    """Return a Binance spot variant running ``TapeProbe`` or ``PassiveProbe`` (this module) with ``config``."""
    return msgspec.convert(
        {
            "name": f"{strategy.lower()}-{config['instrument_id']}",
            "venue": "binance_spot",
            "strategy": {"strategy_path": f"probes:{strategy}", "config_path": f"probes:{strategy}Config", "config": config},
        },
        Variant,
    )


class TapeProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the tape probe.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to trade.
    trade_size : Decimal
        Quantity of every market order (base currency).
    every_n_trades : int
        Send a market order on every N-th trade tick, alternating BUY and SELL.
    """

    instrument_id: InstrumentId
    trade_size: Decimal
    every_n_trades: int = 50


class TapeProbe(Strategy):
    """Alternate market BUY and SELL orders of ``trade_size`` every ``every_n_trades`` trade ticks."""

    def __init__(self, config: TapeProbeConfig) -> None:
        super().__init__(config)
        self._trades_seen = 0
        self._next_side = OrderSide.BUY

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._trades_seen += 1
        if self._trades_seen % self.config.every_n_trades:
            return
        instrument = self.cache.instrument(self.config.instrument_id)
        self.submit_order(self.order_factory.market(self.config.instrument_id, self._next_side, instrument.make_qty(self.config.trade_size)))
        self._next_side = OrderSide.SELL if self._next_side == OrderSide.BUY else OrderSide.BUY

    def on_stop(self) -> None:
        self.unsubscribe_trade_ticks(self.config.instrument_id)


class PassiveProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the passive probe.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to trade.
    trade_size : Decimal
        Quantity of every limit order (base currency).
    every_n_trades : int
        Place an order on every N-th trade tick when none is working, alternating BUY at the best bid and
        SELL at the best ask.
    cancel_after_trades : int
        Cancel a working order this many trade ticks after placing it.
    """

    instrument_id: InstrumentId
    trade_size: Decimal
    every_n_trades: int = 20
    cancel_after_trades: int = 200


class PassiveProbe(Strategy):
    """Join the best bid or ask with a post-only limit order; cancel it after a while; flat on stop is not needed."""

    def __init__(self, config: PassiveProbeConfig) -> None:
        super().__init__(config)
        self._trades_seen = 0
        self._placed_at = 0
        self._next_side = OrderSide.BUY
        self._quote: QuoteTick | None = None

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.config.instrument_id)
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self._quote = tick

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._trades_seen += 1
        working = self.cache.orders_open(instrument_id=self.config.instrument_id, strategy_id=self.id)
        if working:
            if self._trades_seen - self._placed_at >= self.config.cancel_after_trades:
                self.cancel_all_orders(self.config.instrument_id)
            return
        if self._trades_seen % self.config.every_n_trades or self._quote is None:
            return
        price = self._quote.bid_price if self._next_side == OrderSide.BUY else self._quote.ask_price
        instrument = self.cache.instrument(self.config.instrument_id)
        order = self.order_factory.limit(
            self.config.instrument_id,
            self._next_side,
            instrument.make_qty(self.config.trade_size),
            price,
            time_in_force=TimeInForce.GTC,
            post_only=True,
        )
        self.submit_order(order)
        self._placed_at = self._trades_seen
        self._next_side = OrderSide.SELL if self._next_side == OrderSide.BUY else OrderSide.BUY

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
