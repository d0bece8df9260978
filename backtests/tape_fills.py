"""
Taker fills against the book the tape says was there: depth from L2 deltas, its top from the latest quote, minus
what trades since have taken.

nautilus 1.231's L2 backtest book is rebuilt from order book deltas only: quotes and trades never move it
(``docs/backtest.md``), so on Binance, whose depth stream comes every 100 ms while bookTicker and trades are
real time, a market order fills at levels the market had already traded through. The engine lets a fill model
hand it the book a fill should see (``FillModel.get_orderbook_for_fill_simulation``, called for every market
order and every limit order taking liquidity); :class:`TapeFillModel` builds that book from the tape, as of the
moment the engine matches the order:

1. **Depth**: the venue book rebuilt from the catalog's L2 deltas (nautilus's own book).
2. **Top**: the latest ``QuoteTick`` (bookTicker) is the authority on the best level of each side. Depth levels
   better than it are gone; the level at its price has its size. A venue streams a new bookTicker on every
   change of the top, while depth diffs come in batches, so the quote is never older than what it replaces.
3. **Trades**: every trade print after the quote (after the last depth update when there are no quotes) took
   liquidity: a BUYER print at ``p`` removes the asks below ``p`` and reduces the ask at ``p`` by its size (never
   below zero); a SELLER print mirrors it on the bids.
4. Size beyond the visible depth walks it; what the merged book cannot fill is handled by the engine as for
   nautilus's own book (a market order's remainder is not filled).

Resting limit orders (maker liquidity) are left to nautilus's matching with ``trade_execution`` and
``queue_position`` (``keel.backtests.venues.FillKnob``): they fill only on trades at or through their price,
after the queue ahead of them has traded.

The fill model needs the exchange it fills for (its cache and books); :class:`TapeFillBinder`, a simulation
module the venue model adds next to it, hands it over when the engine registers the venue.
"""

from collections.abc import Sequence

from nautilus_trader.backtest.config import FillModelConfig
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.component import Logger
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.model.orders import Order

