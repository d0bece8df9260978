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
3. **Trades**: every trade print after the quote (without quotes: after the depth's last update, both in venue
   time) took
   liquidity: a BUYER print at ``p`` removes the asks below ``p`` and reduces the ask at ``p`` by its size (never
   below zero); a SELLER print mirrors it on the bids.
4. Size beyond the visible depth walks it; what the merged book cannot fill is handled by the engine as for
   nautilus's own book (a market order's remainder is not filled).

Resting limit orders (maker liquidity) fill when ``keel.backtests.queue_tracker`` says the tape gave them their
turn: trades at or through their price after the queue ahead of them has gone, by the venue model's queue model;
the hook then hands the engine exactly that fillable size at the order's price.

The fill model needs the exchange it fills for (its cache and books); :class:`TapeFillBinder`, a simulation
module the venue model adds next to it, hands it over when the engine registers the venue, and runs the queue
tracker after every data point.
"""

from collections.abc import Callable
from collections.abc import Sequence

from nautilus_trader.backtest.config import FillModelConfig
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.component import Logger
from nautilus_trader.core.data import Data
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
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
            return self._queues.book_for(instrument, order)
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

    def drop_ruled_out_levels(self, data: QuoteTick | TradeTick) -> None:
        """
        Delete from the exchange's depth book the levels a quote or print proves gone, before the engine sees it.

        A quote rules out bids at or above its ask and asks at or below its bid (the venue's book is never
        crossed); a print at ``p`` rules out asks below ``p`` and bids above it (an aggressor takes the best
        levels first). nautilus decides from this book whether a new limit order would take liquidity (a
        post-only order is rejected if so), and it keeps levels a stale depth update has not removed yet. Only
        levels that cannot exist are deleted, so the next depth update at those prices restores the book if the
        quote was the stale one.
        """
        depth = self._exchange.get_book(data.instrument_id)
        if depth is None:
            return
        if isinstance(data, QuoteTick):
            lowest_ask_allowed, highest_bid_allowed = data.bid_price, data.ask_price
            _delete_while(depth, OrderSide.SELL, lambda price: price <= lowest_ask_allowed, data.ts_event)
            _delete_while(depth, OrderSide.BUY, lambda price: price >= highest_bid_allowed, data.ts_event)
        else:
            _delete_while(depth, OrderSide.SELL, lambda price: price < data.price, data.ts_event)
            _delete_while(depth, OrderSide.BUY, lambda price: price > data.price, data.ts_event)

    def book_for(self, instrument: Instrument, order_side: OrderSide) -> OrderBook:
        """Return the merged book (depth, quote top, trades since) of the side ``order_side`` takes from."""
        instrument_id = instrument.id
        depth = self._exchange.get_book(instrument_id)
        taker_buys = order_side == OrderSide.BUY
        quote = self._exchange.cache.quote_tick(instrument_id)
        top = None
        if quote is not None:
            # The quote and the prints are ordered by when the feed delivered them (ts_init).
            top = (quote.ask_price.raw, quote.ask_size.raw) if taker_buys else (quote.bid_price.raw, quote.bid_size.raw)
            prints = self._trades_since(instrument_id, lambda trade: trade.ts_init > quote.ts_init, taker_buys)
        else:
            # Without quotes, the depth's last update and the prints are compared in venue time (ts_event), the
            # one clock both carry (nautilus's book keeps the event time of its last delta).
            last_update = depth.ts_last if depth is not None else 0
            prints = self._trades_since(instrument_id, lambda trade: trade.ts_event > last_update, taker_buys)
        levels = merged_levels(_depth_levels(depth, taker_buys), top, prints, taker_buys)
        return _order_book(instrument, levels, taker_buys)

    def _trades_since(self, instrument_id: InstrumentId, is_newer: Callable[[TradeTick], bool], taker_buys: bool) -> list[tuple[int, int]]:
        """Return (price raw, size raw) of the newest prints (while ``is_newer``) that took from the side a taker on ``taker_buys`` takes, oldest first."""
        cache = self._exchange.cache
        aggressor = AggressorSide.BUYER if taker_buys else AggressorSide.SELLER
        prints: list[tuple[int, int]] = []
        index = 0
        while True:
            trade = cache.trade_tick(instrument_id, index)
            if trade is None or not is_newer(trade):
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


def _delete_while(depth: OrderBook, side: OrderSide, ruled_out: Callable[[Price], bool], ts_event: int) -> None:
    """Delete the best level of ``side`` while ``ruled_out`` holds for its price."""
    best = depth.best_ask_price if side == OrderSide.SELL else depth.best_bid_price
    price = best()
    while price is not None and ruled_out(price):
        depth.delete(BookOrder(side, price, Quantity.zero(), 0), ts_event)
        price = best()


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
        if isinstance(data, TradeTick):
            self._tape.drop_ruled_out_levels(data)
            self._queues.on_trade(data)
        elif isinstance(data, QuoteTick):
            self._tape.drop_ruled_out_levels(data)

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
