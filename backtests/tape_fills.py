"""
Taker fills against the book the tape says was there: depth from L2 deltas, its top from the latest quote,
minus what trades since have taken and what the account's own fills took.

nautilus 1.231's L2 backtest book is rebuilt from order book deltas only: quotes and trades never move it
(``docs/backtest.md``), so on Binance, whose depth stream comes every 100 ms while bookTicker and trades are
real time, a market order fills at levels the market had already traded through. The engine lets a fill model
hand it the book a fill should see (``FillModel.get_orderbook_for_fill_simulation``, called for every market
order and every limit order taking liquidity); :class:`TapeFillModel` builds that book from the tape, each
source as of when the feed delivered it (``ts_init``), at the moment the engine matches the order:

1. **Depth**: the venue book rebuilt from the catalog's L2 deltas (nautilus's own book).
2. **Top**: the latest ``QuoteTick`` (bookTicker) is the top of each side: depth levels better than it are gone,
   the level at its price has its size. The venue streams a bookTicker at every change of its top, while a
   ``depth@100ms`` diff reports the state at the end of its batch and arrives up to 100 ms later, so a diff
   that arrives after a quote can still be older than it (on the sample, diffs arriving 5-10 ms after a quote
   showed bids 3 bp above it in a falling market).
3. **Trades** newer than the quote (than the last depth change without quotes) took liquidity: a buyer's print
   at ``p`` removes the asks below ``p`` and takes its size from the ask at ``p`` (never below zero); a seller's print at ``p`` shows the asks were above ``p``
   (the book was never crossed). Seller prints mirror both on the bids. A print the latest quote contradicts (a
   buyer's print below the quoted ask, a seller's above the quoted bid) happened before the quote: the trade
   stream can lag the bookTicker stream, and such a print tells nothing newer.
4. The account's own fills take liquidity until the data changes that level.
5. Size beyond the visible depth walks it; what the merged book cannot fill is handled by the engine as for
   nautilus's own book (a market order's remainder is not filled).

Resting limit orders (maker liquidity) fill when ``keel.backtests.queue_tracker`` says the tape gave them their
turn: trades at or through their price after the queue ahead of them has gone, by the venue model's queue model;
the hook then hands the engine exactly that fillable size at the order's price. Without such a print, a resting
order fills only when the merged book above has moved to or through its price (the other side came to it), at
the book's prices within its limit; nautilus's stale depth book crossing it alone fills nothing.

The fill model needs the exchange it fills for (its cache and books); :class:`TapeFillBinder`, a simulation
module the venue model adds next to it, hands it over when the engine registers the venue, shows it every data
point before the engine (depth times, quotes and prints), and runs the queue tracker after every data point.
"""

from collections.abc import Sequence

from nautilus_trader.backtest.config import FillModelConfig
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.component import Logger
from nautilus_trader.core.data import Data
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.model.orders import Order

from keel.backtests.queue_models import queue_model_for
from keel.backtests.queue_tracker import QueueTracker

# Levels handed to the engine per fill: a min-size order takes one or two; a large one walks further, and a
# book deeper than this is rare to need within one order (the remainder then stays unfilled, as on the venue).
MAX_LEVELS = 200


class TapeFillModelConfig(FillModelConfig, frozen=True):
    """
    Configuration for ``TapeFillModel`` (the same fields as nautilus's ``FillModelConfig``).

    Parameters
    ----------
    prob_fill_on_limit : float, default 1.0
        Probability a resting limit order fills when the market is exactly at its price (nautilus's rule).
    prob_slippage : float, default 0.0
        Unused on L2 books (nautilus applies it to L1 books only); kept for the config's shape.
    random_seed : int, optional
        Seed of nautilus's fill randomness (it seeds Python's global ``random``).
    queue_model : str, default "risk_averse"
        How depth changes move a resting order in its queue: ``risk_averse``, ``power_prob`` or ``none``
        (``keel.backtests.queue_models``).
    queue_power : float, default 3.0
        The exponent of ``power_prob``.

    """

    queue_model: str = "risk_averse"
    queue_power: float = 3.0


