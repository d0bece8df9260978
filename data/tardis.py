"""Tardis.dev downloadable CSV files into catalog tables: trades, quotes, incremental_book_L2, book_snapshot_N.

Layouts (https://docs.tardis.dev/downloadable-csv-files): every file starts with the columns ``exchange,
symbol, timestamp, local_timestamp`` (microseconds since epoch: the exchange's event time and Tardis' receive
time), followed by

- ``trades``: ``id, side, price, amount``; ``side`` is the aggressor (``buy``, ``sell`` or ``unknown``);
- ``quotes``: ``ask_amount, ask_price, bid_price, bid_amount``;
- ``incremental_book_L2``: ``is_snapshot, side, price, amount``; ``side`` is ``bid`` or ``ask``, amount 0
  removes the level, and a run of ``is_snapshot`` true rows after false rows is a new snapshot (reconnect);
- ``book_snapshot_N``: ``asks[0].price, asks[0].amount, bids[0].price, bids[0].amount, ...`` up to level
  N-1, with empty cells where the book had fewer levels.

``ts_event`` is ``timestamp`` and ``ts_init`` is ``local_timestamp``, both scaled to nanoseconds. Every cell is
read as text, and prices and amounts are converted exactly to ``Decimal(38, 16)`` on the instrument's grid
(never through floats). Files are parsed column-wise by polars, 256 MB at a time.

Book snapshots become ``OrderBookDelta`` snapshots (CLEAR, then one ADD per level, all ``F_SNAPSHOT``, the
last ``F_LAST``) rather than ``OrderBookDepth10``: a 25-level row keeps all 25 levels where Depth10 keeps 10,
a 5-level row needs no padding with empty orders, and the catalog, the book rebuild and the L2 backtest
venue then handle snapshots and incremental books through the same data type.
"""

import gzip
import io
import re
import zlib
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument

from keel.data.catalog_layout import ACTION_ADD
from keel.data.catalog_layout import ACTION_CLEAR
from keel.data.catalog_layout import ACTION_DELETE
from keel.data.catalog_layout import ACTION_UPDATE
from keel.data.catalog_layout import AGGRESSOR_BUYER
from keel.data.catalog_layout import AGGRESSOR_NONE
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
from keel.data.fixed_point import FIXED_DTYPE
from keel.data.fixed_point import not_decimal_mask
from keel.data.fixed_point import off_grid_mask
from keel.data.fixed_point import to_fixed
from keel.data.ingest import IngestReport
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.instrument_history import instrument_as_of
from keel.data.instruments import PERPETUAL_SUFFIX
from keel.data.off_step import QuantityColumn
from keel.data.off_step import quantities_on_step
from keel.data.progress import IngestProgress
from keel.data.quality import CheckPolicies
from keel.data.quality import Finding
from keel.data.quality import load_check_policies
from keel.data.recording_lines import LineChunks

TRADES = "trades"
QUOTES = "quotes"
INCREMENTAL_BOOK_L2 = "incremental_book_L2"
BOOK_SNAPSHOT_PREFIX = "book_snapshot_"
KINDS = (TRADES, QUOTES, INCREMENTAL_BOOK_L2, f"{BOOK_SNAPSHOT_PREFIX}25", f"{BOOK_SNAPSHOT_PREFIX}5")

# Tardis exchange id -> nautilus venue.
TARDIS_VENUES = {
    "binance": "BINANCE",
    "binance-futures": "BINANCE",
    "okex": "OKX",
    "okx": "OKX",
    "okex-swap": "OKX",
    "okx-swap": "OKX",
}

_KEY_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp")
_KIND_COLUMNS = {
    TRADES: ("id", "side", "price", "amount"),
    QUOTES: ("ask_amount", "ask_price", "bid_price", "bid_amount"),
    INCREMENTAL_BOOK_L2: ("is_snapshot", "side", "price", "amount"),
}
_LEVEL_COLUMN = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")
_TIMESTAMP_PATTERN = r"^\d{1,16}$"  # microseconds: 16 digits reach the year 2286
_MICROS = 1_000
_TRADE_ID_MAX_LENGTH = 36  # nautilus TradeId
# 256 MB of CSV is a few million rows: a few GB of memory while it is parsed, one catalog file when written.
TARDIS_CHUNK_BYTES = 256 * 1024 * 1024

