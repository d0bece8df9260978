"""Write parsed venue data into a nautilus catalog, all or nothing; and the Binance spot recording source.

Every source module (Binance recordings, Binance dumps, OKX, Tardis, bars) parses its files into
:class:`SourceTable` s, one per instrument, data type and input file, and hands them with their instruments
to :func:`commit_tables`. Every input is read and checked, and every output file written, in a staging folder beside the catalog;
files move into the catalog only once all of that succeeded. A failure therefore leaves the catalog
exactly as it was.

Re-ingest decides by content: a table whose time window the catalog (or an earlier table of the same ingest)
already holds is compared row by row with the rows held in that window. The same rows are a no-op; different
rows are refused naming both files, or, with ``replace``, replace the catalog's files of that window (their
rows outside the window are kept, rewritten into files of their own).
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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import BINANCE_SPOT
from keel.data.binance_recording import RawRecording
from keel.data.binance_recording import RECORDING_CHUNK_BYTES
from keel.data.binance_recording import read_recording_chunks
from keel.data.binance_recording import recording_frames
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
from keel.data.recording_continuity import DepthEnds
from keel.data.recording_continuity import in_time_order
from keel.data.progress import IngestProgress
from keel.settings import SAMPLE_DIR

SAMPLE_BINANCE_SPOT_DIR = SAMPLE_DIR / "binance_spot"
DEFAULT_EXCHANGE_INFO = SAMPLE_BINANCE_SPOT_DIR / "exchange_info.json"
WRITTEN = "written"
ALREADY_PRESENT = "already present"
REPLACED = "replaced"


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
        ``written``, ``already present``, or ``replaced`` (a catalog file removed by ``replace``; its rows outside
        the new data's window are in a ``written`` file).

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
        What the data checks found with policy ``warn`` or ``repair`` (``fail`` findings stop the ingest), each
        naming the input file and the line the row came from.

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
    lines : pl.Series, optional
        The 1-based line (or row) of ``source`` each row of ``frame`` came from, named in findings.
    findings : tuple[Finding, ...]
        What the source's parser found checking the venue's text (``off_step_quantities``), reported with
        the data checks' findings.

    """

    data_type: str
    identifier: str
    instrument: Instrument
    frame: pl.DataFrame
    source: Path
    lines: pl.Series | None = None
    findings: tuple[Finding, ...] = ()

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
    chunk_bytes: int | None = RECORDING_CHUNK_BYTES,
    replace: bool = False,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """
    Ingest Binance spot recordings (trades, bookTicker quotes, L2 deltas) and their instruments.

    Parameters
    ----------
    recordings : Sequence[Path]
        Recording files (``<local ts ns> <json>`` lines, gzip or plain), read in the order of their first
        receive time. A file without a depth snapshot whose first diff continues the previous file of the
        symbol (in this ingest, or the catalog's last depth data before it) continues that book.
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    exchange_info : Path
        A saved ``/api/v3/exchangeInfo`` response covering every recorded symbol.
    checks : CheckPolicies, optional
        Data-check policies applied before writing (default: ``configs/data_checks.yaml``).
    chunk_bytes : int, optional
        Uncompressed bytes read per chunk (one catalog file per chunk, data type and instrument), see
        :func:`keel.data.binance_recording.read_recording_chunks`; None writes one file per recording.
    replace : bool, default False
        Replace the catalog's data of a window with different data (see :func:`commit_tables`).
    progress : IngestProgress, optional
        Told about every file and chunk read.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        On any bad input, a gap between files, or different data for a window already held (without
        ``replace``); nothing is written then.

    """
    catalog = Path(catalog).resolve()
    if not recordings:
        raise DataInputError(catalog, "no recording given: expected at least one Binance spot recording file")
    policies = checks or load_check_policies()
    instruments: dict[str, Instrument] = {}
    rounded: dict[str, int] = {}  # filled as commit_tables consumes the tables, read by it at the end
    depth_ends = DepthEnds(catalog, BINANCE_SPOT)

    def tables() -> Iterator[SourceTable]:
        # One chunk at a time: commit_tables stages its tables before the next chunk is read.
        for path in in_time_order(recordings):
            for raw in read_recording_chunks(path, BINANCE_SPOT, chunk_bytes, depth_ends, progress):
                depth_ends.record(raw)
                missing = set(raw.symbols) - set(instruments)
                if missing:
                    instruments.update(binance_spot_instruments(Path(exchange_info), missing))
                yield from recording_tables(raw, instruments, rounded, policies)

    return commit_tables(catalog, [], tables(), rounded, policies, replace)


