"""
Quality checks on catalog data, run on Arrow/polars columns read straight from the catalog's Parquet files.

Each check looks at one instrument's files of one data type, concatenated in time order, and reports every
offending row as a :class:`Finding` naming the instrument, data type, file, row (0-based, within that file),
field, and what was found against what was expected. A policy per check (``fail``, ``warn``, ``repair`` or
``off``) comes from ``configs/data_checks.yaml``; ``keel data check`` exits 1 when a ``fail`` check finds anything.

The same checks run on every ingest, on each parsed table before it is written (:func:`check_table`): a ``fail``
finding stops the ingest with nothing written, a ``warn`` finding is reported, and ``repair`` (offered only by
checks with one defensible repair: drop the offending rows, or restore time order) fixes the table and reports
what it changed. A catalog check reports ``repair`` findings like warnings: the catalog itself is never rewritten.
"""

import fnmatch
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from typing import Literal

import msgspec
import numpy as np
import polars as pl
import pyarrow.parquet as pq

from keel.config_files import load_struct
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import catalog_files
from keel.data.inventory import decode_column
from keel.settings import CONFIGS_DIR

DEFAULT_CHECKS_FILE = CONFIGS_DIR / "data_checks.yaml"
FAIL = "fail"
WARN = "warn"
REPAIR = "repair"
OFF = "off"
Policy = Literal["fail", "warn", "repair", "off"]
_FILE = "_file"
_ROW = "_row"


class DataCheckConfigError(ValueError):
    """Raised when the checks file is missing or malformed; the message names the file and field."""


class _Check(msgspec.Struct, forbid_unknown_fields=True):
    policy: Policy | bool = FAIL

    def __post_init__(self) -> None:
        # YAML 1.1 reads an unquoted `off` as false (and `on`/`yes` as true).
        if self.policy is False:
            self.policy = OFF
        elif self.policy is True:
            raise ValueError("policy: got a YAML boolean (on/yes/true): expected fail, warn, repair or off")


class _ZeroVolumeCheck(_Check, forbid_unknown_fields=True):
    min_run: int = 1


class _PriceOutlierCheck(_Check, forbid_unknown_fields=True):
    window: int = 101
    deviations: float = 10.0
    min_deviation_bps: float = 10.0


