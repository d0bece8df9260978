"""Ingest Binance spot recordings into a nautilus catalog, all or nothing.

Every input is read and checked, and every output file written, in a staging folder beside the catalog;
files move into the catalog only once all of that succeeded. A failure therefore leaves the catalog
exactly as it was. A file whose name (type, instrument, first/last ``ts_init``) already exists in the
catalog is skipped, which makes ingesting the same recording twice a no-op.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import RawRecording
from keel.data.binance_recording import read_recording
from keel.data.binance_recording import recording_frames
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import arrow_table
from keel.data.catalog_layout import catalog_files
from keel.data.catalog_layout import parse_file_name
from keel.data.catalog_layout import relative_path
from keel.data.errors import DataInputError
from keel.data.instruments import binance_spot_instruments
from keel.settings import SAMPLE_DIR

SAMPLE_BINANCE_SPOT_DIR = SAMPLE_DIR / "binance_spot"
DEFAULT_EXCHANGE_INFO = SAMPLE_BINANCE_SPOT_DIR / "exchange_info.json"
ROWS_PER_GROUP = 5000  # ParquetDataCatalog's default max_rows_per_group
WRITTEN = "written"
ALREADY_PRESENT = "already present"


@dataclass(frozen=True)
class IngestedFile:
    """
    One catalog file an ingest wrote or found already there.

    Parameters
    ----------
    instrument_id : str
        E.g. ``BTCUSDT.BINANCE``.
    data_type : str
        ``trade_tick``, ``quote_tick``, ``order_book_deltas`` or ``currency_pair``.
    rows : int
        Rows in the file.
    first_ts : int
        First ``ts_init`` (ns).
    last_ts : int
        Last ``ts_init`` (ns).
    path : Path
        The file in the catalog.
    status : str
        ``written`` or ``already present``.

    """

    instrument_id: str
    data_type: str
    rows: int
    first_ts: int
    last_ts: int
    path: Path
    status: str


@dataclass(frozen=True)
class IngestReport:
    """
    What an ingest did.

    Parameters
    ----------
    catalog : Path
        The catalog root.
    files : list[IngestedFile]
        One entry per instrument, data type and source recording.
    rounded_quantities : dict[str, int]
        Per instrument id: quantities finer than the size step, rounded up to it.

    """

    catalog: Path
    files: list[IngestedFile]
    rounded_quantities: dict[str, int]

    @property
    def changed_catalog(self) -> bool:
        """Return True if at least one file was written."""
        return any(item.status == WRITTEN for item in self.files)


@dataclass(frozen=True)
class _PlannedFile:
    instrument_id: str
    data_type: str
    relative: Path
    first_ts: int
    last_ts: int
    source: Path
    write: Callable[[Path], int]  # writes the file at the given path, returns its row count


def sample_recordings() -> list[Path]:
    """Return the shipped sample recordings (BTCUSDT and ETHUSDT, 2024-08-08 23:54-00:00 UTC)."""
    return sorted(SAMPLE_BINANCE_SPOT_DIR.glob("*.gz"))


def ingest_binance_spot(
    recordings: Sequence[Path],
    catalog: Path,
    exchange_info: Path = DEFAULT_EXCHANGE_INFO,
) -> IngestReport:
    """
    Ingest Binance spot recordings (trades, bookTicker quotes, L2 deltas) and their instruments.

    Parameters
    ----------
    recordings : Sequence[Path]
        Recording files (``<local ts ns> <json>`` lines, gzip or plain).
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    exchange_info : Path
        A saved ``/api/v3/exchangeInfo`` response covering every recorded symbol.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        On any bad input or overlap with existing data; nothing is written then.

    """
    catalog = Path(catalog).resolve()
    if not recordings:
        raise DataInputError(catalog, "no recording given: expected at least one Binance spot recording file")
    raws = [read_recording(Path(path)) for path in recordings]
    symbols = {symbol for raw in raws for symbol in raw.symbols}
    instruments = binance_spot_instruments(Path(exchange_info), symbols)
    rounded: dict[str, int] = {}
    plan: list[_PlannedFile] = []
    for raw in raws:
        plan.extend(_plan_recording(raw, instruments, rounded))

    existing = catalog_files(catalog)
    to_write, present = _resolve_against_catalog(plan, existing, catalog)
    catalog.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{catalog.name}.ingest-", dir=catalog.parent))
    try:
        written, instruments_present = _stage(to_write, instruments, staging, catalog)
        for item in written:
            target = catalog / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / item.path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [_at(item, catalog) for item in written] + present + instruments_present
    files.sort(key=lambda item: (item.instrument_id, item.data_type, item.first_ts))
    return IngestReport(catalog=catalog, files=files, rounded_quantities=rounded)


def _plan_recording(raw: RawRecording, instruments: dict[str, Instrument], rounded: dict[str, int]) -> list[_PlannedFile]:
    plan = []
    for symbol, frames in recording_frames(raw, instruments).items():
        instrument = instruments[symbol]
        instrument_id = instrument.id.value
        rounded[instrument_id] = rounded.get(instrument_id, 0) + frames.rounded_quantities
        for data_type, frame in ((TRADE_TICK, frames.trades), (QUOTE_TICK, frames.quotes), (ORDER_BOOK_DELTAS, frames.deltas)):
            if frame.is_empty():
                continue
            first_ts, last_ts = int(frame["ts_init"][0]), int(frame["ts_init"][-1])
            plan.append(
                _PlannedFile(
                    instrument_id,
                    data_type,
                    relative_path(data_type, instrument_id, first_ts, last_ts),
                    first_ts,
                    last_ts,
                    raw.path,
                    _table_writer(data_type, frame, instrument),
                )
            )
    return plan


def _table_writer(data_type: str, frame: pl.DataFrame, instrument: Instrument) -> Callable[[Path], int]:
    def write(staged: Path) -> int:
        pq.write_table(arrow_table(data_type, frame, instrument), staged, row_group_size=ROWS_PER_GROUP)
        return frame.height

    return write


def _resolve_against_catalog(
    plan: list[_PlannedFile], existing: list[CatalogFile], catalog: Path
) -> tuple[list[_PlannedFile], list[IngestedFile]]:
    by_folder: dict[tuple[str, str], list[CatalogFile]] = {}
    for item in existing:
        by_folder.setdefault((item.data_type, item.identifier), []).append(item)
    to_write: list[_PlannedFile] = []
    present: list[IngestedFile] = []
    for item in plan:
        target = catalog / item.relative
        if target.exists():
            rows = pq.ParquetFile(target).metadata.num_rows
            present.append(IngestedFile(item.instrument_id, item.data_type, rows, item.first_ts, item.last_ts, target, ALREADY_PRESENT))
            continue
        neighbours = by_folder.setdefault((item.data_type, item.instrument_id), [])
        for other in neighbours:
            if other.overlaps(item.first_ts, item.last_ts):
                raise DataInputError(
                    item.source,
                    f"{item.instrument_id} {item.data_type} covers {item.relative.name.removesuffix('.parquet')}, which overlaps "
                    f"{other.path}: expected time ranges disjoint from data already ingested (or from another input file)",
                )
        neighbours.append(CatalogFile(item.data_type, item.instrument_id, item.first_ts, item.last_ts, target))
        to_write.append(item)
    return to_write, present


def _stage(plan: list[_PlannedFile], instruments: dict[str, Instrument], staging: Path, catalog: Path) -> tuple[list[IngestedFile], list[IngestedFile]]:
    """Write the planned data files, and each instrument not yet in the catalog, under ``staging``."""
    staged = []
    for item in plan:
        path = staging / item.relative
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = item.write(path)
        staged.append(IngestedFile(item.instrument_id, item.data_type, rows, item.first_ts, item.last_ts, item.relative, WRITTEN))
    # Instruments are few: nautilus' own writer serializes them, into a scratch catalog inside the staging folder.
    scratch = staging / "instruments"
    instrument_catalog = ParquetDataCatalog(str(scratch))
    for instrument in instruments.values():
        instrument_catalog.write_data([instrument])
    present = []
    for path in sorted(scratch.glob("data/*/*/*.parquet")):
        first_ts, last_ts = parse_file_name(path.name)
        relative = path.relative_to(scratch)
        instrument_id, data_type = path.parent.name, path.parent.parent.name
        if (catalog / relative).exists():
            present.append(IngestedFile(instrument_id, data_type, 1, first_ts, last_ts, catalog / relative, ALREADY_PRESENT))
            continue
        final = staging / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
        staged.append(IngestedFile(instrument_id, data_type, 1, first_ts, last_ts, relative, WRITTEN))
    return staged, present


def _at(item: IngestedFile, catalog: Path) -> IngestedFile:
    return IngestedFile(item.instrument_id, item.data_type, item.rows, item.first_ts, item.last_ts, catalog / item.path, item.status)
