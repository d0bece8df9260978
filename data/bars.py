"""OHLCV bars (freqtrade feather / JSON, plain CSV) into nautilus ``Bar`` s, checked row by row, column-wise.

Also the pieces every bar source shares: bar intervals (``1m``, ``4h``, ``1d``...), the bar type, the checked
conversions of decimal strings and of floats to ``Decimal(38, 16)``, and the bar checks (consecutive intervals,
``high >= max(open, close)``, ``low <= min(open, close)``, ``volume >= 0``).

Timestamps: nautilus expects a bar's ``ts_init`` at the bar's *close* (its bar-execution docs: "strictly expects
the initialization timestamp (ts_init) of each bar to represent its closing time"; its own time-bar aggregator
stamps bars at the interval's end). Sources give the bar's open time, so both ``ts_event`` and ``ts_init`` are
set to ``open time + interval``: a strategy sees a bar once it is complete, never earlier.

Floats (feather, JSON) are converted to the instrument precision and refused when they are not on the
tick (or size-step) grid within a millionth of a step: a value that is off-grid did not come from the venue.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.instruments import Instrument

from keel.data.catalog_layout import BAR
from keel.data.errors import DataInputError
from keel.data.fixed_point import FIXED_DTYPE
from keel.data.fixed_point import checked_fixed_columns
from keel.data.ingest import IngestReport
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.instrument_history import InstrumentVersions
from keel.data.instrument_history import read_on_version_in_force
from keel.data.quality import CheckPolicies
from keel.timestamps import iso_utc

SPOT = "spot"
FUTURES = "futures"
OHLC_FIELDS = ("open", "high", "low", "close")
OHLCV_FIELDS = (*OHLC_FIELDS, "volume")
# A float is on the grid when it is within a millionth of a step of a grid point: float64 keeps ~15
# significant digits, so a venue value like 95505.4 lands within 1e-10 of a step, a real off-grid value far away.
GRID_TOLERANCE_STEPS = 1e-6
_NANOS_PER_MILLI = 1_000_000
_UNITS = {
    "s": ("SECOND", 1_000_000_000),
    "m": ("MINUTE", 60_000_000_000),
    "h": ("HOUR", 3_600_000_000_000),
    "d": ("DAY", 86_400_000_000_000),
    "w": ("WEEK", 604_800_000_000_000),
}
_INTERVAL = re.compile(r"^(?P<step>[1-9]\d*)(?P<unit>[smhdw])$")
# freqtrade names data files <BASE>_<QUOTE>[_<SETTLE>]-<interval>[-<candle type>].<ext>, for example
# BTC_USDT-1m.feather (spot) and BTC_USDT_USDT-1m-futures.feather (USDT-margined futures).
_FREQTRADE_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)(?:_(?P<settle>[A-Z0-9]+))?-(?P<interval>\d+[a-zA-Z]+)"
    r"(?:-(?P<candle>[a-z_A-Z]+))?\.(?P<extension>feather|json|csv)$"
)


@dataclass(frozen=True)
class BarInterval:
    """
    A fixed-length bar interval.

    Parameters
    ----------
    step : int
        How many units, e.g. 5 for ``5m``.
    aggregation : str
        The nautilus ``BarAggregation`` name: ``SECOND``, ``MINUTE``, ``HOUR``, ``DAY`` or ``WEEK``.
    nanoseconds : int
        The interval's length.

    """

    step: int
    aggregation: str
    nanoseconds: int

    @property
    def minutes(self) -> int:
        """Return the interval's length in whole minutes (0 for sub-minute intervals)."""
        return self.nanoseconds // 60_000_000_000

    def bar_type(self, instrument: Instrument) -> str:
        """
        Return the bar type string, e.g. ``BTCUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL``.

        Parameters
        ----------
        instrument : Instrument
            The instrument the bars are of.

        Returns
        -------
        str

        """
        return f"{instrument.id.value}-{self.step}-{self.aggregation}-LAST-EXTERNAL"


@dataclass(frozen=True)
class FreqtradeFileName:
    """
    What a freqtrade data file name says.

    Parameters
    ----------
    base : str
        The base currency, e.g. ``BTC``.
    quote : str
        The quote currency, e.g. ``USDT``.
    market : str
        ``spot`` or ``futures`` (a settle currency or a ``-futures`` suffix means futures).
    interval : str
        The interval text, e.g. ``1m`` or ``8h``.
    candle_type : str | None
        The suffix after the interval (``futures``, ``funding_rate``, ``mark``...), None for spot.

    """

    base: str
    quote: str
    market: str
    interval: str
    candle_type: str | None


