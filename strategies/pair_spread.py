"""Pair spread: trade the residual of a rolling regression of one asset's log price on another's (BTC on ETH).

The hedge ratio is the slope of an ordinary least squares fit of ``log(dependent)`` on ``log(hedge)`` over the
last ``window`` samples; the spread is the current sample's residual from that fit, and its z-score is the
residual over the residuals' standard deviation in the window. When the z-score leaves ``[-entry_z, entry_z]`` the
strategy buys the cheap leg and sells the rich one, and it unwinds both when the z-score comes back to ``exit_z``.

Spot legs cannot be sold short: a leg that would be a sale of an asset the strategy does not hold is not sent, so
on spot pairs only the long leg of each signal trades (see ``docs/strategies/statistical_arbitrage.md``). On
perpetuals both legs trade.
"""

import math

import numpy as np
from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.identifiers import InstrumentId

from keel.strategies.two_legs import TwoLegConfig
from keel.strategies.two_legs import TwoLegStrategy


class PairSpreadConfig(TwoLegConfig, frozen=True, kw_only=True):
    """
    Configuration for ``PairSpread`` (plus the sampling fields of every two-leg strategy, ``TwoLegConfig``).

    Parameters
    ----------
    dependent_instrument_id : InstrumentId
        The leg regressed (``y``, e.g. BTC); long the spread means long this leg.
    hedge_instrument_id : InstrumentId
        The regressor leg (``x``, e.g. ETH), on the same venue; long the spread means short this leg.
    window : PositiveInt, default 120
        Samples in the regression; no order before the window is full. At least 3.
    entry_z : PositiveFloat, default 2.0
        Absolute z-score of the residual beyond which a pair is entered.
    exit_z : NonNegativeFloat, default 0.5
        Absolute z-score at which a pair is unwound; must be below ``entry_z``.
    min_hedge_ratio : PositiveFloat, default 0.1
        No entry while the fitted slope is below this (a flat or negative fit is no hedge).
    max_hedge_ratio : PositiveFloat, default 10.0
        No entry while the fitted slope is above this (a slope that large makes one leg dwarf the other).

    """

    dependent_instrument_id: InstrumentId
    hedge_instrument_id: InstrumentId
    window: PositiveInt = 120
    entry_z: PositiveFloat = 2.0
    exit_z: NonNegativeFloat = 0.5
    min_hedge_ratio: PositiveFloat = 0.1
    max_hedge_ratio: PositiveFloat = 10.0

    def __post_init__(self) -> None:
        if self.dependent_instrument_id == self.hedge_instrument_id:
            raise ValueError(f"dependent_instrument_id and hedge_instrument_id are both {self.hedge_instrument_id}: expected two instruments")
        if self.dependent_instrument_id.venue != self.hedge_instrument_id.venue:
            raise ValueError(
                f"dependent_instrument_id {self.dependent_instrument_id} and hedge_instrument_id {self.hedge_instrument_id}: expected both legs on one venue",
            )
        if self.window < 3:
            raise ValueError(f"window ({self.window}) must be at least 3 samples")
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be less than entry_z ({self.entry_z})")
        if self.min_hedge_ratio >= self.max_hedge_ratio:
            raise ValueError(f"min_hedge_ratio ({self.min_hedge_ratio}) must be less than max_hedge_ratio ({self.max_hedge_ratio})")


