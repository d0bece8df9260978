"""An actor that records what a node receives into a session folder, in the catalog layout.

Market data (trade ticks, quote ticks, L2 order book deltas) goes into ``<session>/catalog`` as the Python
``ParquetDataCatalog`` layout, flushed in chunks, so a backtest over the session catalog replays what the
node saw. Every order event of the node goes into ``orders.parquet`` and its fills into ``fills.parquet``
(the shared ``keel.fills`` layout). The actor works the same in a ``TradingNode`` and a backtest.
"""

import threading
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.common.config import ActorConfig
from nautilus_trader.common.config import PositiveFloat
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.enums import order_side_to_str
from nautilus_trader.model.enums import order_type_to_str
from nautilus_trader.model.events import OrderEvent
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.events import OrderInitialized
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.atomic_files import write_parquet_atomic
from keel.fills import fills_frame
from keel.fills import write_fills
from keel.live.session_layout import CATALOG_DIR
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import ORDERS_PARQUET
from keel.live.session_layout import orders_frame

FLUSH_TIMER = "SessionRecorder-flush"
BOOK_SUMMARY_LEVELS = 10


class SessionRecorderConfig(ActorConfig, frozen=True):
    """
    Configuration of the session recorder.

    Parameters
    ----------
    session_dir : str
        Session folder; the recorder writes ``catalog/``, ``fills.parquet`` and ``orders.parquet`` in it.
    instrument_ids : list[InstrumentId]
        Instruments whose trades, quotes and L2 book deltas are recorded (order events are recorded for
        every instrument).
    flush_interval_secs : PositiveFloat
        Flush buffered records to disk this often (node clock: wall time live, simulated in a backtest).
    """

    session_dir: str
    instrument_ids: list[InstrumentId]
    flush_interval_secs: PositiveFloat = 15.0


@dataclass
class _Stream:
    """Buffered records of one (data class, instrument), with ``ts_init`` kept non-decreasing."""

    records: list = field(default_factory=list)
    last_ts_init: int = 0
    written: int = 0
    restamped: int = 0


