"""Read a Binance spot or USDT-M futures market-data recording into checked, nautilus-ready columns.

Recording format (the one hftbacktest's collector writes): gzip text, one message per line,
``<local_receive_ts_ns> <json>``. The JSON is either the REST depth snapshot
``{"lastUpdateId", "bids", "asks"}`` or a combined-stream frame ``{"stream", "data"}`` carrying a
``trade``, ``bookTicker`` or ``depthUpdate`` payload exactly as Binance sent it.

The two markets share this layout and differ in a few payload fields and two book rules; a
:class:`BinanceMarket` (:data:`BINANCE_SPOT` or :data:`BINANCE_USDM`) carries those differences, the
payload structs carry the per-market timestamps and continuity test, and everything else is shared.

Reading is two steps so the exchangeInfo file is only needed for the symbols actually present:
:func:`read_recording_chunks` decodes and checks the sequence of every line, a chunk of rows at a time (so
a day of a busy symbol fits in memory; :func:`read_recording` reads a file as one chunk);
:func:`recording_frames` then converts the decimal strings at the instruments' precisions.

Book rule (Binance "how to manage a local order book"):

- spot: diffs with ``u <= lastUpdateId`` are older than the snapshot and dropped; the first applied diff
  must satisfy ``U <= lastUpdateId + 1 <= u``; every later diff must start at ``U == previous u + 1``.
- USDT-M futures: diffs with ``u < lastUpdateId`` are dropped; the first applied diff must satisfy
  ``U <= lastUpdateId <= u``; every later diff must carry ``pu == previous u`` (futures ids are not
  contiguous: ``U`` is usually far above ``previous u + 1``).

Recorders fetch the snapshot after subscribing, so the diffs that bridge it often sit *before* the
snapshot line: they are held back and emitted right after the snapshot, with the snapshot's receive time
as ``ts_init`` (that is when a live book could apply them).

Timestamps: ``ts_init`` is always the local receive time. ``ts_event`` is the exchange time the message
carries: futures trade/bookTicker/depth/snapshot ``T`` (transaction time, as nautilus' Binance adapter
uses), spot trade ``T`` and depth ``E``; spot bookTicker and the spot REST snapshot carry none, so their
``ts_event`` is the receive time.

Futures trades carry ``X``: only ``MARKET`` trades are order-book executions. ``INSUFFICIENT_FUND``
(liquidation orders the insurance fund filled), ``ADL`` (auto-deleveraging) and ``NA`` prints did not
trade against the book; they are checked for id continuity, then left out and counted
(:attr:`RawRecording.skipped_trades`).
"""

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from functools import cached_property
from pathlib import Path

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
from keel.data.catalog_layout import SIDE_NONE
from keel.data.catalog_layout import TRADE_TICK
from keel.data.errors import DataInputError
from keel.data.fixed_point import not_decimal_mask
from keel.data.fixed_point import off_grid_mask
from keel.data.fixed_point import to_fixed
from keel.data.off_step import QuantityColumn
from keel.data.off_step import quantities_on_step
from keel.data.progress import IngestProgress
from keel.data.quality import REPAIR
from keel.data.quality import Finding
from keel.data.recording_lines import DeltaColumns
from keel.data.recording_lines import numbered_lines

_MS = 1_000_000
MARKET_TRADE = "MARKET"


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool

    def execution_type(self) -> str:
        return MARKET_TRADE  # every spot trade stream print is an order-book execution


class _FuturesTrade(_Trade):
    X: str

    def execution_type(self) -> str:
        return self.X


class _BookTicker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str

    def event_ms(self) -> int | None:
        return None  # spot bookTicker carries no exchange time


class _FuturesBookTicker(_BookTicker):
    E: int
    T: int

    def event_ms(self) -> int | None:
        return self.T


class _DepthUpdate(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]

    def event_ms(self) -> int:
        return self.E

    def continuity_problem(self, previous_u: int) -> str | None:
        if self.U == previous_u + 1:
            return None
        return f"expected U={previous_u + 1} (previous u={previous_u})"


class _FuturesDepthUpdate(_DepthUpdate):
    T: int
    pu: int

    def event_ms(self) -> int:
        return self.T

    def continuity_problem(self, previous_u: int) -> str | None:
        if self.pu == previous_u:
            return None
        return f"pu={self.pu}, expected pu={previous_u} (the previous diff's u)"


class _DepthSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]

    def event_ms(self) -> int | None:
        return None  # the spot REST snapshot carries no exchange time


