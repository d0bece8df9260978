"""Tiny deterministic strategies for the live tests: buy after N trades, sell after M, flatten on stop; one or several instruments."""

from decimal import Decimal

from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy


class ProbeStrategyConfig(StrategyConfig, frozen=True):
    """
    Configuration of the probe strategy.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to trade.
    trade_size : Decimal
        Quantity of the market orders (base currency).
    entry_trade : int
        Buy at market on this trade tick (1-based count of ticks seen).
    exit_trade : int
        Sell the position at market on this trade tick; set it beyond the data to leave the position to
        the close-on-stop.
    """

    instrument_id: InstrumentId
    trade_size: Decimal
    entry_trade: int = 20
    exit_trade: int = 200


class ProbeStrategy(Strategy):
    """Buy ``trade_size`` at the ``entry_trade``-th trade tick, sell it at the ``exit_trade``-th, flatten on stop."""

    def __init__(self, config: ProbeStrategyConfig) -> None:
        super().__init__(config)
        self._trades_seen = 0

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._trades_seen += 1
        if self._trades_seen == self.config.entry_trade:
            self._market(OrderSide.BUY)
        elif self._trades_seen == self.config.exit_trade:
            for position in self.cache.positions_open(instrument_id=self.config.instrument_id, strategy_id=self.id):
                self._market(position.closing_order_side(), position.quantity.as_decimal())

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
        for position in self.cache.positions_open(instrument_id=self.config.instrument_id, strategy_id=self.id):
            # Binance spot takes the buy commission in BTC: sell what is held, rounded down to the size step.
            self._market(position.closing_order_side(), position.quantity.as_decimal())
        self.unsubscribe_trade_ticks(self.config.instrument_id)

    def _market(self, side: OrderSide, quantity: Decimal | None = None) -> None:
        instrument = self.cache.instrument(self.config.instrument_id)
        size = instrument.make_qty(quantity if quantity is not None else self.config.trade_size, round_down=True)
        self.submit_order(self.order_factory.market(self.config.instrument_id, side, size))


class BasketProbeStrategyConfig(StrategyConfig, frozen=True):
    """
    Configuration of the basket probe strategy.

    Parameters
    ----------
    instrument_ids : list[InstrumentId]
        Instruments to trade, each on its own trade ticks.
    trade_sizes : list[Decimal]
        Quantity of each instrument's market buy (base currency), in the order of ``instrument_ids``.
    entry_trade : int
        Buy an instrument at market on its ``entry_trade``-th trade tick.
    """

    instrument_ids: list[InstrumentId]
    trade_sizes: list[Decimal]
    entry_trade: int = 20


class BasketProbeStrategy(Strategy):
    """Buy each instrument at its ``entry_trade``-th trade tick and hold; flatten every instrument on stop."""

    def __init__(self, config: BasketProbeStrategyConfig) -> None:
        super().__init__(config)
        self._trades_seen = dict.fromkeys(config.instrument_ids, 0)

    def on_start(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.subscribe_trade_ticks(instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        instrument_id = tick.instrument_id
        self._trades_seen[instrument_id] += 1
        if self._trades_seen[instrument_id] == self.config.entry_trade:
            size = self.config.trade_sizes[self.config.instrument_ids.index(instrument_id)]
            self._market(instrument_id, OrderSide.BUY, size)

    def on_stop(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.cancel_all_orders(instrument_id)
            for position in self.cache.positions_open(instrument_id=instrument_id, strategy_id=self.id):
                # The buy's commission was taken in the bought asset: sell what is held, rounded down to the step.
                self._market(instrument_id, position.closing_order_side(), position.quantity.as_decimal())
            self.unsubscribe_trade_ticks(instrument_id)

    def _market(self, instrument_id: InstrumentId, side: OrderSide, quantity: Decimal) -> None:
        size = self.cache.instrument(instrument_id).make_qty(quantity, round_down=True)
        self.submit_order(self.order_factory.market(instrument_id, side, size))
