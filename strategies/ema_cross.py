"""Trend following: go long when a fast EMA of trade prices rises above a slow one, go flat when it falls below."""

from decimal import ROUND_CEILING
from decimal import ROUND_FLOOR
from decimal import Decimal

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.indicators import ExponentialMovingAverage
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy


class EMACrossConfig(StrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``EMACross``.

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
    trade_size : Decimal, optional
        Order quantity. None trades the smallest quantity the venue accepts (minimum quantity and minimum
        notional at the current price), which is how a variant trades until its edge is proven.
    min_notional_buffer : NonNegativeFloat, default 0.01
        Fraction added on top of the minimum notional when sizing, so that the price moving between the
        decision and the fill cannot push a minimum-size order below the venue's minimum notional.
    max_consecutive_rejections : PositiveInt, default 3
        Orders denied by the risk engine or rejected by the venue in a row before the strategy stops itself:
        a strategy whose orders keep failing must not retry on every tick.

    """

    instrument_id: InstrumentId
    fast_period: PositiveInt = 50
    slow_period: PositiveInt = 200
    entry_threshold_bps: NonNegativeFloat = 1.0
    trade_size: Decimal | None = None
    min_notional_buffer: NonNegativeFloat = 0.01
    max_consecutive_rejections: PositiveInt = 3

    def __post_init__(self) -> None:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period ({self.fast_period}) must be less than slow_period ({self.slow_period})",
            )


class EMACross(Strategy):
    """
    Long-only EMA cross on trade ticks, one market order at a time, flat on stop.

    Decisions depend only on the trade stream and the strategy's own orders and position, never on the wall
    clock, so a backtest over a recorded live session takes the same decisions as the live node did.

    Exits sell the position rounded down to the venue's size step. Binance takes the buy commission in the
    bought asset, so a live position is slightly smaller than the quantity bought and off the step; selling
    it exactly (as nautilus's ``close_all_positions``/``market_exit`` do) is rejected by the venue. The part
    below one step is dust the venue will not trade, and counts as flat.
    """

    def __init__(self, config: EMACrossConfig) -> None:
        super().__init__(config)
        self.fast_ema = ExponentialMovingAverage(config.fast_period)
        self.slow_ema = ExponentialMovingAverage(config.slow_period)
        self.instrument: Instrument | None = None
        self.working_order: ClientOrderId | None = None
        self.consecutive_rejections = 0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            self.log.error(f"No instrument {self.config.instrument_id} in the cache: stopping")
            self.stop()
            return
        self.register_indicator_for_trade_ticks(self.config.instrument_id, self.fast_ema)
        self.register_indicator_for_trade_ticks(self.config.instrument_id, self.slow_ema)
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        if not self.indicators_initialized():
            return
        # One order at a time: with an order in flight the position is about to change, and acting on the
        # stale position is how latency differences between backtest and live turn into double orders. The
        # order is tracked from the moment it is created: live, submission is queued, so for a while the order
        # is neither in flight nor open in the cache, and trades arriving in a burst would each submit one.
        if self.working_order is not None and not self.cache.order(self.working_order).is_closed:
            return
        spread_bps = (self.fast_ema.value - self.slow_ema.value) / self.slow_ema.value * 10_000
        threshold = self.config.entry_threshold_bps
        sellable = self.sellable_quantity()
        if sellable is None:
            if spread_bps > threshold:
                self._submit(OrderSide.BUY, self.order_quantity(float(tick.price)))
        elif spread_bps < -threshold:
            self._submit(OrderSide.SELL, sellable)

    def _submit(self, side: OrderSide, quantity: Quantity) -> None:
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=side,
            quantity=quantity,
            time_in_force=TimeInForce.GTC,
        )
        self.working_order = order.client_order_id
        self.submit_order(order)

    def order_quantity(self, price: float) -> Quantity:
        """
        Return the buy quantity at ``price``: ``trade_size``, or the smallest size the venue accepts.

        The result is a multiple of the size increment, meets the minimum quantity and minimum notional (with
        ``min_notional_buffer`` on top), and stays sellable: Binance takes the buy commission in the bought
        asset, so what is held after the buy, rounded down to the step, must still meet both minimums.
        """
        instrument = self.instrument
        step = instrument.size_increment.as_decimal()
        needed = instrument.min_quantity.as_decimal() if instrument.min_quantity is not None else step
        if instrument.min_notional is not None:
            notional = instrument.min_notional.as_decimal() * Decimal(str(1 + self.config.min_notional_buffer))
            needed = max(needed, notional / Decimal(str(price)))
        if self.config.trade_size is not None:
            needed = max(needed, self.config.trade_size)
        steps = (needed / step).to_integral_value(rounding=ROUND_CEILING)
        kept = Decimal(1) - instrument.taker_fee
        while ((steps * step * kept) / step).to_integral_value(rounding=ROUND_FLOOR) * step < needed:
            steps += 1
        return instrument.make_qty(steps * step)

    def sellable_quantity(self) -> Quantity | None:
        """Return the long position rounded down to the size step, or None when that is below the venue minimum."""
        instrument = self.instrument
        net = self.portfolio.net_position(self.config.instrument_id)
        if net < instrument.size_increment.as_decimal():
            return None
        quantity = instrument.make_qty(net, round_down=True)
        if instrument.min_quantity is not None and quantity < instrument.min_quantity:
            return None
        return quantity

    def on_order_filled(self, event: OrderFilled) -> None:
        self.consecutive_rejections = 0

    def on_order_denied(self, event: OrderDenied) -> None:
        self._count_rejection(event.reason)

    def on_order_rejected(self, event: OrderRejected) -> None:
        self._count_rejection(event.reason)

    def _count_rejection(self, reason: str) -> None:
        self.consecutive_rejections += 1
        if self.consecutive_rejections >= self.config.max_consecutive_rejections and self.is_running:
            self.log.error(f"{self.consecutive_rejections} orders refused in a row (last: {reason}): stopping")
            self.stop()

    def on_stop(self) -> None:
        # Close on stop: no working order and no position is left behind.
        self.cancel_all_orders(self.config.instrument_id)
        sellable = self.sellable_quantity() if self.instrument is not None else None
        if sellable is not None:
            self._submit(OrderSide.SELL, sellable)
        self.unsubscribe_trade_ticks(self.config.instrument_id)

    def on_reset(self) -> None:
        self.working_order = None
        self.consecutive_rejections = 0
        self.fast_ema.reset()
        self.slow_ema.reset()
