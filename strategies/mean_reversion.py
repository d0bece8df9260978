"""Mean reversion: fade a price that strays from its rolling mean, while the market is calm, until it comes back."""

from math import sqrt

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoFuture
from nautilus_trader.model.instruments import CryptoPerpetual

from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig

LONG = 1
FLAT = 0
SHORT = -1


class MeanReversionConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``MeanReversion`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Every window and holding time counts price events (trade prints, or bars when ``bar_type`` is set), never
    wall-clock time, so a backtest and a live node over the same prints decide alike.

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade. A spot pair is traded long-only; a perpetual or dated future long and short.
    bar_type : BarType, optional
        Trade the closes of these bars (of ``instrument_id``) instead of trade prints.
    window : PositiveInt, default 200
        Number of prices (the current one included) whose mean and population standard deviation make the
        z-score ``(price - mean) / std``; at least 2.
    entry_z : PositiveFloat, default 2.5
        Enter when the z-score is beyond this: below ``-entry_z`` buy, above ``+entry_z`` sell short (where
        shorting is allowed). After an entry, another needs the z-score to have come back within ``entry_z``
        first, so a timed-out position in a trend is not re-entered at once.
    exit_z : NonNegativeFloat, default 0.0
        Exit a long when the z-score has come back to ``-exit_z`` or above (a short: to ``+exit_z`` or below);
        0 waits for the mean itself. Must be less than ``entry_z``.
    min_deviation_bps : NonNegativeFloat, default 0.0
        Enter only when the price is also at least this far from the mean, in basis points of the mean: in a
        quiet market a 2-sigma move can be far smaller than the round-trip cost, and fading it cannot pay.
    max_holding_events : PositiveInt, default 400
        Exit after this many price events in a position, reverted or not: a deviation that does not revert
        within it is a trend, not noise.
    volatility_window : PositiveInt, default 1000
        Number of price-to-price returns whose root mean square is the realized volatility (in basis points per
        event) the volatility filter reads; also part of the warm-up.
    max_volatility_bps : PositiveFloat, optional
        Enter only while the realized volatility is at most this (basis points per event); None turns the filter
        off. In a volatile regime deviations are moves, not noise. Exits are never blocked.

    """

    instrument_id: InstrumentId
    bar_type: BarType | None = None
    window: PositiveInt = 200
    entry_z: PositiveFloat = 2.5
    exit_z: NonNegativeFloat = 0.0
    min_deviation_bps: NonNegativeFloat = 0.0
    max_holding_events: PositiveInt = 400
    volatility_window: PositiveInt = 1000
    max_volatility_bps: PositiveFloat | None = None

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window ({self.window}) must be at least 2: a standard deviation needs two prices")
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be less than entry_z ({self.entry_z})")
        if self.bar_type is not None and self.bar_type.instrument_id != self.instrument_id:
            raise ValueError(f"bar_type ({self.bar_type}) must be bars of instrument_id ({self.instrument_id})")


class RollingMoments:
    """
    Mean and population variance of the last ``size`` values, O(1) per value and no allocation.

    Running sums of values minus an anchor keep the variance accurate (a sum of squared prices near 60,000
    would cancel catastrophically); each time the ring wraps, the anchor moves to the window's mean and the
    sums are recomputed from the stored values, so rounding errors never accumulate past one window.
    """

    __slots__ = ("size", "values", "index", "count", "anchor", "total", "total_squares")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = [0.0] * size
        self.index = 0
        self.count = 0
        self.anchor = 0.0
        self.total = 0.0
        self.total_squares = 0.0

    @property
    def is_full(self) -> bool:
        """Return True once ``size`` values were pushed."""
        return self.count == self.size

    def push(self, value: float) -> None:
        """Add ``value``, dropping the oldest one once the window is full."""
        if self.count == 0:
            self.anchor = value
        shifted = value - self.anchor
        if self.count == self.size:
            dropped = self.values[self.index] - self.anchor
            self.total += shifted - dropped
            self.total_squares += shifted * shifted - dropped * dropped
        else:
            self.count += 1
            self.total += shifted
            self.total_squares += shifted * shifted
        self.values[self.index] = value
        self.index += 1
        if self.index == self.size:
            self.index = 0
            self._recompute()

    def mean(self) -> float:
        """Return the mean of the values in the window."""
        return self.anchor + self.total / self.count

    def variance(self) -> float:
        """Return the population variance of the values in the window (0 if rounding made it negative)."""
        shifted_mean = self.total / self.count
        return max(self.total_squares / self.count - shifted_mean * shifted_mean, 0.0)

    def mean_square(self) -> float:
        """Return the mean of the squared values in the window."""
        mean = self.mean()
        return self.variance() + mean * mean

    def reset(self) -> None:
        """Forget every value."""
        self.index = 0
        self.count = 0
        self.anchor = self.total = self.total_squares = 0.0

    def _recompute(self) -> None:
        # Called when the ring wraps, so every slot holds a value.
        self.anchor = sum(self.values) / self.size
        self.total = 0.0
        self.total_squares = 0.0
        for value in self.values:
            shifted = value - self.anchor
            self.total += shifted
            self.total_squares += shifted * shifted


class MeanReversion(KeelStrategy):
    """
    Fade z-score extremes of trade prices (or bar closes) while realized volatility is low, one position at a time.

    Long-only on spot pairs, long and short on perpetuals and futures. Each price event updates the two rolling
    windows, then the cheapest test that can rule out an order runs first (flat: is the z-score inside the entry
    band; in a position: has it reverted, has the holding time run out), so nearly every event returns after a
    few float operations. Decisions depend only on the price stream and the strategy's own orders and position,
    never on the wall clock. Exits close what the ``keel.sizing`` dust rule leaves closable (``flatten``).
    """

    def __init__(self, config: MeanReversionConfig) -> None:
        super().__init__(config)
        self.prices = RollingMoments(config.window)
        self.returns = RollingMoments(config.volatility_window)
        self.previous_price = 0.0
        self.entry_z_squared = config.entry_z * config.entry_z
        self.max_volatility_squared = None if config.max_volatility_bps is None else (config.max_volatility_bps / 10_000) ** 2
        self.allows_short = False
        self.position_side = FLAT
        self.held_events = 0
        self.armed = True
        self.working_order: ClientOrderId | None = None

    def on_start_strategy(self) -> None:
        instrument_id = self.config.instrument_id
        self.allows_short = isinstance(self.instrument(instrument_id), (CryptoPerpetual, CryptoFuture))
        self._refresh_position_side()
        if self.config.bar_type is not None:
            self.subscribe_bars(self.config.bar_type)
        else:
            self.subscribe_trade_ticks(instrument_id)

    def is_warm(self) -> bool:
        """Return True once both rolling windows are full."""
        return self.prices.is_full and self.returns.is_full

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.on_price(tick.price.as_double())

    def on_bar(self, bar: Bar) -> None:
        self.on_price(bar.close.as_double())

    def on_price(self, price: float) -> None:
        """Update the windows with one price event and decide on it."""
        if self.previous_price > 0.0:
            self.returns.push(price / self.previous_price - 1.0)
        self.previous_price = price
        self.prices.push(price)
        if not self.is_warm():
            return
        mean = self.prices.mean()
        deviation = price - mean
        variance = self.prices.variance()
        # |z| <= entry_z without a square root or a division; a flat window (variance 0) has no z-score.
        inside_band = deviation * deviation <= self.entry_z_squared * variance
        if inside_band:
            self.armed = True
        if self.position_side == FLAT:
            if inside_band or not self.armed or variance == 0.0:
                return
            self._enter(price, mean, deviation)
        else:
            self.held_events += 1
            z = deviation / sqrt(variance) if variance > 0.0 else 0.0
            reverted = z >= -self.config.exit_z if self.position_side == LONG else z <= self.config.exit_z
            if reverted or self.held_events >= self.config.max_holding_events:
                self._exit()

    def _enter(self, price: float, mean: float, deviation: float) -> None:
        if deviation > 0.0 and not self.allows_short:
            return
        if abs(deviation) < self.config.min_deviation_bps / 10_000 * mean:
            return
        if self.max_volatility_squared is not None and self.returns.mean_square() > self.max_volatility_squared:
            return
        if self._order_working():
            return
        instrument_id = self.config.instrument_id
        side = OrderSide.BUY if deviation < 0.0 else OrderSide.SELL
        self.working_order = self.submit_market(instrument_id, side, self.entry_quantity(instrument_id, price))
        self.armed = False

    def _exit(self) -> None:
        if self._order_working():
            return
        self.working_order = self.flatten(self.config.instrument_id)
        if self.working_order is None:
            # Nothing an order can close (dust below the minimum notional): flat as far as decisions go.
            self.position_side = FLAT
            self.held_events = 0

    def _order_working(self) -> bool:
        # One order at a time: acting on the position while an order is in flight is how latency differences
        # between backtest and live turn into double orders. The order is tracked from its creation: live,
        # submission is queued, so for a while it is neither in flight nor open in the cache.
        return self.working_order is not None and not self.cache.order(self.working_order).is_closed

    def on_order_filled(self, event: OrderFilled) -> None:
        super().on_order_filled(event)
        self._refresh_position_side()

    def _refresh_position_side(self) -> None:
        # Fills are rare: the position is read from the portfolio here and kept as an int for every price event.
        # A remainder no order can close at the last price (the dust rule, as ``flatten`` applies it) is flat.
        instrument_id = self.config.instrument_id
        if self.closable(instrument_id, self.previous_price or None) is None:
            side = FLAT
        else:
            side = LONG if self.signed_position(instrument_id) > 0 else SHORT
        if side != self.position_side:
            self.held_events = 0
        self.position_side = side

    def on_stop_strategy(self) -> None:
        if self.config.bar_type is not None:
            self.unsubscribe_bars(self.config.bar_type)
        else:
            self.unsubscribe_trade_ticks(self.config.instrument_id)

    def on_reset(self) -> None:
        super().on_reset()
        self.prices.reset()
        self.returns.reset()
        self.previous_price = 0.0
        self.position_side = FLAT
        self.held_events = 0
        self.armed = True
        self.working_order = None