class CheckPolicies(msgspec.Struct, forbid_unknown_fields=True):
    """
    Policy and parameters per check, as read from ``configs/data_checks.yaml``.

    Parameters
    ----------
    ts_init_monotonic : _Check
        ``ts_init`` never decreases (every data type).
    trade_id_duplicates : _Check
        A trade id appears once.
    trade_id_gaps : _Check
        Integer trade ids step by exactly 1 (Binance ids are contiguous): a jump means missing trades, a step
        back means reordered ones.
    crossed_quotes : _Check
        Quotes have bid < ask (bid == ask is "locked", bid > ask "crossed").
    zero_volume : _ZeroVolumeCheck
        Runs of at least ``min_run`` consecutive trades of size 0, or quotes with a side of size 0.
    price_outliers : _PriceOutlierCheck
        Trade prices more than ``deviations`` robust deviations (1.4826 x the rolling median absolute deviation,
        at least ``min_deviation_bps`` of the price) from the centred rolling median over ``window`` trades
        (mirrored at the ends, so that the first and last trades are judged like the others).
    depth_sequence : _Check
        Order book delta ``sequence`` (Binance update id) never goes backwards.
    quote_update_ids : _Check
        Quote ``update_id`` (Binance bookTicker ``u``, kept where the source has one) strictly increases: a
        repeat is a duplicate quote, a step back a reordered one.
    off_step_quantities : _Check
        Quantities finer than the instrument's size step, as the venue sent them (resting orders older than a
        step change): ``fail`` refuses the file, ``repair`` rounds them up to the step (never down to zero).
        A source parser runs it, since the catalog can only hold quantities on the grid: ``warn`` and
        ``off`` are not offered (either would store a value the file does not hold, unreported or unrepaired).
    overrides : list[PolicyOverride]
        Per-instrument changes on top of the above, applied in order (see :meth:`for_instrument`).

    """

    ts_init_monotonic: _Check = msgspec.field(default_factory=_Check)
    trade_id_duplicates: _Check = msgspec.field(default_factory=_Check)
    trade_id_gaps: _Check = msgspec.field(default_factory=_Check)
    crossed_quotes: _Check = msgspec.field(default_factory=_Check)
    zero_volume: _ZeroVolumeCheck = msgspec.field(default_factory=_ZeroVolumeCheck)
    price_outliers: _PriceOutlierCheck = msgspec.field(default_factory=_PriceOutlierCheck)
    depth_sequence: _Check = msgspec.field(default_factory=_Check)
    quote_update_ids: _Check = msgspec.field(default_factory=_Check)
    off_step_quantities: _Check = msgspec.field(default_factory=lambda: _Check(REPAIR))
    overrides: list["PolicyOverride"] = msgspec.field(default_factory=list)

    def policy(self, check: str) -> str:
        """Return the policy of the check named ``check``."""
        return getattr(self, check).policy

    def for_instrument(self, instrument_id: str) -> "CheckPolicies":
        """
        Return the policies for one instrument: every override whose patterns match it applied, in order.

        Parameters
        ----------
        instrument_id : str
            E.g. ``BTC-USDT.OKX``; matched against each override's ``instruments`` glob patterns.

        Returns
        -------
        CheckPolicies
            Without overrides of its own.

        """
        policies = msgspec.structs.replace(self, overrides=[])
        for override in self.overrides:
            if any(fnmatch.fnmatchcase(instrument_id, pattern) for pattern in override.instruments):
                changes = {
                    check: msgspec.convert(msgspec.to_builtins(getattr(policies, check)) | fields, type(getattr(policies, check)))
                    for check, fields in override.checks.items()
                }
                policies = msgspec.structs.replace(policies, **changes)
        return policies

    def __post_init__(self) -> None:
        for override in self.overrides:
            unknown = sorted(set(override.checks) - set(_CHECK_NAMES))
            if unknown:
                raise ValueError(f"overrides[].checks: unknown checks {unknown}: expected some of {list(_CHECK_NAMES)}")
            for check, fields in override.checks.items():
                if check in _PARSER_CHECKS and fields.get("policy", REPAIR) not in (FAIL, REPAIR):
                    raise ValueError(f"overrides[].checks.{check}.policy: {fields['policy']!r}: expected fail or repair")
                if fields.get("policy") == REPAIR and check not in _REPAIRABLE:
                    raise ValueError(f"overrides[].checks.{check}.policy: 'repair' is not offered by {check} (nothing safe to repair): expected fail, warn or off")
        for check in _CHECK_NAMES:
            if check in _PARSER_CHECKS and getattr(self, check).policy not in (FAIL, REPAIR):
                raise ValueError(
                    f"checks.{check}.policy: {getattr(self, check).policy!r} would store a quantity the file does not hold: expected fail or repair"
                )
            if getattr(self, check).policy == REPAIR and check not in _REPAIRABLE:
                # msgspec turns a ValueError here into a ValidationError naming the file.
                raise ValueError(f"checks.{check}.policy: 'repair' is not offered by {check} (nothing safe to repair): expected fail, warn or off")


_CHECK_NAMES = tuple(name for name in CheckPolicies.__struct_fields__ if name != "overrides")


class PolicyOverride(msgspec.Struct, forbid_unknown_fields=True):
    """
    Check settings for the instruments matching some glob patterns, e.g. OKX's documented ``seqId`` resets.

    Parameters
    ----------
    instruments : list[str]
        ``fnmatch`` patterns on instrument ids (``*.OKX``, ``BTCUSDT-PERP.BINANCE``).
    checks : dict[str, dict]
        Check name -> the fields to change (``{policy: warn}``, ``{window: 501}``).

    """

    instruments: list[str]
    checks: dict[str, dict[str, Any]]


