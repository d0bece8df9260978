"""Ingest cryptofeed recordings of OKX's v5 public websocket: ``books`` L2 deltas, ``trades`` and ``tickers``.

Recording format (cryptofeed's raw data capture, one file per connection): text, gzip or plain, one record a
line. ``<url> <-> <local ts>`` marks a connection opening, ``<url> <- <local ts>: <json>`` a request the recorder sent
(subscriptions), and ``<local ts>: <json>`` a message received exactly as OKX pushed it; the local time is
seconds since the epoch with a fraction (Python's float repr), converted to nanoseconds from its digits.

Messages become nautilus data:

- ``books`` (a 400-level ``snapshot``, then ``update`` s every 100 ms): a snapshot is a CLEAR then one ADD per
  level, all flagged ``F_SNAPSHOT``; an update is one UPDATE per level, or DELETE where the size is 0. The last
  delta of each message carries ``F_LAST``. ``sequence`` is OKX's ``seqId`` when the message has one, else the
  message's 1-based position in the instrument's stream.
- ``trades``: one ``TradeTick`` per trade; the aggressor is OKX's ``side`` (the taker's), the id its ``tradeId``.
- ``tickers``: one ``QuoteTick`` per push, from ``bidPx/bidSz/askPx/askSz``.

``ts_event`` is OKX's ``ts`` (ms), ``ts_init`` the local receive time.

Integrity, checked for every instrument in the file (also those not ingested, since a corrupt file is corrupt):
after each ``books`` message the local book must reproduce OKX's CRC32 ``checksum`` (OKX: the top 25 levels,
``bidPx:bidSz:askPx:askSz`` interleaved per depth, only the other side's levels where one side is shorter, using
the price and size strings as OKX sent them, as a signed 32-bit integer); ``prevSeqId`` must equal the previous
``seqId`` where OKX sends them (a ``seqId`` below ``prevSeqId`` is OKX's documented sequence reset); trade ids
follow each other (``tradeId == previous + count``); local times never go backwards. A new connection starts
a new book and a new trade run. Only instruments defined in the instruments file are ingested; messages of other
instruments (e.g. ``BTC-USD-220527`` futures) and of channels Keel does not ingest are counted in the report.
"""

import bisect
import zlib
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from decimal import Decimal
from decimal import InvalidOperation
from functools import cached_property
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Literal

import msgspec
import polars as pl
from nautilus_trader.model.instruments import Instrument

from keel.data.catalog_layout import ACTION_ADD
from keel.data.catalog_layout import ACTION_CLEAR
from keel.data.catalog_layout import ACTION_DELETE
from keel.data.catalog_layout import ACTION_UPDATE
from keel.data.catalog_layout import AGGRESSOR_BUYER
from keel.data.catalog_layout import AGGRESSOR_SELLER
from keel.data.catalog_layout import F_LAST
from keel.data.catalog_layout import F_SNAPSHOT
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import SIDE_BUY
from keel.data.catalog_layout import SIDE_NONE
from keel.data.catalog_layout import SIDE_SELL
from keel.data.catalog_layout import TRADE_TICK
from keel.data.errors import DataInputError
from keel.data.fixed_point import not_decimal_mask
from keel.data.fixed_point import off_grid_mask
from keel.data.fixed_point import to_fixed
from keel.data.ingest import IngestReport
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.okx_instruments import DEFAULT_OKX_INSTRUMENTS
from keel.data.okx_instruments import SAMPLE_OKX_DIR
from keel.data.okx_instruments import SUPPORTED_INSTRUMENT_TYPES
from keel.data.okx_instruments import instrument_from_okx_definition
from keel.data.okx_instruments import load_okx_instrument_definitions
from keel.data.progress import IngestProgress
from keel.data.quality import CheckPolicies
from keel.data.recording_lines import numbered_lines

CHECKSUM_DEPTH = 25
_MS = 1_000_000
_NANOS_PER_SECOND = 1_000_000_000
_AGGRESSOR = {"buy": AGGRESSOR_BUYER, "sell": AGGRESSOR_SELLER}
_URL_PREFIXES = (b"wss://", b"ws://", b"https://", b"http://")

# A level is [price, size, deprecated liquidated-orders count, order count].
_Level = tuple[str, str, str, str]


class _Arg(msgspec.Struct):
    channel: str
    instId: str = ""


class _Envelope(msgspec.Struct):
    arg: _Arg | None = None
    event: str | None = None
    action: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")  # empty when absent; decoded once the channel is known


class _BookData(msgspec.Struct):
    asks: list[_Level]
    bids: list[_Level]
    ts: str
    checksum: int
    seqId: int | None = None
    prevSeqId: int | None = None