class _FuturesDepthSnapshot(_DepthSnapshot):
    E: int
    T: int

    def event_ms(self) -> int | None:
        return self.T


@dataclass(frozen=True)
class BinanceMarket:
    """
    What differs between Binance markets in a recording: payload shapes and the snapshot bridge.

    Parameters
    ----------
    name : str
        ``spot`` or ``usdm``, named in errors.
    trade : type[_Trade]
        The trade payload struct.
    book_ticker : type[_BookTicker]
        The bookTicker payload struct.
    depth_update : type[_DepthUpdate]
        The depthUpdate payload struct; it knows its own continuity rule.
    depth_snapshot : type[_DepthSnapshot]
        The REST depth snapshot struct.
    bridge_offset : int
        The first applied diff must satisfy ``U <= lastUpdateId + bridge_offset <= u`` (spot 1, futures 0);
        diffs with a smaller ``u`` are older than the snapshot and dropped.
    symbol_suffix : str
        Appended to the Binance symbol in the instrument id (``-PERP`` for USDT-M perpetuals).

    """

    name: str
    trade: type[_Trade]
    book_ticker: type[_BookTicker]
    depth_update: type[_DepthUpdate]
    depth_snapshot: type[_DepthSnapshot]
    bridge_offset: int
    symbol_suffix: str = ""

    def instrument_id(self, symbol: str) -> str:
        """Return the catalog instrument id of a Binance symbol (``BTCUSDT.BINANCE``, ``BTCUSDT-PERP.BINANCE``)."""
        return f"{symbol}{self.symbol_suffix}.BINANCE"

    @cached_property
    def _stream_decoders(self) -> dict[str, msgspec.json.Decoder]:
        # Built once per market, not per line.
        return {
            "trade": msgspec.json.Decoder(self.trade),
            "bookTicker": msgspec.json.Decoder(self.book_ticker),
            "depth": msgspec.json.Decoder(self.depth_update),
        }

    @cached_property
    def _snapshot_decoder(self) -> msgspec.json.Decoder:
        return msgspec.json.Decoder(self.depth_snapshot)

    def stream_decoder(self, kind: str) -> msgspec.json.Decoder | None:
        """
        Return the decoder for a stream kind (``trade``, ``bookTicker``, ``depth``), or None if unknown.

        Parameters
        ----------
        kind : str
            The stream name's channel, e.g. ``depth`` for ``btcusdt@depth@0ms``.

        Returns
        -------
        msgspec.json.Decoder or None

        """
        return self._stream_decoders.get(kind)

    def decode_snapshot(self, payload: bytes) -> _DepthSnapshot:
        """
        Decode a REST depth snapshot line's JSON.

        Parameters
        ----------
        payload : bytes
            The JSON after the timestamp.

        Returns
        -------
        _DepthSnapshot

        """
        return self._snapshot_decoder.decode(payload)


BINANCE_SPOT = BinanceMarket("spot", _Trade, _BookTicker, _DepthUpdate, _DepthSnapshot, bridge_offset=1)
BINANCE_USDM = BinanceMarket(
    "usdm", _FuturesTrade, _FuturesBookTicker, _FuturesDepthUpdate, _FuturesDepthSnapshot, bridge_offset=0, symbol_suffix="-PERP"
)


@dataclass(frozen=True)
class DepthEnd:
    """
    Where a symbol's depth stream stood at the end of an earlier recording, for a file that continues it.

    Parameters
    ----------
    update_id : int
        The last applied diff's ``u``; or, when ``awaiting_bridge``, the last snapshot's ``lastUpdateId``.
    awaiting_bridge : bool
        True if the stream ended on a snapshot no diff had bridged yet.
    source : str
        What holds that end (the earlier recording, or the catalog file), named in errors.

    """

    update_id: int
    awaiting_bridge: bool
    source: str


# (Binance symbol, receive time of the file's first diff) -> the stream's end before it, or None.
DepthEndLookup = Callable[[str, int], DepthEnd | None]

_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])
# About 1 GB of venue strings in Python lists while a chunk is read; the rows are counted every so many lines.
RECORDING_CHUNK_ROWS = 5_000_000
_ROWS_COUNTED_EVERY = 256