class _ChecksFile(msgspec.Struct, forbid_unknown_fields=True):
    checks: CheckPolicies = msgspec.field(default_factory=CheckPolicies)
    overrides: list[PolicyOverride] = msgspec.field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """
    One offending row.

    Parameters
    ----------
    check : str
        The check's name (a field of :class:`CheckPolicies`).
    policy : str
        ``fail`` or ``warn``.
    instrument_id : str
        E.g. ``BTCUSDT.BINANCE``.
    data_type : str
        ``trade_tick``, ``quote_tick`` or ``order_book_deltas``.
    file : Path
        The file holding the row: the raw input file on ingest, the catalog file in ``keel data check``.
    row : int
        The row within ``file``'s table, 0-based (for ingest findings: within the table parsed from it).
    field : str
        The column at fault.
    problem : str
        What was found, and what was expected.
    line : int, optional
        The 1-based line of the raw input file the row came from (ingest findings; None for catalog files).

    """

    check: str
    policy: str
    instrument_id: str
    data_type: str
    file: Path
    row: int
    field: str
    problem: str
    line: int | None = None

    @property
    def location(self) -> str:
        """Return ``file:line`` for a row of an input file, else ``file row N``."""
        return f"{self.file}:{self.line}" if self.line is not None else f"{self.file} row {self.row}"

    def __str__(self) -> str:
        return f"{self.policy}: {self.check}: {self.instrument_id} {self.data_type} {self.location} {self.field}: {self.problem}"


@dataclass(frozen=True)
class CheckReport:
    """
    What :func:`check_catalog` looked at and found.

    Parameters
    ----------
    catalog : Path
        The catalog root.
    checked : list[tuple[str, str, int]]
        ``(instrument_id, data_type, rows)`` per checked folder.
    findings : list[Finding]
        Sorted by instrument, data type, file and row.

    """

    catalog: Path
    checked: list[tuple[str, str, int]]
    findings: list[Finding]

    @property
    def failed(self) -> bool:
        """Return True if a check with policy ``fail`` found something."""
        return any(finding.policy == FAIL for finding in self.findings)


def load_check_policies(path: Path = DEFAULT_CHECKS_FILE) -> CheckPolicies:
    """
    Read the checks file (``checks: {<check>: {policy: fail|warn|repair|off, ...}}``, and per-instrument
    ``overrides: [{instruments: [<glob>], checks: {<check>: {...}}}]``); absent checks keep defaults.

    Raises
    ------
    DataCheckConfigError
        Naming the file and the field on a missing file, bad YAML, unknown check or bad value.

    """
    document = load_struct(Path(path), _ChecksFile, DataCheckConfigError, "data checks")
    combined = msgspec.to_builtins(document.checks)
    combined["overrides"] = combined.get("overrides", []) + msgspec.to_builtins(document.overrides)
    # Validated with the file's overrides in: a bad check name or repair there is reported like one in `checks`.
    try:
        return msgspec.convert(combined, CheckPolicies)
    except msgspec.ValidationError as error:
        raise DataCheckConfigError(f"{path}: {error}") from error