class _TradeData(msgspec.Struct):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: str
    count: str = "1"  # trades aggregated into this push (OKX added it in 2023; absent means one)


class _TickerData(msgspec.Struct):
    instId: str
    bidPx: str
    bidSz: str
    askPx: str
    askSz: str
    ts: str


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_BOOKS = msgspec.json.Decoder(list[_BookData])
_TRADES = msgspec.json.Decoder(list[_TradeData])
_TICKERS = msgspec.json.Decoder(list[_TickerData])
INGESTED_CHANNELS = ("books", "trades", "tickers")
_CLEAR_LEVEL = ("0", "0", "0", "0")  # a snapshot's CLEAR row, in the flat list of levels
_DELTA_SCHEMA = {
    "line": pl.Int64, "action": pl.UInt8, "side": pl.UInt8, "price": pl.String, "size": pl.String, "flags": pl.UInt8,
    "sequence": pl.UInt64, "ts_event": pl.UInt64, "ts_init": pl.UInt64,
}


@dataclass
class _BooksMessages:
    """
    One instrument's ``books`` messages as decoded, expanded into delta rows at once when the file has been read.

    Parameters
    ----------
    line, ts_init : list[int]
        Per message: its recording line and local receive time (ns).
    snapshot : list[bool]
        Per message: True for a ``snapshot``, False for an ``update``.
    sequence, ts_event : list[int]
        Per message: the delta ``sequence`` and OKX's ``ts`` in ns.
    bids, asks : list[list[_Level]]
        Per message: its levels, as OKX sent them.

    """

    line: list[int] = field(default_factory=list)
    ts_init: list[int] = field(default_factory=list)
    snapshot: list[bool] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)
    ts_event: list[int] = field(default_factory=list)
    bids: list[list[_Level]] = field(default_factory=list)
    asks: list[list[_Level]] = field(default_factory=list)

    def delta_rows(self) -> pl.DataFrame:
        """
        Return one row per delta (``line, action, side, price, size, flags, sequence, ts_event, ts_init``), prices and sizes OKX's strings.

        A snapshot message is a CLEAR then one ADD per level, bids then asks, all ``F_SNAPSHOT``; an update message
        one UPDATE per level (DELETE where the size is 0 is decided once sizes are numbers); the last row of each
        message carries ``F_LAST``.
        """
        if not self.line:
            return pl.DataFrame(schema=_DELTA_SCHEMA)
        # Every message's rows as levels, in one flat list: a snapshot's CLEAR as a level "0" "0", then its bids, then
        # its asks. C loops (chain, map, itemgetter): no Python call per level.
        clear = [_CLEAR_LEVEL]
        levels = list(chain.from_iterable(chain.from_iterable(zip(map(clear.__mul__, self.snapshot), self.bids, self.asks, strict=True))))
        messages = pl.DataFrame(
            {
                "line": self.line,
                "ts_init": self.ts_init,
                "snapshot": self.snapshot,
                "sequence": self.sequence,
                "ts_event": self.ts_event,
                "bids": list(map(len, self.bids)),
                "asks": list(map(len, self.asks)),
            },
            schema={
                "line": pl.Int64, "ts_init": pl.UInt64, "snapshot": pl.Boolean, "sequence": pl.UInt64, "ts_event": pl.UInt64,
                "bids": pl.Int64, "asks": pl.Int64,
            },
        )
        # Position -1 is a snapshot's CLEAR; 0 .. bids-1 its bids; then its asks.
        first = pl.when(pl.col("snapshot")).then(-1).otherwise(0)
        rows = messages.select(pl.exclude("asks"), pl.int_ranges(first, pl.col("bids") + pl.col("asks"), dtype=pl.Int64).alias("position"))
        rows = rows.explode("position").filter(pl.col("position").is_not_null())
        is_clear = pl.col("position") < 0
        last = (pl.col("position") >= pl.col("position").shift(-1)).fill_null(True)  # the next row starts another message
        return rows.select(
            "line",
            pl.when(is_clear).then(ACTION_CLEAR).when(pl.col("snapshot")).then(ACTION_ADD).otherwise(ACTION_UPDATE).cast(pl.UInt8).alias("action"),
            pl.when(is_clear).then(SIDE_NONE).when(pl.col("position") < pl.col("bids")).then(SIDE_BUY).otherwise(SIDE_SELL).cast(pl.UInt8).alias("side"),
            pl.Series("price", list(map(itemgetter(0), levels)), dtype=pl.String),
            pl.Series("size", list(map(itemgetter(1), levels)), dtype=pl.String),
            (pl.when(pl.col("snapshot")).then(F_SNAPSHOT).otherwise(0) | pl.when(last).then(F_LAST).otherwise(0)).cast(pl.UInt8).alias("flags"),
            "sequence",
            "ts_event",
            "ts_init",
        )