@dataclass
class _Columns:
    """Column lists for one symbol, appended line by line."""

    trade_ts_init: list[int] = field(default_factory=list)
    trade_ts_event: list[int] = field(default_factory=list)
    trade_price: list[str] = field(default_factory=list)
    trade_size: list[str] = field(default_factory=list)
    trade_aggressor: list[int] = field(default_factory=list)
    trade_id: list[int] = field(default_factory=list)
    trade_line: list[int] = field(default_factory=list)
    skipped_trades: dict[str, int] = field(default_factory=dict)
    quote_ts_init: list[int] = field(default_factory=list)
    quote_ts_event: list[int] = field(default_factory=list)
    quote_bid_price: list[str] = field(default_factory=list)
    quote_bid_size: list[str] = field(default_factory=list)
    quote_ask_price: list[str] = field(default_factory=list)
    quote_ask_size: list[str] = field(default_factory=list)
    quote_update_id: list[int] = field(default_factory=list)
    quote_line: list[int] = field(default_factory=list)
    deltas: DeltaColumns = field(default_factory=DeltaColumns)


@dataclass(frozen=True)
class _DepthEvent:
    """A snapshot (``update`` is None) or a diff, in file order, waiting for the book rule."""

    line: int
    ts_init: int
    symbol: str | None
    snapshot: _DepthSnapshot | None = None
    update: _DepthUpdate | None = None


@dataclass
class RawRecording:
    """
    A decoded, sequence-checked recording whose numbers are still venue strings.

    Parameters
    ----------
    path : Path
        The recording file.
    columns : dict[str, _Columns]
        Per Binance symbol.
    lines : int
        Number of lines read.
    depth_ends : dict[str, DepthEnd]
        Per symbol, where its depth stream stands after the last line of this chunk (for a file continuing it).

    """

    path: Path
    columns: dict[str, _Columns]
    lines: int
    depth_ends: dict[str, DepthEnd] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        """Return the Binance symbols with rows (trades, quotes or deltas), sorted."""
        return sorted(symbol for symbol, cols in self.columns.items() if cols.trade_line or cols.quote_line or cols.deltas.line)

    @property
    def skipped_trades(self) -> dict[str, dict[str, int]]:
        """Return, per symbol, the trades left out by execution type ``X`` (futures only; e.g. ``{"ADL": 2}``)."""
        return {symbol: dict(cols.skipped_trades) for symbol, cols in self.columns.items() if cols.skipped_trades}

    def first_ts_init(self, symbol: str) -> int:
        """
        Return the earliest local receive time of a symbol's trades, quotes and deltas.

        Parameters
        ----------
        symbol : str
            A Binance symbol present in the recording.

        Returns
        -------
        int

        """
        cols = self.columns[symbol]
        return min(values[0] for values in (cols.trade_ts_init, cols.quote_ts_init, cols.deltas.ts_init) if values)


@dataclass(frozen=True)
class SymbolFrames:
    """
    Catalog-ready columns for one instrument: prices and sizes as ``Decimal(38, 16)``.

    Parameters
    ----------
    trades : pl.DataFrame
        price, size, aggressor_side, trade_id, ts_event, ts_init.
    quotes : pl.DataFrame
        bid_price, ask_price, bid_size, ask_size, ts_event, ts_init, update_id (bookTicker ``u``).
    deltas : pl.DataFrame
        action, side, price, size, order_id, flags, sequence, ts_event, ts_init.
    lines : dict[str, pl.Series]
        Per data type (``trade_tick``, ``quote_tick``, ``order_book_deltas``), the raw file line of each row.
    findings : dict[str, list[Finding]]
        Per data type, the ``off_step_quantities`` findings (quantities finer than the step, rounded up).

    """

    trades: pl.DataFrame
    quotes: pl.DataFrame
    deltas: pl.DataFrame
    lines: dict[str, pl.Series]
    findings: dict[str, list[Finding]]

    @property
    def rounded_quantities(self) -> int:
        """Return how many quantities finer than the size step were rounded up to it."""
        return sum(len(findings) for findings in self.findings.values())

    def tables(self) -> list[tuple[str, pl.DataFrame]]:
        """Return ``(data type, frame)`` for trades, quotes and deltas."""
        return [(TRADE_TICK, self.trades), (QUOTE_TICK, self.quotes), (ORDER_BOOK_DELTAS, self.deltas)]


def read_recording(path: Path, market: BinanceMarket = BINANCE_SPOT, depth_ends: DepthEndLookup | None = None) -> RawRecording:
    """
    Decode every line of a recording and check its continuity, into one :class:`RawRecording`.

    Parameters
    ----------
    path : Path
        A ``.gz`` (or plain text) recording.
    market : BinanceMarket, default BINANCE_SPOT
        Which Binance market recorded it: :data:`BINANCE_SPOT` or :data:`BINANCE_USDM`.
    depth_ends : DepthEndLookup, optional
        As for :func:`read_recording_chunks`.

    Returns
    -------
    RawRecording

    Raises
    ------
    DataInputError
        As :func:`read_recording_chunks`.

    """
    return next(read_recording_chunks(path, market, max_rows=None, depth_ends=depth_ends))


