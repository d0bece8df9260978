"""What every Keel strategy does the same way, in one place: sizing, order tags, warm-up, refusals, close-on-stop.

A family module (``ema_cross``, ``breakout``, ...) subclasses :class:`KeelStrategy` with a config subclassing
:class:`KeelStrategyConfig`, implements its signal, and sends orders through :meth:`KeelStrategy.submit_market`
and :meth:`KeelStrategy.submit_limit`. The base then guarantees, identically in backtest and live:

- **Size**: :meth:`KeelStrategy.entry_quantity` is the instrument's minimum tradable quantity (minimum notional
  respected, ``keel.sizing``) times ``size_multiplier``, the ramp; the risk core caps the multiplier.
- **Tags**: every order carries ``variant=<variant_id>`` (filled in by ``keel.assembly`` from the variant name), so
  fills, orders and P&L are attributed to a variant wherever they are read.
- **Warm-up**: no order before :meth:`KeelStrategy.is_warm` (default: every registered indicator initialised).
- **Refusals**: after ``max_consecutive_rejections`` orders denied or rejected in a row the strategy stops itself.
- **Close-on-stop**: ``on_stop`` cancels every order of the strategy's instruments and flattens every position
  (spot: sells what the dust rule leaves closable; perpetuals: a reduce-only market order), then calls
  :meth:`KeelStrategy.on_stop_strategy` for the family's own clean-up (unsubscribing).

Attribution when variants share an instrument: every variant runs in its own node (one node per strategy config),
and Keel's P&L is computed from each node's own fills, never from account balances, so two variants trading
BTCUSDT on one spot account are attributed exactly. On a perpetual account the venue nets positions across nodes
(one-way mode): variants sharing a perpetual need the venue's hedge mode or separate sub-accounts (nautilus
``OmsType.HEDGING`` inside one node does not separate two nodes).
"""

from decimal import Decimal

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from keel.sizing import closable_quantity
from keel.sizing import minimum_order_quantity

VARIANT_TAG_PREFIX = "variant="


class KeelStrategyConfig(StrategyConfig, frozen=True, kw_only=True):
    """
    What every Keel strategy config has besides its own parameters.

    Parameters
    ----------
    variant_id : str, optional
        The variant's name, tagged on every order (``variant=<id>``); ``keel.assembly`` fills it in from the
        variant file, so a variant file does not repeat it.
    size_multiplier : PositiveFloat, default 1.0
        The ramp: orders are this many minimum sizes. The risk core caps it until the variant's edge is proven.
    min_notional_buffer : NonNegativeFloat, default 0.01
        Fraction added on top of the minimum notional when sizing, so that the price moving between decision and
        fill cannot push a minimum-size order below the venue's minimum.
    max_consecutive_rejections : PositiveInt, default 3
        Orders denied by the risk engine or rejected by the venue in a row before the strategy stops itself: a
        strategy whose orders keep failing must not retry on every event.
    """

    variant_id: str | None = None
    size_multiplier: PositiveFloat = 1.0
    min_notional_buffer: NonNegativeFloat = 0.01
    max_consecutive_rejections: PositiveInt = 3


