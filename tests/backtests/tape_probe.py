"""A test strategy that takes liquidity at regular points of the tape: a market order every N trade ticks."""

from decimal import Decimal

from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy


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
