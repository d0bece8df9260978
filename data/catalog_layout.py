"""The nautilus Python ``ParquetDataCatalog`` layout and Arrow schemas, written without per-row objects.

Layout: ``<catalog>/data/<snake_class>/<instrument_id>/<first ts_init>_<last ts_init>.parquet``, with
timestamps as ``2024-08-08T23-54-13-937085768Z``; files in one folder must cover disjoint intervals.
The schemas below are what ``ParquetDataCatalog.write_data`` itself writes in nautilus 1.231 (checked by
the round-trip tests), so the catalog's readers and ``BacktestNode`` take these files as their own.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.instruments import Instrument

from keel.data.fixed_point import fixed_to_arrow

ROWS_PER_GROUP = 5000  # ParquetDataCatalog's default max_rows_per_group

# The integer codes the schemas' uint8 columns hold (nautilus' enums).
ACTION_CLEAR = int(BookAction.CLEAR)
ACTION_ADD = int(BookAction.ADD)
ACTION_UPDATE = int(BookAction.UPDATE)
ACTION_DELETE = int(BookAction.DELETE)
SIDE_NONE = int(OrderSide.NO_ORDER_SIDE)
SIDE_BUY = int(OrderSide.BUY)
SIDE_SELL = int(OrderSide.SELL)
F_LAST = int(RecordFlag.F_LAST)
F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
AGGRESSOR_NONE = int(AggressorSide.NO_AGGRESSOR)
AGGRESSOR_BUYER = int(AggressorSide.BUYER)
AGGRESSOR_SELLER = int(AggressorSide.SELLER)
TRADE_TICK = "trade_tick"
QUOTE_TICK = "quote_tick"
ORDER_BOOK_DELTAS = "order_book_deltas"
BAR = "bar"
FUNDING_RATE_UPDATE = "funding_rate_update"

_FIXED = pa.binary(16)
_SCHEMAS: dict[str, list[pa.Field]] = {
    TRADE_TICK: [
        pa.field("price", _FIXED, nullable=False),
        pa.field("size", _FIXED, nullable=False),
        pa.field("aggressor_side", pa.uint8(), nullable=False),
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ],
    QUOTE_TICK: [
        pa.field("bid_price", _FIXED, nullable=False),
        pa.field("ask_price", _FIXED, nullable=False),
        pa.field("bid_size", _FIXED, nullable=False),
        pa.field("ask_size", _FIXED, nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ],
    ORDER_BOOK_DELTAS: [
        pa.field("action", pa.uint8(), nullable=False),
        pa.field("side", pa.uint8(), nullable=False),
        pa.field("price", _FIXED, nullable=False),
        pa.field("size", _FIXED, nullable=False),
        pa.field("order_id", pa.uint64(), nullable=False),
        pa.field("flags", pa.uint8(), nullable=False),
        pa.field("sequence", pa.uint64(), nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ],
    BAR: [
        pa.field("open", _FIXED, nullable=False),
        pa.field("high", _FIXED, nullable=False),
        pa.field("low", _FIXED, nullable=False),
        pa.field("close", _FIXED, nullable=False),
        pa.field("volume", _FIXED, nullable=False),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ],
    # The rate is a JSON-quoted decimal string ('"0.0001"'), as nautilus' own serializer writes it.
    FUNDING_RATE_UPDATE: [
        pa.field("rate", pa.binary(), nullable=False),
        pa.field("interval", pa.uint16(), nullable=True),
        pa.field("next_funding_ns", pa.uint64(), nullable=True),
        pa.field("ts_event", pa.uint64(), nullable=False),
        pa.field("ts_init", pa.uint64(), nullable=False),
    ],
}


# Columns beyond nautilus's schema, written when the source has them; nautilus's readers select the columns
# they know and ignore these (checked for ParquetDataCatalog.quote_ticks and the backtest's DataBackendSession).
_OPTIONAL_FIELDS: dict[str, list[pa.Field]] = {
    # The venue's update id of a quote (Binance bookTicker ``u``), for the quote_update_ids check.
    QUOTE_TICK: [pa.field("update_id", pa.uint64(), nullable=False)],
}


@dataclass(frozen=True)
class CatalogFile:
    """
    One Parquet file of the catalog, described by its path alone.

    Parameters
    ----------
    data_type : str
        The snake-case class folder (``trade_tick``, ``currency_pair``, ...).
    identifier : str
        The instrument id (or bar type) folder.
    first_ts : int
        First ``ts_init`` (ns), from the file name.
    last_ts : int
        Last ``ts_init`` (ns), from the file name.
    path : Path
        The file.

    """

    data_type: str
    identifier: str
    first_ts: int
    last_ts: int
    path: Path

    def overlaps(self, first_ts: int, last_ts: int) -> bool:
        """Return True if ``[first_ts, last_ts]`` shares any instant with this file's interval."""
        return first_ts <= self.last_ts and self.first_ts <= last_ts


