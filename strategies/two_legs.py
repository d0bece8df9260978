"""What a strategy trading two instruments as one pair does the same way: sampling both legs, sizing and sending them.

The statistical-arbitrage families (``pair_spread``, ``basis``) subclass :class:`TwoLegStrategy` with a config
subclassing :class:`TwoLegConfig` and implement only their signal in :meth:`TwoLegStrategy.on_sample`. The class
here does the rest:

- **Sampling**: trade prints (or bar closes with ``bar_spec``) of both legs; an event's interval is
  ``ts_event // sample_interval_ms``; inside an interval an event only stores its leg's price, and the first
  event of a later interval takes a sample (the last price of each leg) and calls ``on_sample``.
- **One action at a time**: :meth:`TwoLegStrategy.orders_in_flight` holds a decision while the last pair's
  orders are working.
- **Sizing**: :meth:`TwoLegStrategy.pair_quantities` matches the legs' minimum sizes by a ratio, in notional or
  in units of the asset.
- **Orders**: :meth:`TwoLegStrategy.enter_pair` sends both legs (never a short sale of spot),
  :meth:`TwoLegStrategy.unwind_pair` flattens both.
"""

import math

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


class TwoLegConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    What every two-leg strategy config has besides its legs and its signal's parameters.

    Parameters
    ----------
    bar_spec : str, optional
        Sample from bars ``<instrument>-<bar_spec>`` (e.g. ``1-MINUTE-LAST-EXTERNAL``) instead of trade ticks.
    sample_interval_ms : PositiveInt, default 1000
        One sample per interval of event time: the last price of each leg in the interval, taken when the first
        event of a later interval arrives (with bars: the interval of the bars, so a sample holds both closes).

    """

    bar_spec: str | None = None
    sample_interval_ms: PositiveInt = 1000


class TwoLegStrategy(KeelStrategy):
    """
    Base of a strategy holding two legs as one pair (see the module docstring for what it does).

    Parameters
    ----------
    config : TwoLegConfig
        The family's config.
    first_instrument_id : InstrumentId
        The first leg: bought when ``pair_side`` is +1.
    second_instrument_id : InstrumentId
        The second leg: sold when ``pair_side`` is +1.

    """

    def __init__(self, config: TwoLegConfig, first_instrument_id: InstrumentId, second_instrument_id: InstrumentId) -> None:
        super().__init__(config)
        self.first_instrument_id = first_instrument_id
        self.second_instrument_id = second_instrument_id
        self.pair_side = 0  # +1 long the first leg and short the second, -1 the reverse, 0 flat
        self.working_orders: list[ClientOrderId] = []
        self.first_price = math.nan
        self.second_price = math.nan
        self.sample_ts = 0  # ts_event of the event that took the current sample
        self._interval_ns = config.sample_interval_ms * NANOSECONDS_PER_MILLISECOND
        self._bucket = -1

    # -- what the family says -------------------------------------------------------------------------------

    def on_sample(self) -> None:
        """Decide on a new sample: ``first_price`` and ``second_price`` (either may still be NaN), ``sample_ts``."""

    # -- sampling --------------------------------------------------------------------------------------------

    def bar_types(self) -> list[BarType]:
        """Return the bar types sampled (empty when sampling trade ticks)."""
        if self.config.bar_spec is None:
            return []
        return [BarType.from_str(f"{instrument_id}-{self.config.bar_spec}") for instrument_id in (self.first_instrument_id, self.second_instrument_id)]

    def on_start_strategy(self) -> None:
        if self.config.bar_spec is None:
            self.subscribe_trade_ticks(self.first_instrument_id)
            self.subscribe_trade_ticks(self.second_instrument_id)
        else:
            for bar_type in self.bar_types():
                self.subscribe_bars(bar_type)

    def on_stop_strategy(self) -> None:
        if self.config.bar_spec is None:
            self.unsubscribe_trade_ticks(self.first_instrument_id)
            self.unsubscribe_trade_ticks(self.second_instrument_id)
        else:
            for bar_type in self.bar_types():
                self.unsubscribe_bars(bar_type)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._on_price(tick.instrument_id, tick.price.as_double(), tick.ts_event)

    def on_bar(self, bar: Bar) -> None:
        self._on_price(bar.bar_type.instrument_id, bar.close.as_double(), bar.ts_event)

    def _on_price(self, instrument_id: InstrumentId, price: float, ts_event: int) -> None:
        # The cheap path first: inside an interval an event only records its price.
        bucket = ts_event // self._interval_ns
        if bucket > self._bucket:
            if self._bucket >= 0:
                self.sample_ts = ts_event
                self.on_sample()
            self._bucket = bucket
        if instrument_id == self.first_instrument_id:
            self.first_price = price
        else:
            self.second_price = price

    # -- sizing and orders -----------------------------------------------------------------------------------

    def orders_in_flight(self) -> bool:
        """Return True while an order of the last entry or unwind is not closed (its fill would change the pair)."""
        for client_order_id in self.working_orders:
            if not self.cache.order(client_order_id).is_closed:
                return True
        return False

    def pair_quantities(self, ratio: float, in_notional: bool) -> tuple[Quantity, Quantity]:
        """
        Return the two legs' quantities of one pair at the last prices: the second leg worth ``ratio`` times the first.

        A leg's worth is its quantity times its instrument's ``multiplier`` (units of the asset: a perpetual's
        quantity is in contracts), times its last price when ``in_notional``. Both legs' minimum sizes
        (``entry_quantity``) are computed; the leg whose minimum needs the larger pair decides, the other is
        sized by ``ratio`` on its own step, never below its own minimum.

        Parameters
        ----------
        ratio : float
            The second leg's worth over the first's (a hedge ratio; 1.0 for the same amount on both legs).
        in_notional : bool
            Compare the legs in quote currency (True) or in units of the asset (False).

        """
        first = self.instrument(self.first_instrument_id)
        second = self.instrument(self.second_instrument_id)
        first_minimum = self.entry_quantity(self.first_instrument_id, self.first_price)
        second_minimum = self.entry_quantity(self.second_instrument_id, self.second_price)
        # In units of the asset a unit is worth 1.0, which leaves every product and quotient below exact.
        first_unit = self.first_price if in_notional else 1.0
        second_unit = self.second_price if in_notional else 1.0
        first_worth = first_minimum.as_double() * first_unit * float(first.multiplier)
        second_worth = second_minimum.as_double() * second_unit * float(second.multiplier)
        if first_worth * ratio >= second_worth:
            wanted = first_worth * ratio / (second_unit * float(second.multiplier))
            return first_minimum, max(second_minimum, second.make_qty(wanted))
        wanted = second_worth / ratio / (first_unit * float(first.multiplier))
        return max(first_minimum, first.make_qty(wanted)), second_minimum

    def enter_pair(self, side: int, first_quantity: Quantity, second_quantity: Quantity) -> None:
        """Send both legs of a pair at market: ``side`` +1 buys the first leg and sells the second, -1 the reverse."""
        first_side = OrderSide.BUY if side > 0 else OrderSide.SELL
        second_side = OrderSide.SELL if side > 0 else OrderSide.BUY
        self.working_orders = [
            order_id
            for order_id in (
                self._submit_leg(self.first_instrument_id, first_side, first_quantity),
                self._submit_leg(self.second_instrument_id, second_side, second_quantity),
            )
            if order_id is not None
        ]
        self.pair_side = side

    def unwind_pair(self) -> None:
        """Close both legs (each with what the dust rule leaves closable, reduce-only on a derivative)."""
        self.working_orders = [
            order_id
            for order_id in (self.flatten(self.first_instrument_id), self.flatten(self.second_instrument_id))
            if order_id is not None
        ]
        self.pair_side = 0

    def _submit_leg(self, instrument_id: InstrumentId, side: OrderSide, quantity: Quantity) -> ClientOrderId | None:
        # A spot pair cannot be sold short: a sale is only sent out of inventory the strategy holds.
        if side == OrderSide.SELL and isinstance(self.instrument(instrument_id), CurrencyPair):
            return None
        return self.submit_market(instrument_id, side, quantity)

    def on_reset(self) -> None:
        super().on_reset()
        self.pair_side = 0
        self.working_orders = []
        self.first_price = self.second_price = math.nan
        self.sample_ts = 0
        self._bucket = -1
