"""
What the catalog holds, and where it holds nothing: first/last ``ts_init``, rows, files and gaps per folder.

A folder is one ``data/<type>/<instrument id or bar type>/``. A *gap* is an interval between two consecutive
``ts_init`` longer than the data type's threshold, whether the two rows sit in one file (a hole inside a
recording) or in two neighbouring files (a day never ingested). Gaps are found from the ``ts_init`` column
alone, read file by file, so memory stays at one file's timestamps whatever the catalog's size.

Default thresholds: 60 s for trades, quotes, depth and any other time series; one bar interval for time bars,
parsed from the bar type folder (``BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL``: 60 s, so a single missing bar is a
gap); 8 h for funding rates (the common funding interval). Tick, volume and value bars have no natural
interval: no gaps are counted for them unless a ``bar`` threshold is given. Instrument folders
(``currency_pair``, ``crypto_perpetual``, ...) hold definitions, not a time series: their rows are versions.

This module also holds the catalog's column reader (:func:`read_columns`), shared by :mod:`keel.data.plot`.
"""

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import BarAggregation
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.funcs import class_to_filename

from keel.data.catalog_layout import BAR
from keel.data.catalog_layout import FUNDING_RATE_UPDATE
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import catalog_files
from keel.data.fixed_point import FIXED_SCALE

SECOND_NS = 1_000_000_000
HOUR_NS = 3600 * SECOND_NS
DAY_NS = 24 * HOUR_NS
DEFAULT_GAP_THRESHOLD_NS = 60 * SECOND_NS
DEFAULT_GAP_THRESHOLDS_NS: dict[str, int] = {
    TRADE_TICK: DEFAULT_GAP_THRESHOLD_NS,
    QUOTE_TICK: DEFAULT_GAP_THRESHOLD_NS,
    ORDER_BOOK_DELTAS: DEFAULT_GAP_THRESHOLD_NS,
    FUNDING_RATE_UPDATE: 8 * HOUR_NS,
}
# Every nautilus instrument class's catalog folder (currency_pair, crypto_perpetual, ...), from nautilus itself.
INSTRUMENT_DATA_TYPES = frozenset(class_to_filename(cls) for cls in Instrument.__subclasses__())
_FIXED = pa.binary(16)
# Calendar bars vary in length; their threshold is the longest possible bar, so a short month is no gap.
_LONGEST_CALENDAR_BAR_NS = {BarAggregation.MONTH: 31 * DAY_NS, BarAggregation.YEAR: 366 * DAY_NS}


@dataclass(frozen=True)
class Gap:
    """
    An interval without data, longer than its data type's threshold.

    Parameters
    ----------
    identifier : str
        The folder: instrument id, or bar type for bars.
    data_type : str
        The catalog data type (``trade_tick``, ``bar``, ...).
    start_ns : int
        The last ``ts_init`` before the gap.
    end_ns : int
        The first ``ts_init`` after the gap.
    files : tuple[Path, ...]
        The file holding both ends (a gap within a file), or the two files either side (a gap between files).

    """

    identifier: str
    data_type: str
    start_ns: int
    end_ns: int
    files: tuple[Path, ...]

    @property
    def duration_ns(self) -> int:
        """Return the gap's length in nanoseconds."""
        return self.end_ns - self.start_ns

    @property
    def within_file(self) -> bool:
        """Return True if both ends of the gap are in the same file."""
        return len(self.files) == 1


@dataclass(frozen=True)
class InventoryRow:
    """
    What one catalog folder holds.

    Parameters
    ----------
    identifier : str
        The folder: instrument id, or bar type for bars.
    data_type : str
        The catalog data type (``trade_tick``, ``currency_pair``, ...).
    first_ts : int
        The lowest ``ts_init`` (ns).
    last_ts : int
        The highest ``ts_init`` (ns).
    rows : int
        Rows over all files (for instruments: the number of versions).
    files : int
        Parquet files in the folder.
    gap_threshold_ns : int or None
        The threshold the gaps were counted against; None when gaps do not apply (instruments, tick bars).
    gaps : int
        Intervals without data longer than the threshold.
    longest_gap_ns : int
        The longest of them; 0 without gaps.

    """

    identifier: str
    data_type: str
    first_ts: int
    last_ts: int
    rows: int
    files: int
    gap_threshold_ns: int | None
    gaps: int
    longest_gap_ns: int


@dataclass(frozen=True)
class _FolderScan:
    """A folder's timestamps summarised: rows, extent, and every gap as arrays (start, end, file either side)."""

    rows: int
    first_ts: int
    last_ts: int
    gap_starts: np.ndarray
    gap_ends: np.ndarray
    gap_files_before: np.ndarray
    gap_files_after: np.ndarray


