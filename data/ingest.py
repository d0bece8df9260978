"""Write parsed venue data into a nautilus catalog, all or nothing; and the Binance spot recording source.

Every source module (Binance recordings, Binance dumps, OKX, Tardis, bars) parses its files into
:class:`SourceTable` s, one per instrument, data type and input file, and hands them with their instruments
to :func:`commit_tables`. Every input is read and checked, and every output file written, in a staging folder beside the catalog;
files move into the catalog only once all of that succeeded. A failure therefore leaves the catalog
exactly as it was. A file whose name (type, instrument, first/last ``ts_init``) already exists in the
catalog is skipped, which makes ingesting the same recording twice a no-op.
"""

import os
import shutil
import tempfile
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import RawRecording
from keel.data.binance_recording import RECORDING_CHUNK_ROWS
from keel.data.binance_recording import read_recording_chunks
from keel.data.binance_recording import recording_frames
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import arrow_table
from keel.data.catalog_layout import catalog_files
from keel.data.catalog_layout import parse_file_name
from keel.data.catalog_layout import relative_path
from keel.data.catalog_layout import write_catalog_file
from keel.data.errors import DataInputError
from keel.data.instruments import binance_spot_instruments
from keel.data.quality import FAIL
from keel.data.quality import CheckPolicies
from keel.data.quality import Finding
from keel.data.quality import check_table
from keel.data.quality import load_check_policies
from keel.settings import SAMPLE_DIR