def read_recording_chunks(
    path: Path,
    market: BinanceMarket = BINANCE_SPOT,
    max_rows: int | None = RECORDING_CHUNK_ROWS,
    depth_ends: DepthEndLookup | None = None,
    progress: IngestProgress | None = None,
) -> Iterator[RawRecording]:
    """
    Decode a recording line by line into chunks of about ``max_rows`` rows, checking its continuity throughout.

    A day of a busy symbol is tens of millions of rows, more than its venue strings fit in memory at once;
    each chunk is converted and written (:func:`keel.data.ingest.commit_tables`) before the next is read.
    Every check carries across chunks (local time order, trade ids, the depth update-id chain), a chunk ends
    only between lines of different local times, and a message's rows are never split.

    Parameters
    ----------
    path : Path
        A ``.gz`` (or plain text) recording.
    market : BinanceMarket, default BINANCE_SPOT
        Which Binance market recorded it: :data:`BINANCE_SPOT` or :data:`BINANCE_USDM`.
    max_rows : int, optional
        Trades, quotes and deltas per chunk, of all symbols together; None reads the file as one chunk.
    depth_ends : DepthEndLookup, optional
        Where each symbol's depth stream stood before this file (the previous recording of the connection,
        or the catalog). A file whose first diff continues that end needs no snapshot of its own: its diffs
        apply from there. None: every file starts its book from a snapshot.
    progress : IngestProgress, optional
        Told how far the reading has got.

    Yields
    ------
    RawRecording
        At least one.

    Raises
    ------
    DataInputError
        Naming the file and line on: unreadable or truncated gzip, a line that is not
        ``<int ns> <json>``, an unexpected message shape or stream, a stream/symbol mismatch, local time going
        backwards, a trade id gap, a depth update-id break, diffs without a snapshot that do not continue the
        stream's earlier end either (a gap between files), or an empty file.

    """
    path = Path(path)
    reader = _RecordingReader(path, market, depth_ends)
    previous_ts = -1
    line_number = 0
    for line_number, raw_line in numbered_lines(path, "a Binance recording, '<local receive ns> <json>' lines", progress):
        ts_text, _, payload = raw_line.partition(b" ")
        try:
            ts_init = int(ts_text)
        except ValueError:
            raise DataInputError(path, f"expected '<local receive ns> <json>', got {raw_line[:60]!r}", line_number) from None
        if ts_init < previous_ts:
            raise DataInputError(
                path, f"out of order: local time {ts_init} is before the previous line's {previous_ts}", line_number
            )
        if max_rows is not None and ts_init > previous_ts and line_number % _ROWS_COUNTED_EVERY == 0 and reader.rows() >= max_rows:
            yield reader.take_chunk(line_number - 1)
        previous_ts = ts_init
        try:
            reader.read_line(payload, ts_init, line_number)
        except msgspec.ValidationError as error:
            raise DataInputError(path, f"unexpected message shape: {error}", line_number) from None
        except msgspec.DecodeError as error:
            raise DataInputError(path, f"bad JSON: {error}", line_number) from None
        except _LineProblem as problem:
            raise DataInputError(path, str(problem), line_number) from None
    reader.finish()
    yield reader.take_chunk(line_number)