@dataclass
class _Columns:
    """One instrument's column lists, appended message by message."""

    trade_price: list[str] = field(default_factory=list)
    trade_size: list[str] = field(default_factory=list)
    trade_aggressor: list[int] = field(default_factory=list)
    trade_id: list[str] = field(default_factory=list)
    trade_ts_event: list[int] = field(default_factory=list)
    trade_ts_init: list[int] = field(default_factory=list)
    trade_line: list[int] = field(default_factory=list)
    quote_bid_price: list[str] = field(default_factory=list)
    quote_bid_size: list[str] = field(default_factory=list)
    quote_ask_price: list[str] = field(default_factory=list)
    quote_ask_size: list[str] = field(default_factory=list)
    quote_ts_event: list[int] = field(default_factory=list)
    quote_ts_init: list[int] = field(default_factory=list)
    quote_line: list[int] = field(default_factory=list)
    books: _BooksMessages = field(default_factory=_BooksMessages)

    @cached_property
    def deltas(self) -> pl.DataFrame:
        """Return the delta rows of the books messages (:meth:`_BooksMessages.delta_rows`), built once the file is read."""
        return self.books.delta_rows()

    def lines(self) -> dict[str, pl.Series]:
        """Return, per data type, the recording line of each row (named in findings)."""
        return {
            TRADE_TICK: pl.Series(self.trade_line, dtype=pl.Int64),
            QUOTE_TICK: pl.Series(self.quote_line, dtype=pl.Int64),
            ORDER_BOOK_DELTAS: self.deltas["line"],
        }


@dataclass(frozen=True)
class BookLevels:
    """
    One side-by-side view of a book, as OKX's strings.

    Parameters
    ----------
    bids : list[tuple[str, str]]
        ``(price, size)`` best first (highest price).
    asks : list[tuple[str, str]]
        ``(price, size)`` best first (lowest price).

    """

    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class OKXBook:
    """
    An OKX L2 book keyed by price that keeps the price and size strings exactly as OKX sent them.

    The strings matter: OKX's checksum is computed over them, so "30242" and "30242.0" would not match.
    """

    def __init__(self) -> None:
        # Levels keyed by the price's place in the side's order: the bid price negated, the ask price as it is.
        self._bids: dict[Decimal, tuple[str, str]] = {}
        self._asks: dict[Decimal, tuple[str, str]] = {}
        # Those keys sorted, best first, so a top-N read is a slice.
        self._bid_order: list[Decimal] = []
        self._ask_order: list[Decimal] = []
        self.sequence_id: int | None = None  # the last message's seqId, where OKX sends one
        # The text -> value of every price and size seen: a level's price recurs message after message, and a
        # dict look-up costs a tenth of a Decimal parse. Per side, price -> its key; size -> True when it is zero.
        self._bid_keys: dict[str, Decimal] = {}
        self._ask_keys: dict[str, Decimal] = {}
        self._empty_sizes: dict[str, bool] = {}

    def clear(self) -> None:
        """Remove every level."""
        self._bids.clear()
        self._asks.clear()
        self._bid_order.clear()
        self._ask_order.clear()

    def set_levels(self, is_bid: bool, levels: Sequence[Sequence[str]], refuse_empty: bool = False) -> str | None:
        """
        Set levels of one side in order (size 0 removes the level); return what is wrong with the first bad one, or None.

        Parameters
        ----------
        is_bid : bool
            True for the bid side.
        levels : Sequence[Sequence[str]]
            OKX's levels ``[price, size, ...]``, strings as sent.
        refuse_empty : bool, default False
            Report a level of size 0 (a snapshot's levels must hold something); it is still applied first.

        Returns
        -------
        str or None
            ``level [...]: expected ...`` for a price or size that is not a decimal string, or a refused empty level.

        """
        book, order, keys = (self._bids, self._bid_order, self._bid_keys) if is_bid else (self._asks, self._ask_order, self._ask_keys)
        empty_sizes = self._empty_sizes
        for level in levels:
            price, size = level[0], level[1]
            key, empty = keys.get(price), empty_sizes.get(size)
            if key is None or empty is None:
                try:
                    key = keys[price] = -Decimal(price) if is_bid else Decimal(price)
                    empty = empty_sizes[size] = Decimal(size) == 0
                except InvalidOperation:
                    return f"level {list(level)}: expected decimal price and size strings"
            if empty:
                # OKX also sends size 0 for levels that came and went within one 100 ms push: nothing to remove then.
                if book.pop(key, None) is not None:
                    del order[bisect.bisect_left(order, key)]
                if refuse_empty:
                    return f"snapshot level {list(level)} with size 0: expected a positive size"
                continue
            if key not in book:
                bisect.insort(order, key)
            book[key] = (price, size)
        return None

    def top(self, depth: int | None = None) -> BookLevels:
        """
        Return the best ``depth`` levels per side (all when None).

        Parameters
        ----------
        depth : int, optional
            Levels per side.

        Returns
        -------
        BookLevels

        """
        bids = [self._bids[key] for key in self._bid_order[:depth]]
        asks = [self._asks[key] for key in self._ask_order[:depth]]
        return BookLevels(bids=bids, asks=asks)

    def checksum(self) -> int:
        """Return OKX's CRC32 checksum of the top 25 levels, as a signed 32-bit integer."""
        top = self.top(CHECKSUM_DEPTH)
        # bid:size:ask:size per depth while both sides have levels, then the longer side's own levels.
        parts = [f"{bid[0]}:{bid[1]}:{ask[0]}:{ask[1]}" for bid, ask in zip(top.bids, top.asks)]
        shared = len(parts)
        parts += [f"{price}:{size}" for price, size in (top.bids[shared:] or top.asks[shared:])]
        value = zlib.crc32(":".join(parts).encode())
        return value - (1 << 32) if value >= 1 << 31 else value


