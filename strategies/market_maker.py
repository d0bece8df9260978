"""Market making: two-sided post-only quotes around a fair price, spread from short-horizon volatility, inventory skew."""

import math
from typing import Literal

from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderAccepted
from nautilus_trader.model.events import OrderCanceled
from nautilus_trader.model.events import OrderCancelRejected
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.events import OrderExpired
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig

BPS = 1e-4
# Slack on float comparisons (quantities are sums of decimal steps, prices multiples of the tick: not exact in binary).
FLOAT_SLACK = 1e-9


class MarketMakerConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``MarketMaker`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to quote: a spot pair (quotes only the side the strategy's own inventory allows: it can
        only sell what it bought) or a perpetual (two-sided from flat).
    fair_price : {"mid", "microprice"}, default "microprice"
        The price quotes are centred on: the mid of the best bid and ask, or the microprice (the mid weighted
        towards the side with less size at the top, where the next trade more likely moves the price).
    min_half_spread_bps : PositiveFloat, default 1.0
        The smallest distance of a quote from the fair price, basis points of the fair price.
    vol_multiplier : NonNegativeFloat, default 2.0
        The half-spread is ``max(min_half_spread_bps, vol_multiplier x volatility)``, volatility being the
        exponentially weighted standard deviation of the fair price's change between quote ticks, in basis points.
    volatility_events : PositiveInt, default 200
        Span, in quote ticks, of the volatility's exponential weighting; also the warm-up: no quote before
        this many quote ticks.
    skew_bps : NonNegativeFloat, default 0.5
        Inventory skew: both quotes move against the inventory by this many basis points per minimum size held
        (long: lower, to sell sooner and buy later; short: higher).
    max_inventory : PositiveInt, default 3
        Inventory limit, in minimum sizes: the side whose fill would take the inventory beyond it is not quoted.
    refresh_bps : NonNegativeFloat, default 0.5
        Quotes are recomputed when the fair price has moved more than this from the fair price they were
        computed at (or when a quote is missing or the inventory changed); a quote whose price is then unchanged
        is left alone, keeping its place in the queue.
    min_requote_events : PositiveInt, default 10
        Quote ticks between two requotes at least: an event count, not a wall-clock interval, so backtest and
        live decide alike, and order traffic stays sane in a fast market.

    """

    instrument_id: InstrumentId
    fair_price: Literal["mid", "microprice"] = "microprice"
    min_half_spread_bps: PositiveFloat = 1.0
    vol_multiplier: NonNegativeFloat = 2.0
    volatility_events: PositiveInt = 200
    skew_bps: NonNegativeFloat = 0.5
    max_inventory: PositiveInt = 3
    refresh_bps: NonNegativeFloat = 0.5
    min_requote_events: PositiveInt = 10


class QuoteSlot:
    """
    One side's quote: at most one order at a time, from its submission until it is closed.

    States: empty (``client_order_id`` None), ``pending`` (submitted, or cancel sent: not to be touched until the
    venue answers), live otherwise. ``ticks`` is the quote's price in price increments.
    """

    __slots__ = ("client_order_id", "pending", "ticks")

    def __init__(self) -> None:
        self.client_order_id: ClientOrderId | None = None
        self.pending = False
        self.ticks = 0

    def hold(self, client_order_id: ClientOrderId, ticks: int) -> None:
        """Take the slot for a just-submitted order at ``ticks``."""
        self.client_order_id = client_order_id
        self.pending = True
        self.ticks = ticks

    def clear(self) -> None:
        """Free the slot: its order is closed."""
        self.client_order_id = None
        self.pending = False


class MarketMaker(KeelStrategy):
    """
    Two-sided post-only quotes around the fair price, one order per side, cancel-replace when the quote moves.

    Subscribes to the L2 book (so the node keeps it, and the backtest matches on it) and to quote ticks, which
    carry the top of the book and drive every decision: per quote tick only float arithmetic on the top runs
    (fair price, volatility, two counters); prices and quantities are built only when an order is sent.

    Decisions depend only on the quote ticks and the strategy's own orders and fills, never on the wall clock.
    Post-only rejections (the quote would have crossed by the time it arrived) are a maker's normal business
    and do not count toward the base's ``max_consecutive_rejections`` self-stop.
    """

    def __init__(self, config: MarketMakerConfig) -> None:
        super().__init__(config)
        self.bid = QuoteSlot()
        self.ask = QuoteSlot()
        self.use_microprice = config.fair_price == "microprice"
        self.volatility_weight = 2.0 / (config.volatility_events + 1)
        self.is_spot = False
        self.tick_size = 0.0
        self._reset_state()

    def _reset_state(self) -> None:
        self.bid.clear()
        self.ask.clear()
        self.events = 0
        self.next_requote_event = 0
        self.last_fair = 0.0
        self.variance = 0.0  # of the fair price's change between quote ticks, bps squared
        self.quoted_fair = 0.0
        self.needs_requote = True
        self.inventory = 0.0  # base units, from the strategy's own fills
        self.unit_quantity = 0.0  # the minimum size last sent, base units
        self.sellable: Quantity | None = None  # spot: what the inventory lets an ask sell (dust rule)

    def is_warm(self) -> bool:
        """Return True once ``volatility_events`` quote ticks were seen (the volatility estimate has its span)."""
        return self.events >= self.config.volatility_events

    # -- data ------------------------------------------------------------------------------------------------

    def on_start_strategy(self) -> None:
        instrument = self.instrument(self.config.instrument_id)
        self.is_spot = isinstance(instrument, CurrencyPair)
        self.tick_size = instrument.price_increment.as_double()
        self.subscribe_order_book_deltas(self.config.instrument_id, book_type=BookType.L2_MBP)
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        best_bid = tick.bid_price.as_double()
        best_ask = tick.ask_price.as_double()
        if self.use_microprice:
            bid_size = tick.bid_size.as_double()
            ask_size = tick.ask_size.as_double()
            fair = (best_bid * ask_size + best_ask * bid_size) / (bid_size + ask_size)
        else:
            fair = (best_bid + best_ask) * 0.5
        if self.last_fair > 0.0:
            change_bps = (fair - self.last_fair) / self.last_fair * 10_000.0
            self.variance += self.volatility_weight * (change_bps * change_bps - self.variance)
        self.last_fair = fair
        self.events += 1
        # The cheap no-trade conditions first: most ticks end here (the second is ``is_warm``, inlined).
        if self.events < self.next_requote_event or self.events < self.config.volatility_events:
            return
        if not self.needs_requote and abs(fair - self.quoted_fair) <= self.config.refresh_bps * BPS * self.quoted_fair:
            return
        self._requote(fair, best_bid, best_ask)

    # -- quoting ---------------------------------------------------------------------------------------------

    def _requote(self, fair: float, best_bid: float, best_ask: float) -> None:
        config = self.config
        self.quoted_fair = fair
        self.next_requote_event = self.events + config.min_requote_events
        if self.unit_quantity == 0.0:
            self.unit_quantity = self.entry_quantity(config.instrument_id, fair).as_double()
        unit = self.unit_quantity
        half_spread = max(config.min_half_spread_bps, config.vol_multiplier * math.sqrt(self.variance)) * BPS
        centre = fair * (1.0 - config.skew_bps * BPS * self.inventory / unit)
        tick_size = self.tick_size
        # Never quote at or through the other side's best: a post-only order there would be rejected.
        bid_ticks = min(math.floor(centre * (1.0 - half_spread) / tick_size + FLOAT_SLACK), round(best_ask / tick_size) - 1)
        ask_ticks = max(math.ceil(centre * (1.0 + half_spread) / tick_size - FLOAT_SLACK), round(best_bid / tick_size) + 1)
        limit = config.max_inventory * unit * (1.0 + FLOAT_SLACK)
        bid_allowed = self.inventory + unit <= limit
        if self.is_spot:
            ask_allowed = self.sellable is not None
        else:
            ask_allowed = unit - self.inventory <= limit
        # A slot still waiting for the venue keeps the requote pending: it is looked at again later.
        settled_bid = self._place(self.bid, OrderSide.BUY, bid_ticks, bid_allowed)
        settled_ask = self._place(self.ask, OrderSide.SELL, ask_ticks, ask_allowed)
        self.needs_requote = not (settled_bid and settled_ask)

    def _place(self, slot: QuoteSlot, side: OrderSide, ticks: int, allowed: bool) -> bool:
        """Bring one side to its intended quote (cancel, or submit); return True when nothing is left to do."""
        if slot.pending:
            return False
        if slot.client_order_id is not None:
            if allowed and slot.ticks == ticks:
                return True
            # Cancel first, replace once the venue confirms: never two orders in flight for one side.
            slot.pending = True
            self.cancel_order(self.cache.order(slot.client_order_id))
            return False
        if not allowed:
            return True
        instrument_id = self.config.instrument_id
        price = Price(ticks * self.tick_size, self.instrument(instrument_id).price_precision)
        quantity = self.entry_quantity(instrument_id, price.as_double())
        if side == OrderSide.BUY:
            self.unit_quantity = quantity.as_double()
        elif self.is_spot and self.sellable.as_double() < 2.0 * quantity.as_double():
            # Sell everything when keeping a unit back would leave less than one unit: a remainder below the
            # venue's minimums is dust no order, not even the close-on-stop, could sell.
            quantity = self.sellable
        slot.hold(self.submit_limit(instrument_id, side, quantity, price, post_only=True), ticks)
        return True

    def _slot(self, client_order_id: ClientOrderId) -> QuoteSlot | None:
        if client_order_id == self.bid.client_order_id:
            return self.bid
        if client_order_id == self.ask.client_order_id:
            return self.ask
        return None

    def _close_slot(self, client_order_id: ClientOrderId) -> None:
        slot = self._slot(client_order_id)
        if slot is not None:
            slot.clear()
            self.needs_requote = True

    # -- order events ----------------------------------------------------------------------------------------

    def on_order_accepted(self, event: OrderAccepted) -> None:
        slot = self._slot(event.client_order_id)
        if slot is not None and self.cache.order(event.client_order_id).is_open:
            slot.pending = False

    def on_order_filled(self, event: OrderFilled) -> None:
        super().on_order_filled(event)
        quantity = event.last_qty.as_double()
        self.inventory += quantity if event.order_side == OrderSide.BUY else -quantity
        if self.is_spot:
            self.sellable = self.closable(self.config.instrument_id, event.last_px.as_double())
        self.needs_requote = True
        if self.cache.order(event.client_order_id).is_closed:
            self._close_slot(event.client_order_id)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        self._close_slot(event.client_order_id)

    def on_order_expired(self, event: OrderExpired) -> None:
        self._close_slot(event.client_order_id)

    def on_order_cancel_rejected(self, event: OrderCancelRejected) -> None:
        # The cancel lost a race (the order filled, which its fill event settles) or the venue refused it: the
        # order is live again as far as the strategy knows, and the next requote decides anew.
        slot = self._slot(event.client_order_id)
        if slot is not None and self.cache.order(event.client_order_id).is_open:
            slot.pending = False
            self.needs_requote = True

    def on_order_denied(self, event: OrderDenied) -> None:
        self._close_slot(event.client_order_id)
        super().on_order_denied(event)

    def on_order_rejected(self, event: OrderRejected) -> None:
        self._close_slot(event.client_order_id)
        # Overridden for this reason only: a post-only quote refused because the market moved onto it is a
        # maker's normal business, not a failing strategy, so it does not count toward the self-stop.
        if not event.due_post_only:
            super().on_order_rejected(event)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def on_stop_strategy(self) -> None:
        self.unsubscribe_quote_ticks(self.config.instrument_id)
        self.unsubscribe_order_book_deltas(self.config.instrument_id)

    def on_reset(self) -> None:
        super().on_reset()
        self._reset_state()
