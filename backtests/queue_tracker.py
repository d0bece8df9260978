"""
Resting limit orders fill when the tape says their turn came: queue ahead, trades at their price, a queue model.

nautilus 1.231's own ``queue_position`` counts only trades against the size ahead and never credits a cancel
ahead (``docs/backtest.md``). With the tape fill model, Keel tracks the queue itself and tells the engine how
much of a resting order may fill:

- **Arrival**: when an order is first seen resting (after the data point at which the venue accepted it), the
  size ahead is the visible size at its price on its own side: the latest quote's size when the order sits at
  the quoted best price, nothing when it improves the best price, the depth's level otherwise
  (``QueueModel.ahead_at_arrival``).
- **Trades** (every model), seen *before* the matching engine processes them (``SimulationModule.pre_process``):
  a print at the order's price by the other side takes from the front first; the size ahead shrinks, and what
  the print leaves beyond the queue may fill the order. A print *through* the order's price (a seller below a
  resting buy) swept the whole level: the order may fill completely.
- **Depth changes** at the order's price not explained by the prints already counted go to the queue model
  (``keel.backtests.queue_models``): cancels ahead, or additions behind.
- **Fills**: nautilus's trade execution then matches the print against the resting order and asks the fill
  model's hook for the book to fill from; the hook answers with exactly the fillable size at the order's price.
  On a print at the order's exact price that left nothing fillable, the fill model refuses before the hook is
  asked (``TapeFillModel.is_limit_filled``). Otherwise (no print) the hook answers with the tape's merged book,
  which fills the order only if it has moved to or through the order's price, so nautilus's stale depth book
  crossing the order cannot fill it.
"""

from dataclasses import dataclass

from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity
from nautilus_trader.model.orders import Order

from keel.backtests.queue_models import QueueModel


@dataclass
class RestingOrder:
    """
    The queue state of one resting limit order (sizes in base units).

    Parameters
    ----------
    side : OrderSide
        The order's side.
    price : float
        Its limit price.
    ahead : float
        Size ahead of it at its price.
    level : float
        Visible size of its price level at the last look.
    traded : float
        Prints at its price since the last depth change (the depth will show them as a decrease too).
    fillable : float
        Size the trades have left for it, not yet filled.

    """

    side: OrderSide
    price: float
    ahead: float
    level: float
    traded: float = 0.0
    fillable: float = 0.0


