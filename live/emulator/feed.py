"""The venue's market: catalog data (trades, bookTickers, L2 deltas) read into one ``ts_init``-ordered feed."""

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL


@dataclass(frozen=True)
class TradePrint:
    """A public trade (``@trade``); ``buyer_is_maker`` is Binance's ``m``."""

    ts_init: int
    symbol: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    buyer_is_maker: bool


@dataclass(frozen=True)
class QuotePrint:
    """A best bid/offer update (``@bookTicker``)."""

    ts_init: int
    symbol: str
    bid_price: Decimal
    bid_quantity: Decimal
    ask_price: Decimal
    ask_quantity: Decimal


@dataclass(frozen=True)
class DepthChange:
    """
    One venue book event: a group of deltas ending with ``F_LAST``.

    ``levels`` are (side, price, new total quantity; 0 removes). A snapshot (``is_snapshot``) replaces the
    whole book with its levels.
    """

    ts_init: int
    symbol: str
    is_snapshot: bool
    levels: tuple[tuple[str, Decimal, Decimal], ...]


FeedEvent = TradePrint | QuotePrint | DepthChange


@dataclass(frozen=True)
class MarketFeed:
    """
    What the venue replays.

    Parameters
    ----------
    instruments : list[CurrencyPair]
        The listed instruments, in the configured order.
    warmup : list[DepthChange]
        Book events before the replay window (up to and including the first snapshot): applied before the
        venue serves anything, so its book is complete from the first request.
    events : list[FeedEvent]
        The replay, in ``ts_init`` order.
    """

    instruments: list[CurrencyPair]
    warmup: list[DepthChange]
    events: list[FeedEvent]


def load_market_feed(catalog_path: str, instrument_ids: list[str], start_ns: int | None, end_ns: int | None) -> MarketFeed:
    """
    Read the replay of ``instrument_ids`` from the Python ``ParquetDataCatalog`` at ``catalog_path``.

    Raises
    ------
    ValueError
        When the catalog is missing, lacks an instrument, has no book snapshot for one, or the window holds
        no data. The message names the catalog and what was expected.
    """
    if not (Path(catalog_path) / "data").is_dir():
        raise ValueError(f"{catalog_path}: expected a nautilus ParquetDataCatalog (a folder with data/), found none")
    catalog = ParquetDataCatalog(catalog_path)
    instruments: list[CurrencyPair] = []
    warmup: list[DepthChange] = []
    events: list[FeedEvent] = []
    for instrument_id in instrument_ids:
        found = catalog.instruments(instrument_ids=[instrument_id])
        if not found:
            raise ValueError(f"{catalog_path}: instrument {instrument_id} not in the catalog (expected a CurrencyPair)")
        instrument = found[0]
        if not isinstance(instrument, CurrencyPair):
            raise ValueError(f"{catalog_path}: instrument {instrument_id} is a {type(instrument).__name__}, expected a CurrencyPair (spot)")
        instruments.append(instrument)
        symbol = instrument.raw_symbol.value
        depth = _depth_changes(catalog.query(OrderBookDelta, identifiers=[instrument_id], end=end_ns), symbol)
        first_snapshot = next((change for change in depth if change.is_snapshot), None)
        if first_snapshot is None:
            raise ValueError(f"{catalog_path}: no order book snapshot for {instrument_id} (the venue needs a book to match against)")
        warmup_until = max(first_snapshot.ts_init, start_ns if start_ns is not None else first_snapshot.ts_init)
        warmup.extend(change for change in depth if change.ts_init <= warmup_until)
        events.extend(change for change in depth if change.ts_init > warmup_until)
        events.extend(_trades(catalog.query(TradeTick, identifiers=[instrument_id], start=start_ns, end=end_ns), symbol))
        events.extend(_quotes(catalog.query(QuoteTick, identifiers=[instrument_id], start=start_ns, end=end_ns), symbol))
    if not events:
        raise ValueError(f"{catalog_path}: no trades, quotes or book updates for {instrument_ids} in the window {start_ns}..{end_ns}")
    # A stable sort keeps each stream's catalog order for equal timestamps.
    events.sort(key=lambda event: event.ts_init)
    warmup.sort(key=lambda event: event.ts_init)
    return MarketFeed(instruments=instruments, warmup=warmup, events=events)


def _depth_changes(deltas: list[OrderBookDelta], symbol: str) -> list[DepthChange]:
    changes: list[DepthChange] = []
    levels: list[tuple[str, Decimal, Decimal]] = []
    is_snapshot = False
    for delta in deltas:
        flags = delta.flags
        if delta.action == BookAction.CLEAR:
            is_snapshot = True
        else:
            side = BUY if delta.order.side == OrderSide.BUY else SELL
            quantity = Decimal(0) if delta.action == BookAction.DELETE else delta.order.size.as_decimal()
            levels.append((side, delta.order.price.as_decimal(), quantity))
            is_snapshot = is_snapshot or bool(flags & RecordFlag.F_SNAPSHOT)
        if flags & RecordFlag.F_LAST:
            changes.append(DepthChange(delta.ts_init, symbol, is_snapshot, tuple(levels)))
            levels, is_snapshot = [], False
    return changes


def _trades(ticks: list[TradeTick], symbol: str) -> list[TradePrint]:
    return [
        TradePrint(
            ts_init=tick.ts_init,
            symbol=symbol,
            trade_id=_numeric_trade_id(tick.trade_id.value, index),
            price=tick.price.as_decimal(),
            quantity=tick.size.as_decimal(),
            buyer_is_maker=tick.aggressor_side == AggressorSide.SELLER,
        )
        for index, tick in enumerate(ticks)
    ]


def _numeric_trade_id(value: str, index: int) -> int:
    # Binance's ``t`` is an integer; catalogs from other sources may carry non-numeric trade ids.
    return int(value) if value.isdigit() else index + 1


def _quotes(ticks: list[QuoteTick], symbol: str) -> list[QuotePrint]:
    return [
        QuotePrint(
            ts_init=tick.ts_init,
            symbol=symbol,
            bid_price=tick.bid_price.as_decimal(),
            bid_quantity=tick.bid_size.as_decimal(),
            ask_price=tick.ask_price.as_decimal(),
            ask_quantity=tick.ask_size.as_decimal(),
        )
        for tick in ticks
    ]