def catalog_inventory(
    catalog: Path,
    gap_thresholds: Mapping[str, int] | None = None,
    instrument_ids: Sequence[str] | None = None,
) -> list[InventoryRow]:
    """
    Return one row per catalog folder: first/last ``ts_init``, rows, files and gaps.

    Parameters
    ----------
    catalog : Path
        The ``ParquetDataCatalog`` root; a missing folder is an empty catalog.
    gap_thresholds : Mapping[str, int], optional
        Gap threshold in nanoseconds per data type (``trade_tick``, ``bar``, ...), replacing the defaults
        (:data:`DEFAULT_GAP_THRESHOLDS_NS`, one bar interval for time bars) for the types given.
    instrument_ids : Sequence[str], optional
        Only folders of these instruments (bar types count as their instrument's); all when None.

    Returns
    -------
    list[InventoryRow]
        Sorted by identifier and data type.

    """
    rows = []
    for (identifier, data_type), files in _folders(catalog, instrument_ids).items():
        threshold = gap_threshold_ns(data_type, identifier, gap_thresholds)
        scan = _scan_folder(files, threshold)
        durations = scan.gap_ends - scan.gap_starts
        rows.append(
            InventoryRow(
                identifier=identifier,
                data_type=data_type,
                first_ts=scan.first_ts,
                last_ts=scan.last_ts,
                rows=scan.rows,
                files=len(files),
                gap_threshold_ns=threshold,
                gaps=len(durations),
                longest_gap_ns=int(durations.max()) if len(durations) else 0,
            )
        )
    return rows


def catalog_gaps(
    catalog: Path,
    gap_thresholds: Mapping[str, int] | None = None,
    instrument_ids: Sequence[str] | None = None,
) -> list[Gap]:
    """
    Return every interval without data longer than its data type's threshold, within and between files.

    Parameters
    ----------
    catalog : Path
        The ``ParquetDataCatalog`` root.
    gap_thresholds : Mapping[str, int], optional
        Gap threshold in nanoseconds per data type, replacing the defaults for the types given.
    instrument_ids : Sequence[str], optional
        Only folders of these instruments (bar types count as their instrument's); all when None.

    Returns
    -------
    list[Gap]
        Sorted by identifier, data type and start.

    """
    gaps = []
    for (identifier, data_type), files in _folders(catalog, instrument_ids).items():
        threshold = gap_threshold_ns(data_type, identifier, gap_thresholds)
        if threshold is None:
            continue
        scan = _scan_folder(files, threshold)
        for start, end, before, after in zip(
            scan.gap_starts.tolist(), scan.gap_ends.tolist(), scan.gap_files_before.tolist(), scan.gap_files_after.tolist(), strict=True
        ):
            paths = (files[before].path,) if before == after else (files[before].path, files[after].path)
            gaps.append(Gap(identifier, data_type, start, end, paths))
    return gaps


def gap_threshold_ns(data_type: str, identifier: str, gap_thresholds: Mapping[str, int] | None = None) -> int | None:
    """
    Return the gap threshold (ns) of a folder, or None when gaps do not apply to it.

    Parameters
    ----------
    data_type : str
        The catalog data type.
    identifier : str
        The folder name (instrument id, or bar type for bars).
    gap_thresholds : Mapping[str, int], optional
        Thresholds per data type overriding the defaults.

    Returns
    -------
    int or None
        None for instrument folders, and for bars that are not time bars unless ``bar`` is given.

    """
    if data_type in INSTRUMENT_DATA_TYPES:
        return None
    if gap_thresholds is not None and data_type in gap_thresholds:
        return int(gap_thresholds[data_type])
    if data_type == BAR:
        return _bar_interval_ns(identifier)
    return DEFAULT_GAP_THRESHOLDS_NS.get(data_type, DEFAULT_GAP_THRESHOLD_NS)


def folder_instrument_id(data_type: str, identifier: str) -> str:
    """
    Return the instrument id a catalog folder belongs to (the bar type's instrument for bars).

    Parameters
    ----------
    data_type : str
        The catalog data type.
    identifier : str
        The folder name.

    Returns
    -------
    str

    """
    if data_type != BAR:
        return identifier
    try:
        return BarType.from_str(identifier).instrument_id.value
    except ValueError:
        return identifier


