"""The Binance USDT-M futures recording source: trades, bookTicker quotes and L2 deltas of perpetuals.

Recordings are parsed with the futures rules of :mod:`keel.data.binance_recording` and committed with
:func:`keel.data.ingest.commit_tables`. Each recording's symbol is priced on the instrument *version* in
force at the recording's first local timestamp (:func:`keel.data.instrument_history.instrument_as_of`);
a price off that version's tick is refused, naming the line and the version. Only the versions some
ingested data is priced on are written: ``BacktestNode`` adds the oldest version of an id it finds, so a
version no data uses would only mislead it.
"""

from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.instruments import Instrument

from keel.data.binance_recording import BINANCE_USDM
from keel.data.binance_recording import RawRecording
from keel.data.binance_recording import RECORDING_CHUNK_BYTES
from keel.data.binance_recording import read_recording_chunks
from keel.data.errors import DataInputError
from keel.data.ingest import IngestReport
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.ingest import recording_tables
from keel.data.instrument_history import binance_usdm_instrument_versions
from keel.data.instrument_history import instrument_as_of
from keel.data.progress import IngestProgress
from keel.data.quality import CheckPolicies
from keel.data.quality import load_check_policies
from keel.data.recording_continuity import DepthEnds
from keel.data.recording_continuity import in_time_order
from keel.settings import SAMPLE_DIR

SAMPLE_BINANCE_USDM_DIR = SAMPLE_DIR / "binance_usdm"
DEFAULT_USDM_EXCHANGE_INFO = SAMPLE_BINANCE_USDM_DIR / "exchange_info.json"
DEFAULT_TICK_SIZE_HISTORY = SAMPLE_BINANCE_USDM_DIR / "tick_size_history.yaml"


def sample_usdm_recordings() -> list[Path]:
    """Return the shipped USDT-M sample recordings (BTCUSDT perpetual, 2024-08-08 23:54:15-23:54:55 UTC)."""
    return sorted(SAMPLE_BINANCE_USDM_DIR.glob("*.gz"))


def ingest_binance_usdm(
    recordings: Sequence[Path],
    catalog: Path,
    exchange_info: Path = DEFAULT_USDM_EXCHANGE_INFO,
    history: Path = DEFAULT_TICK_SIZE_HISTORY,
    checks: CheckPolicies | None = None,
    chunk_bytes: int | None = RECORDING_CHUNK_BYTES,
    replace: bool = False,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """
    Ingest Binance USDT-M futures recordings (trades, bookTicker quotes, L2 deltas) and their perpetuals.

    Parameters
    ----------
    recordings : Sequence[Path]
        Recording files (``<local ts ns> <json>`` lines, gzip or plain), one symbol each, read in the order of
        their first receive time; a file without a depth snapshot continues the symbol's previous file (in
        this ingest, or the catalog) when its first diff has ``pu`` = that file's last ``u``.
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    exchange_info : Path
        A saved ``/fapi/v1/exchangeInfo`` response covering every recorded symbol.
    history : Path
        The tick-size history (:func:`keel.data.instrument_history.load_filter_history`) giving the
        instrument versions over time.
    checks : CheckPolicies, optional
        Data-check policies passed to :func:`keel.data.ingest.commit_tables`; default:
        ``configs/data_checks.yaml``, whose override for ``*-PERP.BINANCE`` reports the id holes left by
        the non-MARKET prints left out as ``trade_id_gaps`` warnings, at ingest and in ``keel data check``.
    chunk_bytes : int, optional
        Uncompressed bytes read per chunk (one catalog file per chunk, data type and instrument), see
        :func:`keel.data.binance_recording.read_recording_chunks`; None writes one file per recording.
    replace : bool, default False
        Replace the catalog's data of a window with different data (see :func:`keel.data.ingest.commit_tables`).
    progress : IngestProgress, optional
        Told about every file and chunk read.

    Returns
    -------
    IngestReport
        ``rounded_quantities`` as for spot; trades left out by execution type are in the recordings'
        :attr:`RawRecording.skipped_trades`.

    Raises
    ------
    DataInputError
        On any bad input, a recording older than every known version, a price off the tick of the version
        in force, or an overlap with existing data; nothing is written then.

    """
    catalog = Path(catalog).resolve()
    if not recordings:
        raise DataInputError(catalog, "no recording given: expected at least one Binance USDT-M recording file")
    policies = checks or load_check_policies()
    versions: dict[str, list[Instrument]] = {}
    rounded: dict[str, int] = {}  # filled as commit_tables consumes the tables, read by it at the end
    depth_ends = DepthEnds(catalog, BINANCE_USDM)

    def tables() -> Iterator[SourceTable]:
        # One chunk at a time: commit_tables stages its tables (and the version they were read on) before
        # the next chunk is read; each chunk is read on the version in force at its first row.
        for path in in_time_order(recordings):
            for raw in read_recording_chunks(path, BINANCE_USDM, chunk_bytes, depth_ends, progress):
                depth_ends.record(raw)
                missing = set(raw.symbols) - set(versions)
                if missing:
                    versions.update(binance_usdm_instrument_versions(Path(exchange_info), Path(history), missing))
                instruments = {symbol: _version_in_force(raw, symbol, versions[symbol]) for symbol in raw.symbols}
                yield from _recording_tables(raw, instruments, rounded, policies)

    return commit_tables(catalog, [], tables(), rounded, policies, replace)


def _version_in_force(raw: RawRecording, symbol: str, versions: list[Instrument]) -> Instrument:
    try:
        return instrument_as_of(versions, raw.first_ts_init(symbol))
    except ValueError as error:
        raise DataInputError(raw.path, f"{symbol}: {error}; expected data no older than the instrument history") from None


def _recording_tables(
    raw: RawRecording, instruments: dict[str, Instrument], rounded: dict[str, int], policies: CheckPolicies
) -> list[SourceTable]:
    try:
        return recording_tables(raw, instruments, rounded, policies)
    except DataInputError as error:
        # Name the version the data was checked against: an off-tick price often means the wrong version.
        checked_against = ", ".join(
            f"tick {instrument.price_increment} of the {instrument.id} version in force from "
            f"{unix_nanos_to_iso8601(instrument.ts_event)}"
            for instrument in instruments.values()
        )
        raise DataInputError(error.path, f"{error.problem} ({checked_against})", error.line) from None