def check_catalog(catalog: Path, policies: CheckPolicies, instrument_ids: Sequence[str] | None = None) -> CheckReport:
    """
    Run every enabled check on the catalog's trade ticks, quote ticks and order book deltas.

    Parameters
    ----------
    catalog : Path
        The ``ParquetDataCatalog`` root.
    policies : CheckPolicies
        From :func:`load_check_policies`.
    instrument_ids : Sequence[str], optional
        Only these instruments; all when None.

    Returns
    -------
    CheckReport

    """
    catalog = Path(catalog)
    folders: dict[tuple[str, str], list[CatalogFile]] = {}
    for item in catalog_files(catalog):
        if item.data_type in _CHECKS_BY_TYPE and (instrument_ids is None or item.identifier in instrument_ids):
            folders.setdefault((item.identifier, item.data_type), []).append(item)
    checked = []
    findings: list[Finding] = []
    for (instrument_id, data_type), files in sorted(folders.items()):
        frame = _read_folder(files)
        checked.append((instrument_id, data_type, frame.height))
        paths = [item.path for item in files]
        instrument_policies = policies.for_instrument(instrument_id)
        for check_name, check in _CHECKS_BY_TYPE[data_type]:
            settings = getattr(instrument_policies, check_name)
            if settings.policy == OFF:
                continue
            for row_frame, field, problems in check(frame, settings):
                for file_index, row, problem in zip(row_frame[_FILE], row_frame[_ROW], problems, strict=True):
                    findings.append(
                        Finding(check_name, settings.policy, instrument_id, data_type, paths[file_index], row, field, problem)
                    )
    findings.sort(key=lambda finding: (finding.instrument_id, finding.data_type, str(finding.file), finding.row, finding.check))
    return CheckReport(catalog, checked, findings)


@dataclass(frozen=True)
class TableCheck:
    """
    What :func:`check_table` found in one parsed table, and the table to write.

    Parameters
    ----------
    frame : pl.DataFrame
        The table after ``repair`` policies (the input itself when nothing was repaired).
    findings : list[Finding]
        Every finding of an enabled check, ``repair`` ones included; rows are those of the input table.

    """

    frame: pl.DataFrame
    findings: list[Finding]


def check_table(
    data_type: str,
    frame: pl.DataFrame,
    policies: CheckPolicies,
    instrument_id: str,
    source: Path,
    lines: pl.Series | None = None,
) -> TableCheck:
    """
    Run the enabled checks of ``data_type`` on one table about to be ingested, and apply ``repair`` policies.

    Parameters
    ----------
    data_type : str
        ``trade_tick``, ``quote_tick`` or ``order_book_deltas``; other types have no checks here and pass as they are.
    frame : pl.DataFrame
        The table in the catalog schema (prices and sizes as ``Decimal(38, 16)``), sorted as parsed.
    policies : CheckPolicies
        From :func:`load_check_policies`.
    instrument_id : str
        Named in findings.
    source : Path
        The input file the table was parsed from, named in findings.
    lines : pl.Series, optional
        The 1-based line of ``source`` each row came from, named in findings (:attr:`Finding.line`).

    Returns
    -------
    TableCheck

    """
    findings: list[Finding] = []
    drop = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    restore_order = False
    indexed = frame.with_columns(pl.lit(0, dtype=pl.Int64).alias(_FILE), pl.int_range(frame.height, dtype=pl.Int64).alias(_ROW))
    instrument_policies = policies.for_instrument(instrument_id)
    for check_name, check in _CHECKS_BY_TYPE.get(data_type, []):
        settings = getattr(instrument_policies, check_name)
        if settings.policy == OFF:
            continue
        for row_frame, field, problems in check(indexed, settings):
            for row, problem in zip(row_frame[_ROW], problems, strict=True):
                line = None if lines is None else int(lines[row])
                findings.append(Finding(check_name, settings.policy, instrument_id, data_type, source, row, field, problem, line))
        if settings.policy == REPAIR:
            if check_name in _DROP_REPAIRS:
                drop = drop | _DROP_REPAIRS[check_name](indexed, settings)
            else:
                restore_order = True
    repaired = frame.filter(~drop) if drop.any() else frame
    if restore_order:
        # A stable sort keeps the parsed order of rows received at the same instant.
        repaired = repaired.sort("ts_init", maintain_order=True)
    return TableCheck(repaired, findings)


def _read_folder(files: list[CatalogFile]) -> pl.DataFrame:
    """Concatenate one folder's files in time order, prices/sizes as ``Decimal(38, 16)``, with file and row."""
    frames = []
    for index, item in enumerate(files):
        table = pq.read_table(item.path)
        columns = {name: decode_column(table.column(name)) for name in table.column_names}
        frame = pl.DataFrame(columns)
        frames.append(frame.with_columns(pl.lit(index, dtype=pl.Int64).alias(_FILE), pl.int_range(frame.height, dtype=pl.Int64).alias(_ROW)))
    # Some sources keep columns others have not (bookTicker update ids): rows without one hold null there.
    return pl.concat(frames, how="diagonal_relaxed")