def recording_frames(
    recording: RawRecording, instruments: dict[str, Instrument], off_step_policies: Mapping[str, str] | None = None
) -> dict[str, SymbolFrames]:
    """
    Convert a recording's decimal strings at each instrument's precision.

    Parameters
    ----------
    recording : RawRecording
        From :func:`read_recording`.
    instruments : dict[str, Instrument]
        Keyed by Binance symbol; must cover ``recording.symbols``.
    off_step_policies : Mapping[str, str], optional
        Per Binance symbol, the ``off_step_quantities`` data-check policy: ``repair`` (the default) rounds
        quantities finer than the size step up to it, one finding each; ``fail`` refuses the first.

    Returns
    -------
    dict[str, SymbolFrames]
        Keyed by Binance symbol.

    Raises
    ------
    DataInputError
        Naming the line of a price that is not a decimal on the tick grid, a size that is not a decimal, or
        (policy ``fail``) a size off the step grid.

    """
    frames = {}
    for symbol in recording.symbols:
        instrument = instruments[symbol]
        cols = recording.columns[symbol]
        price_precision = instrument.price_precision
        size_precision = instrument.size_precision
        fixed = _FixedConverter(recording.path, instrument.id.value, (off_step_policies or {}).get(symbol, REPAIR))
        trade_lines = pl.Series(cols.trade_line, dtype=pl.Int64)
        trades = pl.DataFrame(
            {
                "price": fixed.price(cols.trade_price, price_precision, trade_lines, "trade price 'p'"),
                "size": fixed.size(cols.trade_size, size_precision, trade_lines, "trade quantity 'q'", TRADE_TICK),
                "aggressor_side": pl.Series(cols.trade_aggressor, dtype=pl.UInt8),
                "trade_id": pl.Series(cols.trade_id, dtype=pl.Int64).cast(pl.String),
                "ts_event": pl.Series(cols.trade_ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.trade_ts_init, dtype=pl.UInt64),
            }
        )
        quote_lines = pl.Series(cols.quote_line, dtype=pl.Int64)
        quotes = pl.DataFrame(
            {
                "bid_price": fixed.price(cols.quote_bid_price, price_precision, quote_lines, "bookTicker bid 'b'"),
                "ask_price": fixed.price(cols.quote_ask_price, price_precision, quote_lines, "bookTicker ask 'a'"),
                "bid_size": fixed.size(cols.quote_bid_size, size_precision, quote_lines, "bookTicker bid size 'B'", QUOTE_TICK),
                "ask_size": fixed.size(cols.quote_ask_size, size_precision, quote_lines, "bookTicker ask size 'A'", QUOTE_TICK),
                "ts_event": pl.Series(cols.quote_ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.quote_ts_init, dtype=pl.UInt64),
                "update_id": pl.Series(cols.quote_update_id, dtype=pl.UInt64),
            }
        )
        delta_lines = pl.Series(cols.deltas.line, dtype=pl.Int64)
        deltas = pl.DataFrame(
            {
                "action": pl.Series(cols.deltas.action, dtype=pl.UInt8),
                "side": pl.Series(cols.deltas.side, dtype=pl.UInt8),
                "price": fixed.price(cols.deltas.price, price_precision, delta_lines, "depth price level"),
                "size": fixed.size(cols.deltas.size, size_precision, delta_lines, "depth quantity", ORDER_BOOK_DELTAS),
                "order_id": pl.zeros(len(cols.deltas.line), dtype=pl.UInt64, eager=True),
                "flags": pl.Series(cols.deltas.flags, dtype=pl.UInt8),
                "sequence": pl.Series(cols.deltas.sequence, dtype=pl.UInt64),
                "ts_event": pl.Series(cols.deltas.ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.deltas.ts_init, dtype=pl.UInt64),
            }
        )
        # A diff level with quantity 0 removes the level; every other diff level sets it.
        is_removal = (pl.col("action") == ACTION_UPDATE) & (pl.col("size") == 0)
        deltas = deltas.with_columns(
            pl.when(is_removal).then(pl.lit(ACTION_DELETE, pl.UInt8)).otherwise(pl.col("action")).alias("action")
        )
        empty_snapshot_level = deltas.select(
            (pl.col("action") == ACTION_ADD) & (pl.col("size") == 0)
        ).to_series()
        if empty_snapshot_level.any():
            line = int(delta_lines.filter(empty_snapshot_level)[0])
            raise DataInputError(recording.path, f"{symbol} depth snapshot level with quantity 0: expected a positive quantity", line)
        frames[symbol] = SymbolFrames(
            trades=trades,
            quotes=quotes,
            deltas=deltas,
            lines={TRADE_TICK: trade_lines, QUOTE_TICK: quote_lines, ORDER_BOOK_DELTAS: delta_lines},
            findings=fixed.findings,
        )
    return frames


class _LineProblem(Exception):
    """A problem with the current line; :func:`read_recording` adds the file and line number."""