class KeelStrategy(Strategy):
    """
    Base of every Keel strategy family (see the module docstring for what it guarantees).

    Subclasses implement their signal in the usual nautilus handlers, subscribe in :meth:`on_start_strategy` and
    put their own clean-up in :meth:`on_stop_strategy` (the base's ``on_start`` loads the instruments first, its
    ``on_stop`` closes out first).
    """

    def __init__(self, config: KeelStrategyConfig) -> None:
        super().__init__(config)
        self.consecutive_rejections = 0
        self._instruments: dict[InstrumentId, Instrument] = {}

    # -- what the family says -------------------------------------------------------------------------------

    def traded_instrument_ids(self) -> list[InstrumentId]:
        """
        Return the instruments this strategy trades (closed out on stop).

        Default: the config's ``instrument_id``, ``instrument_ids`` and every ``*_instrument_id`` field.
        """
        found: list[InstrumentId] = []
        for name in self.config.__struct_fields__:
            value = getattr(self.config, name)
            if name == "instrument_ids":
                found.extend(value or [])
            elif (name == "instrument_id" or name.endswith("_instrument_id")) and value is not None:
                found.append(value)
        return list(dict.fromkeys(found))

    def is_warm(self) -> bool:
        """Return True once the strategy may trade (default: every registered indicator is initialised)."""
        return self.indicators_initialized()

    def on_start_strategy(self) -> None:
        """Subscribe to the family's data and register its indicators; called once every instrument is loaded."""

    def on_stop_strategy(self) -> None:
        """Clean up the family's own state on stop (unsubscribe); called after the close-out."""

    # -- lifecycle -----------------------------------------------------------------------------------------

    def on_start(self) -> None:
        for instrument_id in self.traded_instrument_ids():
            instrument = self.cache.instrument(instrument_id)
            if instrument is None:
                self.log.error(f"No instrument {instrument_id} in the cache: stopping")
                self.stop()
                return
            self._instruments[instrument_id] = instrument
        self.on_start_strategy()

    def on_stop(self) -> None:
        # Close on stop: no working order and no position is left behind.
        self.flatten_all()
        self.on_stop_strategy()

    def flatten_all(self) -> list[ClientOrderId]:
        """
        Cancel every order of the traded instruments (working and in flight) and close every position; return the
        closing orders sent (none when flat or holding only dust).

        An order in flight may still fill after this (a market order is not cancellable): the close-out
        controller calls this again once it has, since a stopped strategy receives no more events.
        """
        sent = []
        for instrument_id in self._instruments:
            self.cancel_all_orders(instrument_id)
            for order in self.cache.orders_inflight(instrument_id=instrument_id, strategy_id=self.id):
                self.cancel_order(order)
            order_id = self.flatten(instrument_id)
            if order_id is not None:
                sent.append(order_id)
        return sent

    def on_reset(self) -> None:
        self.consecutive_rejections = 0

    # -- sizing and orders -----------------------------------------------------------------------------------

    def instrument(self, instrument_id: InstrumentId) -> Instrument:
        """Return a traded instrument (loaded on start)."""
        return self._instruments[instrument_id]

    def entry_quantity(self, instrument_id: InstrumentId, price: float) -> Quantity:
        """Return the size of a new position at ``price``: the minimum tradable quantity times ``size_multiplier``."""
        return minimum_order_quantity(self.instrument(instrument_id), price, self.config.min_notional_buffer, self.config.size_multiplier)

    def signed_position(self, instrument_id: InstrumentId) -> Decimal:
        """Return the strategy's net position in ``instrument_id`` (positive long, negative short)."""
        return Decimal(str(self.portfolio.net_position(instrument_id)))

    def closable(self, instrument_id: InstrumentId, price: float | None = None) -> Quantity | None:
        """Return the part of the position an order can close (``keel.sizing`` dust rule), or None when flat or dust."""
        return closable_quantity(self.instrument(instrument_id), abs(self.signed_position(instrument_id)), price)

    def flatten(self, instrument_id: InstrumentId) -> ClientOrderId | None:
        """Send the market order that closes the position (reduce-only on derivatives); return its id, or None."""
        position = self.signed_position(instrument_id)
        # At the last price the node saw, so a remainder below the minimum notional counts as dust instead of
        # being sent and denied.
        quantity = self.closable(instrument_id, self.last_price(instrument_id))
        if quantity is None:
            return None
        side = OrderSide.SELL if position > 0 else OrderSide.BUY
        return self.submit_market(instrument_id, side, quantity, reduce_only=not isinstance(self.instrument(instrument_id), CurrencyPair))

    def last_price(self, instrument_id: InstrumentId) -> float | None:
        """Return the last trade price the node saw, else the last quote's mid, else the last bar's close; None if none."""
        trade = self.cache.trade_tick(instrument_id)
        if trade is not None:
            return float(trade.price)
        quote = self.cache.quote_tick(instrument_id)
        if quote is not None:
            return (float(quote.bid_price) + float(quote.ask_price)) / 2
        bars = [bar_type for bar_type in self.cache.bar_types(instrument_id=instrument_id)]
        closes = [self.cache.bar(bar_type) for bar_type in bars]
        latest = max((bar for bar in closes if bar is not None), key=lambda bar: bar.ts_event, default=None)
        return float(latest.close) if latest is not None else None

    def order_tags(self) -> list[str] | None:
        """Return the tags every order carries: the variant id."""
        return [f"{VARIANT_TAG_PREFIX}{self.config.variant_id}"] if self.config.variant_id else None

    def submit_market(self, instrument_id: InstrumentId, side: OrderSide, quantity: Quantity, reduce_only: bool = False) -> ClientOrderId:
        """Submit a tagged market order and return its id."""
        order = self.order_factory.market(
            instrument_id=instrument_id,
            order_side=side,
            quantity=quantity,
            time_in_force=TimeInForce.GTC,
            reduce_only=reduce_only,
            tags=self.order_tags(),
        )
        self.submit_order(order)
        return order.client_order_id

    def submit_limit(
        self,
        instrument_id: InstrumentId,
        side: OrderSide,
        quantity: Quantity,
        price: Price,
        post_only: bool = True,
        reduce_only: bool = False,
    ) -> ClientOrderId:
        """Submit a tagged GTC limit order (post-only by default: a maker that would take is refused) and return its id."""
        order = self.order_factory.limit(
            instrument_id=instrument_id,
            order_side=side,
            quantity=quantity,
            price=price,
            time_in_force=TimeInForce.GTC,
            post_only=post_only,
            reduce_only=reduce_only,
            tags=self.order_tags(),
        )
        self.submit_order(order)
        return order.client_order_id

    # -- refusals --------------------------------------------------------------------------------------------

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