@dataclass
class OKXStreamState:
    """
    What carries over from one recording file to the next of the same connection (cryptofeed rotates files).

    Parameters
    ----------
    books : dict[str, OKXBook]
        Per OKX ``instId``.
    last_trade_ids : dict[str, int]
        Per ``instId``, the last ``tradeId`` seen on the current connection.
    books_messages : dict[str, int]
        Per ``instId``, books messages read so far: the delta ``sequence`` where OKX sends no ``seqId``. It
        survives reconnections, so that sequence never goes backwards.
    last_ts_init : int
        The last local time read (ns).

    """

    books: dict[str, OKXBook] = field(default_factory=dict)
    last_trade_ids: dict[str, int] = field(default_factory=dict)
    books_messages: dict[str, int] = field(default_factory=dict)
    last_ts_init: int = -1

    def new_connection(self) -> None:
        """Forget books and trade runs: a new connection starts with new snapshots and may have missed trades."""
        self.books.clear()
        self.last_trade_ids.clear()


@dataclass
class OKXRecording:
    """
    A decoded, integrity-checked recording whose numbers are still OKX's strings.

    Parameters
    ----------
    path : Path
        The recording file.
    columns : dict[str, _Columns]
        Per ingested OKX ``instId``.
    checksums_verified : int
        ``books`` messages (every instrument) whose checksum the local book reproduced.
    skipped_messages : dict[str, int]
        ``"<channel> <instId>"`` -> messages not ingested (no instrument definition, or a channel not ingested).
    final_books : dict[str, BookLevels]
        Per ``instId``, the whole book at the end of the file.

    """

    path: Path
    columns: dict[str, _Columns]
    checksums_verified: int
    skipped_messages: dict[str, int]
    final_books: dict[str, BookLevels]

    @property
    def inst_ids(self) -> list[str]:
        """Return the ingested OKX instrument ids present, sorted."""
        return sorted(self.columns)


@dataclass(frozen=True)
class OKXIngestReport(IngestReport):
    """
    What an OKX ingest did: the catalog files, plus what the recordings held but did not become data.

    Parameters
    ----------
    catalog : Path
        The catalog root.
    files : list[IngestedFile]
        One entry per instrument, data type and source recording.
    rounded_quantities : dict[str, int]
        Always empty: OKX sizes are on the lot grid, an off-grid one is an error.
    findings : list[Finding]
        What the data checks found with policy ``warn`` or ``repair``.
    checksums_verified : int
        ``books`` messages, of every instrument, whose OKX checksum was verified.
    skipped_messages : dict[str, int]
        ``"<channel> <instId>"`` -> messages not ingested (no instrument definition, or a channel not ingested),
        and ``"event <name>"`` -> events other than subscription acknowledgements (e.g. ``error``).

    """

    # Defaults only because the base class ends with a defaulted field; the ingest always sets both.
    checksums_verified: int = 0
    skipped_messages: dict[str, int] = field(default_factory=dict)


def sample_okx_recordings() -> list[Path]:
    """Return the shipped OKX recording (BTC-USDT books, trades, tickers; 2022-05-13 16:27:05-16:27:16 UTC)."""
    return sorted(SAMPLE_OKX_DIR.glob("OKX.ws.*.gz"))


