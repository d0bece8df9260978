"""The replay read from the catalog: the venue's book at a window start matches nautilus's own book rebuild."""

from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.live.emulator.book import L2Book
from keel.live.emulator.feed import DepthChange
from keel.live.emulator.feed import load_market_feed
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.symbols import symbol_spec

# Two minutes into the sample (2024-08-08 23:56:14 UTC).
WINDOW_START_NS = 1_723_161_374_000_000_000


def test_book_at_window_start_matches_nautilus_order_book(sample_catalog: Path) -> None:
    feed = load_market_feed(str(sample_catalog), ["ETHUSDT.BINANCE"], WINDOW_START_NS, None)
    spec = symbol_spec(feed.instruments[0])
    book = L2Book()
    market = MarketStreams({spec.symbol: spec}, {spec.symbol: book})
    for change in feed.warmup:
        market.apply(change)

    instrument_id = InstrumentId.from_str("ETHUSDT.BINANCE")
    reference = OrderBook(instrument_id, BookType.L2_MBP)
    for delta in ParquetDataCatalog(str(sample_catalog)).query(OrderBookDelta, identifiers=["ETHUSDT.BINANCE"], end=WINDOW_START_NS):
        reference.apply_delta(delta)

    assert _levels(reference.bids()) == book.levels("BUY")
    assert _levels(reference.asks()) == book.levels("SELL")
    assert all(event.ts_init >= WINDOW_START_NS for event in feed.events)
    assert all(not isinstance(event, DepthChange) or not event.is_snapshot for event in feed.events)


def _levels(levels: list) -> list[tuple[Decimal, Decimal]]:
    # An L2_MBP level holds one aggregated order; its Quantity is exact (level.size() is a float).
    return [(level.price.as_decimal(), level.orders()[0].size.as_decimal()) for level in levels]


def test_unknown_instrument_is_a_clear_error(sample_catalog: Path) -> None:
    with pytest.raises(ValueError, match="SOLUSDT.BINANCE not in the catalog"):
        load_market_feed(str(sample_catalog), ["SOLUSDT.BINANCE"], None, None)


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected a nautilus ParquetDataCatalog"):
        load_market_feed(str(tmp_path / "nowhere"), ["BTCUSDT.BINANCE"], None, None)
