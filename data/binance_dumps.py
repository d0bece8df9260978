"""Binance public data dumps (data.binance.vision) into nautilus trade ticks, quote ticks and bars.

Layouts (one CSV per file, plain or as the only member of a ``.zip``; with a header row or without one,
detected from the first line; spot files have none, futures files do):

- ``trades``: id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match] -> ``TradeTick``.
- ``aggTrades``: agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker[, is_best_match] -> ``TradeTick`` with ``trade_id`` = the aggregate id. The
  underlying trade ids (first..last) are dropped: one tick stands for all fills of one taker order at one price.
- ``klines`` (any fixed interval): open_time, open, high, low, close, volume, close_time, quote_volume, count,
  taker_buy_volume, taker_buy_quote_volume, ignore -> ``Bar`` of type ``<instrument>-<n>-<UNIT>-LAST-EXTERNAL``
  stamped at the bar's close (``open_time + interval``, see :mod:`keel.data.bars`). quote_volume, count and the
  taker volumes have no place in a nautilus ``Bar`` and are dropped.
- ``bookTicker`` (futures only): update_id, best_bid_price, best_bid_qty, best_ask_price, best_ask_qty,
  transaction_time, event_time -> ``QuoteTick`` with ``ts_event`` = transaction time, ``ts_init`` = event time
  (when Binance pushed it: the earliest a subscriber could have known).

Timestamps are milliseconds, except spot files from 2025 on, which are microseconds: the unit is detected per
file from the magnitude of the first timestamp, and every other one must be of the same unit. Numbers are read
as strings and converted exactly at the instrument's precision (:mod:`keel.data.fixed_point`).
Trade ids must be contiguous, times must not go backwards and klines must be consecutive; any violation is
a :class:`DataInputError` naming the file, line and field.
"""

import io
import re
import zipfile
import zlib
from contextlib import contextmanager
from collections.abc import Generator
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
from nautilus_trader.model.instruments import Instrument

from keel.data.bars import BarInterval
from keel.data.bars import checked_bar_frame
from keel.data.bars import parse_interval
from keel.data.catalog_layout import AGGRESSOR_BUYER
from keel.data.catalog_layout import AGGRESSOR_SELLER
from keel.data.catalog_layout import BAR
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.errors import DataInputError
from keel.data.fixed_point import checked_fixed_columns
from keel.data.ingest import IngestReport
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.instrument_history import InstrumentVersions
from keel.data.instrument_history import read_chunks_on_version_in_force
from keel.data.progress import IngestProgress
from keel.data.quality import CheckPolicies
from keel.data.recording_lines import LineChunks

TRADES = "trades"
AGG_TRADES = "aggTrades"
KLINES = "klines"
BOOK_TICKER = "bookTicker"
DUMP_KINDS = (TRADES, AGG_TRADES, KLINES, BOOK_TICKER)
_COLUMNS = {
    TRADES: ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),
    AGG_TRADES: ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker"),
    KLINES: (
        "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
        "taker_buy_volume", "taker_buy_quote_volume", "ignore",
    ),
    BOOK_TICKER: ("update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty", "transaction_time", "event_time"),
}
# Spot trades and aggTrades files carry an eighth column Binance documents as is_best_match.
_OPTIONAL_LAST = {TRADES: "is_best_match", AGG_TRADES: "is_best_match"}
# Any epoch timestamp at or above 10^14 is microseconds: 10^14 ms is the year 5138, 10^14 µs is 1973.
_MICROS_THRESHOLD = 10**14
_BOOLEAN_SPELLINGS = ["True", "False", "true", "false"]
# 256 MB of CSV is ~3.5M trades: a few GB of memory while it is parsed, one catalog file when written.
DUMP_CHUNK_BYTES = 256 * 1024 * 1024
_DATA_TYPES = {TRADES: TRADE_TICK, AGG_TRADES: TRADE_TICK, BOOK_TICKER: QUOTE_TICK, KLINES: BAR}
_NANOS_PER = {"ms": 1_000_000, "us": 1_000}
# <SYMBOL>-<trades|aggTrades|bookTicker|interval>-<YYYY-MM[-DD]>.<csv|zip>, e.g. BTCUSDT-1m-2022-09-05.zip.
_FILE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades|bookTicker|\d+[a-zA-Z]+)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.(?:csv|zip)$")
_LINE = "_line"  # the file line of each row, carried beside the catalog columns