def ingest_okx_recording(
    recordings: Sequence[Path],
    catalog: Path,
    instruments_file: Path = DEFAULT_OKX_INSTRUMENTS,
    checks: CheckPolicies | None = None,
    replace: bool = False,
    progress: IngestProgress | None = None,
) -> OKXIngestReport:
    """
    Ingest cryptofeed OKX v5 public websocket recordings (books, trades, tickers) and their instruments.

    Parameters
    ----------
    recordings : Sequence[Path]
        Recording files, gzip or plain. cryptofeed names them ``<connection>.<n>`` (``OKX.ws.1.0``, then
        ``OKX.ws.1.1`` once the first reaches its rotation size): files of one connection are read in ``n``
        order and continue each other's books and trade runs; different connections are independent.
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    instruments_file : Path
        A saved ``/api/v5/public/instruments`` response (or the shipped extract); its ``SPOT`` and ``SWAP``
        instruments are ingested, every other recorded instrument is skipped and counted.
    checks : CheckPolicies, optional
        Data-check policies applied before writing (default: ``configs/data_checks.yaml``).
    replace : bool, default False
        Replace the catalog's data of a window with different data (see :func:`keel.data.ingest.commit_tables`);
        without it, different data for a window the catalog holds is refused, naming both files.
    progress : IngestProgress, optional
        Told about every file read.

    Returns
    -------
    OKXIngestReport

    Raises
    ------
    DataInputError
        On any bad input (a checksum or sequence break included), when no recorded instrument is defined in
        ``instruments_file``, or on overlap with existing data; nothing is written then.

    """
    catalog = Path(catalog).resolve()
    instruments_file = Path(instruments_file)
    if not recordings:
        raise DataInputError(catalog, "no recording given: expected at least one OKX websocket recording file")
    definitions = load_okx_instrument_definitions(instruments_file)
    ingestable = {inst_id for inst_id, item in definitions.items() if item.instrument_type in SUPPORTED_INSTRUMENT_TYPES}
    states: dict[str, OKXStreamState] = {}
    instruments: dict[str, Instrument] = {}
    skipped: dict[str, int] = {}
    checksums_verified = 0

    def tables() -> Iterator[SourceTable]:
        # One file at a time: commit_tables stages its tables before the next file is read; the stream state
        # (books, trade runs) carries on to the next file of the same connection.
        nonlocal checksums_verified
        for path in sorted((Path(path) for path in recordings), key=_rotation_key):
            raw = read_okx_recording(path, ingestable, states.setdefault(_rotation_key(path)[0], OKXStreamState()), progress)
            checksums_verified += raw.checksums_verified
            for key, count in raw.skipped_messages.items():
                skipped[key] = skipped.get(key, 0) + count
            for inst_id in raw.inst_ids:
                if inst_id not in instruments:
                    instruments[inst_id] = instrument_from_okx_definition(definitions[inst_id], instruments_file)
            for inst_id, frames in recording_frames(raw, instruments).items():
                instrument = instruments[inst_id]
                lines = raw.columns[inst_id].lines()
                for data_type, frame in frames.items():
                    yield SourceTable(data_type, instrument.id.value, instrument, frame, raw.path, lines[data_type])
        if not instruments:
            raise DataInputError(
                Path(recordings[0]),
                f"no recorded instrument is defined as SPOT or SWAP in {instruments_file} (recorded: {sorted(skipped)}): "
                "expected an instruments file covering at least one of them",
            )

    report = commit_tables(catalog, [], tables(), checks=checks, replace=replace)
    return OKXIngestReport(
        **{item.name: getattr(report, item.name) for item in fields(report)},
        checksums_verified=checksums_verified,
        skipped_messages=dict(sorted(skipped.items())),
    )


def read_okx_recording(
    path: Path, inst_ids: set[str], state: OKXStreamState | None = None, progress: IngestProgress | None = None
) -> OKXRecording:
    """
    Decode every line of a recording, keep every instrument's book, and check its integrity.

    Parameters
    ----------
    path : Path
        A ``.gz`` (or plain text) cryptofeed OKX recording.
    inst_ids : set[str]
        OKX instrument ids to collect data for; the books of all others are kept for their checksums only.
    state : OKXStreamState, optional
        Books and trade runs from the previous file of the same connection; a fresh state when None.
    progress : IngestProgress, optional
        Told how far the reading has got.

    Returns
    -------
    OKXRecording

    Raises
    ------
    DataInputError
        Naming the file and line on: unreadable or truncated gzip, a line of an unknown form, bad JSON or an
        unexpected message shape, local time going backwards, a checksum mismatch (with instId, expected and
        computed values), a ``seqId`` break, a book update before its snapshot, or a trade id gap or reorder.

    """
    path = Path(path)
    state = state if state is not None else OKXStreamState()
    reader = _RecordingReader(path, inst_ids, state)
    for line_number, raw_line in numbered_lines(path, "a cryptofeed OKX websocket recording", progress):
        try:
            reader.read_line(line_number, raw_line)
        except msgspec.ValidationError as error:
            raise DataInputError(path, f"unexpected message shape: {error}", line_number) from None
        except msgspec.DecodeError as error:
            raise DataInputError(path, f"bad JSON: {error}", line_number) from None
        except _LineProblem as problem:
            raise DataInputError(path, str(problem), line_number) from None
    return OKXRecording(
        path=path,
        columns=reader.columns,
        checksums_verified=reader.checksums_verified,
        skipped_messages=dict(sorted(reader.skipped.items())),
        final_books={inst_id: book.top() for inst_id, book in sorted(state.books.items())},
    )