# Levels handed to the engine per fill: a min-size order takes one or two; a large one walks further, and a
# book deeper than this is rare to need within one order (the remainder then stays unfilled, as on the venue).
MAX_LEVELS = 200
_NEWEST = 2**64  # a time after every print


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

    """


class TapeFillModel(FillModel):
    """
    Fills taker orders against the book the tape shows at the matching time (module docstring).

    Parameters
    ----------
    config : TapeFillModelConfig, optional
        The configuration.

    """

    def __init__(self, config: TapeFillModelConfig | None = None) -> None:
        super().__init__(config=config or TapeFillModelConfig())
        self._tape: TapeState | None = None

    def bind(self, tape: "TapeState") -> None:
        """Give the model the exchange state it reads (called by ``TapeFillBinder``)."""
        self._tape = tape

    def get_orderbook_for_fill_simulation(self, instrument: Instrument, order: Order, best_bid: Price, best_ask: Price) -> OrderBook | None:
        """Return the tape's book for a taker order; None (nautilus's own matching) for a resting order."""
        if order.liquidity_side == LiquiditySide.MAKER:
            return None
        if self._tape is None:
            raise RuntimeError(
                "TapeFillModel is not bound to its exchange: add keel.backtests.tape_fills:TapeFillBinder to the "
                "venue's modules (keel.backtests.venues.VenueModel does this for fills.model: tape)",
            )
        return self._tape.book_for(instrument, order.side)


class TapeState:
    """
    What the exchange knows about one venue's tape: its books, and (through its cache) quotes and trades.

    Parameters
    ----------
    exchange : SimulatedExchange
        The simulated exchange (its ``cache`` and ``get_book``).

    """

    def __init__(self, exchange: object) -> None:
        self._exchange = exchange
        self._book_seen: dict[InstrumentId, tuple[int, int]] = {}

    def note_time(self, ts_now: int) -> None:
        """Record, per book, the replay time of its last change (called after every data point)."""
        for instrument_id, book in self._exchange.get_books().items():
            count = book.update_count
            seen = self._book_seen.get(instrument_id)
            if seen is None or seen[0] != count:
                self._book_seen[instrument_id] = (count, ts_now)

    def book_for(self, instrument: Instrument, order_side: OrderSide) -> OrderBook:
        """Return the merged book (depth, quote top, trades since) of the side ``order_side`` takes from."""
        instrument_id = instrument.id
        depth = self._exchange.get_book(instrument_id)
        taker_buys = order_side == OrderSide.BUY
        quote = self._exchange.cache.quote_tick(instrument_id)
        top = None
        if quote is not None:
            since = quote.ts_init
            top = (quote.ask_price.raw, quote.ask_size.raw) if taker_buys else (quote.bid_price.raw, quote.bid_size.raw)
        else:
            since = self._last_book_change(instrument_id, depth)
        prints = self._trades_since(instrument_id, since, taker_buys)
        levels = merged_levels(_depth_levels(depth, taker_buys), top, prints, taker_buys)
        return _order_book(instrument, levels, taker_buys)

    def _last_book_change(self, instrument_id: InstrumentId, depth: OrderBook) -> int:
        seen = self._book_seen.get(instrument_id)
        if seen is None or seen[0] != depth.update_count:
            # The book changed at the data point being matched now (modules run after the fills): no print
            # is newer than that depth.
            return _NEWEST
        return seen[1]

    def _trades_since(self, instrument_id: InstrumentId, since_ns: int, taker_buys: bool) -> list[tuple[int, int]]:
        """Return (price raw, size raw) of the prints after ``since_ns`` that took from the side a taker on ``taker_buys`` takes, oldest first."""
        cache = self._exchange.cache
        aggressor = AggressorSide.BUYER if taker_buys else AggressorSide.SELLER
        prints: list[tuple[int, int]] = []
        index = 0
        while True:
            trade = cache.trade_tick(instrument_id, index)
            if trade is None or trade.ts_init <= since_ns:
                prints.reverse()
                return prints
            if trade.aggressor_side == aggressor:
                prints.append((trade.price.raw, trade.size.raw))
            index += 1


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


def _depth_levels(depth: OrderBook | None, taker_buys: bool) -> list[tuple[int, int]]:
    """Return (price raw, size raw) of the side a taker takes from, best first, at most ``MAX_LEVELS``."""
    if depth is None:
        return []
    side = depth.asks() if taker_buys else depth.bids()
    return [(level.price.raw, sum(order.size.raw for order in level.orders())) for level in side[:MAX_LEVELS]]


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
    Hands the venue's ``TapeFillModel`` the exchange it fills for, and tells it when books change.

    Parameters
    ----------
    config : TapeFillBinderConfig
        The configuration.

    """

    def __init__(self, config: TapeFillBinderConfig | None = None) -> None:
        super().__init__(config or TapeFillBinderConfig())
        self._tape: TapeState | None = None

    def register_venue(self, exchange: object) -> None:
        """Bind the exchange's fill model to the exchange (the engine calls this when it adds the venue)."""
        super().register_venue(exchange)
        if not isinstance(exchange.fill_model, TapeFillModel):
            raise TypeError(f"TapeFillBinder needs a TapeFillModel on venue {exchange.id}, found {type(exchange.fill_model).__name__}")
        self._tape = TapeState(exchange)
        exchange.fill_model.bind(self._tape)

    def process(self, ts_now: int) -> None:
        """Note which books changed at this data point."""
        if self._tape is not None:
            self._tape.note_time(ts_now)

    def log_diagnostics(self, logger: Logger) -> None:
        """Nothing to report."""

    def reset(self) -> None:
        """Forget the binding (the engine re-registers the venue)."""
        self._tape = None