@dataclass(frozen=True)
class DumpFileName:
    """
    What a data.binance.vision file name says.

    Parameters
    ----------
    symbol : str
        The Binance symbol, e.g. ``BTCUSDT``.
    kind : str
        ``trades``, ``aggTrades``, ``klines`` or ``bookTicker``.
    interval : str | None
        The kline interval (``1m``...), None for the other kinds.
    period : str
        ``YYYY-MM-DD`` (daily file) or ``YYYY-MM`` (monthly file).

    """

    symbol: str
    kind: str
    interval: str | None
    period: str


def parse_dump_file_name(path: Path) -> DumpFileName | None:
    """
    Read symbol, kind, interval and period from a name like ``BTCUSDT-aggTrades-2024-08-08.zip``.

    Parameters
    ----------
    path : Path
        The dump file.

    Returns
    -------
    DumpFileName | None
        None when the name does not follow the data.binance.vision pattern.

    """
    match = _FILE_NAME.match(Path(path).name)
    if match is None:
        return None
    kind = match["kind"]
    if kind in (TRADES, AGG_TRADES, BOOK_TICKER):
        return DumpFileName(symbol=match["symbol"], kind=kind, interval=None, period=match["period"])
    return DumpFileName(symbol=match["symbol"], kind=KLINES, interval=kind, period=match["period"])


def read_binance_dump(
    kind: str, path: Path, instrument: Instrument, interval: str | None = None, chunk_bytes: int = DUMP_CHUNK_BYTES,
    progress: IngestProgress | None = None,
) -> Generator[SourceTable, None, None]:
    """
    Read one dump file into checked catalog tables, one per chunk of about ``chunk_bytes`` of the file.

    A monthly trades dump runs to gigabytes; reading it in chunks bounds memory to one chunk, and
    :func:`keel.data.ingest.commit_tables` writes each table before the next chunk is read. Every check that
    compares a line with the one before (ids contiguous, times not backwards, consecutive klines, one
    timestamp unit, one field count) also spans chunk boundaries: each chunk is read together with the last
    line of the chunk before, which is checked again and then dropped. Rows at one instant (``ts_init``)
    stay in one table, as catalog files must not share an instant.

    Parameters
    ----------
    kind : str
        ``trades``, ``aggTrades``, ``klines`` or ``bookTicker``.
    path : Path
        A ``.csv`` or a ``.zip`` holding one CSV.
    instrument : Instrument
        Gives the grid (price and size precision) and the catalog identifier.
    interval : str, optional
        For klines: the interval (``1m``...); taken from the file name when None.
    chunk_bytes : int, default DUMP_CHUNK_BYTES
        How much of the file one table covers (cut at a line end).
    progress : IngestProgress, optional
        Told how far the reading has got.

    Yields
    ------
    SourceTable
        At least one; each becomes one catalog file.

    Raises
    ------
    DataInputError
        Naming file, line and field on any bad input.

    """
    path = Path(path)
    if kind not in DUMP_KINDS:
        raise DataInputError(path, f"unknown dump kind {kind!r}: expected one of {list(DUMP_KINDS)}")
    name = parse_dump_file_name(path)
    if name is not None and name.kind != kind:
        raise DataInputError(path, f"file name says {name.kind}, but kind {kind!r} was asked for: expected a {kind} file")
    bar_interval = _kline_interval(path, name, interval) if kind == KLINES else None
    identifier = bar_interval.bar_type(instrument) if kind == KLINES else instrument.id.value
    carried: bytes | None = None  # the previous chunk's last line, read again with the next chunk
    carried_line = 0
    held = None  # the previous chunk's rows at its last ts_init, which the next chunk may continue
    chunks = _content_chunks(path, chunk_bytes, progress)
    chunk = next(chunks)
    while chunk is not None:
        following = next(chunks, None)
        content = chunk if carried is None else carried + b"\n" + chunk
        columns = _split_columns(path, content, kind)
        if carried is not None:
            columns = columns.with_columns(pl.col("row") + (carried_line - 1))
        # Each row keeps its file line, for the findings of the data checks.
        frame = _frame(kind, path, columns, instrument, bar_interval).with_columns(columns["row"].cast(pl.Int64).alias(_LINE))
        if carried is not None:
            frame = pl.concat([held, frame.slice(1)])
        if following is None:
            yield _table(kind, identifier, instrument, frame, path)
            return
        # Catalog files must not share an instant, so rows at the chunk's last ts_init go with the next chunk.
        cut = frame["ts_init"].search_sorted(frame["ts_init"][-1], side="left")
        if cut > 0:
            yield _table(kind, identifier, instrument, frame.slice(0, cut), path)
        held = frame.slice(cut)
        carried = content.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        carried_line = int(columns["row"][-1])
        chunk = following