def recording_frames(recording: OKXRecording, instruments: dict[str, Instrument]) -> dict[str, dict[str, pl.DataFrame]]:
    """
    Convert a recording's strings at each instrument's precision.

    Parameters
    ----------
    recording : OKXRecording
        From :func:`read_okx_recording`.
    instruments : dict[str, Instrument]
        Keyed by OKX ``instId``; must cover ``recording.inst_ids``.

    Returns
    -------
    dict[str, dict[str, pl.DataFrame]]
        Per ``instId``: ``trade_tick``, ``quote_tick`` and ``order_book_deltas`` frames in the catalog schemas.

    Raises
    ------
    DataInputError
        Naming the line of a price or size that is not a decimal on the instrument's tick or lot grid.

    """
    frames = {}
    for inst_id in recording.inst_ids:
        instrument = instruments[inst_id]
        cols = recording.columns[inst_id]
        fixed = _FixedConverter(recording.path, inst_id)
        price_precision, size_precision = instrument.price_precision, instrument.size_precision
        trades = pl.DataFrame(
            {
                "price": fixed(cols.trade_price, price_precision, cols.trade_line, "trades 'px'"),
                "size": fixed(cols.trade_size, size_precision, cols.trade_line, "trades 'sz'"),
                "aggressor_side": pl.Series(cols.trade_aggressor, dtype=pl.UInt8),
                "trade_id": pl.Series(cols.trade_id, dtype=pl.String),
                "ts_event": pl.Series(cols.trade_ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.trade_ts_init, dtype=pl.UInt64),
            }
        )
        quotes = pl.DataFrame(
            {
                "bid_price": fixed(cols.quote_bid_price, price_precision, cols.quote_line, "tickers 'bidPx'"),
                "ask_price": fixed(cols.quote_ask_price, price_precision, cols.quote_line, "tickers 'askPx'"),
                "bid_size": fixed(cols.quote_bid_size, size_precision, cols.quote_line, "tickers 'bidSz'"),
                "ask_size": fixed(cols.quote_ask_size, size_precision, cols.quote_line, "tickers 'askSz'"),
                "ts_event": pl.Series(cols.quote_ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.quote_ts_init, dtype=pl.UInt64),
            }
        )
        raw_deltas = cols.deltas
        deltas = pl.DataFrame(
            {
                "action": raw_deltas["action"],
                "side": raw_deltas["side"],
                "price": fixed(raw_deltas["price"], price_precision, raw_deltas["line"], "books price level"),
                "size": fixed(raw_deltas["size"], size_precision, raw_deltas["line"], "books size"),
                "order_id": pl.zeros(raw_deltas.height, dtype=pl.UInt64, eager=True),
                "flags": raw_deltas["flags"],
                "sequence": raw_deltas["sequence"],
                "ts_event": raw_deltas["ts_event"],
                "ts_init": raw_deltas["ts_init"],
            }
        )
        # An update level of size 0 removes the level (OKX sends "0"); every other update level sets it.
        is_removal = (pl.col("action") == ACTION_UPDATE) & (pl.col("size") == 0)
        deltas = deltas.with_columns(pl.when(is_removal).then(pl.lit(ACTION_DELETE, pl.UInt8)).otherwise(pl.col("action")).alias("action"))
        frames[inst_id] = {TRADE_TICK: trades, QUOTE_TICK: quotes, ORDER_BOOK_DELTAS: deltas}
    return frames


class _LineProblem(Exception):
    """A problem with the current line; :func:`read_okx_recording` adds the file and line number."""