def file_name(first_ts: int, last_ts: int) -> str:
    """Return the catalog file name for a ``ts_init`` interval (same format as nautilus)."""
    return f"{_file_timestamp(first_ts)}_{_file_timestamp(last_ts)}.parquet"


def relative_path(data_type: str, identifier: str, first_ts: int, last_ts: int) -> Path:
    """Return a data file's path relative to the catalog root."""
    return Path("data") / data_type / identifier / file_name(first_ts, last_ts)


def catalog_files(catalog: Path) -> list[CatalogFile]:
    """
    List every ``data/<type>/<identifier>/<interval>.parquet`` file of a catalog.

    Parameters
    ----------
    catalog : Path
        The catalog root; a missing folder is an empty catalog.

    Returns
    -------
    list[CatalogFile]
        Sorted by type, identifier and first timestamp.

    """
    files = []
    for path in sorted(Path(catalog).glob("data/*/*/*.parquet")):
        interval = parse_file_name(path.name)
        if interval is None:
            continue
        files.append(CatalogFile(path.parent.parent.name, path.parent.name, interval[0], interval[1], path))
    return sorted(files, key=lambda item: (item.data_type, item.identifier, item.first_ts))


def parse_file_name(name: str) -> tuple[int, int] | None:
    """Return the ``(first_ts, last_ts)`` encoded in a catalog file name, or None if it has none."""
    stem = name.removesuffix(".parquet")
    first, separator, last = stem.partition("_")
    if not separator:
        return None
    try:
        return _parse_file_timestamp(first), _parse_file_timestamp(last)
    except ValueError:
        return None


def arrow_table(data_type: str, frame: pl.DataFrame, instrument: Instrument, identifier: str | None = None) -> pa.Table:
    """
    Build the nautilus Arrow table for trade ticks, quote ticks, order book deltas, bars or funding rates.

    Parameters
    ----------
    data_type : str
        ``TRADE_TICK``, ``QUOTE_TICK``, ``ORDER_BOOK_DELTAS``, ``BAR`` or ``FUNDING_RATE_UPDATE``.
    frame : pl.DataFrame
        Columns named as the schema; prices and sizes as ``Decimal(38, 16)``; the funding ``rate`` as a
        decimal string; sorted by ``ts_init``. Quotes may add ``update_id`` (the venue's update id), kept as
        an extra column.
    instrument : Instrument
        Gives the id and precisions stored in the schema metadata.
    identifier : str, optional
        The catalog folder name; for bars the bar type (e.g. ``BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL``),
        stored as ``bar_type`` metadata as nautilus does. Defaults to the instrument id.

    Returns
    -------
    pa.Table

    """
    fields = _SCHEMAS[data_type] + [field for field in _OPTIONAL_FIELDS.get(data_type, []) if field.name in frame.columns]
    columns = []
    for schema_field in fields:
        column = frame[schema_field.name]
        if schema_field.type == _FIXED:
            columns.append(fixed_to_arrow(column))
        elif data_type == FUNDING_RATE_UPDATE and schema_field.name == "rate":
            columns.append(pa.array(('"' + column.cast(pl.String) + '"').to_arrow()).cast(pa.binary()))
        else:
            columns.append(pa.array(column.to_arrow()).cast(schema_field.type))
    metadata = {"instrument_id": instrument.id.value}
    if data_type == BAR:
        metadata = {"bar_type": identifier or instrument.id.value, **metadata}
    if data_type != FUNDING_RATE_UPDATE:
        metadata["price_precision"] = str(instrument.price_precision)
        metadata["size_precision"] = str(instrument.size_precision)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=metadata))


def write_catalog_file(table: pa.Table, path: Path) -> None:
    """
    Write one catalog table as Parquet, encoded for what nautilus reads back.

    Row groups of 5000 rows, as ``ParquetDataCatalog.write_data`` writes them. Dictionary encoding only for the
    ``uint8`` enum columns (side, action, flags): prices, trade ids and timestamps barely repeat, so a dictionary
    costs half the write time and saves nothing. Statistics only for the timestamps, the one thing a reader
    filters row groups on; min/max of 16-byte fixed-point values is meaningless to Parquet.

    Parameters
    ----------
    table : pa.Table
        From :func:`arrow_table`.
    path : Path
        The file to write.

    """
    pq.write_table(
        table,
        path,
        row_group_size=ROWS_PER_GROUP,
        use_dictionary=[field.name for field in table.schema if field.type == pa.uint8()],
        write_statistics=[name for name in ("ts_event", "ts_init") if name in table.column_names],
    )


def _file_timestamp(ts: int) -> str:
    return unix_nanos_to_iso8601(ts).replace(":", "-").replace(".", "-")


def _parse_file_timestamp(text: str) -> int:
    date_part, time_separator, time_part = text.partition("T")
    if not time_separator or not time_part.endswith("Z"):
        raise ValueError(text)
    hours, minutes, seconds, nanos = time_part[:-1].split("-")
    return pd.Timestamp(f"{date_part}T{hours}:{minutes}:{seconds}.{nanos}Z").value