def _table(kind: str, identifier: str, instrument: Instrument, frame: pl.DataFrame, path: Path) -> SourceTable:
    return SourceTable(_DATA_TYPES[kind], identifier, instrument, frame.drop(_LINE), path, frame[_LINE])


def _frame(kind: str, path: Path, columns: pl.DataFrame, instrument: Instrument, bar_interval: BarInterval | None) -> pl.DataFrame:
    if kind == TRADES:
        return _trades(path, columns, instrument)
    if kind == AGG_TRADES:
        return _agg_trades(path, columns, instrument)
    if kind == BOOK_TICKER:
        return _book_ticker(path, columns, instrument)
    return _klines(path, columns, instrument, bar_interval)


def ingest_binance_dump(
    kind: str,
    paths: Sequence[Path],
    catalog: Path,
    instruments: Mapping[str, InstrumentVersions],
    interval: str | None = None,
    symbol: str | None = None,
    checks: CheckPolicies | None = None,
    chunk_bytes: int = DUMP_CHUNK_BYTES,
    replace: bool = False,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """
    Ingest data.binance.vision dump files of one kind, all or nothing.

    Parameters
    ----------
    kind : str
        ``trades``, ``aggTrades``, ``klines`` or ``bookTicker``.
    paths : Sequence[Path]
        ``.csv`` or ``.zip`` dump files.
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    instruments : Mapping[str, Instrument | Sequence[Instrument]]
        Keyed by Binance symbol (``BTCUSDT``); spot pairs or perpetuals, as the files are, or the versions of
        one (tick-size history: each file is read on the one in force at its first row).
    interval : str, optional
        For klines: the interval, when the file names do not carry it.
    symbol : str, optional
        The Binance symbol of every file, when the file names do not carry it.
    checks : CheckPolicies, optional
        Data-check policies (``keel.data.quality``) applied before writing (default: ``configs/data_checks.yaml``).
    chunk_bytes : int, default DUMP_CHUNK_BYTES
        Files are read, checked and written a chunk of about this size at a time (one catalog file each),
        so memory stays bounded for monthly dumps; see :func:`read_binance_dump`.
    replace : bool, default False
        Replace the catalog's data of a window with different data (see :func:`keel.data.ingest.commit_tables`);
        without it, different data for a window the catalog holds is refused, naming both files.
    progress : IngestProgress, optional
        Told how far the reading has got.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        On any bad input, a symbol without instrument, or an overlap with data already ingested;
        nothing is written then.

    """
    catalog = Path(catalog).resolve()
    if not paths:
        raise DataInputError(catalog, f"no file given: expected at least one Binance {kind} dump file")
    paths = [Path(path) for path in paths]
    versions = {}
    for path in paths:
        file_symbol = _symbol(path, symbol)
        if file_symbol not in instruments:
            raise DataInputError(path, f"no instrument for symbol {file_symbol!r}: expected one of {sorted(instruments)}")
        versions[path] = instruments[file_symbol]
    tables = (
        table
        for path in paths
        for table in read_chunks_on_version_in_force(
            versions[path], lambda version, path=path: read_binance_dump(kind, path, version, interval, chunk_bytes, progress)
        )
    )
    return commit_tables(catalog, [], tables, checks=checks, replace=replace)


def _symbol(path: Path, symbol: str | None) -> str:
    if symbol is not None:
        return symbol
    name = parse_dump_file_name(path)
    if name is None:
        raise DataInputError(path, "file name is not <SYMBOL>-<kind>-<date>.<csv|zip> and no symbol was given: expected a symbol")
    return name.symbol


def _kline_interval(path: Path, name: DumpFileName | None, interval: str | None) -> BarInterval:
    named = name.interval if name is not None else None
    if interval is not None and named is not None and interval != named:
        raise DataInputError(path, f"file name says interval {named}, but {interval} was given: expected them to agree")
    text = interval or named
    if text is None:
        raise DataInputError(path, "no interval given and none in the file name: expected e.g. 1m")
    return parse_interval(text, path)


def _content_chunks(path: Path, chunk_bytes: int, progress: IngestProgress | None = None) -> Iterator[bytes]:
    """Yield the file's bytes (a zip's only CSV member) in pieces of about ``chunk_bytes``, each cut after a line end."""
    try:
        with _open_csv(path) as (stream, content_bytes):
            if progress is not None:
                progress.start_file(path)
            on_disk, read, lines = path.stat().st_size, 0, 0
            # Whole-chunk reads: a zip member's truncation is caught by its CRC, not located by line.
            for index, piece in enumerate(LineChunks(stream, chunk_bytes, read_bytes=chunk_bytes)):
                if progress is not None:
                    read, lines = read + len(piece), lines + piece.count(b"\n")
                    # A zip's compressed position is not known: its share of the file on disk is estimated.
                    progress.advance(lines, on_disk * read // max(content_bytes, 1))
                # isspace stops at the first other byte, where strip() would copy the whole piece.
                if not piece or piece.isspace():
                    if index == 0:
                        raise DataInputError(path, "empty file: expected CSV lines")
                    continue  # blank lines after the last one
                yield piece
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a Binance dump .csv or .zip") from None
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DataInputError(path, f"unreadable zip ({error}): expected a complete data.binance.vision archive") from None


@contextmanager
def _open_csv(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """Open a plain CSV, or the only CSV member of a zip, for reading bytes; with its uncompressed size."""
    if path.suffix.lower() != ".zip":
        with path.open("rb") as stream:
            yield stream, path.stat().st_size
        return
    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
            raise DataInputError(path, f"zip holds {[info.filename for info in members]}: expected exactly one .csv")
        with archive.open(members[0]) as stream:
            yield stream, members[0].file_size


def _split_columns(path: Path, content: bytes, kind: str) -> pl.DataFrame:
    """Split the CSV into named string columns plus ``row`` (1-based line number), checking the field count."""
    first_line = content.split(b"\n", 1)[0].rstrip(b"\r")
    has_header = not first_line[:1].isdigit()
    required = _COLUMNS[kind]
    optional = _OPTIONAL_LAST.get(kind)
    if has_header:
        header = tuple(first_line.decode("utf-8", errors="replace").split(","))
        expected = (*required, optional) if optional and len(header) == len(required) + 1 else required
        if header != expected:
            raise DataInputError(path, f"header {list(header)}: expected {list(required)}" + (f" (+ optional {optional})" if optional else ""), 1)
    field_count = first_line.count(b",") + 1
    fits = field_count == len(required) or (optional is not None and field_count == len(required) + 1)
    columns = _parsed_columns(content, (*required, optional)[:field_count], has_header) if fits else None
    if columns is None:
        # The fast parse saw a line that is not like the first: find and name it line by line.
        columns = _split_lines(path, _lines(path, content), required, optional, has_header)
    return columns


def _parsed_columns(content: bytes, names: Sequence[str], has_header: bool) -> pl.DataFrame | None:
    """
    Parse a CSV whose every line has the first line's fields, or return None if one does not.

    polars' CSV reader is ~5x faster than splitting lines; it fills a short or blank line with nulls (kept
    in place, so line numbers hold) and refuses a long one, and no field of these files is ever empty.
    """
    try:
        columns = pl.read_csv(
            io.BytesIO(content), has_header=False, skip_rows=int(has_header), quote_char=None, infer_schema=False,
            new_columns=list(names),
        )
    except pl.exceptions.PolarsError:
        return None  # not UTF-8, no data line, a long line: the line-by-line route names it
    if columns.width != len(names) or columns.is_empty() or any(column.has_nulls() for column in columns.iter_columns()):
        return None
    return columns.with_columns(row=pl.int_range(1 + int(has_header), columns.height + 1 + int(has_header), dtype=pl.Int64))


def _lines(path: Path, content: bytes) -> pl.Series:
    """Return the file's lines, one string each, nulls for blank lines."""
    # One string column per line: the unit separator never occurs in these files, so polars splits lines only.
    try:
        return pl.read_csv(
            io.BytesIO(content), has_header=False, separator="\x1f", quote_char=None, infer_schema=False, new_columns=["line"]
        )["line"]
    except pl.exceptions.ComputeError as error:
        raise DataInputError(path, f"not UTF-8 text ({error}): expected CSV lines") from None


def _split_lines(path: Path, lines: pl.Series, required: Sequence[str], optional: str | None, has_header: bool) -> pl.DataFrame:
    """Split lines into named string columns plus ``row``, naming the first line whose field count is off."""
    allowed = {len(required), len(required) + 1} if optional else {len(required)}
    rows = pl.int_range(1, lines.len() + 1, eager=True, dtype=pl.Int64)
    if has_header:
        lines, rows = lines[1:], rows[1:]
    if lines.is_empty():
        raise DataInputError(path, "no data lines after the header: expected at least one row")
    field_count = lines.str.count_matches(",", literal=True) + 1
    bad = (~field_count.is_in(list(allowed))).fill_null(True)
    if bad.any():
        index = int(bad.arg_true()[0])
        text = lines[index]
        found = "an empty line" if text is None else f"{int(field_count[index])} fields in {text[:80]!r}"
        raise DataInputError(path, f"{found}: expected {len(required)} fields ({', '.join(required)})", int(rows[index]))
    count = int(field_count[0])
    names = (*required, optional)[:count]
    if field_count.n_unique() != 1:
        index = int((field_count != count).arg_true()[0])
        raise DataInputError(path, f"{int(field_count[index])} fields: expected {count} like the first line", int(rows[index]))
    split = lines.str.split_exact(",", count - 1).struct.rename_fields(list(names)).struct.unnest()
    return split.with_columns(row=rows)


def _integers(path: Path, columns: pl.DataFrame, field: str) -> pl.Series:
    values = columns[field].str.to_integer(strict=False)
    bad = values.is_null()
    if bad.any():
        index = int(bad.arg_true()[0])
        raise DataInputError(path, f"field '{field}' is {columns[field][index]!r}: expected an integer", int(columns["row"][index]))
    return values.cast(pl.Int64)


def _timestamps(path: Path, columns: pl.DataFrame, fields: Sequence[str]) -> dict[str, pl.Series]:
    """Convert ms or µs timestamps (unit from the first value) to ns, refusing a mix of units."""
    values = {field: _integers(path, columns, field) for field in fields}
    unit = "us" if int(values[fields[0]][0]) >= _MICROS_THRESHOLD else "ms"
    for field, series in values.items():
        other_unit = (series >= _MICROS_THRESHOLD) if unit == "ms" else (series < _MICROS_THRESHOLD)
        if other_unit.any():
            index = int(other_unit.arg_true()[0])
            raise DataInputError(
                path, f"field '{field}' is {series[index]}: expected {'milliseconds' if unit == 'ms' else 'microseconds'} like the first line",
                int(columns["row"][index]),
            )
    return {field: series * _NANOS_PER[unit] for field, series in values.items()}


def _booleans(path: Path, columns: pl.DataFrame, field: str) -> pl.Series:
    values = columns[field]
    # Binance writes True/False (spot) or true/false (futures); only other spellings pay for lowercasing.
    if not values.is_in(_BOOLEAN_SPELLINGS).all():
        values = values.str.to_lowercase()
    bad = ~values.is_in(_BOOLEAN_SPELLINGS).fill_null(False)
    if bad.any():
        index = int(bad.arg_true()[0])
        raise DataInputError(path, f"field '{field}' is {columns[field][index]!r}: expected True or False", int(columns["row"][index]))
    return values.is_in(["True", "true"])


def _require_contiguous(path: Path, columns: pl.DataFrame, ids: pl.Series, field: str) -> None:
    broken = (ids.diff() != 1).fill_null(False)
    if broken.any():
        index = int(broken.arg_true()[0])
        raise DataInputError(
            path, f"field '{field}' is {ids[index]} after {ids[index - 1]}: expected {ids[index - 1] + 1} (ids contiguous, in order)",
            int(columns["row"][index]),
        )


def _require_not_backwards(path: Path, columns: pl.DataFrame, ts: pl.Series, field: str) -> None:
    backwards = (ts.diff() < 0).fill_null(False)
    if backwards.any():
        index = int(backwards.arg_true()[0])
        raise DataInputError(path, f"field '{field}' goes back in time ({columns[field][index]} after {columns[field][index - 1]}): expected non-decreasing times", int(columns["row"][index]))


def _trade_frame(path: Path, columns: pl.DataFrame, instrument: Instrument, size_field: str, time_field: str, ids: pl.Series) -> pl.DataFrame:
    rows = columns["row"]
    ts = _timestamps(path, columns, [time_field])[time_field]
    _require_not_backwards(path, columns, ts, time_field)
    is_buyer_maker = _booleans(path, columns, "is_buyer_maker")
    # The buyer was the maker, so the seller took liquidity: the aggressor is the seller.
    aggressor = pl.select(pl.when(pl.lit(is_buyer_maker)).then(AGGRESSOR_SELLER).otherwise(AGGRESSOR_BUYER)).to_series().cast(pl.UInt8)
    fixed = checked_fixed_columns(columns, {"price": instrument.price_precision, size_field: instrument.size_precision}, rows, path)
    return pl.DataFrame(
        {
            "price": fixed["price"],
            "size": fixed[size_field],
            "aggressor_side": aggressor,
            "trade_id": ids.cast(pl.String),
            "ts_event": ts.cast(pl.UInt64),
            "ts_init": ts.cast(pl.UInt64),
        }
    )


def _trades(path: Path, columns: pl.DataFrame, instrument: Instrument) -> pl.DataFrame:
    ids = _integers(path, columns, "id")
    _require_contiguous(path, columns, ids, "id")
    return _trade_frame(path, columns, instrument, "qty", "time", ids)


def _agg_trades(path: Path, columns: pl.DataFrame, instrument: Instrument) -> pl.DataFrame:
    ids = _integers(path, columns, "agg_trade_id")
    _require_contiguous(path, columns, ids, "agg_trade_id")
    first_ids = _integers(path, columns, "first_trade_id")
    last_ids = _integers(path, columns, "last_trade_id")
    inverted = last_ids < first_ids
    if inverted.any():
        index = int(inverted.arg_true()[0])
        raise DataInputError(path, f"field 'last_trade_id' is {last_ids[index]} < first_trade_id {first_ids[index]}: expected first <= last", int(columns["row"][index]))
    # Every trade belongs to exactly one aggregate: each aggregate starts right after the previous one ended.
    unlinked = (first_ids != last_ids.shift(1) + 1).fill_null(False)
    if unlinked.any():
        index = int(unlinked.arg_true()[0])
        raise DataInputError(
            path, f"field 'first_trade_id' is {first_ids[index]}: expected {last_ids[index - 1] + 1} (previous last_trade_id + 1)",
            int(columns["row"][index]),
        )
    return _trade_frame(path, columns, instrument, "quantity", "transact_time", ids)


def _book_ticker(path: Path, columns: pl.DataFrame, instrument: Instrument) -> pl.DataFrame:
    rows = columns["row"]
    update_ids = _integers(path, columns, "update_id")
    reordered = (update_ids.diff() <= 0).fill_null(False)
    if reordered.any():
        index = int(reordered.arg_true()[0])
        raise DataInputError(path, f"field 'update_id' is {update_ids[index]} after {update_ids[index - 1]}: expected increasing update ids", int(rows[index]))
    ts = _timestamps(path, columns, ["event_time", "transaction_time"])
    _require_not_backwards(path, columns, ts["event_time"], "event_time")
    price, size = instrument.price_precision, instrument.size_precision
    return pl.DataFrame(
        {
            **checked_fixed_columns(
                columns, {"best_bid_price": price, "best_ask_price": price, "best_bid_qty": size, "best_ask_qty": size}, rows, path
            )
            .rename({"best_bid_price": "bid_price", "best_ask_price": "ask_price", "best_bid_qty": "bid_size", "best_ask_qty": "ask_size"})
            .to_dict(),
            "ts_event": ts["transaction_time"].cast(pl.UInt64),
            "ts_init": ts["event_time"].cast(pl.UInt64),
            "update_id": update_ids.cast(pl.UInt64),
        }
    )


def _klines(path: Path, columns: pl.DataFrame, instrument: Instrument, interval: BarInterval) -> pl.DataFrame:
    rows = columns["row"]
    open_time = _timestamps(path, columns, ["open_time", "close_time"])["open_time"]
    price, size = instrument.price_precision, instrument.size_precision
    bars = pl.DataFrame(
        {
            "open_time": open_time,
            **checked_fixed_columns(columns, {"open": price, "high": price, "low": price, "close": price, "volume": size}, rows, path).to_dict(),
            "row": rows,
        }
    )
    return checked_bar_frame(bars, interval, path)