class TapeFillModel(FillModel):
    """
    Fills taker orders against the book the tape shows at the matching time (module docstring).

    Parameters
    ----------
    config : TapeFillModelConfig, optional
        The configuration.

    """

    def __init__(self, config: TapeFillModelConfig | None = None) -> None:
        config = config or TapeFillModelConfig()
        super().__init__(config=config)
        self.queue_model = queue_model_for(config.queue_model, config.queue_power)
        self._tape: TapeState | None = None
        self._queues: QueueTracker | None = None

    def bind(self, tape: "TapeState", queues: QueueTracker) -> None:
        """Give the model the exchange state it reads and the queue tracker (called by ``TapeFillBinder``)."""
        self._tape = tape
        self._queues = queues

    def get_orderbook_for_fill_simulation(self, instrument: Instrument, order: Order, best_bid: Price, best_ask: Price) -> OrderBook | None:
        """Return the tape's book for a taker order, and the size the queue allows at its price for a resting one."""
        if self._tape is None or self._queues is None:
            raise RuntimeError(
                "TapeFillModel is not bound to its exchange: add keel.backtests.tape_fills:TapeFillBinder to the "
                "venue's modules (keel.backtests.venues.VenueModel does this for fills.model: tape)",
            )
        if order.liquidity_side == LiquiditySide.MAKER:
            from_prints = self._queues.book_for(instrument, order)
            if from_prints.best_ask_price() is not None or from_prints.best_bid_price() is not None:
                return from_prints
            # No print gave it a turn: it fills only if the tape's book has moved to or through its price
            # (the venue's other side came to it), at the book's prices within its limit.
        return self._tape.book_for(instrument, order)

    def is_limit_filled(self) -> bool:
        """
        Whether a resting order nautilus matched exactly at its price may fill (asked before the hook).

        On a print at the order's price the queue decides: only when the tracker left some resting order of the
        print's instrument a fillable size (the hook then hands the engine exactly that), rolled against
        ``prob_fill_on_limit`` as nautilus does. Otherwise (the book touching the order) nautilus's roll alone.
        """
        if self._queues is not None and self._queues.matching_print() is not None and not self._queues.any_fillable_on_print():
            return False
        return super().is_limit_filled()




