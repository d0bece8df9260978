"""
What the venue's book was at an instant: one symbol's depth, bookTicker and trade prints merged by freshness.

Binance publishes its book three ways and the node receives all three: ``@depth@100ms`` diffs (the whole
book, batched every 100 ms), ``@bookTicker`` (the top of book, at every change) and ``@trade`` (every print,
at once). Between two diffs the book rebuilt from diffs is stale: its top can offer prices that a newer
bookTicker no longer shows or that trades have since gone through. The real venue matches against its live
book, so the emulator matches against the freshest state the streams reveal (``VenueView``), built from the
three sources, each as of its own timestamp:

1. Depth: the L2 book rebuilt from the replayed diffs, as of the last diff.
2. bookTicker: the true top. On each side, levels better than the ticker's price are gone and the level at
   its price holds the ticker's size (whatever depth shows there); levels behind it come from depth. Binance
   streams a bookTicker at every change of the top; a ``depth@100ms`` diff reports the book at the end of its
   batch and arrives up to 100 ms later, so a diff arriving after a ticker can be older than it (on the
   sample, diffs 5-10 ms after a ticker showed bids 3 bp above it in a falling market).
3. Trades newer than the ticker (than the depth before the first ticker): a BUYER trade at ``p`` took every ask below ``p`` and ``q`` of the ask at ``p``
   (never below zero); the book was not crossed when it printed, so bids at or above ``p`` are gone too.
   A SELLER trade mirrors it (bids above ``p`` gone, the bid at ``p`` less ``q``, asks at or below ``p``
   gone). These only remove liquidity, so their order among themselves does not matter. A print the latest
   bookTicker contradicts (a SELLER print above its bid, a BUYER print below its ask) happened before the
   ticker, however late it arrived (the @trade stream can lag @bookTicker), and is ignored.

A newer bookTicker supersedes the trade corrections before it (it shows the book after them); before the
first ticker, a newer depth change does.

The view is a matching-time view: the public depth stream stays a faithful replay of the recorded diffs
(nautilus rebuilds its book from it), except for the liquidity the account's own orders take, which
``take`` removes from the depth book (streamed by the venue) and from the ticker's size.

Queue position of a resting order (``QueuePosition``, the "risk-averse" queue model of hftbacktest): at
arrival the order joins behind the visible size at its price on its side (the view's size; the account's own
orders are not in the public book). Trade prints at its price by the opposite aggressor (a SELLER trade for
a resting buy) consume that queue first; only the quantity beyond it reaches the order, as a maker fill at
the order's price. A level that shrinks below the queue ahead (cancellations, which the data cannot place in
the queue) caps the queue at the new size: the order never moves back, and it moves forward only as far as
the level proves. A print strictly through the order's price fills it whatever its queue (the level was used
up).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from decimal import Decimal

from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL
from keel.live.emulator.book import L2Book
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint

_ZERO = Decimal(0)


@dataclass
class _TradeCuts:
    """
    What the trade prints since the last bookTicker or depth change removed, summed over the prints.

    An ask at ``p`` survives when ``p >= ask_floor`` and ``p > ask_ceiling_removed``; a bid at ``p`` when
    ``p <= bid_ceiling`` and ``p < bid_floor_removed``; ``taken`` is the traded quantity per (maker side,
    price).
    """

    ask_floor: Decimal | None = None
    ask_ceiling_removed: Decimal | None = None
    bid_ceiling: Decimal | None = None
    bid_floor_removed: Decimal | None = None
    taken: dict[tuple[str, Decimal], Decimal] = field(default_factory=dict)

    def add(self, trade: TradePrint) -> None:
        price = trade.price
        if trade.buyer_is_maker:
            # SELLER aggressor: it hit bids down to ``price``; asks were above ``price``.
            self.bid_ceiling = price if self.bid_ceiling is None else min(self.bid_ceiling, price)
            self.ask_ceiling_removed = price if self.ask_ceiling_removed is None else max(self.ask_ceiling_removed, price)
            key = (BUY, price)
        else:
            self.ask_floor = price if self.ask_floor is None else max(self.ask_floor, price)
            self.bid_floor_removed = price if self.bid_floor_removed is None else min(self.bid_floor_removed, price)
            key = (SELL, price)
        self.taken[key] = self.taken.get(key, _ZERO) + trade.quantity

    def survives(self, side: str, price: Decimal) -> bool:
        if side == SELL:
            return (self.ask_floor is None or price >= self.ask_floor) and (self.ask_ceiling_removed is None or price > self.ask_ceiling_removed)
        return (self.bid_ceiling is None or price <= self.bid_ceiling) and (self.bid_floor_removed is None or price < self.bid_floor_removed)

    def left(self, side: str, price: Decimal, quantity: Decimal) -> Decimal:
        if not self.survives(side, price):
            return _ZERO
        return max(quantity - self.taken.get((side, price), _ZERO), _ZERO)


class VenueView:
    """
    The merged book of one symbol (see the module docstring for the rules).

    Feed it every replayed event of its symbol: ``on_depth`` after a depth change was applied to ``depth``,
    ``on_quote`` and ``on_trade`` with the prints themselves. Freshness is decided by each event's
    ``ts_init``, not by the order of the calls, so a print older than the book state it follows (the
    replay's first quotes precede the warm-up snapshot) is ignored. On equal times the bookTicker is newer
    than depth, and both are newer than a trade.

    Parameters
    ----------
    depth : L2Book
        The book rebuilt from the replayed depth diffs (shared with the market streams, which apply them).
    """

    def __init__(self, depth: L2Book) -> None:
        self.depth = depth
        self.depth_ts_ns = 0
        self.quote: QuotePrint | None = None
        self._trades: list[TradePrint] = []
        self._cuts = _TradeCuts()

    # -- replayed events -------------------------------------------------------------------------------

    def on_depth(self, ts_init: int) -> None:
        """Record that a depth change as of ``ts_init`` was applied to ``depth``."""
        self.depth_ts_ns = max(self.depth_ts_ns, ts_init)
        self._drop_superseded_trades()

    def on_quote(self, quote: QuotePrint) -> None:
        """Take ``quote`` as the latest bookTicker (the true top while it is newer than the last depth change)."""
        if self.quote is not None and quote.ts_init < self.quote.ts_init:
            return
        self.quote = quote
        self._drop_superseded_trades()

    def on_trade(self, trade: TradePrint) -> None:
        """Remove the liquidity ``trade`` went through, when it is newer than the ticker (the depth before any ticker)."""
        if trade.ts_init > self._book_ts_ns() and not self._contradicted_by_ticker(trade):
            self._trades.append(trade)
            self._cuts.add(trade)

    def _contradicted_by_ticker(self, trade: TradePrint) -> bool:
        """
        Whether the latest bookTicker says ``trade`` is older than it although it arrived later.

        A SELLER print above the ticker's bid, or a BUYER print below its ask, needed a level the ticker shows
        gone: the @trade stream lagged the @bookTicker stream, and the print tells nothing newer than the ticker.
        """
        if self.quote is None:
            return False
        if trade.buyer_is_maker:
            return trade.price > self.quote.bid_price
        return trade.price < self.quote.ask_price

    # -- the merged book -------------------------------------------------------------------------------

    def levels(self, side: str) -> Iterator[tuple[Decimal, Decimal]]:
        """Yield the merged levels of ``side`` (``"BUY"`` = bids, ``"SELL"`` = asks), best first."""
        top = self._ticker_level(side)
        if top is not None:
            quantity = self._cuts.left(side, top[0], top[1])
            if quantity > 0:
                yield top[0], quantity
        for price, quantity in self.depth.levels(side):
            if top is not None and (price == top[0] or _is_better(side, price, top[0])):
                continue
            quantity = self._cuts.left(side, price, quantity)
            if quantity > 0:
                yield price, quantity

    def levels_for_taker(self, taker_side: str, limit_price: Decimal | None) -> Iterator[tuple[Decimal, Decimal]]:
        """Yield the merged levels a taker on ``taker_side`` would hit, best first, within ``limit_price`` if given."""
        for price, quantity in self.levels(SELL if taker_side == BUY else BUY):
            if limit_price is not None and (price > limit_price if taker_side == BUY else price < limit_price):
                return
            yield price, quantity

    def best(self, side: str) -> tuple[Decimal, Decimal] | None:
        """Return the best merged level of ``side`` as (price, quantity), or None when the side is empty."""
        return next(self.levels(side), None)

    def size_at(self, side: str, price: Decimal) -> Decimal:
        """Return the merged quantity at ``price`` on ``side`` (0 when there is no level)."""
        top = self._ticker_level(side)
        if top is None:
            quantity = self.depth.side(side).get(price, _ZERO)
        elif price == top[0]:
            quantity = top[1]
        elif _is_better(side, price, top[0]):
            return _ZERO
        else:
            quantity = self.depth.side(side).get(price, _ZERO)
        return self._cuts.left(side, price, quantity)

    # -- the account's own orders ----------------------------------------------------------------------

    def take(self, maker_side: str, price: Decimal, quantity: Decimal) -> Decimal | None:
        """
        Remove ``quantity`` the account's order took at ``price`` on ``maker_side``.

        Returns the depth book's new quantity at ``price`` (to stream as a depth diff), or None when the
        depth book has no level there (the liquidity came from the ticker alone; nothing to stream).
        """
        top = self._ticker_level(maker_side)
        if self.quote is not None and top is not None and top[0] == price:
            left = max(top[1] - quantity, _ZERO)
            if maker_side == SELL:
                self.quote = replace(self.quote, ask_quantity=left)
            else:
                self.quote = replace(self.quote, bid_quantity=left)
        levels = self.depth.side(maker_side)
        if price not in levels:
            return None
        left = max(levels[price] - quantity, _ZERO)
        self.depth.set_level(maker_side, price, left)
        return left

    # -- internals -------------------------------------------------------------------------------------

    def _ticker_level(self, side: str) -> tuple[Decimal, Decimal] | None:
        """Return the ticker's (price, size) on ``side``, or None before the first ticker."""
        if self.quote is None:
            return None
        if side == BUY:
            return self.quote.bid_price, self.quote.bid_quantity
        return self.quote.ask_price, self.quote.ask_quantity

    def _book_ts_ns(self) -> int:
        """The time of the source the trade cuts are relative to: the ticker, or the depth before any ticker."""
        return self.quote.ts_init if self.quote is not None else self.depth_ts_ns

    def _drop_superseded_trades(self) -> None:
        book_ts_ns = self._book_ts_ns()
        kept = [trade for trade in self._trades if trade.ts_init > book_ts_ns]
        if len(kept) == len(self._trades):
            return
        self._trades, self._cuts = kept, _TradeCuts()
        for trade in kept:
            self._cuts.add(trade)


def _is_better(side: str, price: Decimal, other: Decimal) -> bool:
    """Return whether ``price`` is a better level than ``other`` on ``side`` (a higher bid, a lower ask)."""
    return price > other if side == BUY else price < other


@dataclass
class QueuePosition:
    """
    The visible quantity resting ahead of one of the account's resting orders at its price.

    Parameters
    ----------
    ahead : Decimal
        Quantity ahead in the queue (the view's size at the order's price when it arrived).
    """

    ahead: Decimal

    def on_trade_at_price(self, quantity: Decimal) -> Decimal:
        """Consume ``quantity`` traded at the order's price by the opposite aggressor; return what reaches the order."""
        reached = max(quantity - self.ahead, _ZERO)
        self.ahead = max(self.ahead - quantity, _ZERO)
        return reached

    def on_level_size(self, visible: Decimal) -> None:
        """Cap the queue at the level's visible size (a level that shrank took its cancellations from ahead)."""
        self.ahead = min(self.ahead, visible)