def commit_tables(
    catalog: Path,
    instruments: Sequence[Instrument],
    tables: Iterable[SourceTable],
    rounded_quantities: dict[str, int] | None = None,
    checks: CheckPolicies | None = None,
    replace: bool = False,
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
    replace : bool, default False
        Let a table whose rows differ from those the catalog holds in its window replace the catalog's files
        of that window (their rows outside the window are kept). Without it such a table is refused.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        If a check with policy ``fail`` finds something, a table holds different rows than the catalog in its
        window (without ``replace``), or two tables of one ingest hold different rows for one window; nothing
        is written then.

    """
    catalog = Path(catalog).resolve()
    policies = checks or load_check_policies()
    used = {(instrument.id.value, instrument.ts_event): instrument for instrument in instruments}
    catalog.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{catalog.name}.ingest-", dir=catalog.parent))
    try:
        placement = _Placement(catalog, staging, replace)
        findings: list[Finding] = []
        for table in tables:
            used.setdefault((table.instrument.id.value, table.instrument.ts_event), table.instrument)
            checked, table_findings = _checked(table, policies)
            findings.extend(table_findings)
            if checked is not None:
                placement.place(checked)
        instrument_files, instruments_present = _stage_instruments([used[key] for key in sorted(used)], staging, catalog)
        written = placement.written() + instrument_files
        for item in written:
            target = catalog / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / item.path, target)
        written_paths = {catalog / item.path for item in written}
        for item in placement.replaced:
            if item.path not in written_paths:
                item.path.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [_at(item, catalog) for item in written] + placement.present + placement.replaced + instruments_present
    files.sort(key=lambda item: (item.instrument_id, item.data_type, item.first_ts, item.status))
    return IngestReport(catalog=catalog, files=files, rounded_quantities=dict(rounded_quantities or {}), findings=findings)


def _checked(table: SourceTable, checks: CheckPolicies) -> tuple[SourceTable | None, list[Finding]]:
    """Run the data checks on a table; raise on a ``fail`` finding, repair where asked; None when nothing is left."""
    if table.frame.is_empty():
        return None, list(table.findings)
    result = check_table(table.data_type, table.frame, checks, table.instrument.id.value, table.source, table.lines)
    failures = [finding for finding in result.findings if finding.policy == FAIL]
    if failures:
        first = failures[0]
        where = "" if first.line is not None else f" row {first.row} (0-based, of the parsed {first.data_type} rows)"
        raise DataInputError(
            table.source,
            f"{len(failures)} finding(s) of checks with policy fail; first: {first.check}: {first.instrument_id} "
            f"{first.data_type}{where} {first.field}: {first.problem}",
            first.line,
        )
    findings = [*table.findings, *result.findings]
    if result.frame.is_empty():
        return None, findings
    return replace(table, frame=result.frame), findings


def recording_tables(
    raw: RawRecording, instruments: dict[str, Instrument], rounded: dict[str, int], policies: CheckPolicies
) -> list[SourceTable]:
    """
    Return a Binance recording chunk's tables, each with its raw file lines and ``off_step_quantities`` findings.

    Parameters
    ----------
    raw : RawRecording
        One chunk of a recording.
    instruments : dict[str, Instrument]
        Keyed by Binance symbol, covering ``raw.symbols``; the prices and sizes are read on their grids.
    rounded : dict[str, int]
        Per instrument id, quantities rounded up to the size step so far; added to.
    policies : CheckPolicies
        Give the ``off_step_quantities`` policy of each instrument.

    Returns
    -------
    list[SourceTable]

    """
    off_step_policies = {symbol: policies.for_instrument(instrument.id.value).off_step_quantities.policy for symbol, instrument in instruments.items()}
    tables = []
    for symbol, frames in recording_frames(raw, instruments, off_step_policies).items():
        instrument = instruments[symbol]
        instrument_id = instrument.id.value
        rounded[instrument_id] = rounded.get(instrument_id, 0) + frames.rounded_quantities
        for data_type, frame in frames.tables():
            tables.append(SourceTable(data_type, instrument_id, instrument, frame, raw.path, frames.lines[data_type], tuple(frames.findings[data_type])))
    return tables


@dataclass
class _Held:
    """A file of a catalog folder that a new table's window may meet: in the catalog, or staged by this ingest."""

    first_ts: int
    last_ts: int
    path: Path  # where it is now (catalog or staging)
    relative: Path
    source: Path  # the input file it came from (a staged table), or the catalog file itself
    staged: bool
    from_catalog: bool  # a catalog file, or the kept rows of one that is being replaced


class _Placement:
    """
    Decides, table by table, whether an ingest writes, skips (same content) or replaces (``replace``) data.

    Folders are listed once; every table staged by the ingest joins its folder, so later tables are judged
    against the catalog and the earlier tables alike.
    """

    def __init__(self, catalog: Path, staging: Path, replace: bool) -> None:
        self._catalog = catalog
        self._staging = staging
        self._replace = replace
        self._folders: dict[tuple[str, str], list[_Held]] = {}
        for item in catalog_files(catalog):
            held = _Held(item.first_ts, item.last_ts, item.path, item.path.relative_to(catalog), item.path, False, True)
            self._folders.setdefault((item.data_type, item.identifier), []).append(held)
        self._written: dict[Path, IngestedFile] = {}
        self.present: list[IngestedFile] = []
        self.replaced: list[IngestedFile] = []

    def written(self) -> list[IngestedFile]:
        """Return the staged files, relative to the staging folder."""
        return list(self._written.values())

    def place(self, table: SourceTable) -> None:
        """Stage ``table``, or find its rows already held, or replace what is held (``replace``); else raise."""
        folder = self._folders.setdefault((table.data_type, table.identifier), [])
        meeting = [held for held in folder if held.first_ts <= table.last_ts and table.first_ts <= held.last_ts]
        arrow = arrow_table(table.data_type, table.frame, table.instrument, table.identifier)
        if meeting:
            window = _rows_in_window(meeting, table.first_ts, table.last_ts)
            if _same_rows(window, arrow):
                held_in = self._catalog / meeting[0].relative  # where the rows are (or will be, once committed)
                self.present.append(IngestedFile(table.identifier, table.data_type, arrow.num_rows, table.first_ts, table.last_ts, held_in, ALREADY_PRESENT))
                return
            self._refuse_or_replace(table, meeting, folder)
        folder.append(self._stage(table, arrow))

    def _refuse_or_replace(self, table: SourceTable, meeting: list["_Held"], folder: list["_Held"]) -> None:
        window = table.relative.name.removesuffix(".parquet")
        others = ", ".join(str(held.source) for held in meeting)
        from_inputs = [held for held in meeting if not held.from_catalog]
        if from_inputs:
            raise DataInputError(
                table.source,
                f"{table.identifier} {table.data_type} {window}: different data than {from_inputs[0].source} (another input file of this "
                "ingest) for the same window: expected input files with disjoint windows, or the same data",
            )
        if not self._replace:
            raise DataInputError(
                table.source,
                f"{table.identifier} {table.data_type} {window}: different data than the catalog already holds for this window in {others}: "
                "expected the same data (a re-ingest is a no-op), or --replace to replace the catalog's data of this window",
            )
        for held in meeting:
            folder.remove(held)
            kept = pq.read_table(held.path)
            if held.staged:  # kept rows of a catalog file an earlier table of this ingest replaced
                del self._written[held.relative]
                held.path.unlink()
            else:
                self.replaced.append(IngestedFile(table.identifier, table.data_type, kept.num_rows, held.first_ts, held.last_ts, held.path, REPLACED))
            before = kept.filter(pc.less(kept["ts_init"], pa.scalar(table.first_ts, pa.uint64())))
            after = kept.filter(pc.greater(kept["ts_init"], pa.scalar(table.last_ts, pa.uint64())))
            for part in (before, after):
                if part.num_rows:
                    folder.append(self._stage_arrow(table, part, held.source))

    def _stage(self, table: SourceTable, arrow: pa.Table) -> "_Held":
        relative = table.relative
        path = self._staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_catalog_file(arrow, path)
        self._written[relative] = IngestedFile(table.identifier, table.data_type, arrow.num_rows, table.first_ts, table.last_ts, relative, WRITTEN)
        return _Held(table.first_ts, table.last_ts, path, relative, table.source, True, False)

    def _stage_arrow(self, table: SourceTable, part: pa.Table, source: Path) -> "_Held":
        """Stage the kept rows of a replaced catalog file, as a file of their own."""
        first_ts, last_ts = part["ts_init"][0].as_py(), part["ts_init"][-1].as_py()
        relative = relative_path(table.data_type, table.identifier, first_ts, last_ts)
        path = self._staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_catalog_file(part, path)
        self._written[relative] = IngestedFile(table.identifier, table.data_type, part.num_rows, first_ts, last_ts, relative, WRITTEN)
        return _Held(first_ts, last_ts, path, relative, source, True, True)


def _rows_in_window(meeting: list[_Held], first_ts: int, last_ts: int) -> pa.Table:
    """Return the rows of the held files with ``first_ts <= ts_init <= last_ts``, in time order."""
    parts = []
    for held in sorted(meeting, key=lambda item: item.first_ts):
        table = pq.read_table(held.path)
        ts_init = table["ts_init"]
        inside = pc.and_(pc.greater_equal(ts_init, pa.scalar(first_ts, pa.uint64())), pc.less_equal(ts_init, pa.scalar(last_ts, pa.uint64())))
        parts.append(table.filter(inside))
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def _same_rows(held: pa.Table, new: pa.Table) -> bool:
    """Return True if the held rows are the new table's rows: same columns, same values, same order."""
    if held.num_rows != new.num_rows or held.column_names != new.column_names:
        return False
    return held.replace_schema_metadata(None).cast(new.schema.remove_metadata()).equals(new.replace_schema_metadata(None))


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
