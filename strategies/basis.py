"""Perpetual-spot basis: long spot and short the perpetual of the same asset when the perpetual trades rich.

The basis is ``log(perpetual) - log(spot)`` in basis points, sampled once per interval of event time. When it is
more than ``entry_z`` standard deviations above its rolling mean (and at least ``min_edge_bps`` above it), the
strategy buys the spot and sells the perpetual, the same quantity of the asset on both legs; it unwinds both when
the z-score falls back to ``exit_z`` or, with ``unwind_after_funding``, at the first sample after a funding
settlement it held the pair through (the short perpetual collects a positive rate once, then the pair is closed).

Only this direction trades: its reverse would sell spot the strategy does not hold. The two legs may sit on one
venue (an OKX unified account holds spot and swaps) or on two (Binance spot and an OKX swap).
"""

import math

import numpy as np
from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CurrencyPair

from keel.strategies.two_legs import TwoLegConfig
from keel.strategies.two_legs import TwoLegStrategy

NANOSECONDS_PER_HOUR = 3_600_000_000_000
BASIS_POINTS = 10_000.0


class BasisConfig(TwoLegConfig, frozen=True, kw_only=True):
    """
    Configuration for ``Basis`` (plus the sampling fields of every two-leg strategy, ``TwoLegConfig``).

    Parameters
    ----------
    spot_instrument_id : InstrumentId
        The spot pair (a ``CurrencyPair``): bought on entry, sold on exit.
    perp_instrument_id : InstrumentId
        The perpetual of the same base and quote asset: sold on entry, bought back on exit.
    window : PositiveInt, default 300
        Samples in the basis's rolling mean and standard deviation; no order before the window is full. At
        least 2.
    entry_z : PositiveFloat, default 2.0
        z-score of the basis above its rolling mean at which the pair is entered.
    exit_z : float, default 0.0
        z-score at or below which the pair is unwound; must be below ``entry_z``.
    min_edge_bps : NonNegativeFloat, default 0.0
        Basis points the basis must also stand above its rolling mean to enter: set it to the round trip's
        costs (four taker fees) so a statistically rich basis that cannot pay them is left alone.
    unwind_after_funding : bool, default True
        Unwind at the first sample after a funding settlement the pair was held through.
    funding_interval_hours : PositiveInt, default 8
        Hours between funding settlements, counted from 00:00 UTC (8 on Binance USDT-M and OKX swaps).

    """

    spot_instrument_id: InstrumentId
    perp_instrument_id: InstrumentId
    window: PositiveInt = 300
    entry_z: PositiveFloat = 2.0
    exit_z: float = 0.0
    min_edge_bps: NonNegativeFloat = 0.0
    unwind_after_funding: bool = True
    funding_interval_hours: PositiveInt = 8

    def __post_init__(self) -> None:
        if self.spot_instrument_id == self.perp_instrument_id:
            raise ValueError(f"spot_instrument_id and perp_instrument_id are both {self.perp_instrument_id}: expected two instruments")
        if self.window < 2:
            raise ValueError(f"window ({self.window}) must be at least 2 samples")
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be less than entry_z ({self.entry_z})")


class RollingMoments:
    """
    Mean and standard deviation of the last ``window`` samples, updated in O(1) per sample.

    The running sums are recomputed from the ring buffer each time it wraps, so rounding errors of the
    add-and-subtract updates never build up.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._values = np.zeros(window)
        self._next = 0
        self.count = 0
        self._sum = 0.0
        self._sum_squares = 0.0
        self.mean = math.nan
        self.std = math.nan

    @property
    def is_full(self) -> bool:
        """Return True once ``window`` samples are in."""
        return self.count >= self.window

    def update(self, value: float) -> None:
        """Add a sample (dropping the oldest once full) and recompute ``mean`` and ``std`` (population)."""
        position = self._next
        if self.count >= self.window:
            old = self._values[position]
            self._sum -= old
            self._sum_squares -= old * old
        else:
            self.count += 1
        self._values[position] = value
        self._sum += value
        self._sum_squares += value * value
        self._next = (position + 1) % self.window
        if self._next == 0:
            self._sum = float(self._values.sum())
            self._sum_squares = float(self._values @ self._values)
        self.mean = self._sum / self.count
        variance = self._sum_squares / self.count - self.mean * self.mean
        self.std = math.sqrt(variance) if variance > 0.0 else 0.0

    def reset(self) -> None:
        """Forget every sample."""
        self._next = 0
        self.count = 0
        self._sum = self._sum_squares = 0.0
        self.mean = self.std = math.nan


class Basis(TwoLegStrategy):
    """
    Cash-and-carry on a rich perpetual basis: long spot, short perpetual, market orders, flat on stop.

    The first leg is the spot, the second the perpetual (``pair_side`` +1 is the only pair it holds). Decisions
    depend only on the two price streams (their event times included, which also place the funding settlements)
    and the strategy's own orders and positions, never on the wall clock.
    """

    def __init__(self, config: BasisConfig) -> None:
        super().__init__(config, config.spot_instrument_id, config.perp_instrument_id)
        self.moments = RollingMoments(config.window)
        self.basis_bps = math.nan
        self.z = math.nan
        self._funding_ns = config.funding_interval_hours * NANOSECONDS_PER_HOUR
        self._entry_funding_period = -1

    def is_warm(self) -> bool:
        return self.moments.is_full

    def on_start_strategy(self) -> None:
        spot_id, perp_id = self.first_instrument_id, self.second_instrument_id
        if not isinstance(self.instrument(spot_id), CurrencyPair):
            self.log.error(f"spot_instrument_id {spot_id} is not a spot pair: stopping")
            self.stop()
            return
        # A spot pair's leg could not be sold short on entry, so the pair would be long spot alone.
        if isinstance(self.instrument(perp_id), CurrencyPair):
            self.log.error(f"perp_instrument_id {perp_id} is a spot pair, expected a perpetual: stopping")
            self.stop()
            return
        super().on_start_strategy()

    def on_sample(self) -> None:
        spot_price, perp_price = self.first_price, self.second_price
        if math.isnan(spot_price) or math.isnan(perp_price):
            return
        self.basis_bps = (math.log(perp_price) - math.log(spot_price)) * BASIS_POINTS
        moments = self.moments
        moments.update(self.basis_bps)
        if not moments.is_full or moments.std == 0.0:
            return
        self.z = z = (self.basis_bps - moments.mean) / moments.std
        if self.pair_side != 0:
            funded = self.config.unwind_after_funding and self.sample_ts // self._funding_ns > self._entry_funding_period
            if z > self.config.exit_z and not funded:
                return
        elif not (z >= self.config.entry_z and self.basis_bps - moments.mean >= self.config.min_edge_bps):
            return
        # One action at a time: with orders in flight the positions are about to change.
        if self.orders_in_flight():
            return
        if self.pair_side != 0:
            self.unwind_pair()
        else:
            # The same amount of the asset on both legs: the pair is flat the asset.
            spot_quantity, perp_quantity = self.pair_quantities(1.0, in_notional=False)
            self.enter_pair(1, spot_quantity, perp_quantity)
            self._entry_funding_period = self.sample_ts // self._funding_ns

    def on_reset(self) -> None:
        super().on_reset()
        self.moments.reset()
        self.basis_bps = self.z = math.nan
        self._entry_funding_period = -1