class QueueTracker:
    """
    The queue position of every resting limit order of one simulated exchange.

    Parameters
    ----------
    exchange : SimulatedExchange
        The exchange (its matching engines, books and cache).
    model : QueueModel
        How depth changes at an order's price move it in the queue.

    """

    def __init__(self, exchange: object, model: QueueModel) -> None:
        self._exchange = exchange
        self._model = model
        self._resting: dict[InstrumentId, dict[ClientOrderId, tuple[Order, RestingOrder]]] = {}
        self._engines: list[tuple[InstrumentId, object]] = []
        self._print: TradeTick | None = None

    def on_trade(self, trade: TradeTick) -> None:
        """Apply a print to the resting orders of its instrument (before the matching engine sees it)."""
        self._print = trade
        orders = self._resting.get(trade.instrument_id)
        if not orders:
            return
        price, size = float(trade.price), float(trade.size)
        for order, state in orders.values():
            apply_print(state, price, size, trade.aggressor_side, float(order.leaves_qty))

    def matching_print(self) -> TradeTick | None:
        """Return the print the engine is matching resting orders against now, or None between prints."""
        return self._print

    def any_fillable_on_print(self) -> bool:
        """Whether some resting order of the current print's instrument may fill from it."""
        if self._print is None:
            return False
        return any(state.fillable > 0 for _, state in self._resting.get(self._print.instrument_id, {}).values())

    def process(self) -> None:
        """After a data point: start tracking newly resting orders, apply depth changes, forget closed orders."""
        self._print = None
        # Runs after every data point: the common case (no resting order) must cost next to nothing.
        if not self._engines:
            # The engine adds every instrument before the first data point.
            self._engines = list(self._exchange.get_matching_engines().items())
        for instrument_id, engine in self._engines:
            open_orders = engine.get_open_orders()
            tracked = self._resting.get(instrument_id)
            if not open_orders:
                if tracked:
                    tracked.clear()
                continue
            if tracked is None:
                tracked = self._resting[instrument_id] = {}
            book = engine.get_book()
            still_open = set()
            for order in open_orders:
                if not order.has_price:
                    continue
                still_open.add(order.client_order_id)
                entry = tracked.get(order.client_order_id)
                if entry is None:
                    tracked[order.client_order_id] = (order, self._arrive(order, book, instrument_id))
                else:
                    self._apply_depth(entry[1], order, book)
            for client_order_id in [known for known in tracked if known not in still_open]:
                del tracked[client_order_id]

    def book_for(self, instrument: Instrument, order: Order) -> OrderBook:
        """Return the book the engine may fill resting ``order`` against: its fillable size at its price, or nothing."""
        book = OrderBook(instrument.id, BookType.L2_MBP)
        entry = self._resting.get(instrument.id, {}).get(order.client_order_id)
        if entry is None or entry[1].fillable <= 0:
            return book
        state = entry[1]
        quantity = Quantity(min(state.fillable, float(order.leaves_qty)), instrument.size_precision)
        if quantity.raw > 0:
            maker_side = OrderSide.SELL if order.side == OrderSide.BUY else OrderSide.BUY
            book.add(BookOrder(maker_side, order.price, quantity, 1), ts_event=0)
            # The engine fills what the book holds; the fill is taken from what the trades left.
            state.fillable = max(state.fillable - float(quantity), 0.0)
        return book

    def _arrive(self, order: Order, book: OrderBook, instrument_id: InstrumentId) -> RestingOrder:
        visible = self._visible(order, book, instrument_id)
        return RestingOrder(side=order.side, price=float(order.price), ahead=self._model.ahead_at_arrival(visible), level=self._level(order, book))

    def _visible(self, order: Order, book: OrderBook, instrument_id: InstrumentId) -> float:
        """Size ahead at arrival: the quote's size at the quoted best price, nothing when improving it, else the depth."""
        quote = self._exchange.cache.quote_tick(instrument_id)
        if quote is not None:
            best, best_size = (quote.bid_price, quote.bid_size) if order.side == OrderSide.BUY else (quote.ask_price, quote.ask_size)
            if order.price == best:
                return float(best_size)
            improves = order.price > best if order.side == OrderSide.BUY else order.price < best
            if improves:
                return 0.0
        return self._level(order, book)

    def _level(self, order: Order, book: OrderBook) -> float:
        # The size on the order's own side: what a taker on the other side would take at that price.
        taker_side = OrderSide.SELL if order.side == OrderSide.BUY else OrderSide.BUY
        return float(book.get_quantity_at_level(order.price, taker_side, order.quantity.precision))

    def _apply_depth(self, state: RestingOrder, order: Order, book: OrderBook) -> None:
        level = self._level(order, book)
        if level == state.level:
            return
        state.ahead = self._model.ahead_after_change(state.ahead, max(state.level - state.traded, 0.0), level)
        state.level = level
        state.traded = 0.0


def apply_print(state: RestingOrder, price: float, size: float, aggressor: AggressorSide, leaves: float) -> None:
    """Apply one trade print to a resting order's queue (a print by its own side's aggressors does not reach it)."""
    hits_bids = aggressor == AggressorSide.SELLER
    if hits_bids != (state.side == OrderSide.BUY):
        return
    through = price < state.price if state.side == OrderSide.BUY else price > state.price
    if through:
        # The print went past the order's price: its whole level, the order included, was taken.
        state.ahead = 0.0
        state.fillable = leaves
        return
    if price != state.price:
        return
    state.traded += size
    taken_ahead = min(state.ahead, size)
    state.ahead -= taken_ahead
    state.fillable = min(state.fillable + size - taken_ahead, leaves)