def _plain(value: Decimal) -> str:
    """Return a fixed-point value without the 16-decimal padding (``61824.0000000000000000`` -> ``61824``)."""
    return format(value.normalize(), "f")


# A check takes the folder's frame and its settings and yields (offending rows with _file/_row, field, problems).
_Result = tuple[pl.DataFrame, str, list[str]]
_CheckFunction = Callable[[pl.DataFrame, _Check], list[_Result]]


def _ts_init_monotonic(frame: pl.DataFrame, settings: _Check) -> list[_Result]:
    rows = frame.with_columns(pl.col("ts_init").shift(1).alias("previous")).filter(pl.col("ts_init") < pl.col("previous"))
    problems = [f"ts_init {ts} is before the previous row's {previous}: expected non-decreasing ts_init" for ts, previous in zip(rows["ts_init"], rows["previous"], strict=True)]
    return [(rows, "ts_init", problems)]


def _trade_id_duplicates(frame: pl.DataFrame, settings: _Check) -> list[_Result]:
    if not _duplicate_rows(frame, settings).any():
        return []
    first = frame.group_by("trade_id").agg(pl.col(_FILE).first().alias("first_file"), pl.col(_ROW).first().alias("first_row"), pl.len().alias("count"))
    # group_by's first() follows the frame's order, so the first occurrence is the one not reported.
    rows = frame.join(first.filter(pl.col("count") > 1), on="trade_id").filter(
        (pl.col(_FILE) != pl.col("first_file")) | (pl.col(_ROW) != pl.col("first_row"))
    ).sort(_FILE, _ROW)
    problems = [
        f"trade_id {trade_id} already at file #{first_file} row {first_row}: expected unique trade ids"
        for trade_id, first_file, first_row in zip(rows["trade_id"], rows["first_file"], rows["first_row"], strict=True)
    ]
    return [(rows, "trade_id", problems)]


def _trade_id_gaps(frame: pl.DataFrame, settings: _Check) -> list[_Result]:
    ids = frame["trade_id"].cast(pl.Int64, strict=False)
    if ids.null_count():
        return []  # not integer ids (another venue's scheme): no contiguity to check
    stepped = frame.with_columns(ids.alias("id"), ids.shift(1).alias("previous"))
    rows = stepped.filter((pl.col("id") != pl.col("previous") + 1) & (pl.col("id") != pl.col("previous")))
    problems = []
    for trade_id, previous in zip(rows["id"], rows["previous"], strict=True):
        if trade_id > previous:
            problems.append(f"trade_id {trade_id} after {previous}: expected {previous + 1} ({trade_id - previous - 1} missing)")
        else:
            problems.append(f"trade_id {trade_id} after {previous}: expected {previous + 1} (ids go backwards)")
    return [(rows, "trade_id", problems)]


def _crossed_quotes(frame: pl.DataFrame, settings: _Check) -> list[_Result]:
    rows = frame.filter(pl.col("bid_price") >= pl.col("ask_price"))
    problems = [
        f"bid {_plain(bid)} {'=' if bid == ask else '>'} ask {_plain(ask)} ({'locked' if bid == ask else 'crossed'}): expected bid < ask"
        for bid, ask in zip(rows["bid_price"], rows["ask_price"], strict=True)
    ]
    return [(rows, "bid_price", problems)]


