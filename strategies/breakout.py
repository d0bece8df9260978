"""Trend following: enter on a break of the last N bars' (or trades') range, exit at a trailing k x ATR stop."""

import math
from collections import deque

from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import AverageTrueRange
from nautilus_trader.indicators import MovingAverageType
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CurrencyPair

from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig


class RollingRange:
    """
    Highest high and lowest low of the last ``period`` updates (a Donchian channel), in O(1) per update.

    nautilus's ``DonchianChannel`` takes ``max`` and ``min`` over its whole window on every update (28 us for 300
    prints): here each side keeps a monotonic deque (indices and values), so a value leaves once something newer
    beats it or it falls out of the window.
    """

    def __init__(self, period: int) -> None:
        self.period = period
        self.count = 0
        self.upper = math.nan
        self.lower = math.nan
        self._high_indices: deque[int] = deque()
        self._highs: deque[float] = deque()
        self._low_indices: deque[int] = deque()
        self._lows: deque[float] = deque()

    @property
    def initialized(self) -> bool:
        """Return True once ``period`` updates were made."""
        return self.count >= self.period

    def update(self, high: float, low: float) -> None:
        """Fold in one bar's (or print's) high and low."""
        index = self.count
        self.count += 1
        oldest = index - self.period
        highs, lows = self._highs, self._lows
        while highs and highs[-1] <= high:
            highs.pop()
            self._high_indices.pop()
        highs.append(high)
        self._high_indices.append(index)
        if self._high_indices[0] <= oldest:
            self._high_indices.popleft()
            highs.popleft()
        while lows and lows[-1] >= low:
            lows.pop()
            self._low_indices.pop()
        lows.append(low)
        self._low_indices.append(index)
        if self._low_indices[0] <= oldest:
            self._low_indices.popleft()
            lows.popleft()
        self.upper = highs[0]
        self.lower = lows[0]

    def reset(self) -> None:
        """Forget every update."""
        self.count = 0
        self.upper = math.nan
        self.lower = math.nan
        for values in (self._high_indices, self._highs, self._low_indices, self._lows):
            values.clear()


class BreakoutConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``Breakout`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade. A spot pair (``CurrencyPair``) is traded long-only; any other instrument (a
        perpetual) long on an upside break and short on a downside break.
    bar_type : BarType, optional
        The bars to trade on (e.g. ``BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL``): the channel is their highs
        and lows, a break is a close beyond it. None trades every trade print: the channel is the prices of the
        last ``channel_period`` trades, a break is a print beyond it.
    channel_period : PositiveInt, default 20
        N: the number of bars (or trades) whose highest high and lowest low make the channel (Donchian). The
        current bar is not part of the channel it is compared with.
    atr_period : PositiveInt, default 14
        Bars (or trades) of the average true range the stop distance is measured in (Wilder's smoothing, as in
        the original ATR). On trades the true range is the absolute change from the previous print.
    stop_atr_multiple : PositiveFloat, default 3.0
        k: the stop starts k x ATR from the entry price and trails the price at that distance (it only ever
        moves in the position's favour). On trades the ATR is per print, so k is larger than on bars.

    """

    instrument_id: InstrumentId
    bar_type: BarType | None = None
    channel_period: PositiveInt = 20
    atr_period: PositiveInt = 14
    stop_atr_multiple: PositiveFloat = 3.0

    def __post_init__(self) -> None:
        if self.bar_type is not None and self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type ({self.bar_type}) must be bars of instrument_id ({self.instrument_id})")


class Breakout(KeelStrategy):
    """
    Donchian breakout with a trailing volatility stop, one market order at a time, flat on stop.

    Flat, the strategy buys when the price closes above the channel (the highest high of the previous N bars or
    trades) and, on a perpetual, sells short when it closes below it. In a position it exits only at its stop,
    which starts ``stop_atr_multiple`` ATRs from the entry's average fill price and trails the best price since.
    Each event is decided on the channel and ATR of the events before it, then folded into both.

    Decisions depend only on the data and the strategy's own orders and position, never on the wall clock. The
    stop lives in the strategy, not at the venue: it is checked on every bar close (or trade) and exits with a
    market order, identically in backtest and live.
    """

    def __init__(self, config: BreakoutConfig) -> None:
        super().__init__(config)
        self.channel = RollingRange(config.channel_period)
        # Wilder's smoothing is the original ATR and O(1) per update (nautilus's simple average is O(period)).
        self.atr = AverageTrueRange(config.atr_period, MovingAverageType.WILDER)
        self.can_short = False
        self.working_order: ClientOrderId | None = None
        # The position as the strategy last saw it after an order closed: +1 long, -1 short, 0 flat.
        self.direction = 0
        self.stop_price = math.nan
        self.entry_notional = 0.0
        self.entry_filled = 0.0

    def on_start_strategy(self) -> None:
        self.can_short = not isinstance(self.instrument(self.config.instrument_id), CurrencyPair)
        if self.config.bar_type is None:
            self.subscribe_trade_ticks(self.config.instrument_id)
        else:
            self.subscribe_bars(self.config.bar_type)

    def is_warm(self) -> bool:
        return self.channel.initialized and self.atr.initialized

    def on_trade_tick(self, tick: TradeTick) -> None:
        price = tick.price.as_double()
        self.decide(price)
        # Folded in after the decision: a print is compared with the channel of the prints before it.
        self.channel.update(price, price)
        self.atr.update_raw(price, price, price)

    def on_bar(self, bar: Bar) -> None:
        high = bar.high.as_double()
        low = bar.low.as_double()
        close = bar.close.as_double()
        self.decide(close)
        self.channel.update(high, low)
        self.atr.update_raw(high, low, close)

    def decide(self, price: float) -> None:
        """Enter on a break of the channel when flat, exit at the trailing stop when not."""
        if not self.is_warm():
            return
        if self.working_order is not None:
            if not self.cache.order(self.working_order).is_closed:
                return
            self.working_order = None
            self.sync_position(price)
        # The cheap no-trade conditions first: inside the channel when flat, on the right side of the stop when not.
        if self.direction == 0:
            if price > self.channel.upper:
                side = OrderSide.BUY
            elif price < self.channel.lower and self.can_short:
                side = OrderSide.SELL
            else:
                return
            self.entry_notional = 0.0
            self.entry_filled = 0.0
            instrument_id = self.config.instrument_id
            self.working_order = self.submit_market(instrument_id, side, self.entry_quantity(instrument_id, price))
            return
        distance = self.config.stop_atr_multiple * self.atr.value
        if self.direction > 0:
            self.stop_price = max(self.stop_price, price - distance)
            if price > self.stop_price:
                return
        else:
            self.stop_price = min(self.stop_price, price + distance)
            if price < self.stop_price:
                return
        self.working_order = self.flatten(self.config.instrument_id)
        if self.working_order is None:  # only dust was left: flat already
            self.sync_position(price)

    def sync_position(self, price: float) -> None:
        """
        Read the position after an order closed; a new position gets its stop k x ATR from its entry price.

        The entry price is the entry order's average fill price, or ``price`` for a position no entry of this
        run made (one found after a rejected entry, say): its stop must still be a number.
        """
        instrument_id = self.config.instrument_id
        was_flat = self.direction == 0
        if self.closable(instrument_id) is None:
            self.direction = 0
            self.stop_price = math.nan
            return
        self.direction = 1 if self.signed_position(instrument_id) > 0 else -1
        if was_flat:
            entry_price = self.entry_notional / self.entry_filled if self.entry_filled > 0 else price
            self.stop_price = entry_price - self.direction * self.config.stop_atr_multiple * self.atr.value

    def on_order_filled(self, event: OrderFilled) -> None:
        super().on_order_filled(event)
        # The entry's average fill price, over all its partial fills, anchors the first stop.
        if event.client_order_id == self.working_order:
            quantity = event.last_qty.as_double()
            self.entry_notional += event.last_px.as_double() * quantity
            self.entry_filled += quantity

    def on_stop_strategy(self) -> None:
        if self.config.bar_type is None:
            self.unsubscribe_trade_ticks(self.config.instrument_id)
        else:
            self.unsubscribe_bars(self.config.bar_type)

    def on_reset(self) -> None:
        super().on_reset()
        self.channel.reset()
        self.atr.reset()
        self.working_order = None
        self.direction = 0
        self.stop_price = math.nan
        self.entry_notional = 0.0
        self.entry_filled = 0.0