class RollingRegression:
    """
    Ordinary least squares of ``y`` on ``x`` over the last ``window`` samples, updated in O(1) per sample.

    Running sums are kept over a ring buffer; they are recomputed from the buffer each time it wraps, so rounding
    errors of the add-and-subtract updates never build up. Callers should pass values near zero (log prices
    relative to a reference) so the sums of squares keep their precision.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._x = np.zeros(window)
        self._y = np.zeros(window)
        self._next = 0
        self.count = 0
        self._sum_x = self._sum_y = self._sum_xx = self._sum_xy = self._sum_yy = 0.0
        self.slope = math.nan
        self.intercept = math.nan
        self.z = math.nan

    @property
    def is_full(self) -> bool:
        """Return True once ``window`` samples are in."""
        return self.count >= self.window

    def update(self, x: float, y: float) -> None:
        """Add a sample (dropping the oldest once full) and refit: ``slope``, ``intercept`` and ``z`` of ``y``."""
        position = self._next
        if self.count >= self.window:
            old_x = self._x[position]
            old_y = self._y[position]
            self._sum_x -= old_x
            self._sum_y -= old_y
            self._sum_xx -= old_x * old_x
            self._sum_xy -= old_x * old_y
            self._sum_yy -= old_y * old_y
        else:
            self.count += 1
        self._x[position] = x
        self._y[position] = y
        self._sum_x += x
        self._sum_y += y
        self._sum_xx += x * x
        self._sum_xy += x * y
        self._sum_yy += y * y
        self._next = (position + 1) % self.window
        if self._next == 0:
            self._resum()
        self._fit(x, y)

    def reset(self) -> None:
        """Forget every sample."""
        self._next = 0
        self.count = 0
        self._sum_x = self._sum_y = self._sum_xx = self._sum_xy = self._sum_yy = 0.0
        self.slope = self.intercept = self.z = math.nan

    def _resum(self) -> None:
        x, y = self._x, self._y
        self._sum_x = float(x.sum())
        self._sum_y = float(y.sum())
        self._sum_xx = float(x @ x)
        self._sum_xy = float(x @ y)
        self._sum_yy = float(y @ y)

    def _fit(self, x: float, y: float) -> None:
        n = self.count
        centred_xx = self._sum_xx - self._sum_x * self._sum_x / n
        centred_xy = self._sum_xy - self._sum_x * self._sum_y / n
        centred_yy = self._sum_yy - self._sum_y * self._sum_y / n
        if n < 3 or centred_xx <= 0.0:
            self.slope = self.intercept = self.z = math.nan
            return
        self.slope = centred_xy / centred_xx
        self.intercept = (self._sum_y - self.slope * self._sum_x) / n
        residual_variance = (centred_yy - self.slope * centred_xy) / n
        # A window where y is an exact linear function of x has no residual spread to scale by.
        self.z = (y - self.intercept - self.slope * x) / math.sqrt(residual_variance) if residual_variance > 0.0 else math.nan


class PairSpread(TwoLegStrategy):
    """
    Mean reversion of a two-leg spread with a rolling hedge ratio, market orders, one pair at a time, flat on stop.

    The first leg is the dependent, the second the hedge (``pair_side`` +1 is long the spread). Decisions depend
    only on the two price streams (their event times included) and the strategy's own orders and positions, never
    on the wall clock.
    """

    def __init__(self, config: PairSpreadConfig) -> None:
        super().__init__(config, config.dependent_instrument_id, config.hedge_instrument_id)
        self.regression = RollingRegression(config.window)
        self._reference_dependent = math.nan
        self._reference_hedge = math.nan

    def is_warm(self) -> bool:
        return self.regression.is_full

    def on_sample(self) -> None:
        dependent_price, hedge_price = self.first_price, self.second_price
        if math.isnan(dependent_price) or math.isnan(hedge_price):
            return
        if math.isnan(self._reference_dependent):
            # Log prices relative to the first sample keep the regression sums small and precise.
            self._reference_dependent = math.log(dependent_price)
            self._reference_hedge = math.log(hedge_price)
        self.regression.update(math.log(hedge_price) - self._reference_hedge, math.log(dependent_price) - self._reference_dependent)
        if not self.is_warm():
            return
        z = self.regression.z
        if math.isnan(z):  # no spread to measure (a flat window): no decision either way
            return
        if self.pair_side == 0:
            if abs(z) <= self.config.entry_z:
                return
        elif (self.pair_side > 0 and z < -self.config.exit_z) or (self.pair_side < 0 and z > self.config.exit_z):
            return
        # One action at a time: with orders in flight the positions are about to change.
        if self.orders_in_flight():
            return
        if self.pair_side == 0:
            self._enter(1 if z < 0 else -1)
        else:
            self.unwind_pair()

    def _enter(self, side: int) -> None:
        slope = self.regression.slope
        if not self.config.min_hedge_ratio <= slope <= self.config.max_hedge_ratio:
            return
        # The hedge leg's notional is the slope times the dependent leg's: a log-price regression's slope is a
        # ratio of returns.
        dependent_quantity, hedge_quantity = self.pair_quantities(slope, in_notional=True)
        self.enter_pair(side, dependent_quantity, hedge_quantity)

    def on_reset(self) -> None:
        super().on_reset()
        self.regression.reset()
        self._reference_dependent = self._reference_hedge = math.nan