SAMPLE_BINANCE_SPOT_DIR = SAMPLE_DIR / "binance_spot"
DEFAULT_EXCHANGE_INFO = SAMPLE_BINANCE_SPOT_DIR / "exchange_info.json"
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
    findings : list[Finding]
        What the data checks found with policy ``warn`` or ``repair`` (``fail`` findings stop the ingest); rows
        are 0-based within the table parsed from the named input file.

    """

    catalog: Path
    files: list[IngestedFile]
    rounded_quantities: dict[str, int]
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed_catalog(self) -> bool:
        """Return True if at least one file was written."""
        return any(item.status == WRITTEN for item in self.files)


@dataclass(frozen=True)
class SourceTable:
    """
    One instrument's rows of one data type, parsed from one input file, ready for the catalog.

    Parameters
    ----------
    data_type : str
        A schema of :mod:`keel.data.catalog_layout` (``trade_tick``, ``quote_tick``, ``order_book_deltas``, ``bar``).
    identifier : str
        The catalog folder: the instrument id, or the bar type for bars.
    instrument : Instrument
        Gives the precisions written into the file's metadata.
    frame : pl.DataFrame
        The schema's columns (prices and sizes as ``Decimal(38, 16)``), sorted by ``ts_init``, not empty.
    source : Path
        The input file, named in errors.

    """

    data_type: str
    identifier: str
    instrument: Instrument
    frame: pl.DataFrame
    source: Path

    @property
    def first_ts(self) -> int:
        """Return the first ``ts_init``."""
        return int(self.frame["ts_init"][0])

    @property
    def last_ts(self) -> int:
        """Return the last ``ts_init``."""
        return int(self.frame["ts_init"][-1])

    @property
    def relative(self) -> Path:
        """Return the catalog file this table becomes, relative to the catalog root."""
        return relative_path(self.data_type, self.identifier, self.first_ts, self.last_ts)


def sample_recordings() -> list[Path]:
    """Return the shipped sample recordings (BTCUSDT and ETHUSDT, 2024-08-08 23:54-00:00 UTC)."""
    return sorted(SAMPLE_BINANCE_SPOT_DIR.glob("*.gz"))


def ingest_binance_spot(
    recordings: Sequence[Path],
    catalog: Path,
    exchange_info: Path = DEFAULT_EXCHANGE_INFO,
    checks: CheckPolicies | None = None,
    max_rows: int | None = RECORDING_CHUNK_ROWS,
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
    checks : CheckPolicies, optional
        Data-check policies applied before writing (default: ``configs/data_checks.yaml``).
    max_rows : int, optional
        Rows per chunk (one catalog file per chunk, data type and instrument), see
        :func:`keel.data.binance_recording.read_recording_chunks`; None writes one file per recording.

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
    instruments: dict[str, Instrument] = {}
    rounded: dict[str, int] = {}  # filled as commit_tables consumes the tables, read by it at the end

    def tables() -> Iterator[SourceTable]:
        # One chunk at a time: commit_tables stages its tables before the next chunk is read.
        for path in recordings:
            for raw in read_recording_chunks(Path(path), max_rows=max_rows):
                missing = set(raw.symbols) - set(instruments)
                if missing:
                    instruments.update(binance_spot_instruments(Path(exchange_info), missing))
                yield from _recording_tables(raw, instruments, rounded)

    return commit_tables(catalog, [], tables(), rounded, checks)


def commit_tables(
    catalog: Path,
    instruments: Sequence[Instrument],
    tables: Iterable[SourceTable],
    rounded_quantities: dict[str, int] | None = None,
    checks: CheckPolicies | None = None,
) -> IngestReport:
    """
    Write instruments and data tables into the catalog, all or nothing.

    Parameters
    ----------
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    instruments : Sequence[Instrument]
        Instruments to store besides those of the tables (each table's instrument is stored too); each
        version (id and ``ts_event``) not yet in the catalog is added.
    tables : Iterable[SourceTable]
        The data; empty tables are skipped. Consumed one table at a time: each is checked and written to the
        staging folder before the next is taken, so a generator that parses as it goes holds one table in
        memory, however many files or chunks the ingest spans.
    rounded_quantities : dict[str, int], optional
        Per instrument id, quantities the source rounded to the size step (reported back as given).
    checks : CheckPolicies, optional
        Data-check policies (``keel.data.quality``) run on every table before it is written; default:
        ``configs/data_checks.yaml``.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        If a check with policy ``fail`` finds something, or a table overlaps data already in the catalog (or
        another table of the same folder); nothing is written then.

    """
    catalog = Path(catalog).resolve()
    policies = checks or load_check_policies()
    folders = _folders(catalog_files(catalog))
    used = {(instrument.id.value, instrument.ts_event): instrument for instrument in instruments}
    catalog.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{catalog.name}.ingest-", dir=catalog.parent))
    try:
        written: list[IngestedFile] = []
        present: list[IngestedFile] = []
        findings: list[Finding] = []
        for table in tables:
            used.setdefault((table.instrument.id.value, table.instrument.ts_event), table.instrument)
            checked, table_findings = _checked(table, policies)
            findings.extend(table_findings)
            if checked is None:
                continue
            already = _already_present(checked, folders, catalog)
            if already is not None:
                present.append(already)
            else:
                written.append(_stage_table(checked, staging))
        instrument_files, instruments_present = _stage_instruments([used[key] for key in sorted(used)], staging, catalog)
        written += instrument_files
        for item in written:
            target = catalog / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / item.path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [_at(item, catalog) for item in written] + present + instruments_present
    files.sort(key=lambda item: (item.instrument_id, item.data_type, item.first_ts))
    return IngestReport(catalog=catalog, files=files, rounded_quantities=dict(rounded_quantities or {}), findings=findings)


def _checked(table: SourceTable, checks: CheckPolicies) -> tuple[SourceTable | None, list[Finding]]:
    """Run the data checks on a table; raise on a ``fail`` finding, repair where asked; None when nothing is left."""
    if table.frame.is_empty():
        return None, []
    result = check_table(table.data_type, table.frame, checks, table.instrument.id.value, table.source)
    failures = [finding for finding in result.findings if finding.policy == FAIL]
    if failures:
        first = failures[0]
        raise DataInputError(
            table.source,
            f"{len(failures)} finding(s) of checks with policy fail; first: {first.check}: {first.instrument_id} "
            f"{first.data_type} row {first.row} (0-based, of the parsed {first.data_type} rows) {first.field}: {first.problem}",
        )
    if result.frame.is_empty():
        return None, result.findings
    return replace(table, frame=result.frame), result.findings


def _recording_tables(raw: RawRecording, instruments: dict[str, Instrument], rounded: dict[str, int]) -> list[SourceTable]:
    tables = []
    for symbol, frames in recording_frames(raw, instruments).items():
        instrument = instruments[symbol]
        instrument_id = instrument.id.value
        rounded[instrument_id] = rounded.get(instrument_id, 0) + frames.rounded_quantities
        for data_type, frame in ((TRADE_TICK, frames.trades), (QUOTE_TICK, frames.quotes), (ORDER_BOOK_DELTAS, frames.deltas)):
            tables.append(SourceTable(data_type, instrument_id, instrument, frame, raw.path))
    return tables


def _folders(existing: list[CatalogFile]) -> dict[tuple[str, str], list[CatalogFile]]:
    by_folder: dict[tuple[str, str], list[CatalogFile]] = {}
    for item in existing:
        by_folder.setdefault((item.data_type, item.identifier), []).append(item)
    return by_folder


def _already_present(item: SourceTable, folders: dict[tuple[str, str], list[CatalogFile]], catalog: Path) -> IngestedFile | None:
    """
    Return the catalog file ``item`` would become if it is already there (re-ingest), else None.

    When it is not there, its time range must be disjoint from every file of its folder, in the catalog and
    staged by this ingest; it is then registered in ``folders``.
    """
    target = catalog / item.relative
    if target.exists():
        rows = pq.ParquetFile(target).metadata.num_rows
        return IngestedFile(item.identifier, item.data_type, rows, item.first_ts, item.last_ts, target, ALREADY_PRESENT)
    neighbours = folders.setdefault((item.data_type, item.identifier), [])
    for other in neighbours:
        if other.overlaps(item.first_ts, item.last_ts):
            raise DataInputError(
                item.source,
                f"{item.identifier} {item.data_type} covers {item.relative.name.removesuffix('.parquet')}, which overlaps "
                f"{other.path}: expected time ranges disjoint from data already ingested (or from another input file)",
            )
    neighbours.append(CatalogFile(item.data_type, item.identifier, item.first_ts, item.last_ts, target))
    return None


def _stage_table(item: SourceTable, staging: Path) -> IngestedFile:
    """Write one table's catalog file under ``staging``."""
    path = staging / item.relative
    path.parent.mkdir(parents=True, exist_ok=True)
    write_catalog_file(arrow_table(item.data_type, item.frame, item.instrument, item.identifier), path)
    return IngestedFile(item.identifier, item.data_type, item.frame.height, item.first_ts, item.last_ts, item.relative, WRITTEN)


def _stage_instruments(instruments: Sequence[Instrument], staging: Path, catalog: Path) -> tuple[list[IngestedFile], list[IngestedFile]]:
    """Write each instrument version not yet in the catalog under ``staging``; return (staged, already present)."""
    # Instruments are few: nautilus' own writer serializes them, into a scratch catalog inside the staging folder.
    scratch = staging / "instruments"
    instrument_catalog = ParquetDataCatalog(str(scratch))
    for instrument in instruments:
        instrument_catalog.write_data([instrument])
    staged, present = [], []
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
