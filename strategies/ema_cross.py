"""Trend following: go long when a fast EMA of trade prices rises above a slow one, go flat when it falls below."""

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId

from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig


class EMACrossConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``EMACross`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade (a spot pair: the strategy is long-only).
    fast_period : PositiveInt, default 50
        Period of the fast EMA, in trades.
    slow_period : PositiveInt, default 200
        Period of the slow EMA, in trades; must exceed ``fast_period``.
    entry_threshold_bps : NonNegativeFloat, default 1.0
        How far (basis points of the slow EMA) the fast EMA must be above the slow one to enter, and below it
        to exit. A band around zero stops the strategy flip-flopping on noise.

    """

    instrument_id: InstrumentId
    fast_period: PositiveInt = 50
    slow_period: PositiveInt = 200
    entry_threshold_bps: NonNegativeFloat = 1.0

    def __post_init__(self) -> None:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period ({self.fast_period}) must be less than slow_period ({self.slow_period})",
            )


class EMACross(KeelStrategy):
    """
    Long-only EMA cross on trade ticks, one market order at a time, flat on stop.

    Decisions depend only on the trade stream and the strategy's own orders and position, never on the wall
    clock, so a backtest over a recorded live session takes the same decisions as the live node did.

    Exits sell the position rounded down to the venue's size step (``keel.sizing`` dust rule): Binance takes the
    buy commission in the bought asset, so a live position is slightly smaller than the quantity bought and off
    the step; the part below one step is dust the venue will not trade, and counts as flat.
    """

    def __init__(self, config: EMACrossConfig) -> None:
        super().__init__(config)
        self.fast_ema = ExponentialMovingAverage(config.fast_period)
        self.slow_ema = ExponentialMovingAverage(config.slow_period)
        self.working_order: ClientOrderId | None = None

    def on_start_strategy(self) -> None:
        self.register_indicator_for_trade_ticks(self.config.instrument_id, self.fast_ema)
        self.register_indicator_for_trade_ticks(self.config.instrument_id, self.slow_ema)
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        if not self.is_warm():
            return
        # The band first: most trades fall inside it, and then nothing else needs computing.
        spread_bps = (self.fast_ema.value - self.slow_ema.value) / self.slow_ema.value * 10_000
        threshold = self.config.entry_threshold_bps
        if -threshold <= spread_bps <= threshold:
            return
        # One order at a time: with an order in flight the position is about to change, and acting on the
        # stale position is how latency differences between backtest and live turn into double orders. The
        # order is tracked from the moment it is created: live, submission is queued, so for a while the order
        # is neither in flight nor open in the cache, and trades arriving in a burst would each submit one.
        if self.working_order is not None and not self.cache.order(self.working_order).is_closed:
            return
        instrument_id = self.config.instrument_id
        sellable = self.closable(instrument_id)
        if sellable is None:
            if spread_bps > threshold:
                self.working_order = self.submit_market(instrument_id, OrderSide.BUY, self.entry_quantity(instrument_id, float(tick.price)))
        elif spread_bps < -threshold:
            self.working_order = self.submit_market(instrument_id, OrderSide.SELL, sellable)

    def on_stop_strategy(self) -> None:
        self.unsubscribe_trade_ticks(self.config.instrument_id)

    def on_reset(self) -> None:
        super().on_reset()
        self.working_order = None
        self.fast_ema.reset()
        self.slow_ema.reset()