class _RecordingReader:
    """Line-by-line state of one file: the columns collected and what was counted."""

    def __init__(self, path: Path, inst_ids: set[str], state: OKXStreamState) -> None:
        self.path = path
        self.inst_ids = inst_ids
        self.state = state
        self.columns: dict[str, _Columns] = {}
        self.checksums_verified = 0
        self.skipped: dict[str, int] = {}

    def read_line(self, line_number: int, raw_line: bytes) -> None:
        """Read one non-empty line, raising :class:`_LineProblem` (or a msgspec error) on bad input."""
        if raw_line.startswith(b"configuration: "):
            return  # cryptofeed's header: the feed configuration
        if raw_line.startswith(_URL_PREFIXES):
            # "<url> <-> <ts>" connection opened, "<url> <- <ts>: <json>" request sent, "<url> -> <ts>: <json>" REST.
            parts = raw_line.split(b" ", 2)
            if len(parts) != 3 or parts[1] not in (b"<->", b"<-", b"->"):
                raise _LineProblem(f"expected '<url> <-> <ts>', '<url> <- <ts>: <json>' or '<url> -> <ts>: <json>', got {raw_line[:80]!r}")
            _, arrow, rest = parts
            self._advance_clock(rest.partition(b": ")[0])
            if arrow == b"<->":
                self.state.new_connection()
            return
        ts_text, separator, payload = raw_line.partition(b": ")
        if not separator:
            raise _LineProblem(f"expected '<local ts s>: <json>', got {raw_line[:80]!r}")
        ts_init = self._advance_clock(ts_text)
        envelope = _ENVELOPE.decode(payload)
        if envelope.event is not None:
            # Acknowledgements are expected; anything else (an "error" refusing a subscription) is worth a count.
            if envelope.event not in ("subscribe", "unsubscribe"):
                key = f"event {envelope.event}"
                self.skipped[key] = self.skipped.get(key, 0) + 1
            return
        if envelope.arg is None or not envelope.data:
            raise _LineProblem("expected an event {event, arg} or a push {arg: {channel, instId}, data}")
        channel, inst_id = envelope.arg.channel, envelope.arg.instId
        ingested = inst_id in self.inst_ids and channel in INGESTED_CHANNELS
        if not ingested:
            key = f"{channel} {inst_id}"
            self.skipped[key] = self.skipped.get(key, 0) + 1
        if channel == "books":
            self._read_books(envelope.action, envelope.data, inst_id, ts_init, line_number, ingested)
        elif ingested and channel == "trades":
            self._read_trades(_TRADES.decode(envelope.data), inst_id, ts_init, line_number)
        elif ingested and channel == "tickers":
            cols = self.columns.setdefault(inst_id, _Columns())
            for ticker in _TICKERS.decode(envelope.data):
                _check_inst_id(ticker.instId, inst_id)
                cols.quote_bid_price.append(ticker.bidPx)
                cols.quote_bid_size.append(ticker.bidSz)
                cols.quote_ask_price.append(ticker.askPx)
                cols.quote_ask_size.append(ticker.askSz)
                cols.quote_ts_event.append(_millis_to_nanos(ticker.ts, "tickers 'ts'"))
                cols.quote_ts_init.append(ts_init)
                cols.quote_line.append(line_number)

    def _advance_clock(self, ts_text: bytes) -> int:
        ts_init = _seconds_to_nanos(ts_text)
        if ts_init < self.state.last_ts_init:
            raise _LineProblem(f"out of order: local time {ts_init} is before the previous line's {self.state.last_ts_init}")
        self.state.last_ts_init = ts_init
        return ts_init

    def _read_books(
        self, action: str | None, data: msgspec.Raw, inst_id: str, ts_init: int, line_number: int, ingested: bool
    ) -> None:
        messages = _BOOKS.decode(data)
        if action not in ("snapshot", "update"):
            raise _LineProblem(f"books {inst_id} action {action!r}: expected 'snapshot' or 'update'")
        book = self.state.books.get(inst_id)
        is_snapshot = action == "snapshot"
        if is_snapshot:
            book = self.state.books.setdefault(inst_id, OKXBook())
            book.clear()
        elif book is None:
            raise _LineProblem(
                f"books {inst_id} update before any snapshot on this connection: expected a snapshot first "
                "(is the file that starts this connection missing?)"
            )
        # The delta rows are made once the file is read (_BooksMessages.delta_rows), all at once.
        kept = self.columns.setdefault(inst_id, _Columns()).books if ingested else None
        for message in messages:
            self._check_sequence(book, message, action, inst_id)
            count = self.state.books_messages[inst_id] = self.state.books_messages.get(inst_id, 0) + 1
            ts_event = _millis_to_nanos(message.ts, "books 'ts'")
            if kept is not None:
                kept.line.append(line_number)
                kept.ts_init.append(ts_init)
                kept.snapshot.append(is_snapshot)
                kept.sequence.append(message.seqId if message.seqId is not None else count)
                kept.ts_event.append(ts_event)
                kept.bids.append(message.bids)
                kept.asks.append(message.asks)
            refuse_empty = is_snapshot and ingested
            problem = book.set_levels(True, message.bids, refuse_empty) or book.set_levels(False, message.asks, refuse_empty)
            if problem is not None:
                raise _LineProblem(f"books {inst_id} {problem}")
            computed = book.checksum()
            if computed != message.checksum:
                raise _LineProblem(
                    f"books {inst_id} checksum mismatch: OKX sent {message.checksum}, the book after this {action} gives "
                    f"{computed} (a corrupted or missing books line at or before this one)"
                )
            self.checksums_verified += 1

    @staticmethod
    def _check_sequence(book: OKXBook, message: _BookData, action: str, inst_id: str) -> None:
        if action == "update" and message.prevSeqId is not None and book.sequence_id is not None and message.prevSeqId != book.sequence_id:
            raise _LineProblem(
                f"books {inst_id} sequence break: prevSeqId {message.prevSeqId}, expected the previous seqId {book.sequence_id}"
            )
        book.sequence_id = message.seqId

    def _read_trades(self, trades: list[_TradeData], inst_id: str, ts_init: int, line_number: int) -> None:
        cols = self.columns.setdefault(inst_id, _Columns())
        for trade in trades:
            _check_inst_id(trade.instId, inst_id)
            if not trade.tradeId.isdigit() or not trade.count.isdigit():
                raise _LineProblem(f"trades {inst_id} tradeId {trade.tradeId!r} / count {trade.count!r}: expected integer strings")
            trade_id = int(trade.tradeId)
            previous = self.state.last_trade_ids.get(inst_id)
            if previous is not None and trade_id != previous + int(trade.count):
                raise _LineProblem(
                    f"trades {inst_id} tradeId gap or reorder: tradeId {trade_id}, expected {previous + int(trade.count)} "
                    f"(previous {previous} + count {trade.count})"
                )
            self.state.last_trade_ids[inst_id] = trade_id
            cols.trade_price.append(trade.px)
            cols.trade_size.append(trade.sz)
            cols.trade_aggressor.append(_AGGRESSOR[trade.side])
            cols.trade_id.append(trade.tradeId)
            cols.trade_ts_event.append(_millis_to_nanos(trade.ts, "trades 'ts'"))
            cols.trade_ts_init.append(ts_init)
            cols.trade_line.append(line_number)


