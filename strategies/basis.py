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

NANOSECONDS_PER_MILLISECOND = 1_000_000
NANOSECONDS_PER_HOUR = 3_600_000_000_000
BASIS_POINTS = 10_000.0


class BasisConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``Basis`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Parameters
    ----------
    spot_instrument_id : InstrumentId
        The spot pair (a ``CurrencyPair``): bought on entry, sold on exit.
    perp_instrument_id : InstrumentId
        The perpetual of the same base and quote asset: sold on entry, bought back on exit.
    bar_spec : str, optional
        Sample from bars ``<instrument>-<bar_spec>`` (e.g. ``1-MINUTE-LAST-EXTERNAL``) instead of trade ticks.
    sample_interval_ms : PositiveInt, default 1000
        One sample per interval of event time: the last price of each leg in the interval, taken when the first
        event of a later interval arrives (with bars: the interval of the bars).
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
    bar_spec: str | None = None
    sample_interval_ms: PositiveInt = 1000
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


class Basis(KeelStrategy):
    """
    Cash-and-carry on a rich perpetual basis: long spot, short perpetual, market orders, flat on stop.

    Decisions depend only on the two price streams (their event times included, which also place the funding
    settlements) and the strategy's own orders and positions, never on the wall clock.
    """

    def __init__(self, config: BasisConfig) -> None:
        super().__init__(config)
        self.moments = RollingMoments(config.window)
        self.basis_bps = math.nan
        self.z = math.nan
        self.holding = False
        self.working_orders: list[ClientOrderId] = []
        self._spot_id = config.spot_instrument_id
        self._interval_ns = config.sample_interval_ms * NANOSECONDS_PER_MILLISECOND
        self._funding_ns = config.funding_interval_hours * NANOSECONDS_PER_HOUR
        self._bucket = -1
        self._sample_ts = 0
        self._entry_funding_period = -1
        self._spot_price = math.nan
        self._perp_price = math.nan

    def is_warm(self) -> bool:
        return self.moments.is_full

    def bar_types(self) -> list[BarType]:
        """Return the bar types sampled (empty when sampling trade ticks)."""
        if self.config.bar_spec is None:
            return []
        return [BarType.from_str(f"{instrument_id}-{self.config.bar_spec}") for instrument_id in (self._spot_id, self.config.perp_instrument_id)]

    def on_start_strategy(self) -> None:
        if not isinstance(self.instrument(self._spot_id), CurrencyPair):
            self.log.error(f"spot_instrument_id {self._spot_id} is not a spot pair: stopping")
            self.stop()
            return
        if self.config.bar_spec is None:
            self.subscribe_trade_ticks(self._spot_id)
            self.subscribe_trade_ticks(self.config.perp_instrument_id)
        else:
            for bar_type in self.bar_types():
                self.subscribe_bars(bar_type)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._on_price(tick.instrument_id, tick.price.as_double(), tick.ts_event)

    def on_bar(self, bar: Bar) -> None:
        self._on_price(bar.bar_type.instrument_id, bar.close.as_double(), bar.ts_event)

    def _on_price(self, instrument_id: InstrumentId, price: float, ts_event: int) -> None:
        # The cheap path first: inside an interval an event only records its price.
        bucket = ts_event // self._interval_ns
        if bucket > self._bucket:
            if self._bucket >= 0:
                self._sample_ts = ts_event
                self._on_sample()
            self._bucket = bucket
        if instrument_id == self._spot_id:
            self._spot_price = price
        else:
            self._perp_price = price

    def _on_sample(self) -> None:
        if math.isnan(self._spot_price) or math.isnan(self._perp_price):
            return
        self.basis_bps = (math.log(self._perp_price) - math.log(self._spot_price)) * BASIS_POINTS
        moments = self.moments
        moments.update(self.basis_bps)
        if not moments.is_full or moments.std == 0.0:
            return
        self.z = z = (self.basis_bps - moments.mean) / moments.std
        if self.holding:
            funded = self.config.unwind_after_funding and self._sample_ts // self._funding_ns > self._entry_funding_period
            if z > self.config.exit_z and not funded:
                return
        elif not (z >= self.config.entry_z and self.basis_bps - moments.mean >= self.config.min_edge_bps):
            return
        # One action at a time: with orders in flight the positions are about to change.
        for client_order_id in self.working_orders:
            if not self.cache.order(client_order_id).is_closed:
                return
        if self.holding:
            self._unwind()
        else:
            self._enter()

    def _enter(self) -> None:
        spot_quantity, perp_quantity = self.pair_quantities()
        self.working_orders = [
            self.submit_market(self._spot_id, OrderSide.BUY, spot_quantity),
            self.submit_market(self.config.perp_instrument_id, OrderSide.SELL, perp_quantity),
        ]
        self.holding = True
        self._entry_funding_period = self._sample_ts // self._funding_ns

    def _unwind(self) -> None:
        self.working_orders = [
            order_id
            for order_id in (self.flatten(self._spot_id), self.flatten(self.config.perp_instrument_id))
            if order_id is not None
        ]
        self.holding = False

    def pair_quantities(self) -> tuple[Quantity, Quantity]:
        """
        Return the spot and perpetual quantities of one pair at the last prices: the same amount of the asset.

        The leg whose minimum size is the larger amount of the asset decides; the other leg is that amount on its
        own step (a perpetual's quantity is in contracts of ``multiplier`` units), never below its own minimum.
        """
        spot = self.instrument(self._spot_id)
        perp = self.instrument(self.config.perp_instrument_id)
        spot_minimum = self.entry_quantity(self._spot_id, self._spot_price)
        perp_minimum = self.entry_quantity(self.config.perp_instrument_id, self._perp_price)
        multiplier = float(perp.multiplier)
        spot_units = spot_minimum.as_double()
        perp_units = perp_minimum.as_double() * multiplier
        if spot_units >= perp_units:
            return spot_minimum, max(perp_minimum, perp.make_qty(spot_units / multiplier))
        return max(spot_minimum, spot.make_qty(perp_units)), perp_minimum

    def on_stop_strategy(self) -> None:
        if self.config.bar_spec is None:
            self.unsubscribe_trade_ticks(self._spot_id)
            self.unsubscribe_trade_ticks(self.config.perp_instrument_id)
        else:
            for bar_type in self.bar_types():
                self.unsubscribe_bars(bar_type)

    def on_reset(self) -> None:
        super().on_reset()
        self.moments.reset()
        self.basis_bps = self.z = math.nan
        self.holding = False
        self.working_orders = []
        self._bucket = -1
        self._sample_ts = 0
        self._entry_funding_period = -1
        self._spot_price = self._perp_price = math.nan
