"""
The venue's market streams: applies replayed book events to the books and sends ``@trade``,
``@aggTrade``, ``@bookTicker``, ``@depth@100ms``, ``@depth`` (1000 ms) and ``@depthN`` frames.

Update ids: each symbol has one id counter. Every bookTicker and every book change takes the next id;
a depth diff covers ``U = previous diff's u + 1`` to ``u = the id of its last change``, so diffs are
continuous, bookTicker ``u`` lives in the same id space, and a REST snapshot's ``lastUpdateId`` (the last
streamed diff's ``u``) is bridged by the next diff (``U <= lastUpdateId + 1 <= u``).
"""

import json
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Any

from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL
from keel.live.emulator.book import L2Book
from keel.live.emulator.feed import DepthChange
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.sockets import MarketSocket
from keel.live.emulator.symbols import SymbolSpec

# Arbitrary but Binance-sized, so ids look like the venue's.
FIRST_UPDATE_ID = 50_000_000_000
_PARTIAL_DEPTHS = (5, 10, 20)


@dataclass
class _PendingDiff:
    first_update_id: int
    last_update_id: int = 0
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)


class MarketStreams:
    """
    Books, update ids and the ``/stream`` subscribers of every listed symbol.

    Parameters
    ----------
    specs : dict[str, SymbolSpec]
        Listed symbols by venue symbol.
    books : dict[str, L2Book]
        The venue's books (shared with the matching engine).
    """

    def __init__(self, specs: dict[str, SymbolSpec], books: dict[str, L2Book]) -> None:
        self.specs = specs
        self.books = books
        self.sockets: set[MarketSocket] = set()
        self._update_ids: dict[str, int] = dict.fromkeys(specs, FIRST_UPDATE_ID)
        self._last_diff_ids: dict[str, int] = dict.fromkeys(specs, FIRST_UPDATE_ID)
        self._slow_diffs: dict[str, _PendingDiff] = {}

    def last_update_id(self, symbol: str) -> int:
        """Return the ``u`` of the last streamed depth diff of ``symbol`` (what a REST snapshot reflects)."""
        return self._last_diff_ids[symbol]

    def apply(self, change: DepthChange) -> list[tuple[str, Decimal, Decimal]]:
        """Apply a replayed book event to the book; return the level changes it made (side, price, qty)."""
        book = self.books[change.symbol]
        if not change.is_snapshot:
            for side, price, quantity in change.levels:
                book.set_level(side, price, quantity)
            return list(change.levels)
        # A snapshot replaces the book; subscribers only get diffs, so stream the difference.
        new = L2Book()
        for side, price, quantity in change.levels:
            new.set_level(side, price, quantity)
        levels: list[tuple[str, Decimal, Decimal]] = []
        for side in (BUY, SELL):
            old_levels, new_levels = book.side(side), new.side(side)
            levels.extend((side, price, Decimal(0)) for price in old_levels if price not in new_levels)
            levels.extend((side, price, qty) for price, qty in new_levels.items() if old_levels.get(price) != qty)
        book.bids, book.asks = new.bids, new.asks
        return levels

    def publish_trade(self, trade: TradePrint, now_ms: int) -> None:
        """Send a replayed trade on ``@trade`` and ``@aggTrade``, stamped now."""
        spec = self.specs[trade.symbol]
        name = trade.symbol.lower()
        price, quantity = spec.format_price(trade.price), spec.format_qty(trade.quantity)
        self._send(f"{name}@trade", {
            "e": "trade", "E": now_ms, "s": trade.symbol, "t": trade.trade_id, "p": price, "q": quantity,
            "T": now_ms, "m": trade.buyer_is_maker, "M": True,
        })
        self._send(f"{name}@aggTrade", {
            "e": "aggTrade", "E": now_ms, "s": trade.symbol, "a": trade.trade_id, "p": price, "q": quantity,
            "f": trade.trade_id, "l": trade.trade_id, "T": now_ms, "m": trade.buyer_is_maker, "M": True,
        })

    def publish_quote(self, quote: QuotePrint) -> None:
        """Send a replayed best bid/offer on ``@bookTicker`` with the next update id."""
        spec = self.specs[quote.symbol]
        update_id = self._next_update_id(quote.symbol)
        self._send(f"{quote.symbol.lower()}@bookTicker", {
            "u": update_id, "s": quote.symbol,
            "b": spec.format_price(quote.bid_price), "B": spec.format_qty(quote.bid_quantity),
            "a": spec.format_price(quote.ask_price), "A": spec.format_qty(quote.ask_quantity),
        })

    def publish_depth(self, symbol: str, levels: list[tuple[str, Decimal, Decimal]], now_ms: int) -> None:
        """Send book level changes as the next depth diff (and partial-depth snapshots)."""
        if not levels:
            return
        spec = self.specs[symbol]
        first = self._last_diff_ids[symbol] + 1
        last = self._next_update_id(symbol)
        self._last_diff_ids[symbol] = last
        name = symbol.lower()
        bids = {price: qty for side, price, qty in levels if side == BUY}
        asks = {price: qty for side, price, qty in levels if side == SELL}
        self._send(f"{name}@depth@100ms", self._diff(spec, now_ms, first, last, bids, asks))
        pending = self._slow_diffs.setdefault(symbol, _PendingDiff(first_update_id=first))
        pending.last_update_id = last
        pending.bids.update(bids)
        pending.asks.update(asks)
        for depth in _PARTIAL_DEPTHS:
            for speed in ("", "@100ms"):
                stream = f"{name}@depth{depth}{speed}"
                if self._has_subscriber(stream):
                    self._send(stream, self.snapshot(symbol, depth))

    def flush_slow_diffs(self, now_ms: int) -> None:
        """Send the diffs accumulated since the last call on the 1000 ms streams (``@depth``, ``@depth@1000ms``)."""
        pending, self._slow_diffs = self._slow_diffs, {}
        for symbol, diff in pending.items():
            data = self._diff(self.specs[symbol], now_ms, diff.first_update_id, diff.last_update_id, diff.bids, diff.asks)
            self._send(f"{symbol.lower()}@depth", data)
            self._send(f"{symbol.lower()}@depth@1000ms", data)

    def snapshot(self, symbol: str, depth: int) -> dict[str, Any]:
        """Return the book of ``symbol`` as ``GET /api/v3/depth`` shows it (best ``depth`` levels a side)."""
        spec = self.specs[symbol]
        bids, asks = self.books[symbol].snapshot(depth)
        return {
            "lastUpdateId": self._last_diff_ids[symbol],
            "bids": [[spec.format_price(p), spec.format_qty(q)] for p, q in bids],
            "asks": [[spec.format_price(p), spec.format_qty(q)] for p, q in asks],
        }

    def _diff(self, spec: SymbolSpec, now_ms: int, first: int, last: int, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> dict[str, Any]:
        return {
            "e": "depthUpdate", "E": now_ms, "s": spec.symbol, "U": first, "u": last,
            "b": [[spec.format_price(p), spec.format_qty(q)] for p, q in sorted(bids.items(), reverse=True)],
            "a": [[spec.format_price(p), spec.format_qty(q)] for p, q in sorted(asks.items())],
        }

    def _next_update_id(self, symbol: str) -> int:
        self._update_ids[symbol] += 1
        return self._update_ids[symbol]

    def _has_subscriber(self, stream: str) -> bool:
        return any(stream in socket.streams for socket in self.sockets)

    def _send(self, stream: str, data: dict[str, Any]) -> None:
        text: str | None = None
        for socket in self.sockets:
            if stream in socket.streams:
                text = text or json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
                socket.send(text)
