"""Trend following: trade the sign of a fast EMA minus a slow one, long-only on spot, long and short on perpetuals."""

from decimal import Decimal

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Quantity

from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig


class EMACrossConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``EMACross`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade. A spot pair (``CurrencyPair``) is traded long-only; any other instrument (a
        perpetual) long on an up-cross and short on a down-cross.
    bar_type : BarType, optional
        The bars whose closes feed the EMAs (e.g. ``BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL``); None feeds
        them every trade print, and the periods count trades.
    fast_period : PositiveInt, default 50
        Period of the fast EMA, in trades (or bars).
    slow_period : PositiveInt, default 200
        Period of the slow EMA, in trades (or bars); must exceed ``fast_period``.
    entry_threshold_bps : NonNegativeFloat, default 1.0
        How far (basis points of the slow EMA) the fast EMA must be above the slow one to go long, and below it
        to leave a long (and, on a perpetual, go short). A band around zero stops the strategy flip-flopping on
        noise.

    """

    instrument_id: InstrumentId
    bar_type: BarType | None = None
    fast_period: PositiveInt = 50
    slow_period: PositiveInt = 200
    entry_threshold_bps: NonNegativeFloat = 1.0

    def __post_init__(self) -> None:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period ({self.fast_period}) must be less than slow_period ({self.slow_period})",
            )
        if self.bar_type is not None and self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type ({self.bar_type}) must be bars of instrument_id ({self.instrument_id})")


class EMACross(KeelStrategy):
    """
    EMA cross on trade ticks or bars, one market order at a time, flat on stop.

    Above the band the target is long; below it the target is short on a perpetual and flat on a spot pair. A
    perpetual's reversal is one order (the position plus a new entry), so the strategy is never flat for a bar
    between a long and a short.

    Decisions depend only on the trade (or bar) stream and the strategy's own orders and position, never on the
    wall clock, so a backtest over a recorded live session takes the same decisions as the live node did.

    Exits close the position rounded down to the venue's size step (``keel.sizing`` dust rule): Binance takes the
    spot buy commission in the bought asset, so a live spot position is slightly smaller than the quantity bought
    and off the step; the part below one step is dust the venue will not trade, and counts as flat.
    """

    def __init__(self, config: EMACrossConfig) -> None:
        super().__init__(config)
        self.fast_ema = ExponentialMovingAverage(config.fast_period)
        self.slow_ema = ExponentialMovingAverage(config.slow_period)
        self.working_order: ClientOrderId | None = None
        self.can_short = False
        # The position as last read: +1 long, -1 short, 0 flat (or dust), None to be read at the next signal.
        self.direction: int | None = None

    def on_start_strategy(self) -> None:
        instrument_id = self.config.instrument_id
        self.can_short = not isinstance(self.instrument(instrument_id), CurrencyPair)
        if self.config.bar_type is None:
            self.register_indicator_for_trade_ticks(instrument_id, self.fast_ema)
            self.register_indicator_for_trade_ticks(instrument_id, self.slow_ema)
            self.subscribe_trade_ticks(instrument_id)
        else:
            self.register_indicator_for_bars(self.config.bar_type, self.fast_ema)
            self.register_indicator_for_bars(self.config.bar_type, self.slow_ema)
            self.subscribe_bars(self.config.bar_type)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.decide(tick.price.as_double())

    def on_bar(self, bar: Bar) -> None:
        self.decide(bar.close.as_double())

    def decide(self, price: float) -> None:
        """Move towards the position the EMA spread asks for, at most one order in flight."""
        if not self.is_warm():
            return
        # The band first: most events fall inside it, and then nothing else needs computing.
        spread_bps = (self.fast_ema.value - self.slow_ema.value) / self.slow_ema.value * 10_000
        threshold = self.config.entry_threshold_bps
        if -threshold <= spread_bps <= threshold:
            return
        # One order at a time: with an order in flight the position is about to change, and acting on the
        # stale position is how latency differences between backtest and live turn into double orders. The
        # order is tracked from the moment it is created: live, submission is queued, so for a while the order
        # is neither in flight nor open in the cache, and trades arriving in a burst would each submit one.
        if self.working_order is not None:
            if not self.cache.order(self.working_order).is_closed:
                return
            self.working_order = None
            self.direction = None
        desired = 1 if spread_bps > threshold else (-1 if self.can_short else 0)
        # Only the strategy's own orders change its position, so it is read (Decimals) only after one closed.
        if desired == self.direction:
            return
        instrument_id = self.config.instrument_id
        closable = self.closable(instrument_id)
        if closable is None:
            self.direction = 0
        else:
            self.direction = 1 if self.signed_position(instrument_id) > 0 else -1
        if desired == self.direction:
            return
        side = OrderSide.BUY if desired > self.direction else OrderSide.SELL
        if closable is None:
            quantity = self.entry_quantity(instrument_id, price)
        else:
            quantity = self.reversal_quantity(closable, price)
        self.working_order = self.submit_market(instrument_id, side, quantity)

    def reversal_quantity(self, closable: Quantity, price: float) -> Quantity:
        """Return the size of the order leaving the position: the position itself, plus a new entry if shorts are allowed."""
        if not self.can_short:
            return closable
        entry: Decimal = self.entry_quantity(self.config.instrument_id, price).as_decimal()
        return self.instrument(self.config.instrument_id).make_qty(closable.as_decimal() + entry)

    def on_stop_strategy(self) -> None:
        if self.config.bar_type is None:
            self.unsubscribe_trade_ticks(self.config.instrument_id)
        else:
            self.unsubscribe_bars(self.config.bar_type)

    def on_reset(self) -> None:
        super().on_reset()
        self.working_order = None
        self.direction = None
        self.fast_ema.reset()
        self.slow_ema.reset()
