"""A tiny deterministic strategy for the live tests: buy after N trades, sell after M, flatten on stop."""

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