def parse_interval(text: str, source: Path) -> BarInterval:
    """
    Parse an interval like ``1s``, ``1m``, ``15m``, ``4h``, ``1d`` or ``1w``.

    Parameters
    ----------
    text : str
        The interval, as Binance and freqtrade write it.
    source : Path
        The input file, named in errors.

    Returns
    -------
    BarInterval

    Raises
    ------
    DataInputError
        If the interval is not of that form; months (``1M``) are refused since they have no fixed length.

    """
    match = _INTERVAL.match(text)
    if match is None:
        raise DataInputError(
            source, f"interval {text!r}: expected <n><unit> with unit s, m, h, d or w (e.g. 1m, 4h, 1d); months have no fixed length"
        )
    aggregation, unit_nanoseconds = _UNITS[match["unit"]]
    step = int(match["step"])
    return BarInterval(step=step, aggregation=aggregation, nanoseconds=step * unit_nanoseconds)


def parse_freqtrade_file_name(path: Path) -> FreqtradeFileName | None:
    """
    Read pair, market and interval from a freqtrade file name such as ``BTC_USDT_USDT-1m-futures.feather``.

    Parameters
    ----------
    path : Path
        The data file.

    Returns
    -------
    FreqtradeFileName | None
        None when the name does not follow freqtrade's pattern.

    """
    match = _FREQTRADE_NAME.match(Path(path).name)
    if match is None:
        return None
    is_futures = match["settle"] is not None or match["candle"] == FUTURES
    return FreqtradeFileName(
        base=match["base"],
        quote=match["quote"],
        market=FUTURES if is_futures else SPOT,
        interval=match["interval"],
        candle_type=match["candle"],
    )


def check_instrument_matches(name: FreqtradeFileName, instrument: Instrument, market: str | None, source: Path) -> None:
    """
    Refuse an instrument whose currencies or kind (spot or derivative) differ from what the file name says.

    Parameters
    ----------
    name : FreqtradeFileName
        The parsed file name.
    instrument : Instrument
        The instrument the caller wants the data stored under.
    market : str, optional
        ``spot`` or ``futures``, overriding the market the name implies.
    source : Path
        The input file, named in errors.

    Raises
    ------
    DataInputError
        On a mismatch.

    """
    base = instrument.base_currency.code if instrument.base_currency is not None else None
    if (base, instrument.quote_currency.code) != (name.base, name.quote):
        raise DataInputError(
            source, f"file name says pair {name.base}/{name.quote}, but instrument {instrument.id} trades {base}/{instrument.quote_currency.code}: expected the instrument of this pair"
        )
    expected_market = market or name.market
    is_spot = isinstance(instrument, CurrencyPair)
    if (expected_market == SPOT) != is_spot:
        raise DataInputError(
            source, f"data is {expected_market}, but instrument {instrument.id} is a {type(instrument).__name__}: expected a "
            + ("CurrencyPair" if expected_market == SPOT else "perpetual or future")
        )


def checked_fixed_from_text(text: pl.Series, precision: int, rows: pl.Series, field: str, source: Path) -> pl.Series:
    """
    Convert one column of venue decimal strings to ``Decimal(38, 16)``, refusing non-decimals and values off the grid.

    Parameters
    ----------
    text : pl.Series
        Decimal strings (nulls are refused).
    precision : int
        The grid: at most this many decimals (trailing zeros beyond it are fine).
    rows : pl.Series
        The 1-based line (or row) number of each value, named in errors.
    field : str
        The field name, named in errors.
    source : Path
        The input file, named in errors.

    Returns
    -------
    pl.Series

    Raises
    ------
    DataInputError
        Naming the first bad value's line and field.

    """
    return checked_fixed_columns(pl.DataFrame({field: text}), {field: precision}, rows, source)[field]