def _zero_volume(frame: pl.DataFrame, settings: _ZeroVolumeCheck) -> list[_Result]:
    results = []
    sizes = ["size"] if "size" in frame.columns else ["bid_size", "ask_size"]
    for size in sizes:
        is_zero = pl.col(size) == 0
        runs = frame.with_columns(is_zero.alias("zero"), is_zero.rle_id().alias("run")).filter(pl.col("zero"))
        starts = runs.group_by("run", maintain_order=True).agg(pl.col(_FILE).first(), pl.col(_ROW).first(), pl.len().alias("length"))
        starts = starts.filter(pl.col("length") >= settings.min_run)
        problems = [f"{length} consecutive rows with {size} 0 start here: expected a positive {size}" for length in starts["length"]]
        results.append((starts, size, problems))
    return results


def _price_outliers(frame: pl.DataFrame, settings: _PriceOutlierCheck) -> list[_Result]:
    flagged, median, distance, deviation = _outlier_scores(frame["price"], settings)
    rows = frame[flagged].with_columns(
        pl.Series("median", median), pl.Series("distance", distance), pl.Series("deviation", deviation)
    )
    problems = [
        f"price {_plain(price_value)} is {distance / deviation:.1f} robust deviations from the rolling median {median_value:.10g}: "
        f"expected within {settings.deviations:g}"
        for price_value, distance, deviation, median_value in zip(rows["price"], rows["distance"], rows["deviation"], rows["median"], strict=True)
    ]
    return [(rows, "price", problems)]


def _outlier_scores(price: pl.Series, settings: _PriceOutlierCheck) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Return the outlying rows' indices with their rolling median, distance from it and robust deviation.

    The robust deviation (1.4826 x the rolling median of the distances) is computed only around rows whose
    distance exceeds ``deviations`` times the ``min_deviation_bps`` floor: the deviation is never below the
    floor, so no other row can be flagged, and on real data the second rolling median then costs nothing.
    """
    # The Decimal(38, 16) values as float via their integers: polars' own Decimal cast is ~15x slower, and
    # the two differ by at most one unit in the last place, which no outlier threshold can see.
    prices = (price.to_physical().cast(pl.Float64) / 10**price.dtype.scale).to_numpy()
    median = _centred_rolling_median(prices, settings.window)
    distance = np.abs(prices - median)
    floor = median * settings.min_deviation_bps / 10_000
    candidates = np.flatnonzero(distance > settings.deviations * floor)
    robust = _centred_rolling_median_at(distance, settings.window, candidates) * 1.4826
    deviation = np.maximum(robust, floor[candidates])
    outlying = distance[candidates] > settings.deviations * deviation
    flagged = candidates[outlying]
    return flagged, median[flagged], distance[flagged], deviation[outlying]


def _centred_rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Return the median of the ``window`` values centred on each one, the series mirrored at its ends."""
    # Mirrored, not padded with the end value: half a window of copies of a spike in the first or last trade
    # would make it its own median. scipy's C median filter is ~8x faster than polars' rolling_median.
    from scipy.ndimage import median_filter  # here, not at the top: importing scipy costs every keel command 0.3 s

    return median_filter(values, size=window, mode="mirror")


def _centred_rolling_median_at(values: np.ndarray, window: int, indices: np.ndarray) -> np.ndarray:
    """Return :func:`_centred_rolling_median` at the sorted ``indices`` only, one filter call per run of them."""
    if indices.size == 0:
        return np.empty(0)
    # A margin of a whole window on each side holds every value the filter reads for the run's own rows.
    from scipy.ndimage import median_filter  # here, not at the top: see _centred_rolling_median

    padded = np.pad(values, window, mode="reflect")  # numpy's reflect is scipy's mirror
    breaks = np.flatnonzero(np.diff(indices) > window) + 1
    medians = []
    for run in np.split(indices, breaks):
        first, last = int(run[0]), int(run[-1])
        local = median_filter(padded[first : last + 1 + 2 * window], size=window, mode="nearest")
        medians.append(local[run - first + window])
    return np.concatenate(medians)


def _depth_sequence(frame: pl.DataFrame, settings: _Check) -> list[_Result]:
    rows = frame.with_columns(pl.col("sequence").shift(1).alias("previous")).filter(pl.col("sequence") < pl.col("previous"))
    problems = [f"sequence {sequence} after {previous}: expected a non-decreasing update id" for sequence, previous in zip(rows["sequence"], rows["previous"], strict=True)]
    return [(rows, "sequence", problems)]