_AGGRESSORS = {"buy": AGGRESSOR_BUYER, "sell": AGGRESSOR_SELLER, "unknown": AGGRESSOR_NONE}
_BOOK_SIDES = {"bid": SIDE_BUY, "ask": SIDE_SELL}
_BOOLEANS = {"true": True, "false": False}
_DATA_TYPES = {TRADES: TRADE_TICK, QUOTES: QUOTE_TICK}  # every other layout is order book deltas
_LINE = "line"  # the file line of each row, carried beside the catalog columns for findings


@dataclass(frozen=True)
class TardisFile:
    """
    One Tardis CSV file, or one chunk of it, parsed into catalog tables.

    Parameters
    ----------
    path : Path
        The input file.
    kind : str
        ``trades``, ``quotes``, ``incremental_book_L2`` or ``book_snapshot_<N>``.
    tables : list[SourceTable]
        One per instrument in the file (trade ticks, quote ticks or order book deltas).
    rounded_quantities : dict[str, int]
        Per instrument id: amounts finer than the size step, rounded up to it.

    """

    path: Path
    kind: str
    tables: list[SourceTable]
    rounded_quantities: dict[str, int]


def ingest_tardis(
    paths: Sequence[Path],
    catalog: Path,
    instruments: Mapping[str, Instrument | Sequence[Instrument]],
    kind: str | None = None,
    checks: CheckPolicies | None = None,
    chunk_bytes: int = TARDIS_CHUNK_BYTES,
    replace: bool = False,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """
    Ingest Tardis.dev CSV files (plain or gzip) and the instruments they refer to, all or nothing.

    Parameters
    ----------
    paths : Sequence[Path]
        Tardis downloadable CSV files.
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    instruments : Mapping[str, Instrument | Sequence[Instrument]]
        Keyed by Tardis symbol (``BTCUSDT``, ``BTC-USDT-SWAP``): an instrument, or the versions of one
        (tick-size history, :mod:`keel.data.instrument_history`) of which each file's rows use the one in
        force at their first ``local_timestamp``. Each instrument's id must be the one the file's exchange
        gives the symbol (see :func:`tardis_instrument_id`).
    kind : str, optional
        ``trades``, ``quotes``, ``incremental_book_L2`` or ``book_snapshot_<N>`` for every file; detected from
        each file's header when None.
    checks : CheckPolicies, optional
        Data-check policies applied before writing (default: ``configs/data_checks.yaml``).
    chunk_bytes : int, default TARDIS_CHUNK_BYTES
        Files are read, checked and written about this much (uncompressed) at a time; see
        :func:`read_tardis_file`.
    replace : bool, default False
        Replace the catalog's data of a window with different data (see :func:`keel.data.ingest.commit_tables`);
        without it, different data for a window the catalog holds is refused, naming both files.
    progress : IngestProgress, optional
        Told about every file and chunk read.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        On any bad input or overlap with existing data; nothing is written then.
    ValueError
        If ``kind`` is not a Tardis layout.

    """
    catalog = Path(catalog).resolve()
    if not paths:
        raise DataInputError(catalog, "no file given: expected at least one Tardis CSV file")
    policies = checks or load_check_policies()
    rounded: dict[str, int] = {}  # filled as commit_tables consumes the tables, read by it at the end

    def tables() -> Iterator[SourceTable]:
        # One chunk at a time: commit_tables stages its tables (and their instruments) before the next is read.
        for path in paths:
            for parsed in read_tardis_file(Path(path), instruments, kind, chunk_bytes, policies, progress):
                for instrument_id, count in parsed.rounded_quantities.items():
                    rounded[instrument_id] = rounded.get(instrument_id, 0) + count
                yield from parsed.tables

    return commit_tables(catalog, [], tables(), rounded, policies, replace)


def read_tardis_file(
    path: Path, instruments: Mapping[str, Instrument | Sequence[Instrument]], kind: str | None = None,
    chunk_bytes: int = TARDIS_CHUNK_BYTES,
    policies: CheckPolicies | None = None,
    progress: IngestProgress | None = None,
) -> Iterator[TardisFile]:
    """
    Parse and check one Tardis CSV file into catalog tables, a chunk of about ``chunk_bytes`` at a time.

    A day of incremental_book_L2 runs to gigabytes; each chunk's tables are written before the next chunk
    is read. Rows of one instrument at one ``local_timestamp`` stay in one chunk, and so does a run of
    snapshot rows, so messages, snapshots and the ``F_LAST`` groups come out as from the whole file.

    Parameters
    ----------
    path : Path
        A Tardis downloadable CSV file, plain or gzip (recognised by its content, not its name).
    instruments : Mapping[str, Instrument]
        Keyed by Tardis symbol; see :func:`ingest_tardis`.
    kind : str, optional
        The layout; detected from the header when None.
    chunk_bytes : int, default TARDIS_CHUNK_BYTES
        How much of the (uncompressed) file one chunk covers, cut at a line end.
    policies : CheckPolicies, optional
        Give the ``off_step_quantities`` policy (default: ``configs/data_checks.yaml``).
    progress : IngestProgress, optional
        Told how far the reading has got.

    Yields
    ------
    TardisFile
        One per chunk, each with the chunk's tables (one per instrument with rows in it).

    Raises
    ------
    DataInputError
        Naming the file, line and field on: unreadable or truncated gzip, a header without the layout's
        columns, a line with the wrong number of fields, an empty required cell, a timestamp that is not
        whole microseconds, ``local_timestamp`` going backwards, a side or flag outside its values, a price or
        amount that is not a decimal (or a price off the tick), an exchange without a known venue, or a
        symbol without a matching instrument.
    ValueError
        If ``kind`` is not a Tardis layout.

    """
    path = Path(path)
    policies = policies or load_check_policies()
    chunks = _byte_chunks(path, chunk_bytes, progress)
    data = next(chunks)
    header = _header(path, data)
    kind = _resolve_kind(path, header, kind)
    _require_columns(path, header, _columns_of(kind))
    header_line = data.split(b"\n", 1)[0] + b"\n"
    held: dict[tuple[str, str], pl.DataFrame] = {}  # per instrument: rows left for the next chunk
    started: set[tuple[str, str]] = set()  # instruments whose first rows were built (their book has begun)
    lines_before = 0  # lines (the header included) of the chunks already read
    previous: pl.DataFrame | None = None  # the last row of the previous chunk, for the time order check
    while data is not None:
        following = next(chunks, None)
        body = data if lines_before == 0 else header_line + data
        frame = _read_frame(path, body, header, max(lines_before - 1, 0))
        _require_cells(path, frame, _required_cells(kind))
        frame = _with_timestamps(path, frame if previous is None else pl.concat([previous, frame], how="diagonal_relaxed")).slice(0 if previous is None else 1)
        previous = frame.tail(1) if not frame.is_empty() else previous
        lines_before += data.count(b"\n")
        parts = frame.partition_by(["exchange", "symbol"], maintain_order=True, as_dict=True) if not frame.is_empty() else {}
        for key in held.keys() - parts.keys():
            parts[key] = frame.clear()  # an instrument with held rows and none in this chunk
        rounded: dict[str, int] = {}
        tables: list[SourceTable] = []
        for (exchange, symbol), part in parts.items():
            key = (exchange, symbol)
            if key in held:
                part = pl.concat([held.pop(key), part], how="diagonal_relaxed")
            if following is not None:
                cut = _chunk_cut(kind, part)
                held[key] = part.slice(cut)
                part = part.slice(0, cut)
            if part.is_empty():
                continue
            instrument = _instrument_for(path, exchange, symbol, part, instruments)
            off_step_policy = policies.for_instrument(instrument.id.value).off_step_quantities.policy
            decimals = _Decimals(path, instrument, _DATA_TYPES.get(kind, ORDER_BOOK_DELTAS), off_step_policy)
            data_type, output = _build(path, kind, part, decimals, continues=key in started)
            started.add(key)
            tables.append(SourceTable(data_type, instrument.id.value, instrument, output.drop(_LINE), path, output[_LINE], tuple(decimals.findings)))
            if decimals.rounded_quantities:
                rounded[instrument.id.value] = rounded.get(instrument.id.value, 0) + decimals.rounded_quantities
        yield TardisFile(path=path, kind=kind, tables=tables, rounded_quantities=rounded)
        data = following


def _chunk_cut(kind: str, part: pl.DataFrame) -> int:
    """Return where one instrument's rows of a chunk end: before its last instant, and before a snapshot run."""
    cut = part["ts_init"].search_sorted(part["ts_init"][-1], side="left")
    if kind == INCREMENTAL_BOOK_L2 and cut > 0:
        # A run of snapshot rows is one snapshot however many instants it spans: it goes whole to the next chunk.
        not_snapshot = (part["is_snapshot"].slice(0, cut) != "true").arg_true()
        if part["is_snapshot"][cut - 1] == "true":
            cut = int(not_snapshot[-1]) + 1 if not_snapshot.len() else 0
    return cut


def tardis_instrument_id(exchange: str, symbol: str) -> InstrumentId:
    """
    Return the nautilus instrument id of a Tardis exchange and symbol.

    ``binance`` BTCUSDT -> ``BTCUSDT.BINANCE``; ``binance-futures`` BTCUSDT -> ``BTCUSDT-PERP.BINANCE``
    (quarterly contracts such as ``BTCUSDT_240329`` keep their symbol); ``okex``/``okx`` BTC-USDT ->
    ``BTC-USDT.OKX``; ``okex-swap``/``okx-swap`` BTC-USDT-SWAP -> ``BTC-USDT-SWAP.OKX``.

    Parameters
    ----------
    exchange : str
        The Tardis exchange id (a key of :data:`TARDIS_VENUES`).
    symbol : str
        The Tardis symbol, as in the file.

    Returns
    -------
    InstrumentId

    Raises
    ------
    ValueError
        If the exchange has no known venue.

    """
    venue = TARDIS_VENUES.get(exchange)
    if venue is None:
        raise ValueError(f"Tardis exchange {exchange!r} has no known venue: expected one of {sorted(TARDIS_VENUES)}")
    # USDT-M perpetuals share their symbol with the spot pair; nautilus' Binance adapter tells them apart by -PERP.
    if exchange == "binance-futures" and "_" not in symbol:
        symbol += PERPETUAL_SUFFIX
    return InstrumentId.from_str(f"{symbol}.{venue}")


def detect_kind(header: Sequence[str]) -> str | None:
    """
    Return the Tardis layout a CSV header fully matches, or None.

    Parameters
    ----------
    header : Sequence[str]
        The column names of the file's first line.

    Returns
    -------
    str or None
        ``trades``, ``quotes``, ``incremental_book_L2`` or ``book_snapshot_<N>``.

    """
    levels = _snapshot_levels(header)
    candidates = [*_KIND_COLUMNS, *([f"{BOOK_SNAPSHOT_PREFIX}{levels}"] if levels else [])]
    matching = [kind for kind in candidates if set(_columns_of(kind)) <= set(header)]
    return matching[0] if len(matching) == 1 else None


def _columns_of(kind: str) -> tuple[str, ...]:
    if kind in _KIND_COLUMNS:
        return _KEY_COLUMNS + _KIND_COLUMNS[kind]
    return _KEY_COLUMNS + tuple(
        f"{side}[{level}].{value}" for level in range(_levels_of(kind)) for side in ("asks", "bids") for value in ("price", "amount")
    )


def _required_cells(kind: str) -> tuple[str, ...]:
    # Snapshot level cells may be empty (fewer levels); their pairing is checked level by level.
    return _columns_of(kind) if kind in _KIND_COLUMNS else _KEY_COLUMNS


def _levels_of(kind: str) -> int:
    return int(kind.removeprefix(BOOK_SNAPSHOT_PREFIX))


def _snapshot_levels(header: Sequence[str]) -> int:
    levels = [int(match.group(2)) for match in map(_LEVEL_COLUMN.match, header) if match]
    return max(levels) + 1 if levels else 0


def _resolve_kind(path: Path, header: list[str], kind: str | None) -> str:
    if kind is not None:
        if kind in _KIND_COLUMNS or re.fullmatch(rf"{BOOK_SNAPSHOT_PREFIX}[1-9]\d*", kind):
            return kind
        raise ValueError(f"kind {kind!r}: expected one of {list(_KIND_COLUMNS)} or book_snapshot_<levels>")
    detected = detect_kind(header)
    if detected is None:
        raise DataInputError(
            path,
            f"header {','.join(header)[:200]!r} matches no Tardis layout: expected the columns of trades "
            f"({','.join(_columns_of(TRADES))}), quotes, incremental_book_L2 or book_snapshot_N (pass the kind "
            "explicitly to see which columns are missing)",
            1,
        )
    return detected


def _require_columns(path: Path, header: list[str], columns: tuple[str, ...]) -> None:
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataInputError(path, f"header lacks column(s) {missing[:6]}: expected {','.join(columns[:12])}{',...' if len(columns) > 12 else ''}", 1)


def _byte_chunks(path: Path, chunk_bytes: int, progress: IngestProgress | None = None) -> Iterator[bytes]:
    """Yield the (uncompressed) file in pieces of about ``chunk_bytes``, each cut after a line end; at least one."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a Tardis CSV file (plain or gzip)") from None
    chunks = None
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
            if progress is not None:
                progress.start_file(path)
            chunks = LineChunks(stream, chunk_bytes)
            lines = 0
            for piece in chunks:
                lines += piece.count(b"\n")
                if progress is not None:
                    progress.advance(lines, raw.tell())
                yield piece
    except EOFError:
        raise DataInputError(
            path, "truncated gzip: the stream ends before its end marker (incomplete download or copy?)", chunks.line_reached if chunks is not None else 1
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataInputError(path, f"unreadable gzip ({error})") from None


def _header(path: Path, data: bytes) -> list[str]:
    first_line = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = first_line.decode("utf-8").split(",")
    except UnicodeDecodeError:
        raise DataInputError(path, "header is not UTF-8 text: expected a CSV header line (exchange,symbol,...)", 1) from None
    if header == [""]:
        raise DataInputError(path, "empty file: expected a CSV header line (exchange,symbol,timestamp,local_timestamp,...)", 1)
    return header


def _read_frame(path: Path, data: bytes, header: list[str], line_offset: int) -> pl.DataFrame:
    """Read every cell of ``data`` (the header, then a chunk's lines) as text, with each row's file line in ``line``."""
    fields = len(header)
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    # Tardis writes no quoted cells, so the comma count settles the field count of every line at C speed;
    # polars itself would fill short lines with nulls unnoticed.
    if data.count(b",") != (fields - 1) * lines:
        _raise_on_field_count(path, data, fields, line_offset)
    try:
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False)
    except pl.exceptions.PolarsError as error:
        _raise_on_field_count(path, data, fields, line_offset)
        raise DataInputError(path, f"unreadable CSV ({error})") from None
    return frame.with_row_index("line", offset=2 + line_offset).with_columns(pl.col("line").cast(pl.Int64))


def _raise_on_field_count(path: Path, data: bytes, fields: int, line_offset: int) -> None:
    # Only reached for a broken file, so a line-by-line scan costs nothing in the normal case.
    for number, line in enumerate(data.splitlines(), start=1):
        count = line.count(b",") + 1
        if count != fields:
            raise DataInputError(
                path, f"{count} field(s): expected {fields} like the header (a cut, joined or blank line?)", number + (line_offset if number > 1 else 0)
            )


def _require_cells(path: Path, frame: pl.DataFrame, columns: tuple[str, ...]) -> None:
    empty = frame.select(pl.any_horizontal(pl.col(column).is_null() | (pl.col(column) == "") for column in columns)).to_series()
    if empty.any():
        row = frame.row(int(empty.arg_true()[0]), named=True)
        column = next(column for column in columns if not row[column])
        raise DataInputError(path, f"field '{column}' is empty: expected a value on every row", row["line"])


def _with_timestamps(path: Path, frame: pl.DataFrame) -> pl.DataFrame:
    for column in ("timestamp", "local_timestamp"):
        _raise_on_first(path, frame, ~frame[column].str.contains(_TIMESTAMP_PATTERN), column, "whole microseconds since epoch")
    frame = frame.with_columns(
        (pl.col("timestamp").cast(pl.UInt64) * _MICROS).alias("ts_event"),
        (pl.col("local_timestamp").cast(pl.UInt64) * _MICROS).alias("ts_init"),
    )
    # Tardis sorts files by local_timestamp, and the catalog needs ts_init sorted: a step back is a corrupt file.
    backwards = frame["ts_init"] < frame["ts_init"].shift(1)
    if backwards.any():
        index = int(backwards.arg_true()[0])
        raise DataInputError(
            path,
            f"field 'local_timestamp' goes backwards: {frame['local_timestamp'][index]} after "
            f"{frame['local_timestamp'][index - 1]} on line {frame['line'][index - 1]}: expected non-decreasing receive times",
            int(frame["line"][index]),
        )
    return frame


def _instrument_for(path: Path, exchange: str, symbol: str, part: pl.DataFrame, instruments: Mapping[str, Instrument | Sequence[Instrument]]) -> Instrument:
    line = int(part["line"][0])
    try:
        expected = tardis_instrument_id(exchange, symbol)
    except ValueError as error:
        raise DataInputError(path, f"field 'exchange': {error}", line) from None
    given = instruments.get(symbol)
    if given is None:
        raise DataInputError(path, f"field 'symbol' {symbol!r}: no instrument given for it (given: {sorted(instruments)})", line)
    if isinstance(given, Instrument):
        instrument = given
    else:
        # Versions of one instrument (tick-size history): the rows are priced on the one in force at their start.
        try:
            instrument = instrument_as_of(given, int(part["ts_init"][0]))
        except ValueError as error:
            raise DataInputError(path, f"field 'symbol' {symbol!r}: {error}", line) from None
    if instrument.id != expected:
        raise DataInputError(
            path,
            f"field 'symbol' {symbol!r} on {exchange!r} is {expected}, but the instrument given for {symbol!r} is {instrument.id}",
            line,
        )
    return instrument


def _build(path: Path, kind: str, part: pl.DataFrame, decimals: "_Decimals", continues: bool) -> tuple[str, pl.DataFrame]:
    if kind == TRADES:
        return TRADE_TICK, _trades(path, part, decimals)
    if kind == QUOTES:
        return QUOTE_TICK, _quotes(part, decimals)
    if kind == INCREMENTAL_BOOK_L2:
        return ORDER_BOOK_DELTAS, _incremental_deltas(path, part, decimals, continues)
    return ORDER_BOOK_DELTAS, _snapshot_deltas(path, part, decimals, _levels_of(kind))


def _trades(path: Path, part: pl.DataFrame, decimals: "_Decimals") -> pl.DataFrame:
    aggressor = _mapped(path, part, "side", _AGGRESSORS, pl.UInt8)
    too_long = part["id"].str.len_chars() > _TRADE_ID_MAX_LENGTH
    _raise_on_first(path, part, too_long, "id", f"a trade id of at most {_TRADE_ID_MAX_LENGTH} characters (nautilus TradeId)")
    return pl.DataFrame(
        {
            "price": decimals.price(part, "price"),
            "size": decimals.size(part, "amount"),
            "aggressor_side": aggressor,
            "trade_id": part["id"],
            "ts_event": part["ts_event"],
            "ts_init": part["ts_init"],
            _LINE: part["line"],
        }
    )


def _quotes(part: pl.DataFrame, decimals: "_Decimals") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "bid_price": decimals.price(part, "bid_price"),
            "ask_price": decimals.price(part, "ask_price"),
            "bid_size": decimals.size(part, "bid_amount"),
            "ask_size": decimals.size(part, "ask_amount"),
            "ts_event": part["ts_event"],
            "ts_init": part["ts_init"],
            _LINE: part["line"],
        }
    )


def _incremental_deltas(path: Path, part: pl.DataFrame, decimals: "_Decimals", continues: bool) -> pl.DataFrame:
    snapshot = _mapped(path, part, "is_snapshot", _BOOLEANS, pl.Boolean)
    if not continues and not snapshot[0]:
        raise DataInputError(
            path,
            f"field 'is_snapshot' is false on the first {part['symbol'][0]} row: expected the book to start with a "
            "snapshot (is_snapshot true rows), as every Tardis file does",
            int(part["line"][0]),
        )
    side = _mapped(path, part, "side", _BOOK_SIDES, pl.UInt8)
    price = decimals.price(part, "price")
    size = decimals.size(part, "amount")
    _raise_on_first(path, part, snapshot & (size == 0), "amount", "a positive amount on snapshot rows")
    rows = pl.DataFrame(
        {
            "snapshot": snapshot,
            "side": side,
            "price": price,
            "size": size,
            "ts_event": part["ts_event"],
            "ts_init": part["ts_init"],
            _LINE: part["line"],
            "position": pl.int_range(1, 2 * part.height + 1, 2, eager=True),
        }
    )
    snapshot_row = pl.col("snapshot")
    after_snapshot_row = snapshot_row.shift(1, fill_value=False)
    starts = snapshot_row & ~after_snapshot_row
    same_clocks = (pl.col("ts_event") == pl.col("ts_event").shift(1)) & (pl.col("ts_init") == pl.col("ts_init").shift(1))
    # One venue message = one F_LAST group: a whole snapshot run, or consecutive diff rows sharing both clocks.
    new_group = starts | (~snapshot_row & (after_snapshot_row | ~same_clocks.fill_null(False)))
    rows = rows.with_columns(
        pl.when(snapshot_row).then(ACTION_ADD).when(pl.col("size") == 0).then(ACTION_DELETE).otherwise(ACTION_UPDATE).cast(pl.UInt8).alias("action"),
        (pl.when(snapshot_row).then(F_SNAPSHOT).otherwise(0) | pl.when(new_group.shift(-1, fill_value=True)).then(F_LAST).otherwise(0)).cast(pl.UInt8).alias("flags"),
        starts.alias("starts"),
    )
    # A new snapshot replaces the book, so a CLEAR goes right before its first level.
    clears = rows.filter(pl.col("starts")).with_columns(
        pl.lit(ACTION_CLEAR, pl.UInt8).alias("action"),
        pl.lit(SIDE_NONE, pl.UInt8).alias("side"),
        pl.lit(Decimal(0), FIXED_DTYPE).alias("price"),
        pl.lit(Decimal(0), FIXED_DTYPE).alias("size"),
        pl.lit(F_SNAPSHOT, pl.UInt8).alias("flags"),
        pl.col("position") - 1,
    )
    return _delta_columns(pl.concat([rows, clears]).sort("position"))


def _snapshot_deltas(path: Path, part: pl.DataFrame, decimals: "_Decimals", levels: int) -> pl.DataFrame:
    actions = [pl.lit(ACTION_CLEAR, pl.UInt8)]
    sides = [pl.lit(SIDE_NONE, pl.UInt8)]
    prices = [pl.lit(Decimal(0), FIXED_DTYPE)]
    sizes = [pl.lit(Decimal(0), FIXED_DTYPE)]
    columns: dict[str, pl.Series] = {}
    # Bids then asks, best first: the order of the Binance REST snapshot and of nautilus' own book.
    for side_name, side in (("bids", SIDE_BUY), ("asks", SIDE_SELL)):
        for level in range(levels):
            price_column, amount_column = f"{side_name}[{level}].price", f"{side_name}[{level}].amount"
            price = decimals.price(part, price_column)
            size = decimals.size(part, amount_column)
            _raise_on_first(path, part, price.is_null() & size.is_not_null(), price_column, f"a price, as {amount_column} is set")
            _raise_on_first(path, part, size.is_null() & price.is_not_null(), amount_column, f"an amount, as {price_column} is set")
            _raise_on_first(path, part, (size == 0).fill_null(False), amount_column, "a positive amount (or both cells of the level empty)")
            columns[price_column], columns[amount_column] = price, size
            actions.append(pl.lit(ACTION_ADD, pl.UInt8))
            sides.append(pl.lit(side, pl.UInt8))
            prices.append(pl.col(price_column))
            sizes.append(pl.col(amount_column))
    wide = pl.DataFrame(
        {**columns, "ts_event": part["ts_event"], "ts_init": part["ts_init"], "row": pl.int_range(0, part.height, eager=True), _LINE: part["line"]}
    )
    # Each row becomes its CLEAR followed by its levels; empty levels (a thinner book) drop out.
    long = (
        wide.select(
            pl.concat_list(actions).alias("action"),
            pl.concat_list(sides).alias("side"),
            pl.concat_list(prices).alias("price"),
            pl.concat_list(sizes).alias("size"),
            "ts_event",
            "ts_init",
            "row",
            _LINE,
        )
        .explode(["action", "side", "price", "size"])
        .filter(pl.col("price").is_not_null())
    )
    last = (pl.col("row") != pl.col("row").shift(-1)).fill_null(True)
    long = long.with_columns((pl.lit(F_SNAPSHOT, pl.UInt8) | (last.cast(pl.UInt8) * F_LAST)).alias("flags"))
    return _delta_columns(long)


def _delta_columns(frame: pl.DataFrame) -> pl.DataFrame:
    # Tardis carries neither order ids (L2) nor venue sequence numbers.
    return frame.select(
        "action",
        "side",
        "price",
        "size",
        pl.lit(0, pl.UInt64).alias("order_id"),
        pl.col("flags").cast(pl.UInt8),
        pl.lit(0, pl.UInt64).alias("sequence"),
        "ts_event",
        "ts_init",
        _LINE,
    )


def _mapped(path: Path, part: pl.DataFrame, column: str, values: dict[str, object], dtype: pl.DataType) -> pl.Series:
    mapped = part[column].replace_strict(values, default=None, return_dtype=dtype)
    _raise_on_first(path, part, mapped.is_null(), column, " or ".join(repr(value) for value in values))
    return mapped


def _raise_on_first(path: Path, part: pl.DataFrame, bad: pl.Series, column: str, expected: str) -> None:
    if bad.any():
        index = int(bad.arg_true()[0])
        raise DataInputError(path, f"field '{column}' {part[column][index]!r}: expected {expected}", int(part["line"][index]))


class _Decimals:
    """
    Convert one instrument's decimal text columns exactly, keeping the ``off_step_quantities`` findings.

    Prices off the tick are errors. Amounts off the step are real on Binance: resting orders placed before
    a step was coarsened keep their finer quantities. They go through the ``off_step_quantities`` check
    (:mod:`keel.data.off_step`), as in the Binance recording source: refused, or rounded up and reported.
    """

    def __init__(self, path: Path, instrument: Instrument, data_type: str, off_step_policy: str) -> None:
        self._path = path
        self._instrument_id = instrument.id.value
        self._data_type = data_type
        self._off_step_policy = off_step_policy
        self._price_precision = instrument.price_precision
        self._size_precision = instrument.size_precision
        self.findings: list[Finding] = []

    @property
    def rounded_quantities(self) -> int:
        """Return how many amounts were rounded up to the size step."""
        return len(self.findings)

    def price(self, part: pl.DataFrame, column: str) -> pl.Series:
        """Return ``column`` (decimal text, nulls kept) as ``Decimal(38, 16)``; raise off the tick."""
        text = self._checked_text(part, column)
        precision = self._price_precision
        _raise_on_first(self._path, part, off_grid_mask(text, precision) & text.is_not_null(), column, f"a multiple of the tick (at most {precision} decimals)")
        return to_fixed(text)

    def size(self, part: pl.DataFrame, column: str) -> pl.Series:
        """Return ``column`` (decimal text, nulls kept) as ``Decimal(38, 16)`` on the step grid (``off_step_quantities``)."""
        text = self._checked_text(part, column)
        where = QuantityColumn(self._path, self._instrument_id, self._data_type, f"field '{column}'", self._off_step_policy)
        fixed, findings = quantities_on_step(text, self._size_precision, part["line"], where)
        self.findings.extend(findings)
        return fixed.alias(column)

    def _checked_text(self, part: pl.DataFrame, column: str) -> pl.Series:
        text = part[column]
        _raise_on_first(self._path, part, not_decimal_mask(text) & text.is_not_null(), column, "a non-negative decimal number")
        return text