def checked_fixed_from_float(values: pl.Series, precision: int, rows: pl.Series, field: str, source: Path, *, signed: bool = False) -> pl.Series:
    """
    Convert floats to ``Decimal(38, 16)`` on a ``10^-precision`` grid, refusing values that are not on it.

    The float is scaled to whole steps and rounded; the value is refused when it is more than
    ``GRID_TOLERANCE_STEPS`` steps away from that whole number. The result is built from the integer step
    count, so it is exact (``95505.4`` becomes exactly ``95505.4``, not the float's binary neighbour).

    Parameters
    ----------
    values : pl.Series
        Floats.
    precision : int
        Decimals of the grid (the instrument's price or size precision, or 8 for funding rates).
    rows : pl.Series
        The 1-based row number of each value, named in errors.
    field : str
        The field name, named in errors.
    source : Path
        The input file, named in errors.
    signed : bool, default False
        Allow negative values (funding rates).

    Returns
    -------
    pl.Series

    Raises
    ------
    DataInputError
        Naming the first bad value's row and field: null, NaN, infinite, negative (unless ``signed``) or off the grid.

    """
    values = values.cast(pl.Float64)
    _raise_on_first(~values.is_finite().fill_null(False), values, rows, field, source, "a finite number")
    if not signed:
        _raise_on_first(values < 0, values, rows, field, source, "a non-negative number")
    scaled = values * 10.0**precision
    steps = scaled.round()
    off_grid = (scaled - steps).abs() > GRID_TOLERANCE_STEPS
    _raise_on_first(off_grid, values, rows, field, source, f"a multiple of 10^-{precision} (the instrument's grid)")
    # Dividing a Decimal(38, 16) by 10^precision (precision <= 16) is exact and keeps the scale.
    return pl.select(pl.lit(steps.cast(pl.Int64).cast(FIXED_DTYPE)) / pl.lit(10**precision, pl.Int64)).to_series().alias(field)


def checked_bar_frame(columns: pl.DataFrame, interval: BarInterval, source: Path, *, allow_gaps: bool = False) -> pl.DataFrame:
    """
    Check bars and turn them into the catalog's ``bar`` frame, stamped at each bar's close.

    Parameters
    ----------
    columns : pl.DataFrame
        ``open_time`` (Int64 ns), ``open``, ``high``, ``low``, ``close``, ``volume`` (``Decimal(38, 16)``) and
        ``row`` (the 1-based line or row number, named in errors), in file order.
    interval : BarInterval
        The bar interval.
    source : Path
        The input file, named in errors.
    allow_gaps : bool, default False
        Accept missing bars (a step that is a whole multiple of the interval). Steps that are not whole
        multiples, duplicates and steps backwards are always refused.

    Returns
    -------
    pl.DataFrame
        open, high, low, close, volume, ts_event, ts_init (``open_time + interval``), sorted.

    Raises
    ------
    DataInputError
        Naming the row and field of the first bar that breaks a check.

    """
    step = columns["open_time"].diff()
    wrong_step = step != interval.nanoseconds
    if allow_gaps:
        wrong_step = (step <= 0) | (step % interval.nanoseconds != 0)
    wrong_step = wrong_step.fill_null(False)
    if wrong_step.any():
        index = int(wrong_step.arg_true()[0])
        previous, current = int(columns["open_time"][index - 1]), int(columns["open_time"][index])
        raise DataInputError(
            source,
            f"field 'open_time': bar opens {iso_utc(current)}, {_duration(current - previous)} after the previous bar ({iso_utc(previous)}): "
            f"expected consecutive {interval.step}-{interval.aggregation} bars",
            int(columns["row"][index]),
        )
    checks = (
        ("high", pl.col("high") < pl.max_horizontal("open", "close"), "high >= max(open, close)"),
        ("low", pl.col("low") > pl.min_horizontal("open", "close"), "low <= min(open, close)"),
        ("volume", pl.col("volume") < 0, "volume >= 0"),
    )
    for field, broken, expected in checks:
        mask = columns.select(broken).to_series()
        if mask.any():
            index = int(mask.arg_true()[0])
            bar = columns.row(index, named=True)
            values = ", ".join(f"{name}={bar[name].normalize()}" for name in OHLCV_FIELDS)
            raise DataInputError(source, f"field '{field}': bar at {iso_utc(bar['open_time'])} has {values}: expected {expected}", int(bar["row"]))
    close_time = (columns["open_time"] + interval.nanoseconds).cast(pl.UInt64)
    return columns.select(*OHLCV_FIELDS).with_columns(ts_event=close_time, ts_init=close_time)


