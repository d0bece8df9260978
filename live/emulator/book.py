"""The venue's L2 depth book for one symbol: price levels per side, as replayed and as consumed by own takers."""

from decimal import Decimal

BUY = "BUY"
SELL = "SELL"


class L2Book:
    """
    Aggregated price levels (price -> total quantity) for the bid and ask side of one symbol.

    Levels are replaced absolutely (a Binance depth diff carries the new total quantity of a level, and
    quantity 0 removes it), so the book stays in step with the diffs the venue streams.
    """

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def side(self, side: str) -> dict[Decimal, Decimal]:
        """Return the levels of ``side`` (``"BUY"`` = bids, ``"SELL"`` = asks)."""
        return self.bids if side == BUY else self.asks

    def set_level(self, side: str, price: Decimal, quantity: Decimal) -> None:
        """Set the total quantity at ``price`` on ``side``; quantity 0 removes the level."""
        levels = self.side(side)
        if quantity > 0:
            levels[price] = quantity
        else:
            levels.pop(price, None)

    def clear(self) -> None:
        """Remove every level on both sides."""
        self.bids.clear()
        self.asks.clear()

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        """Return the best (highest) bid level as (price, quantity), or None when there are no bids."""
        if not self.bids:
            return None
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        """Return the best (lowest) ask level as (price, quantity), or None when there are no asks."""
        if not self.asks:
            return None
        price = min(self.asks)
        return price, self.asks[price]

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """Return the levels of ``side`` best first."""
        levels = self.side(side)
        return sorted(levels.items(), reverse=side == BUY)

    def snapshot(self, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Return the best ``depth`` bid and ask levels, best first."""
        return self.levels(BUY)[:depth], self.levels(SELL)[:depth]