class _FixedConverter:
    """Convert one instrument's decimal strings, naming the line of the first bad one."""

    def __init__(self, path: Path, inst_id: str) -> None:
        self._path = path
        self._inst_id = inst_id

    def __call__(self, values: Sequence[str] | pl.Series, precision: int, lines: Sequence[int] | pl.Series, what: str) -> pl.Series:
        text = pl.Series(values, dtype=pl.String)
        # One pattern for the usual case (every value a decimal on the grid); the two detailed checks name the first bad one.
        if not text.str.contains(rf"^\d{{1,22}}(\.\d{{0,{precision}}}0*)?$").fill_null(False).all():
            self._raise_on_first(values, not_decimal_mask(text), lines, what, "a non-negative decimal string")
            # OKX enforces tickSz and lotSz on every order, so a value off either grid means a wrong instrument file.
            self._raise_on_first(values, off_grid_mask(text, precision), lines, what, f"a multiple of 10^-{precision} (the instrument's grid)")
        return to_fixed(text)

    def _raise_on_first(self, values: Sequence[str] | pl.Series, bad: pl.Series, lines: Sequence[int] | pl.Series, what: str, expected: str) -> None:
        if bad.any():
            index = int(bad.arg_true()[0])
            raise DataInputError(self._path, f"{self._inst_id} {what} {values[index]!r}: expected {expected}", int(lines[index]))


def _rotation_key(path: Path) -> tuple[str, int]:
    """Return cryptofeed's ``(connection, rotation number)`` of a recording file (``OKX.ws.1.0.gz`` -> ``("OKX.ws.1", 0)``)."""
    name = path.name.removesuffix(".gz")
    connection, _, number = name.rpartition(".")
    if connection and number.isdigit():
        return str(path.parent / connection), int(number)
    return str(path.parent / name), 0



def _seconds_to_nanos(text: bytes) -> int:
    # The recorder wrote Python's shortest float repr of time.time(): its digits are the recorded value.
    seconds, _, fraction = text.partition(b".")
    if not seconds.isdigit() or not (fraction.isdigit() or fraction == b"") or len(fraction) > 9:
        raise _LineProblem(f"local time {text[:40]!r}: expected seconds since the epoch like 1652459225.5037491")
    return int(seconds) * _NANOS_PER_SECOND + int(fraction.ljust(9, b"0"))


def _millis_to_nanos(text: str, what: str) -> int:
    if not text.isdigit():
        raise _LineProblem(f"{what} {text!r}: expected milliseconds since the epoch")
    return int(text) * _MS


def _check_inst_id(inst_id: str, channel_inst_id: str) -> None:
    if inst_id != channel_inst_id:
        raise _LineProblem(f"data for instId '{inst_id}' on the channel of '{channel_inst_id}': expected the channel's instrument")

