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

import gzip
import zlib
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
from keel.data.catalog_layout import SIDE_BUY
from keel.data.catalog_layout import SIDE_NONE
from keel.data.catalog_layout import SIDE_SELL
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
from keel.data.binance_recording_lines import DecodedBlock
from keel.data.binance_recording_lines import decode_block
from keel.data.recording_lines import LineChunks

_MS = 1_000_000
MARKET_TRADE = "MARKET"


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _FuturesTrade(_Trade):
    X: str


class _BookTicker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _FuturesBookTicker(_BookTicker):
    E: int
    T: int


class _DepthUpdate(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class _FuturesDepthUpdate(_DepthUpdate):
    T: int
    pu: int


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

    def continuity_problem(self, update: "_Diff", previous_u: int) -> str | None:
        """
        Return why a diff does not follow the previous applied diff's ``u``, or None if it does.

        Spot ids are contiguous (``U == previous u + 1``); futures diffs name the previous one (``pu == previous u``).
        """
        if self.bridge_offset == 0:
            if update.pu == previous_u:
                return None
            return f"pu={update.pu}, expected pu={previous_u} (the previous diff's u)"
        if update.U == previous_u + 1:
            return None
        return f"expected U={previous_u + 1} (previous u={previous_u})"

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
    trade_id : int, optional
        The last trade id of the symbol there (every print of the stream), for a continuing file's first
        trade to follow; None when unknown.

    """

    update_id: int
    awaiting_bridge: bool
    source: str
    trade_id: int | None = None


# (Binance symbol, receive time of the file's first diff) -> the stream's end before it, or None.
DepthEndLookup = Callable[[str, int], DepthEnd | None]

# Uncompressed bytes of recording read, decoded and checked at a time: ~0.5M lines, a few hundred MB of columns.
RECORDING_CHUNK_BYTES = 128 * 1024 * 1024
_WHOLE_FILE = 1 << 62


@dataclass
class SymbolColumns:
    """
    One symbol's rows of a chunk, numbers still venue strings, each row with its recording line.

    Parameters
    ----------
    trades : pl.DataFrame
        ``line, ts_init, ts_event, price, size, aggressor_side, trade_id``.
    quotes : pl.DataFrame
        ``line, ts_init, ts_event, bid_price, bid_size, ask_price, ask_size, update_id``.
    deltas : pl.DataFrame
        ``line, action, side, price, size, flags, sequence, ts_event, ts_init`` (diff levels UPDATE until sizes
        are numbers, see :func:`recording_frames`).
    skipped_trades : dict[str, int]
        Trades left out by execution type ``X`` (futures only).

    """

    trades: pl.DataFrame
    quotes: pl.DataFrame
    deltas: pl.DataFrame
    skipped_trades: dict[str, int]


@dataclass(frozen=True)
class _Diff:
    """A depth diff's ids and times, and the key of its row (whose levels are expanded once the book rule emitted it)."""

    key: int
    line: int
    ts_init: int
    symbol: str
    U: int
    u: int
    pu: int | None


@dataclass(frozen=True)
class _DepthEvent:
    """A snapshot (``update`` is None) or a diff, in file order, waiting for the book rule."""

    line: int
    ts_init: int
    symbol: str | None
    snapshot: _DepthSnapshot | None = None
    update: _Diff | None = None


@dataclass
class RawRecording:
    """
    A decoded, sequence-checked recording whose numbers are still venue strings.

    Parameters
    ----------
    path : Path
        The recording file.
    columns : dict[str, SymbolColumns]
        Per Binance symbol.
    lines : int
        Number of lines read.
    depth_ends : dict[str, DepthEnd]
        Per symbol, where its depth stream stands after the last line of this chunk (for a file continuing it).

    """

    path: Path
    columns: dict[str, SymbolColumns]
    lines: int
    depth_ends: dict[str, DepthEnd] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        """Return the Binance symbols with rows (trades, quotes or deltas), sorted."""
        return sorted(symbol for symbol, cols in self.columns.items() if cols.trades.height or cols.quotes.height or cols.deltas.height)

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
        return min(int(frame["ts_init"][0]) for frame in (cols.trades, cols.quotes, cols.deltas) if frame.height)


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
    return next(read_recording_chunks(path, market, chunk_bytes=None, depth_ends=depth_ends))


def read_recording_chunks(
    path: Path,
    market: BinanceMarket = BINANCE_SPOT,
    chunk_bytes: int | None = RECORDING_CHUNK_BYTES,
    depth_ends: DepthEndLookup | None = None,
    progress: IngestProgress | None = None,
) -> Iterator[RawRecording]:
    """
    Decode a recording a block of lines at a time (about ``chunk_bytes`` uncompressed), checking its continuity throughout.

    A day of a busy symbol is tens of millions of rows, more than its venue strings fit in memory at once;
    each chunk is converted and written (:func:`keel.data.ingest.commit_tables`) before the next is read.
    Every check carries across chunks (local time order, trade ids, the depth update-id chain), a chunk ends
    only between lines of different local times, and a message's rows are never split. Each block's lines
    are decoded by kind in one polars pass (:mod:`keel.data.binance_recording_lines`); only the depth
    messages' ids go through the book rule one by one, and their levels are expanded in one pass again.

    Parameters
    ----------
    path : Path
        A ``.gz`` (or plain text) recording.
    market : BinanceMarket, default BINANCE_SPOT
        Which Binance market recorded it: :data:`BINANCE_SPOT` or :data:`BINANCE_USDM`.
    chunk_bytes : int, optional
        Uncompressed bytes per chunk (cut at a line end, then before the last receive time's lines); None
        reads the file as one chunk.
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
    blocks = _blocks(path, chunk_bytes or _WHOLE_FILE, progress)
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        first_line, data, line_ends = block
        reader.read(decode_block(path, market, data, first_line, reader.last_ts, line_ends))
        last_line = first_line + line_ends - (0 if data.endswith(b"\n") else 1)
        if following is None:
            if not reader.data_lines:
                raise DataInputError(path, f"empty file ({last_line} lines, none with data): expected a Binance recording, '<local receive ns> <json>' lines")
            reader.finish()
        yield reader.take_chunk(last_line)
        block = following


def _blocks(path: Path, chunk_bytes: int, progress: IngestProgress | None) -> Iterator[tuple[int, bytes, int]]:
    """
    Yield ``(first line number, block, line ends in it)``: whole lines of the uncompressed file, about ``chunk_bytes`` each.

    A block other than the last ends before the lines of its last receive time (they open the next block), so
    catalog files of consecutive chunks never share an instant. An empty file yields one empty block. Each
    piece's line ends are counted once (:func:`_pieces`): a count is a pass over a hundred megabytes.
    """
    line = 1
    pending, pending_ends = b"", 0
    pieces = _pieces(path, chunk_bytes, progress)
    piece = next(pieces)
    while piece is not None:
        following = next(pieces, None)
        data, data_ends = pending + piece[0], pending_ends + piece[1]
        cut = len(data) if following is None else _last_instant_start(data)
        block, pending = data[:cut], data[cut:]
        pending_ends = pending.count(b"\n")  # the lines of one receive time: a few
        if block or following is None:
            yield line, block, data_ends - pending_ends
            line += data_ends - pending_ends
        piece = following


def _pieces(path: Path, chunk_bytes: int, progress: IngestProgress | None) -> Iterator[tuple[bytes, int]]:
    """Yield the uncompressed file in line-cut pieces (:class:`LineChunks`) with their line ends, naming the line reached on a gzip error."""
    chunks = None
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
            if progress is not None:
                progress.start_file(path)
            # 1 MB reads: few calls into gzip, and a truncated stream is still located to within a MB of lines.
            chunks = LineChunks(stream, chunk_bytes, read_bytes=1 << 20)
            lines = 0
            for piece in chunks:
                line_ends = piece.count(b"\n")
                lines += line_ends
                if progress is not None:
                    progress.advance(lines, raw.tell())
                yield piece, line_ends
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a Binance recording, '<local receive ns> <json>' lines") from None
    except EOFError:
        raise DataInputError(
            path, "truncated gzip: the stream ends before its end marker (incomplete download or copy?)", chunks.line_reached if chunks else 1
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataInputError(path, f"unreadable gzip ({error})", chunks.line_reached if chunks else 1) from None


def _last_instant_start(data: bytes) -> int:
    """Return where the lines of the last receive time of ``data`` (whole lines) start; ``len(data)`` if they are all of it."""
    end = len(data.rstrip(b"\r\n"))
    start = data.rfind(b"\n", 0, end) + 1
    instant = data[start : data.find(b" ", start, end) + 1]
    while start > 0:
        previous = data.rfind(b"\n", 0, start - 1) + 1
        if not instant or not data.startswith(instant, previous):
            break
        start = previous
    return start if start > 0 else len(data)


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
        raw_trades, raw_quotes, raw_deltas = cols.trades, cols.quotes, cols.deltas
        trade_lines, quote_lines, delta_lines = raw_trades["line"], raw_quotes["line"], raw_deltas["line"]
        trades = pl.DataFrame(
            {
                "price": fixed.price(raw_trades["price"], price_precision, trade_lines, "trade price 'p'"),
                "size": fixed.size(raw_trades["size"], size_precision, trade_lines, "trade quantity 'q'", TRADE_TICK),
                "aggressor_side": raw_trades["aggressor_side"],
                "trade_id": raw_trades["trade_id"].cast(pl.String),
                "ts_event": raw_trades["ts_event"],
                "ts_init": raw_trades["ts_init"],
            }
        )
        quotes = pl.DataFrame(
            {
                "bid_price": fixed.price(raw_quotes["bid_price"], price_precision, quote_lines, "bookTicker bid 'b'"),
                "ask_price": fixed.price(raw_quotes["ask_price"], price_precision, quote_lines, "bookTicker ask 'a'"),
                "bid_size": fixed.size(raw_quotes["bid_size"], size_precision, quote_lines, "bookTicker bid size 'B'", QUOTE_TICK),
                "ask_size": fixed.size(raw_quotes["ask_size"], size_precision, quote_lines, "bookTicker ask size 'A'", QUOTE_TICK),
                "ts_event": raw_quotes["ts_event"],
                "ts_init": raw_quotes["ts_init"],
                "update_id": raw_quotes["update_id"],
            }
        )
        deltas = pl.DataFrame(
            {
                "action": raw_deltas["action"],
                "side": raw_deltas["side"],
                "price": fixed.price(raw_deltas["price"], price_precision, delta_lines, "depth price level"),
                "size": fixed.size(raw_deltas["size"], size_precision, delta_lines, "depth quantity", ORDER_BOOK_DELTAS),
                "order_id": pl.zeros(raw_deltas.height, dtype=pl.UInt64, eager=True),
                "flags": raw_deltas["flags"],
                "sequence": raw_deltas["sequence"],
                "ts_event": raw_deltas["ts_event"],
                "ts_init": raw_deltas["ts_init"],
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

    def price(self, text: pl.Series, precision: int, lines: pl.Series, what: str) -> pl.Series:
        """Return prices as ``Decimal(38, 16)``; raise on the first that is not a decimal on the tick grid."""
        if not _on_grid(text, precision):
            self._raise_on_first(text, not_decimal_mask(text), lines, what, "a non-negative decimal string")
            self._raise_on_first(text, off_grid_mask(text, precision), lines, what, f"a multiple of the tick (at most {precision} decimals)")
        return to_fixed(text)

    def size(self, text: pl.Series, precision: int, lines: pl.Series, what: str, data_type: str) -> pl.Series:
        """Return sizes as ``Decimal(38, 16)`` on the step grid, under the ``off_step_quantities`` policy."""
        if _on_grid(text, precision):
            return to_fixed(text)  # one pattern for the usual case: every size a decimal on the step
        self._raise_on_first(text, not_decimal_mask(text), lines, what, "a non-negative decimal string")
        column = QuantityColumn(self._path, self._instrument_id, data_type, what, self._off_step_policy)
        fixed, findings = quantities_on_step(text, precision, lines, column)
        self.findings[data_type].extend(findings)
        return fixed

    def _raise_on_first(self, values: pl.Series, bad: pl.Series, lines: pl.Series, what: str, expected: str) -> None:
        if bad.any():
            index = int(bad.arg_true()[0])
            raise DataInputError(
                self._path, f"{self._instrument_id} {what} {values[index]!r}: expected {expected}", int(lines[index])
            )


def _on_grid(text: pl.Series, precision: int) -> bool:
    """Return True if every value is a plain non-negative decimal with at most ``precision`` significant decimals."""
    return bool(text.str.contains(rf"^\d{{1,22}}(\.\d{{0,{precision}}}0*)?$").all())


class _RecordingReader:
    """
    One recording read block by block: the current chunk's rows, and the state every check carries across chunks.

    The depth book rule runs over the messages in file order: a REST snapshot belongs to the file's one symbol
    (it names none), so a snapshot read before any stream line waits for the first one; diffs read before
    their symbol's snapshot are held (their rows too, across chunks) and applied right after it. A symbol's
    first diff that continues where its stream ended before this file (``depth_ends``) needs no snapshot.
    """

    def __init__(self, path: Path, market: BinanceMarket, depth_ends: DepthEndLookup | None) -> None:
        self._path = path
        self._market = market
        self._depth_ends = depth_ends
        self._earlier_end: dict[str, DepthEnd] = {}  # the stream's end before this file, of symbols that had one
        self.last_ts = -1
        self.data_lines = 0
        self._trades: dict[str, list[pl.DataFrame]] = {}
        self._quotes: dict[str, list[pl.DataFrame]] = {}
        self._skipped: dict[str, dict[str, int]] = {}
        self._depth_rows: list[pl.DataFrame] = []  # this chunk's depth messages, and those held from earlier ones
        self._emitted: dict[str, list[tuple[int, _DepthEvent]]] = {}  # per symbol: (emission order, event)
        self._bulk: dict[str, list[pl.DataFrame]] = {}  # per symbol: diffs emitted at once (order, key, emitted_ts)
        self._emissions = 0
        self._next_key = 0
        self._symbols: set[str] = set()  # every symbol of the file, not only of the current chunk
        self._last_trade_id: dict[str, int] = {}
        self._first_trade: dict[str, tuple[int, int]] = {}  # per symbol: the file's first trade id and its line
        self._first_snapshot: _DepthEvent | None = None
        self._waiting_snapshots: list[_DepthEvent] = []  # snapshots read before any stream named the symbol
        self._last_update_id: dict[str, int | None] = {}  # final id of the last applied diff; None = awaiting the bridge
        self._bridge: dict[str, int] = {}
        self._held: dict[str, list[_DepthEvent]] = {}  # diffs seen before the symbol's first snapshot

    def read(self, block: DecodedBlock) -> None:
        """Check one decoded block's sequences and keep its rows."""
        self.data_lines += block.trades.height + block.quotes.height + block.depths.height + len(block.snapshots)
        self.last_ts = block.last_ts
        self._read_trades(block.trades)
        self._read_quotes(block.quotes)
        depths = block.depths.with_columns(pl.int_range(self._next_key, self._next_key + block.depths.height, dtype=pl.Int64).alias("key"))
        self._next_key += depths.height
        self._depth_rows.append(depths)
        # Symbols first named and snapshots, then diffs, in file order (a symbol named on a diff's line comes first).
        events: list[tuple[int, int, object]] = [(line, 0, symbol) for symbol, line in block.first_lines.items() if symbol not in self._symbols]
        events += [(line, 1, _DepthEvent(line, ts_init, None, snapshot=snapshot)) for line, ts_init, snapshot in block.snapshots]
        last_special = max((line for line, _, _ in events), default=-1)
        rows = depths.select("key", "line", "ts_init", "s", "U", "u", "pu")
        before_special = int((rows["line"] <= last_special).sum())
        events += [(row[1], 2, self._diff_event(row)) for row in rows.head(before_special).iter_rows()]
        events.sort(key=lambda item: (item[0], item[1]))
        for _, kind, item in events:
            if kind == 0:
                self._on_symbol(item)
            elif kind == 1:
                self._on_snapshot(item)
            else:
                self._on_diff(item)
        one_by_one = before_special
        for row in rows.slice(before_special).iter_rows():
            # One by one until the books are live with nothing held or waiting; the rest is checked at once.
            if not self._held and self._last_update_id.get(row[3]) is not None:
                break
            self._on_diff(self._diff_event(row))
            one_by_one += 1
        self._apply_live_diffs(rows.slice(one_by_one))

    def _diff_event(self, row: tuple) -> _DepthEvent:
        """Return the event of a depth row ``(key, line, ts_init, s, U, u, pu)``."""
        key, line, ts_init, symbol, first_id, final_id, previous_final = row
        diff = _Diff(key, line, ts_init, symbol, first_id, final_id, previous_final if self._market.bridge_offset == 0 else None)
        return _DepthEvent(line, ts_init, symbol, update=diff)

    def _apply_live_diffs(self, rows: pl.DataFrame) -> None:
        """Check and emit diffs of live books at once: each must continue the one before (the market's rule)."""
        for (symbol,), part in rows.partition_by("s", maintain_order=True, as_dict=True).items():
            previous = self._last_update_id.get(symbol)
            if previous is None:
                # A symbol first seen after the books went live: its diffs need the book rule, one by one.
                for row in part.iter_rows():
                    self._on_diff(self._diff_event(row))
                continue
            previous_u = part["u"].shift(1, fill_value=previous)
            follows = part["pu"] == previous_u if self._market.bridge_offset == 0 else part["U"] == previous_u + 1
            if not follows.all():
                index = int((~follows).arg_true()[0])
                key, line, ts_init, _, first_id, final_id, previous_final = part.row(index)
                diff = _Diff(key, line, ts_init, symbol, first_id, final_id, previous_final)
                problem = self._market.continuity_problem(diff, int(previous_u[index]))
                raise DataInputError(self._path, f"{symbol} depth sequence break: diff U={first_id} u={final_id}, {problem}", line)
            orders = pl.int_range(self._emissions, self._emissions + part.height, dtype=pl.Int64, eager=True)
            self._emissions += part.height
            self._bulk.setdefault(symbol, []).append(
                pl.DataFrame({"order": orders, "key": part["key"], "emitted_ts": part["ts_init"].cast(pl.UInt64)})
            )
            self._last_update_id[symbol] = int(part["u"][-1])

    def take_chunk(self, lines: int) -> RawRecording:
        """Return the current chunk (up to line ``lines``) and start a new one."""
        depth_rows = pl.concat(self._depth_rows, how="vertical_relaxed") if self._depth_rows else None
        symbols = set(self._trades) | set(self._quotes) | set(self._emitted) | set(self._bulk)
        columns = {}
        for symbol in symbols:
            columns[symbol] = SymbolColumns(
                trades=_concat(self._trades.get(symbol), _TRADE_SCHEMA),
                quotes=_concat(self._quotes.get(symbol), _QUOTE_SCHEMA),
                deltas=_delta_rows(self._market, depth_rows, self._emitted.get(symbol, []), self._bulk.get(symbol, [])),
                skipped_trades=self._skipped.get(symbol, {}),
            )
        held_keys = [event.update.key for waiting in self._held.values() for event in waiting]
        self._depth_rows = [depth_rows.filter(pl.col("key").is_in(held_keys))] if held_keys and depth_rows is not None else []
        self._trades, self._quotes, self._skipped, self._emitted, self._bulk = {}, {}, {}, {}, {}
        return RawRecording(path=self._path, columns=columns, lines=lines, depth_ends=self._depth_ends_now(lines))

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

    def _read_trades(self, trades: pl.DataFrame) -> None:
        for (symbol,), part in trades.partition_by("s", maintain_order=True, as_dict=True).items():
            last = self._last_trade_id.get(symbol)
            ids = part["t"]
            previous = ids.shift(1, fill_value=last) if last is not None else ids.shift(1)
            broken = (ids != previous + 1).fill_null(False)
            if broken.any():
                index = int(broken.arg_true()[0])
                raise DataInputError(
                    self._path, f"{symbol} trade id gap or reorder: t={ids[index]}, expected t={previous[index] + 1}", int(part["line"][index])
                )
            self._last_trade_id[symbol] = int(ids[-1])
            self._first_trade.setdefault(symbol, (int(ids[0]), int(part["line"][0])))
            market_trades = part if part["X"].null_count() == part.height else part.filter(pl.col("X") == MARKET_TRADE)
            if market_trades.height < part.height:
                skipped = self._skipped.setdefault(symbol, {})
                for execution_type, count in part.filter(pl.col("X") != MARKET_TRADE)["X"].value_counts(sort=True).iter_rows():
                    skipped[execution_type] = skipped.get(execution_type, 0) + count
            self._trades.setdefault(symbol, []).append(
                market_trades.select(
                    "line",
                    pl.col("ts_init").cast(pl.UInt64),
                    (pl.col("T") * _MS).cast(pl.UInt64).alias("ts_event"),
                    pl.col("p").alias("price"),
                    pl.col("q").alias("size"),
                    # m = "buyer is the maker", so the seller took liquidity.
                    pl.when(pl.col("m")).then(AGGRESSOR_SELLER).otherwise(AGGRESSOR_BUYER).cast(pl.UInt8).alias("aggressor_side"),
                    pl.col("t").alias("trade_id"),
                )
            )

    def _read_quotes(self, quotes: pl.DataFrame) -> None:
        for (symbol,), part in quotes.partition_by("s", maintain_order=True, as_dict=True).items():
            self._quotes.setdefault(symbol, []).append(
                part.select(
                    "line",
                    pl.col("ts_init").cast(pl.UInt64),
                    # Spot bookTicker carries no exchange time: the receive time is the best event time there is.
                    pl.when(pl.col("T").is_null()).then(pl.col("ts_init")).otherwise(pl.col("T") * _MS).cast(pl.UInt64).alias("ts_event"),
                    pl.col("b").alias("bid_price"),
                    pl.col("B").alias("bid_size"),
                    pl.col("a").alias("ask_price"),
                    pl.col("A").alias("ask_size"),
                    pl.col("u").cast(pl.UInt64).alias("update_id"),
                )
            )

    def _depth_ends_now(self, lines: int) -> dict[str, DepthEnd]:
        source = f"{self._path} (up to line {lines})"
        ends = {}
        for symbol, last in self._last_update_id.items():
            trade_id = self._last_trade_id.get(symbol)
            if last is not None:
                ends[symbol] = DepthEnd(last, False, source, trade_id)
            else:
                ends[symbol] = DepthEnd(self._bridge[symbol] - self._market.bridge_offset, True, source, trade_id)
        return ends

    def _continuation_rule(self, end: DepthEnd) -> str:
        if end.awaiting_bridge:
            return f"a first diff with U <= {end.update_id + self._market.bridge_offset}"
        if self._market.bridge_offset:
            return f"U = {end.update_id + 1}"
        return f"pu = {end.update_id}"

    def _emit(self, symbol: str, event: _DepthEvent) -> None:
        self._emitted.setdefault(symbol, []).append((self._emissions, event))
        self._emissions += 1

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
        self._emit(symbol, event)
        self._bridge[symbol] = event.snapshot.lastUpdateId + self._market.bridge_offset
        self._last_update_id[symbol] = None
        for waiting in self._held.pop(symbol, []):
            # Applied now: a live book could only apply them once it had the snapshot.
            self._apply_diff(_DepthEvent(waiting.line, event.ts_init, symbol, update=waiting.update))

    def _on_diff(self, event: _DepthEvent) -> None:
        symbol = event.symbol
        if symbol not in self._bridge and symbol not in self._held and self._continues(event):
            pass  # the stream's state before this file is restored: the diff applies below
        elif symbol not in self._bridge:
            self._held.setdefault(symbol, []).append(event)
            return
        self._apply_diff(event)

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
        if self._market.continuity_problem(update, end.update_id) is not None:
            return False
        self._bridge[symbol], self._last_update_id[symbol] = end.update_id + self._market.bridge_offset, end.update_id
        self._check_trades_continue(symbol, end)
        return True

    def _check_trades_continue(self, symbol: str, end: DepthEnd) -> None:
        """Raise if the depth stream continues the earlier file but the trades do not (trades were lost between files)."""
        first = self._first_trade.get(symbol)
        if end.trade_id is None or first is None or first[0] == end.trade_id + 1:
            return
        raise DataInputError(
            self._path,
            f"{symbol} trade id gap between files: this file continues the depth stream of {end.source}, whose last trade is "
            f"t={end.trade_id}, but its first trade is t={first[0]}: expected t={end.trade_id + 1}",
            first[1],
        )

    def _apply_diff(self, event: _DepthEvent) -> None:
        update, symbol = event.update, event.symbol
        previous = self._last_update_id[symbol]
        bridge = self._bridge[symbol]
        if previous is None:
            if update.u < bridge:
                return  # older than the snapshot: already contained in it
            if update.U > bridge:
                raise DataInputError(
                    self._path,
                    f"{symbol} depth gap after the snapshot: diff U={update.U} u={update.u} does not bridge the snapshot; "
                    f"expected U <= {bridge} <= u",
                    event.line,
                )
        else:
            problem = self._market.continuity_problem(update, previous)
            if problem is not None:
                raise DataInputError(self._path, f"{symbol} depth sequence break: diff U={update.U} u={update.u}, {problem}", event.line)
        self._last_update_id[symbol] = update.u
        self._emit(symbol, event)


_TRADE_SCHEMA = {
    "line": pl.Int64, "ts_init": pl.UInt64, "ts_event": pl.UInt64, "price": pl.String, "size": pl.String,
    "aggressor_side": pl.UInt8, "trade_id": pl.Int64,
}
_QUOTE_SCHEMA = {
    "line": pl.Int64, "ts_init": pl.UInt64, "ts_event": pl.UInt64, "bid_price": pl.String, "bid_size": pl.String,
    "ask_price": pl.String, "ask_size": pl.String, "update_id": pl.UInt64,
}
_DELTA_SCHEMA = {
    "line": pl.Int64, "action": pl.UInt8, "side": pl.UInt8, "price": pl.String, "size": pl.String, "flags": pl.UInt8,
    "sequence": pl.UInt64, "ts_event": pl.UInt64, "ts_init": pl.UInt64,
}


def _concat(frames: list[pl.DataFrame] | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def _delta_rows(
    market: BinanceMarket, depth_rows: pl.DataFrame | None, emitted: list[tuple[int, _DepthEvent]], bulk: list[pl.DataFrame]
) -> pl.DataFrame:
    """
    Expand the emitted snapshots and diffs into delta rows, in emission order.

    A snapshot is a CLEAR then one ADD per level (bids then asks), all ``F_SNAPSHOT``; a diff is one UPDATE per
    level, bids then asks; each message's last row carries ``F_LAST``. Each diff's levels are one flat list
    (bid prices and quantities, then ask ones), exploded once in emission order: no sort of the level rows.
    """
    if not emitted and not bulk:
        return pl.DataFrame(schema=_DELTA_SCHEMA)
    diffs = [(order, event.update.key, event.ts_init) for order, event in emitted if event.update is not None]
    emitted_diffs = pl.concat([pl.DataFrame(diffs, schema={"order": pl.Int64, "key": pl.Int64, "emitted_ts": pl.UInt64}, orient="row"), *bulk])
    rows = _diff_level_rows(market, depth_rows, emitted_diffs.sort("order")) if emitted_diffs.height else pl.DataFrame(schema={"order": pl.Int64, **_DELTA_SCHEMA})
    # Snapshots are few: each goes in between the diff rows at its place in the emission order.
    parts, cut = [], 0
    for order, event in emitted:
        if event.snapshot is not None:
            at = int(rows["order"].search_sorted(order)) if rows.height else 0
            parts += [rows.slice(cut, at - cut), _snapshot_rows(order, event).select(rows.columns)]
            cut = at
    rows = pl.concat([*parts, rows.slice(cut)]) if parts else rows
    last = (pl.col("order") != pl.col("order").shift(-1)).fill_null(True)
    return rows.with_columns((pl.col("flags") | pl.when(last).then(F_LAST).otherwise(0)).cast(pl.UInt8).alias("flags")).select(list(_DELTA_SCHEMA))


def _diff_level_rows(market: BinanceMarket, depth_rows: pl.DataFrame, emitted_diffs: pl.DataFrame) -> pl.DataFrame:
    """Return one UPDATE row per level of the emitted diffs (sorted by emission order), without ``F_LAST``."""
    no_levels = pl.lit([], dtype=pl.List(pl.String))
    event_ms = pl.col("T") if market.bridge_offset == 0 else pl.col("E")
    messages = emitted_diffs.join(depth_rows, on="key", how="left", maintain_order="left").select(
        "order",
        "line",
        pl.col("u").cast(pl.UInt64).alias("sequence"),
        (event_ms * _MS).cast(pl.UInt64).alias("ts_event"),
        pl.col("emitted_ts").alias("ts_init"),
        pl.concat_list([pl.col("b").fill_null(no_levels), pl.col("a").fill_null(no_levels)]).alias("levels"),
        pl.col("b").list.len().fill_null(0).cast(pl.Int64).alias("bid_values"),
    )
    values = messages["levels"].list.len().cast(pl.Int64)
    messages = messages.with_columns((values.cum_sum() - values).alias("start"))
    # [price, qty, price, qty, ...] per message: exploded, the rows alternate price and quantity.
    flat = messages.explode("levels").filter(pl.col("levels").is_not_null())
    flat = flat.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) - pl.col("start")).alias("position"))
    sizes = flat["levels"].gather_every(2, 1)
    return flat.gather_every(2).select(
        "order",
        "line",
        pl.lit(ACTION_UPDATE, pl.UInt8).alias("action"),
        pl.when(pl.col("position") < pl.col("bid_values")).then(SIDE_BUY).otherwise(SIDE_SELL).cast(pl.UInt8).alias("side"),
        pl.col("levels").alias("price"),
        sizes.alias("size"),
        pl.lit(0, pl.UInt8).alias("flags"),
        "sequence",
        "ts_event",
        "ts_init",
    )


def _snapshot_rows(order: int, event: _DepthEvent) -> pl.DataFrame:
    snapshot = event.snapshot
    event_ms = snapshot.event_ms()
    ts_event = event.ts_init if event_ms is None else event_ms * _MS
    levels = [(SIDE_NONE, "0", "0", ACTION_CLEAR)]
    levels += [(SIDE_BUY, price, size, ACTION_ADD) for price, size in snapshot.bids]
    levels += [(SIDE_SELL, price, size, ACTION_ADD) for price, size in snapshot.asks]
    frame = pl.DataFrame(levels, schema={"side": pl.UInt8, "price": pl.String, "size": pl.String, "action": pl.UInt8}, orient="row")
    return frame.with_columns(
        pl.lit(order, pl.Int64).alias("order"),
        pl.lit(event.line, pl.Int64).alias("line"),
        pl.lit(F_SNAPSHOT, pl.UInt8).alias("flags"),
        pl.lit(snapshot.lastUpdateId, pl.UInt64).alias("sequence"),
        pl.lit(ts_event, pl.UInt64).alias("ts_event"),
        pl.lit(event.ts_init, pl.UInt64).alias("ts_init"),
    )