def read_ohlcv_file(
    path: Path,
    instrument: InstrumentVersions,
    interval: str | None = None,
    market: str | None = None,
    *,
    allow_gaps: bool = False,
) -> SourceTable:
    """
    Read one OHLCV file (freqtrade feather or JSON, or CSV) into a checked ``bar`` table.

    Parameters
    ----------
    path : Path
        ``.feather`` (columns date (UTC datetime), open, high, low, close, volume as floats), ``.json``
        (freqtrade's list of ``[ts_ms, open, high, low, close, volume]``) or ``.csv`` (header
        ``date,open,high,low,close,volume``; date as integer ms or ISO 8601, an offset honoured and naive times taken as UTC; numbers as decimal text).
    instrument : Instrument
        The bars' instrument: gives the grid (price and size precision) and the bar type.
    interval : str, optional
        The interval (``1m``, ``1h``...); taken from a freqtrade file name when None.
    market : str, optional
        ``spot`` or ``futures``, overriding what a freqtrade file name implies (checked against the instrument).
    allow_gaps : bool, default False
        Accept missing bars (see :func:`checked_bar_frame`).

    Returns
    -------
    SourceTable

    Raises
    ------
    DataInputError
        Naming file, row and field on any bad value, and on an unknown interval or a pair/market mismatch.

    """
    path = Path(path)
    name = parse_freqtrade_file_name(path)
    if name is not None:
        check_instrument_matches(name, instrument, market, path)
    if interval is None:
        if name is None:
            raise DataInputError(path, "no interval given and the file name is not freqtrade's <BASE>_<QUOTE>-<interval>.<ext>: expected an interval (e.g. 1m)")
        interval = name.interval
    bar_interval = parse_interval(interval, path)
    if not path.is_file():
        raise DataInputError(path, "file not found: expected an OHLCV feather, JSON or CSV file")
    suffix = path.suffix.lower()
    if suffix == ".feather":
        columns = _read_feather(path, instrument)
    elif suffix == ".json":
        columns = _read_json(path, instrument)
    elif suffix == ".csv":
        columns = _read_csv(path, instrument)
    else:
        raise DataInputError(path, f"unknown extension {suffix!r}: expected .feather, .json or .csv")
    if columns.is_empty():
        raise DataInputError(path, "no bars: expected at least one row")
    frame = checked_bar_frame(columns, bar_interval, path, allow_gaps=allow_gaps)
    return SourceTable(BAR, bar_interval.bar_type(instrument), instrument, frame, path)


def ingest_ohlcv_bars(
    paths: Sequence[Path],
    catalog: Path,
    instrument: Instrument,
    interval: str | None = None,
    market: str | None = None,
    *,
    allow_gaps: bool = False,
    checks: CheckPolicies | None = None,
    replace: bool = False,
) -> IngestReport:
    """
    Ingest OHLCV files of one instrument as ``<instrument>-<n>-<UNIT>-LAST-EXTERNAL`` bars, all or nothing.

    Parameters
    ----------
    paths : Sequence[Path]
        Feather, JSON or CSV files (see :func:`read_ohlcv_file`).
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    instrument : Instrument | Sequence[Instrument]
        The instrument, or its versions (tick-size history: each file is read on the one in force at its first
        bar); the version used is also written to the catalog.
    interval : str, optional
        The interval; from each freqtrade file name when None.
    market : str, optional
        ``spot`` or ``futures``, overriding the file names.
    allow_gaps : bool, default False
        Accept missing bars.
    checks : CheckPolicies, optional
        Data-check policies (``keel.data.quality``) applied before writing (default: ``configs/data_checks.yaml``).
    replace : bool, default False
        Replace the catalog's data of a window with different data (see :func:`keel.data.ingest.commit_tables`);
        without it, different data for a window the catalog holds is refused, naming both files.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataInputError
        On any bad input or overlap with bars already ingested; nothing is written then.

    """
    catalog = Path(catalog).resolve()
    if not paths:
        raise DataInputError(catalog, "no file given: expected at least one OHLCV file")
    # A generator: commit_tables writes each file's bars (and stores its instrument version) before the next is read.
    tables = (
        read_on_version_in_force(instrument, lambda version, path=Path(path): read_ohlcv_file(path, version, interval, market, allow_gaps=allow_gaps))
        for path in paths
    )
    return commit_tables(catalog, [], tables, checks=checks, replace=replace)