class _FixedConverter:
    """
    Convert one instrument's decimal strings: prices off the tick grid are errors; sizes off the step grid go
    through the ``off_step_quantities`` check (:mod:`keel.data.off_step`), whose findings it keeps per data type.
    """

    def __init__(self, path: Path, instrument_id: str, off_step_policy: str) -> None:
        self._path = path
        self._instrument_id = instrument_id
        self._off_step_policy = off_step_policy
        self.findings: dict[str, list[Finding]] = {TRADE_TICK: [], QUOTE_TICK: [], ORDER_BOOK_DELTAS: []}

    def price(self, values: list[str], precision: int, lines: pl.Series, what: str) -> pl.Series:
        """Return prices as ``Decimal(38, 16)``; raise on the first that is not a decimal on the tick grid."""
        text = pl.Series(values, dtype=pl.String)
        self._raise_on_first(values, not_decimal_mask(text), lines, what, "a non-negative decimal string")
        self._raise_on_first(values, off_grid_mask(text, precision), lines, what, f"a multiple of the tick (at most {precision} decimals)")
        return to_fixed(text)

    def size(self, values: list[str], precision: int, lines: pl.Series, what: str, data_type: str) -> pl.Series:
        """Return sizes as ``Decimal(38, 16)`` on the step grid, under the ``off_step_quantities`` policy."""
        text = pl.Series(values, dtype=pl.String)
        self._raise_on_first(values, not_decimal_mask(text), lines, what, "a non-negative decimal string")
        column = QuantityColumn(self._path, self._instrument_id, data_type, what, self._off_step_policy)
        fixed, findings = quantities_on_step(text, precision, lines, column)
        self.findings[data_type].extend(findings)
        return fixed

    def _raise_on_first(self, values: list[str], bad: pl.Series, lines: pl.Series, what: str, expected: str) -> None:
        if bad.any():
            index = int(bad.arg_true()[0])
            raise DataInputError(
                self._path, f"{self._instrument_id} {what} {values[index]!r}: expected {expected}", int(lines[index])
            )