class TapeState:
    """
    What the exchange knows about one venue's tape: its books, when each last changed, and (through its cache)
    quotes and trades.

    Parameters
    ----------
    exchange : SimulatedExchange
        The simulated exchange (its ``cache`` and ``get_book``).

    """

    def __init__(self, exchange: object) -> None:
        self._exchange = exchange
        self._depth_ts: dict[InstrumentId, int] = {}
        # The depth exactly as the deltas built it. The exchange's own book also loses the levels quotes and
        # prints rule out (for nautilus's decisions); the merged view applies those rules itself, as of each
        # source's time, so a level a stale quote removed comes back when that quote is superseded.
        self._depth: dict[InstrumentId, OrderBook] = {}
        # What the account's own taker fills took, per (instrument, side taken from, price): the level's size
        # in the merged book when taken, and how much. The recorded tape never saw these orders, so the
        # liquidity stays taken until the data changes that level.
        self._taken: dict[tuple[InstrumentId, bool, int], tuple[int, int]] = {}

    def on_data(self, data: Data) -> None:
        """
        See a data point before the engine does: note depth changes; drop the depth levels a quote or print rules out.

        A quote rules out asks below its ask and bids above its bid (module docstring); a print at ``p`` the
        quote does not contradict rules out the levels its aggressor went through and the other side at or
        through ``p`` (the book was never crossed). nautilus decides from the exchange's book whether a new
        limit order would take liquidity (a post-only order is rejected if so) and whether a resting order is
        crossed, and that book keeps levels a stale depth update has not removed yet. A later depth update at
        those prices restores them.
        """
        # Called for every data point: dispatch on the exact type, and look at the book only when the best
        # level is ruled out (rarely).
        kind = type(data)
        if kind is OrderBookDeltas or kind is OrderBookDelta:
            self._on_depth(data)
        elif kind is QuoteTick:
            depth = self._exchange.get_book(data.instrument_id)
            _delete_asks_below(depth, data.ask_price, inclusive=False, ts_event=data.ts_event)
            _delete_bids_above(depth, data.bid_price, inclusive=False, ts_event=data.ts_event)
        elif kind is TradeTick and not _older_than_quote(data, self._exchange.cache.quote_tick(data.instrument_id)):
            depth = self._exchange.get_book(data.instrument_id)
            buyer = data.aggressor_side == AggressorSide.BUYER
            _delete_asks_below(depth, data.price, inclusive=not buyer, ts_event=data.ts_event)
            _delete_bids_above(depth, data.price, inclusive=buyer, ts_event=data.ts_event)

    def _on_depth(self, data: OrderBookDelta | OrderBookDeltas) -> None:
        instrument_id = data.instrument_id
        self._depth_ts[instrument_id] = data.ts_init
        depth = self._depth.get(instrument_id)
        if depth is None:
            depth = self._depth[instrument_id] = OrderBook(instrument_id, BookType.L2_MBP)
        if type(data) is OrderBookDelta:
            depth.apply_delta(data)
        else:
            depth.apply_deltas(data)

    def book_for(self, instrument: Instrument, order: Order) -> OrderBook:
        """
        Return the merged book (depth, quote top, prints since, less own fills) of the side ``order``
        takes from, and remember what the order will take from it.
        """
        instrument_id = instrument.id
        depth = self._depth.get(instrument_id)
        taker_buys = order.side == OrderSide.BUY
        quote = self._exchange.cache.quote_tick(instrument_id)
        top = None
        since = self._depth_ts.get(instrument_id, 0)
        if quote is not None:
            top = (quote.ask_price.raw, quote.ask_size.raw) if taker_buys else (quote.bid_price.raw, quote.bid_size.raw)
            since = quote.ts_init
        prints = self._prints_since(instrument_id, since, quote, taker_buys)
        levels = self._less_own_fills(instrument_id, order, merged_levels(depth_levels(depth, taker_buys, top), top, prints, taker_buys))
        return _order_book(instrument, levels, taker_buys)

    def _less_own_fills(self, instrument_id: InstrumentId, order: Order, levels: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """
        Return ``levels`` less what the account's earlier fills took from them, and record what ``order`` takes.

        A taking stays while the level shows the size it had when taken (the data has not changed it since).
        The engine fills exactly the walk of the returned levels (within the order's limit price), so the
        walk is recorded here.
        """
        taker_buys = order.side == OrderSide.BUY
        remaining = order.leaves_qty.raw
        limit = order.price.raw if order.has_price else None
        left: list[tuple[int, int]] = []
        for price, size in levels:
            key = (instrument_id, taker_buys, price)
            taken = self._taken.get(key)
            already = 0
            if taken is not None:
                if taken[0] == size:
                    already = taken[1]
                else:
                    del self._taken[key]
            available = size - already
            if available <= 0:
                continue
            left.append((price, available))
            reachable = limit is None or (price <= limit if taker_buys else price >= limit)
            if remaining > 0 and reachable:
                take = min(available, remaining)
                self._taken[key] = (size, already + take)
                remaining -= take
                self._take_from_exchange_book(instrument_id, taker_buys, price, take)
        return left

    def _take_from_exchange_book(self, instrument_id: InstrumentId, taker_buys: bool, price_raw: int, size_raw: int) -> None:
        """Take an own fill out of the exchange's book too, so nautilus never sees a resting order crossed by it."""
        book = self._exchange.get_book(instrument_id)
        side = OrderSide.SELL if taker_buys else OrderSide.BUY
        instrument = self._exchange.instruments[instrument_id]
        price = Price.from_raw(price_raw, instrument.price_precision)
        level = book.get_quantity_at_level(price, OrderSide.BUY if taker_buys else OrderSide.SELL, instrument.size_precision)
        if level.raw == 0:
            return
        left = max(level.raw - size_raw, 0)
        if left == 0:
            book.delete(BookOrder(side, price, Quantity.zero(instrument.size_precision), 0), book.ts_last)
        else:
            book.update(BookOrder(side, price, Quantity.from_raw(left, instrument.size_precision), 0), book.ts_last)

    def _prints_since(self, instrument_id: InstrumentId, since_ns: int, quote: QuoteTick | None, taker_buys: bool) -> list[tuple[int, int]]:
        """
        Return (price raw, size raw) of the prints received after ``since_ns`` that cut the side a taker on
        ``taker_buys`` takes from, oldest first, as same-side prints: a seller's print at ``p`` rules out asks at
        or below ``p`` like a buyer's print one tick above would, so it is returned with size 0 at ``p + 1``
        raw for a taker buy (mirrored for a taker sell). Prints the latest quote contradicts are older than it.
        """
        cache = self._exchange.cache
        prints: list[tuple[int, int]] = []
        index = 0
        while True:
            trade = cache.trade_tick(instrument_id, index)
            if trade is None or trade.ts_init <= since_ns:
                prints.reverse()
                return prints
            index += 1
            if _older_than_quote(trade, quote):
                continue
            takes_from_asks = trade.aggressor_side == AggressorSide.BUYER
            if takes_from_asks == taker_buys:
                prints.append((trade.price.raw, trade.size.raw))
            else:
                # The other side's print: the book was not crossed, so this side had nothing at or through p.
                prints.append((trade.price.raw + 1 if taker_buys else trade.price.raw - 1, 0))


def _older_than_quote(trade: TradeTick, quote: QuoteTick | None) -> bool:
    """
    Whether the latest quote contradicts ``trade``: a buyer's print below the quoted ask, or a seller's above the
    quoted bid, needed a level the quote says was gone, so the print happened before the quote (the trade
    stream can lag the bookTicker stream) and tells nothing newer.
    """
    if quote is None:
        return False
    if trade.aggressor_side == AggressorSide.BUYER:
        return trade.price < quote.ask_price
    if trade.aggressor_side == AggressorSide.SELLER:
        return trade.price > quote.bid_price
    return False


def merged_levels(
    depth: Sequence[tuple[int, int]],
    top: tuple[int, int] | None,
    prints: Sequence[tuple[int, int]],
    taker_buys: bool,
) -> list[tuple[int, int]]:
    """
    Return the levels a taker sees on one side: depth, with the quote's top, less what later prints took.

    Parameters
    ----------
    depth : Sequence[tuple[int, int]]
        (price, size) of the side from the depth book, best first (asks for a taker buy, bids for a sell).
    top : tuple[int, int], optional
        (price, size) of the latest quote's level on that side; levels better than it are gone and its size
        stands. None (or size 0) leaves the depth's top.
    prints : Sequence[tuple[int, int]]
        (price, size) of the trades after the quote that took from this side, oldest first.
    taker_buys : bool
        True for the ask side (a taker buy), False for the bid side.

    Returns
    -------
    list[tuple[int, int]]
        (price, size), best first, no level of size 0.

    """
    levels = [list(level) for level in depth]
    if top is not None and top[1] > 0:
        levels = [[top[0], top[1]], *(level for level in levels if (level[0] > top[0] if taker_buys else level[0] < top[0]))]
    for price, size in prints:
        # A print at p went through every level better than p and took its size at p.
        levels = [level for level in levels if (level[0] >= price if taker_buys else level[0] <= price)]
        if levels and levels[0][0] == price:
            levels[0][1] = max(levels[0][1] - size, 0)
    return [(price, size) for price, size in levels if size > 0]


def depth_levels(depth: OrderBook | None, taker_buys: bool, top: tuple[int, int] | None) -> list[tuple[int, int]]:
    """
    Return (price raw, size raw) of the side a taker takes from, best first: at most ``MAX_LEVELS`` from the
    quote's price on (a stale depth can hold hundreds of levels the quote has already ruled out).
    """
    if depth is None:
        return []
    levels = []
    for level in depth.asks() if taker_buys else depth.bids():
        price = level.price.raw
        if top is not None and (price < top[0] if taker_buys else price > top[0]):
            continue
        levels.append((price, sum(order.size.raw for order in level.orders())))
        if len(levels) == MAX_LEVELS:
            break
    return levels


def _delete_asks_below(depth: OrderBook, price: Price, inclusive: bool, ts_event: int) -> None:
    """Delete the asks below ``price`` (and at it when ``inclusive``), best first."""
    best = depth.best_ask_price()
    while best is not None and (best < price or (inclusive and best == price)):
        depth.delete(BookOrder(OrderSide.SELL, best, Quantity.zero(), 0), ts_event)
        best = depth.best_ask_price()


def _delete_bids_above(depth: OrderBook, price: Price, inclusive: bool, ts_event: int) -> None:
    """Delete the bids above ``price`` (and at it when ``inclusive``), best first."""
    best = depth.best_bid_price()
    while best is not None and (best > price or (inclusive and best == price)):
        depth.delete(BookOrder(OrderSide.BUY, best, Quantity.zero(), 0), ts_event)
        best = depth.best_bid_price()


def _order_book(instrument: Instrument, levels: list[tuple[int, int]], taker_buys: bool) -> OrderBook:
    book = OrderBook(instrument.id, BookType.L2_MBP)
    side = OrderSide.SELL if taker_buys else OrderSide.BUY
    price_precision, size_precision = instrument.price_precision, instrument.size_precision
    for order_id, (price, size) in enumerate(levels, start=1):
        book.add(
            BookOrder(side, Price.from_raw(price, price_precision), Quantity.from_raw(size, size_precision), order_id),
            ts_event=0,
        )
    return book


class TapeFillBinderConfig(SimulationModuleConfig, frozen=True):
    """Configuration for ``TapeFillBinder`` (no fields)."""


class TapeFillBinder(SimulationModule):
    """
    Hands the venue's ``TapeFillModel`` the exchange it fills for, and keeps the queues of resting orders.

    Parameters
    ----------
    config : TapeFillBinderConfig
        The configuration.

    """

    def __init__(self, config: TapeFillBinderConfig | None = None) -> None:
        super().__init__(config or TapeFillBinderConfig())
        self._tape: TapeState | None = None
        self._queues: QueueTracker | None = None

    def register_venue(self, exchange: object) -> None:
        """Bind the exchange's fill model to the exchange (the engine calls this when it adds the venue)."""
        super().register_venue(exchange)
        if not isinstance(exchange.fill_model, TapeFillModel):
            raise TypeError(f"TapeFillBinder needs a TapeFillModel on venue {exchange.id}, found {type(exchange.fill_model).__name__}")
        self._tape = TapeState(exchange)
        self._queues = QueueTracker(exchange, exchange.fill_model.queue_model)
        exchange.fill_model.bind(self._tape, self._queues)

    def pre_process(self, data: Data) -> None:
        """Before the engine sees a quote or print: drop the depth levels it rules out; show prints to the queues."""
        if self._tape is None:
            return
        self._tape.on_data(data)
        if isinstance(data, TradeTick):
            self._queues.on_trade(data)

    def process(self, ts_now: int) -> None:
        """After a data point: track newly resting orders and apply depth changes to their queues."""
        if self._queues is not None:
            self._queues.process()

    def log_diagnostics(self, logger: Logger) -> None:
        """Nothing to report."""

    def reset(self) -> None:
        """Forget the binding (the engine re-registers the venue)."""
        self._tape = None
        self._queues = None