def _quote_update_ids(frame: pl.DataFrame, settings: _Check) -> list[_Result]:
    if "update_id" not in frame.columns:
        return []  # a source without update ids (OKX tickers, Tardis, a live session's quotes)
    rows = frame.with_columns(pl.col("update_id").shift(1).alias("previous")).filter(pl.col("update_id") <= pl.col("previous"))
    problems = [
        f"update_id {update_id} after {previous}: expected an increasing update id ({'a duplicate' if update_id == previous else 'it goes backwards'})"
        for update_id, previous in zip(rows["update_id"], rows["previous"], strict=True)
    ]
    return [(rows, "update_id", problems)]


_CHECKS_BY_TYPE: dict[str, list[tuple[str, _CheckFunction]]] = {
    TRADE_TICK: [
        ("ts_init_monotonic", _ts_init_monotonic),
        ("trade_id_duplicates", _trade_id_duplicates),
        ("trade_id_gaps", _trade_id_gaps),
        ("zero_volume", _zero_volume),
        ("price_outliers", _price_outliers),
    ],
    QUOTE_TICK: [
        ("ts_init_monotonic", _ts_init_monotonic),
        ("crossed_quotes", _crossed_quotes),
        ("zero_volume", _zero_volume),
        ("quote_update_ids", _quote_update_ids),
    ],
    ORDER_BOOK_DELTAS: [
        ("ts_init_monotonic", _ts_init_monotonic),
        ("depth_sequence", _depth_sequence),
    ],
}


def _duplicate_rows(frame: pl.DataFrame, settings: _Check) -> pl.Series:
    ids = frame["trade_id"].cast(pl.Int64, strict=False)
    # Integer ids (every venue Keel reads) hash an order of magnitude faster than their strings.
    keys = frame["trade_id"] if ids.null_count() else ids
    if not ids.null_count() and bool((ids.diff(null_behavior="drop") > 0).all()):
        return pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)  # increasing ids: none repeats
    return ~keys.is_first_distinct()


def _crossed_rows(frame: pl.DataFrame, settings: _Check) -> pl.Series:
    return frame.select(pl.col("bid_price") >= pl.col("ask_price")).to_series()


def _zero_volume_rows(frame: pl.DataFrame, settings: _ZeroVolumeCheck) -> pl.Series:
    sizes = ["size"] if "size" in frame.columns else ["bid_size", "ask_size"]
    drop = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    for size in sizes:
        is_zero = pl.col(size) == 0
        run_length = pl.len().over(is_zero.rle_id())
        drop = drop | frame.select(is_zero & (run_length >= settings.min_run)).to_series()
    return drop


def _outlier_rows(frame: pl.DataFrame, settings: _PriceOutlierCheck) -> pl.Series:
    drop = np.zeros(frame.height, dtype=bool)
    drop[_outlier_scores(frame["price"], settings)[0]] = True
    return pl.Series(drop)


# The checks whose offending rows can be repaired by dropping them: a duplicate trade, a crossed quote, a
# zero-size print or a far-off price carry no information a backtest should see. ts_init order is repaired
# by a stable sort. Gaps and depth sequence breaks cannot be repaired: the missing data is not there.
_DROP_REPAIRS: dict[str, Callable[[pl.DataFrame, _Check], pl.Series]] = {
    "trade_id_duplicates": _duplicate_rows,
    "crossed_quotes": _crossed_rows,
    "zero_volume": _zero_volume_rows,
    "price_outliers": _outlier_rows,
}
_REPAIRABLE = frozenset(_DROP_REPAIRS) | {"ts_init_monotonic", "off_step_quantities"}
# Checks a source parser runs on the venue's text (the catalog cannot hold what they find): fail or repair only.
_PARSER_CHECKS = frozenset({"off_step_quantities"})