def _read_feather(path: Path, instrument: Instrument) -> pl.DataFrame:
    try:
        raw = pl.read_ipc(path)
    except (OSError, pl.exceptions.ComputeError, pa.ArrowInvalid) as error:
        raise DataInputError(path, f"not a readable feather (Arrow IPC) file ({error}): expected freqtrade OHLCV data") from None
    _require_columns(path, raw.columns, ("date", *OHLCV_FIELDS))
    date = raw["date"]
    if not isinstance(date.dtype, pl.Datetime) or date.dtype.time_zone is None:
        raise DataInputError(path, f"field 'date' is {date.dtype}: expected a timezone-aware datetime (freqtrade writes UTC)")
    rows = pl.int_range(1, raw.height + 1, eager=True, dtype=pl.Int64)
    _raise_on_first(date.is_null(), date, rows, "date", path, "a datetime")
    open_time = date.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").dt.epoch("ns")
    return _float_columns(raw, open_time, rows, instrument, path)


def _read_json(path: Path, instrument: Instrument) -> pl.DataFrame:
    try:
        candles = msgspec.json.decode(path.read_bytes(), type=list[tuple[int, float, float, float, float, float]])
    except msgspec.ValidationError as error:
        raise DataInputError(path, f"unexpected shape ({error}): expected a list of [ts_ms, open, high, low, close, volume]") from None
    except msgspec.DecodeError as error:
        raise DataInputError(path, f"bad JSON ({error}): expected a list of [ts_ms, open, high, low, close, volume]") from None
    raw = pl.DataFrame(candles, schema=["date", *OHLCV_FIELDS], orient="row")
    rows = pl.int_range(1, raw.height + 1, eager=True, dtype=pl.Int64)
    return _float_columns(raw, raw["date"].cast(pl.Int64) * _NANOS_PER_MILLI, rows, instrument, path)


def _read_csv(path: Path, instrument: Instrument) -> pl.DataFrame:
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.ComputeError as error:
        raise DataInputError(path, f"not a readable CSV ({error}): expected a header date,open,high,low,close,volume") from None
    _require_columns(path, raw.columns, ("date", *OHLCV_FIELDS))
    # Line 1 is the header.
    rows = pl.int_range(2, raw.height + 2, eager=True, dtype=pl.Int64)
    date = raw["date"]
    millis = date.cast(pl.Int64, strict=False) * _NANOS_PER_MILLI
    iso = date.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False).dt.epoch("ns")
    open_time = millis.zip_with(millis.is_not_null(), iso)
    _raise_on_first(open_time.is_null(), date, rows, "date", path, "integer milliseconds or an ISO 8601 time")
    precisions = _precisions(instrument)
    fixed = checked_fixed_columns(raw, {field: precisions[field] for field in OHLCV_FIELDS}, rows, path).to_dict()
    return pl.DataFrame({"open_time": open_time, **fixed, "row": rows})


def _float_columns(raw: pl.DataFrame, open_time: pl.Series, rows: pl.Series, instrument: Instrument, path: Path) -> pl.DataFrame:
    precisions = _precisions(instrument)
    fixed = {field: checked_fixed_from_float(raw[field], precisions[field], rows, field, path) for field in OHLCV_FIELDS}
    return pl.DataFrame({"open_time": open_time.alias("open_time"), **fixed, "row": rows})


def _precisions(instrument: Instrument) -> dict[str, int]:
    return {**dict.fromkeys(OHLC_FIELDS, instrument.price_precision), "volume": instrument.size_precision}


def _require_columns(path: Path, present: Sequence[str], required: Sequence[str]) -> None:
    missing = [name for name in required if name not in present]
    if missing:
        raise DataInputError(path, f"missing column(s) {missing}: expected columns {list(required)}, got {list(present)}")


def _raise_on_first(bad: pl.Series, values: pl.Series, rows: pl.Series, field: str, source: Path, expected: str) -> None:
    bad = bad.fill_null(True)
    if bad.any():
        index = int(bad.arg_true()[0])
        raise DataInputError(source, f"field '{field}' is {values[index]!r}: expected {expected}", int(rows[index]))



def _duration(nanoseconds: int) -> str:
    seconds = nanoseconds / 1_000_000_000
    return f"{seconds / 60:g} min" if seconds and seconds % 60 == 0 else f"{seconds:g} s"