class _RecordingReader:
    """
    One recording read line by line: the current chunk's columns, and the state every check carries across chunks.

    The depth book rule runs as the lines come: a REST snapshot belongs to the file's one symbol (it names
    none), so a snapshot read before any stream line waits for the first one; diffs read before their
    symbol's snapshot are held and applied right after it. A symbol's first diff that continues where its
    stream ended before this file (``depth_ends``) needs no snapshot: it applies at once.
    """

    def __init__(self, path: Path, market: BinanceMarket, depth_ends: DepthEndLookup | None) -> None:
        self._path = path
        self._market = market
        self._depth_ends = depth_ends
        self._earlier_end: dict[str, DepthEnd] = {}  # the stream's end before this file, of symbols that had one
        self._columns: dict[str, _Columns] = {}
        self._symbols: set[str] = set()  # every symbol of the file, not only of the current chunk
        self._last_trade_id: dict[str, int] = {}
        self._first_snapshot: _DepthEvent | None = None
        self._waiting_snapshots: list[_DepthEvent] = []  # snapshots read before any stream named the symbol
        self._last_update_id: dict[str, int | None] = {}  # final id of the last applied diff; None = awaiting the bridge
        self._bridge: dict[str, int] = {}
        self._held: dict[str, list[_DepthEvent]] = {}  # diffs seen before the symbol's first snapshot

    def rows(self) -> int:
        """Return the trades, quotes and deltas in the current chunk."""
        return sum(len(cols.trade_line) + len(cols.quote_line) + len(cols.deltas.line) for cols in self._columns.values())

    def take_chunk(self, lines: int) -> RawRecording:
        """Return the current chunk (up to line ``lines``) and start a new one."""
        chunk = RawRecording(path=self._path, columns=self._columns, lines=lines, depth_ends=self._depth_ends_now(lines))
        self._columns = {}
        return chunk

    def _depth_ends_now(self, lines: int) -> dict[str, DepthEnd]:
        source = f"{self._path} (up to line {lines})"
        ends = {}
        for symbol, last in self._last_update_id.items():
            if last is not None:
                ends[symbol] = DepthEnd(last, False, source)
            else:
                ends[symbol] = DepthEnd(self._bridge[symbol] - self._market.bridge_offset, True, source)
        return ends

    def read_line(self, payload: bytes, ts_init: int, line_number: int) -> None:
        """Decode one message and append its rows."""
        envelope = _ENVELOPE.decode(payload)
        if "stream" in envelope:
            stream = msgspec.json.decode(envelope["stream"], type=str)
            self._read_frame(stream, envelope, ts_init, line_number)
        elif "lastUpdateId" in envelope:
            self._on_snapshot(_DepthEvent(line_number, ts_init, None, snapshot=self._market.decode_snapshot(payload)))
        else:
            raise _LineProblem(f"expected a stream frame {{stream, data}} or a depth snapshot {{lastUpdateId, bids, asks}}, got keys {sorted(envelope)}")

    def finish(self) -> None:
        """Raise if the file ended with a snapshot no stream named, or diffs no snapshot started."""
        if self._waiting_snapshots:
            self._refuse_snapshot()
        for symbol, waiting in self._held.items():
            first = waiting[0].update
            end = self._earlier_end.get(symbol)
            if end is not None:
                raise DataInputError(
                    self._path,
                    f"{symbol} depth gap between files: this file has no REST depth snapshot, and its first diff U={first.U} "
                    f"u={first.u} does not continue {end.source}, whose last {'snapshot lastUpdateId' if end.awaiting_bridge else 'diff u'} "
                    f"is {end.update_id}: expected {self._continuation_rule(end)}",
                    waiting[0].line,
                )
            raise DataInputError(
                self._path,
                f"{len(waiting)} {symbol} depth diffs but no REST depth snapshot, and no earlier recording or catalog data "
                "they continue: expected a {lastUpdateId, bids, asks} line to start the book from",
                waiting[0].line,
            )

    def _continuation_rule(self, end: DepthEnd) -> str:
        if end.awaiting_bridge:
            return f"a first diff with U <= {end.update_id + self._market.bridge_offset}"
        if self._market.bridge_offset:
            return f"U = {end.update_id + 1}"
        return f"pu = {end.update_id}"

    def _cols(self, symbol: str) -> _Columns:
        cols = self._columns.get(symbol)
        if cols is None:
            cols = self._columns[symbol] = _Columns()
        return cols

    def _read_frame(self, stream: str, envelope: dict[str, msgspec.Raw], ts_init: int, line_number: int) -> None:
        market = self._market
        stream_symbol, _, channel = stream.partition("@")
        kind = channel.split("@", 1)[0]
        decoder = market.stream_decoder(kind)
        if decoder is None:
            raise _LineProblem(f"stream '{stream}': expected a trade, bookTicker or depth stream")
        if "data" not in envelope:
            raise _LineProblem(f"stream '{stream}' frame without 'data'")
        try:
            data = decoder.decode(envelope["data"])
        except msgspec.ValidationError as error:
            raise _LineProblem(f"stream '{stream}': unexpected {market.name} {kind} payload ({error})") from None
        symbol = data.s
        if symbol != stream_symbol.upper():
            raise _LineProblem(f"stream '{stream}' carries symbol '{symbol}': expected '{stream_symbol.upper()}'")
        self._on_symbol(symbol)
        if kind == "trade":
            last_trade_id = self._last_trade_id.get(symbol)
            if last_trade_id is not None and data.t != last_trade_id + 1:
                raise _LineProblem(f"{symbol} trade id gap or reorder: t={data.t}, expected t={last_trade_id + 1}")
            self._last_trade_id[symbol] = data.t
            cols = self._cols(symbol)
            execution_type = data.execution_type()
            if execution_type != MARKET_TRADE:
                cols.skipped_trades[execution_type] = cols.skipped_trades.get(execution_type, 0) + 1
                return
            cols.trade_ts_init.append(ts_init)
            cols.trade_ts_event.append(data.T * _MS)
            cols.trade_price.append(data.p)
            cols.trade_size.append(data.q)
            # m = "buyer is the maker", so the seller took liquidity.
            cols.trade_aggressor.append(AGGRESSOR_SELLER if data.m else AGGRESSOR_BUYER)
            cols.trade_id.append(data.t)
            cols.trade_line.append(line_number)
        elif kind == "bookTicker":
            cols = self._cols(symbol)
            cols.quote_ts_init.append(ts_init)
            event_ms = data.event_ms()
            # Without an exchange time the receive time is the best event time there is.
            cols.quote_ts_event.append(ts_init if event_ms is None else event_ms * _MS)
            cols.quote_bid_price.append(data.b)
            cols.quote_bid_size.append(data.B)
            cols.quote_ask_price.append(data.a)
            cols.quote_ask_size.append(data.A)
            cols.quote_update_id.append(data.u)
            cols.quote_line.append(line_number)
        else:
            if data.U > data.u:
                raise _LineProblem(f"depthUpdate U={data.U} > u={data.u}: expected first update id <= final update id")
            self._on_diff(_DepthEvent(line_number, ts_init, symbol, update=data))

    def _on_symbol(self, symbol: str) -> None:
        if symbol in self._symbols:
            return
        self._symbols.add(symbol)
        if self._first_snapshot is not None and len(self._symbols) > 1:
            self._refuse_snapshot()
        waiting, self._waiting_snapshots = self._waiting_snapshots, []
        for snapshot in waiting:
            self._apply_snapshot(symbol, snapshot)

    def _refuse_snapshot(self) -> None:
        raise DataInputError(
            self._path,
            f"cannot tell which symbol this depth snapshot belongs to: the file holds {sorted(self._symbols) or 'no streams'}, "
            "expected exactly one symbol per recording",
            self._first_snapshot.line,
        )

    def _on_snapshot(self, event: _DepthEvent) -> None:
        if self._first_snapshot is None:
            self._first_snapshot = event
        if len(self._symbols) > 1:
            self._refuse_snapshot()
        if not self._symbols:
            self._waiting_snapshots.append(event)
            return
        self._apply_snapshot(next(iter(self._symbols)), event)

    def _apply_snapshot(self, symbol: str, event: _DepthEvent) -> None:
        live = self._last_update_id.get(symbol)
        if live is not None and event.snapshot.lastUpdateId <= live:
            # Older than the book the diffs have built (a file continuing the stream that also fetched a
            # snapshot): it holds nothing new, and bridging it would ask for diffs already applied.
            return
        cols = self._cols(symbol)
        _append_snapshot(cols, event)
        self._bridge[symbol] = event.snapshot.lastUpdateId + self._market.bridge_offset
        self._last_update_id[symbol] = None
        for waiting in self._held.pop(symbol, []):
            _apply_diff(self._path, cols, waiting, self._last_update_id, self._bridge[symbol], event.ts_init)

    def _on_diff(self, event: _DepthEvent) -> None:
        symbol = event.symbol
        if symbol not in self._bridge and symbol not in self._held and self._continues(event):
            pass  # the stream's state before this file is restored: the diff applies below
        elif symbol not in self._bridge:
            self._held.setdefault(symbol, []).append(event)
            return
        _apply_diff(self._path, self._cols(symbol), event, self._last_update_id, self._bridge[symbol], event.ts_init)


    def _continues(self, event: _DepthEvent) -> bool:
        """Restore the symbol's depth state from before this file if ``event`` (its first diff) continues it."""
        if self._depth_ends is None:
            return False
        symbol, update = event.symbol, event.update
        end = self._depth_ends(symbol, event.ts_init)
        if end is None:
            return False
        self._earlier_end[symbol] = end
        if end.awaiting_bridge:
            bridge = end.update_id + self._market.bridge_offset
            if update.U > bridge:
                return False
            self._bridge[symbol], self._last_update_id[symbol] = bridge, None
            return True
        if update.continuity_problem(end.update_id) is not None:
            return False
        self._bridge[symbol], self._last_update_id[symbol] = end.update_id + self._market.bridge_offset, end.update_id
        return True