class SessionRecorder(Actor):
    """
    Record the node's market data and order events into a session folder.

    Order events keep being recorded after this actor stops, until it is disposed: the trader stops actors
    before strategies, so fills of a strategy's close-on-stop orders arrive after ``on_stop``.
    """

    def __init__(self, config: SessionRecorderConfig) -> None:
        super().__init__(config)
        self._session_dir = Path(config.session_dir)
        self._catalog: ParquetDataCatalog | None = None
        self._streams: dict[tuple[type, InstrumentId], _Stream] = {}
        # nautilus's live clock runs timer callbacks on its own thread: the periodic flush and the handlers (and
        # the final flush at stop) would otherwise write one stream's records twice, or lose the ones appended
        # while a flush swapped the buffer ("non-disjoint intervals" at the final flush, seen in sessions).
        self._lock = threading.Lock()
        self._order_rows: list[dict[str, Any]] = []
        self._last_trade_prices: dict[str, str] = {}
        self._fills: list[OrderFilled] = []
        self._order_events_dirty = False
        self._listening_to_orders = False
        self._final_books: dict[str, dict[str, Any]] = {}

    def on_start(self) -> None:
        catalog_path = self._session_dir / CATALOG_DIR
        catalog_path.mkdir(parents=True, exist_ok=True)
        self._catalog = ParquetDataCatalog(str(catalog_path))
        for instrument_id in self.config.instrument_ids:
            instrument = self.cache.instrument(instrument_id)
            if instrument is None:
                self.log.error(f"Cannot record {instrument_id}: instrument not in the cache")
                continue
            self._catalog.write_data([instrument])
            self.subscribe_trade_ticks(instrument_id)
            self.subscribe_quote_ticks(instrument_id)
            self.subscribe_order_book_deltas(instrument_id, book_type=BookType.L2_MBP, managed=True)
        if not self._listening_to_orders:
            self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
            self._listening_to_orders = True
        self.clock.set_timer(
            FLUSH_TIMER,
            timedelta(seconds=self.config.flush_interval_secs),
            callback=lambda _event: self.flush(final=False),
        )

    def on_stop(self) -> None:
        if FLUSH_TIMER in self.clock.timer_names:
            self.clock.cancel_timer(FLUSH_TIMER)
        for instrument_id in self.config.instrument_ids:
            self._final_books[instrument_id.value] = self._book_summary(instrument_id)
            if self.cache.instrument(instrument_id) is None:
                continue
            self.unsubscribe_trade_ticks(instrument_id)
            self.unsubscribe_quote_ticks(instrument_id)
            self.unsubscribe_order_book_deltas(instrument_id)
        self.flush(final=True)

    def on_dispose(self) -> None:
        if self._listening_to_orders:
            self.msgbus.unsubscribe(topic="events.order.*", handler=self._on_order_event)
            self._listening_to_orders = False
        with self._lock:
            self._write_order_events()

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._last_trade_prices[tick.instrument_id.value] = str(tick.price)
        stream = self._stream(TradeTick, tick.instrument_id)
        if tick.ts_init < stream.last_ts_init:
            tick = TradeTick(
                tick.instrument_id,
                tick.price,
                tick.size,
                tick.aggressor_side,
                tick.trade_id,
                tick.ts_event,
                stream.last_ts_init,
            )
            stream.restamped += 1
        self._append(stream, tick)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        stream = self._stream(QuoteTick, tick.instrument_id)
        if tick.ts_init < stream.last_ts_init:
            tick = QuoteTick(
                tick.instrument_id,
                tick.bid_price,
                tick.ask_price,
                tick.bid_size,
                tick.ask_size,
                tick.ts_event,
                stream.last_ts_init,
            )
            stream.restamped += 1
        self._append(stream, tick)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        stream = self._stream(OrderBookDelta, deltas.instrument_id)
        batch = deltas.deltas
        last_index = len(batch) - 1
        for index, delta in enumerate(batch):
            flags = delta.flags
            # The Binance REST snapshot arrives as one batch without F_LAST; mark where the node's batch ended
            # so a replay applies the snapshot as one unit too. Single deltas are left alone: a backtest hands
            # over one delta at a time from batches that end later.
            if index == last_index and last_index > 0 and not flags & RecordFlag.F_LAST:
                flags |= RecordFlag.F_LAST
            # Sorting by ts_init must keep the order the node applied the deltas in (a snapshot taken while
            # diffs were buffered is stamped earlier than they are), so ts_init never goes backwards.
            ts_init = max(delta.ts_init, stream.last_ts_init)
            if ts_init != delta.ts_init:
                stream.restamped += 1
            if flags != delta.flags or ts_init != delta.ts_init:
                delta = OrderBookDelta(
                    delta.instrument_id,
                    delta.action,
                    delta.order,
                    flags,
                    delta.sequence,
                    delta.ts_event,
                    ts_init,
                )
            self._append(stream, delta)

    def flush(self, final: bool) -> None:
        """
        Write buffered records to the session folder.

        Parameters
        ----------
        final : bool
            Write everything. Otherwise the records sharing the newest ``ts_init`` of each stream are held
            back, because catalog files of one stream must cover disjoint time intervals.
        """
        with self._lock:
            if self._catalog is not None:
                for stream in self._streams.values():
                    self._flush_stream(stream, final)
            self._write_order_events()

    def summary(self) -> dict[str, Any]:
        """Return counts of what was recorded, records re-stamped to keep time order, the final books and last trade prices."""
        counts: dict[str, dict[str, int]] = {}
        restamped: dict[str, dict[str, int]] = {}
        for (data_cls, instrument_id), stream in self._streams.items():
            counts.setdefault(data_cls.__name__, {})[instrument_id.value] = stream.written + len(stream.records)
            restamped.setdefault(data_cls.__name__, {})[instrument_id.value] = stream.restamped
        return {
            "records": counts,
            "restamped_ts_init": restamped,
            "order_events": len(self._order_rows),
            "fills": len(self._fills),
            "final_books": self._final_books,
            "last_trade_prices": self._last_trade_prices,  # what a session's P&L marks its position at
        }

    def _stream(self, data_cls: type, instrument_id: InstrumentId) -> _Stream:
        key = (data_cls, instrument_id)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        return stream

    def _append(self, stream: _Stream, record: Any) -> None:
        with self._lock:
            stream.records.append(record)
            stream.last_ts_init = record.ts_init

    def _flush_stream(self, stream: _Stream, final: bool) -> None:
        records = stream.records
        if not records:
            return
        cut = len(records)
        if not final:
            newest = records[-1].ts_init
            while cut > 0 and records[cut - 1].ts_init == newest:
                cut -= 1
            if cut == 0:
                return
        self._catalog.write_data(records[:cut])
        stream.written += cut
        stream.records = records[cut:]

    def _on_order_event(self, event: OrderEvent) -> None:
        self._order_rows.append(self._order_row(event))
        if isinstance(event, OrderFilled):
            self._fills.append(event)
        self._order_events_dirty = True

    def _order_row(self, event: OrderEvent) -> dict[str, Any]:
        row: dict[str, Any] = {
            "ts_event": event.ts_event,
            "ts_init": event.ts_init,
            "strategy_id": event.strategy_id.value,
            "instrument_id": event.instrument_id.value,
            "client_order_id": event.client_order_id.value,
            "venue_order_id": event.venue_order_id.value if event.venue_order_id is not None else None,
            "event_type": type(event).__name__,
            "reason": getattr(event, "reason", None),
        }
        if isinstance(event, OrderInitialized):
            # Published before the order enters the cache: the event itself describes the order.
            price = event.options.get("price")
            return row | {
                "order_side": order_side_to_str(event.side),
                "order_type": order_type_to_str(event.order_type),
                "quantity": float(event.quantity),
                "price": float(price) if price is not None else None,
                "status": "INITIALIZED",
            }
        order = self.cache.order(event.client_order_id)
        if order is None:
            return row
        row |= {
            "order_side": order_side_to_str(order.side),
            "order_type": order_type_to_str(order.order_type),
            "quantity": float(order.quantity),
            "price": float(order.price) if order.has_price else None,
            "status": order.status_string(),
        }
        if isinstance(event, OrderFilled):
            row |= {"quantity": float(event.last_qty), "price": float(event.last_px)}
        return row

    def _write_order_events(self) -> None:
        if not self._order_events_dirty and (self._session_dir / ORDERS_PARQUET).exists():
            return
        self._session_dir.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(orders_frame(self._order_rows), self._session_dir / ORDERS_PARQUET)
        write_fills(fills_frame(self._fills), self._session_dir / FILLS_PARQUET)
        self._order_events_dirty = False

    def _book_summary(self, instrument_id: InstrumentId) -> dict[str, Any]:
        book = self.cache.order_book(instrument_id)
        if book is None:
            return {}
        return {
            "sequence": book.sequence,
            "update_count": book.update_count,
            "ts_last": book.ts_last,
            "bids": [[str(level.price), str(level.size())] for level in book.bids()[:BOOK_SUMMARY_LEVELS]],
            "asks": [[str(level.price), str(level.size())] for level in book.asks()[:BOOK_SUMMARY_LEVELS]],
        }