def read_columns(
    files: Sequence[CatalogFile],
    columns: Sequence[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> pl.DataFrame:
    """
    Read columns of catalog files into one polars frame, in the files' order.

    Prices and sizes (nautilus' 16-byte fixed point) come back as ``Decimal(38, 16)``, the bytes reinterpreted
    without a copy per value.

    Parameters
    ----------
    files : Sequence[CatalogFile]
        Files of one folder, in time order (as :func:`keel.data.catalog_layout.catalog_files` lists them).
    columns : Sequence[str]
        The columns to read.
    start_ns : int, optional
        Only rows with ``ts_init >= start_ns``.
    end_ns : int, optional
        Only rows with ``ts_init <= end_ns``.

    Returns
    -------
    pl.DataFrame
        Empty (with no columns) when no file has rows in the range.

    """
    filters = []
    if start_ns is not None:
        filters.append(("ts_init", ">=", start_ns))
    if end_ns is not None:
        filters.append(("ts_init", "<=", end_ns))
    frames = []
    for item in files:
        # The file name gives its interval: files wholly outside the range are not opened.
        if (start_ns is not None and item.last_ts < start_ns) or (end_ns is not None and item.first_ts > end_ns):
            continue
        table = pq.read_table(item.path, columns=list(columns), filters=filters or None)
        if table.num_rows:
            frames.append(pl.DataFrame({name: decode_column(table.column(name)) for name in table.column_names}))
    return pl.concat(frames) if frames else pl.DataFrame()


def decode_column(column: pa.ChunkedArray) -> pl.Series:
    """
    Return an Arrow column as polars, nautilus' fixed-point ``fixed_size_binary[16]`` as ``Decimal(38, 16)``.

    Parameters
    ----------
    column : pa.ChunkedArray
        A column of a catalog file.

    Returns
    -------
    pl.Series

    """
    if column.type != _FIXED:
        return pl.from_arrow(column)
    array = column.combine_chunks()
    # Buffer 1 of a fixed_size_binary[16] array holds the little-endian i128 values: exactly decimal128's layout.
    decimal = pa.Array.from_buffers(pa.decimal128(38, FIXED_SCALE), len(array), [None, array.buffers()[1]], offset=array.offset)
    return pl.from_arrow(decimal)


def _folders(catalog: Path, instrument_ids: Sequence[str] | None) -> dict[tuple[str, str], list[CatalogFile]]:
    folders: dict[tuple[str, str], list[CatalogFile]] = {}
    for item in catalog_files(Path(catalog)):
        if instrument_ids is None or folder_instrument_id(item.data_type, item.identifier) in instrument_ids:
            folders.setdefault((item.identifier, item.data_type), []).append(item)
    return dict(sorted(folders.items()))


def _bar_interval_ns(identifier: str) -> int | None:
    try:
        specification = BarType.from_str(identifier).spec
    except ValueError:
        return None
    if not specification.is_time_aggregated():
        return None
    calendar_bar = _LONGEST_CALENDAR_BAR_NS.get(specification.aggregation)
    if calendar_bar is not None:
        return specification.step * calendar_bar
    return int(specification.timedelta.value)


def _scan_folder(files: Sequence[CatalogFile], threshold_ns: int | None) -> _FolderScan:
    """Read each file's ``ts_init`` in turn and find the gaps inside it and the one since the previous files."""
    rows = 0
    first_ts: int | None = None
    covered_until: int | None = None
    furthest_file = 0  # the file holding ``covered_until``: the "before" side of a gap between files
    starts, ends, before, after = [], [], [], []
    for index, item in enumerate(files):
        # Coverage is about instants, not row order (out-of-order rows are `keel data check`'s finding): sort.
        timestamps = np.sort(pq.read_table(item.path, columns=["ts_init"]).column("ts_init").to_numpy().astype(np.int64))
        if not len(timestamps):
            continue
        rows += len(timestamps)
        first_ts = int(timestamps[0]) if first_ts is None else min(first_ts, int(timestamps[0]))
        if threshold_ns is not None:
            if covered_until is not None and timestamps[0] - covered_until > threshold_ns:
                starts.append(np.array([covered_until]))
                ends.append(timestamps[:1])
                before.append(np.array([furthest_file]))
                after.append(np.array([index]))
            inside = np.flatnonzero(np.diff(timestamps) > threshold_ns)
            starts.append(timestamps[inside])
            ends.append(timestamps[inside + 1])
            before.append(np.full(len(inside), index))
            after.append(np.full(len(inside), index))
        if covered_until is None or timestamps[-1] > covered_until:
            covered_until = int(timestamps[-1])
            furthest_file = index
    empty = np.array([], dtype=np.int64)
    return _FolderScan(
        rows=rows,
        first_ts=first_ts if first_ts is not None else 0,
        last_ts=covered_until if covered_until is not None else 0,
        gap_starts=np.concatenate(starts) if starts else empty,
        gap_ends=np.concatenate(ends) if ends else empty,
        gap_files_before=np.concatenate(before) if before else empty,
        gap_files_after=np.concatenate(after) if after else empty,
    )