def _append_snapshot(cols: _Columns, event: _DepthEvent) -> None:
    snapshot = event.snapshot
    sequence = snapshot.lastUpdateId
    has_levels = bool(snapshot.bids or snapshot.asks)
    event_ms = snapshot.event_ms()
    ts_event = event.ts_init if event_ms is None else event_ms * _MS
    cols.deltas.append(ACTION_CLEAR, SIDE_NONE, "0", "0", F_SNAPSHOT | (0 if has_levels else F_LAST), sequence, ts_event, event.ts_init, event.line)
    cols.deltas.extend_levels(ACTION_ADD, snapshot.bids, snapshot.asks, F_SNAPSHOT, sequence, ts_event, event.ts_init, event.line)


def _apply_diff(
    path: Path,
    cols: _Columns,
    event: _DepthEvent,
    last_update_id: dict[str, int | None],
    bridge: int,
    ts_init: int,
) -> None:
    update = event.update
    symbol = event.symbol
    previous = last_update_id[symbol]
    if previous is None:
        if update.u < bridge:
            return  # older than the snapshot: already contained in it
        if update.U > bridge:
            raise DataInputError(
                path,
                f"{symbol} depth gap after the snapshot: diff U={update.U} u={update.u} does not bridge the snapshot; "
                f"expected U <= {bridge} <= u",
                event.line,
            )
    else:
        problem = update.continuity_problem(previous)
        if problem is not None:
            raise DataInputError(path, f"{symbol} depth sequence break: diff U={update.U} u={update.u}, {problem}", event.line)
    last_update_id[symbol] = update.u
    # UPDATE for now; quantity-0 levels become DELETE once sizes are numbers (recording_frames).
    cols.deltas.extend_levels(ACTION_UPDATE, update.b, update.a, 0, update.u, update.event_ms() * _MS, ts_init, event.line)

