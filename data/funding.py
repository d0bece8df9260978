"""Perpetual funding-rate history into nautilus ``FundingRateUpdate`` s (catalog folder ``funding_rate_update``).

Sources: freqtrade's ``<BASE>_<QUOTE>_<SETTLE>-<interval>-funding_rate.feather`` (columns date, open = the
rate as a float; high/low/close/volume are zero) and Binance ``GET /fapi/v1/fundingRate`` responses saved as
JSON (``[{symbol, fundingRate, fundingTime[, markPrice]}]``, the rate as a decimal string).

One update per settlement: ``ts_event = ts_init`` = the funding time (when the rate was applied to open
positions), ``rate`` = the rate applied then (a decimal string, 8 decimals as Binance publishes it),
``interval`` = minutes between settlements, ``next_funding_ns`` left empty (a history does not say when the
next settlement was announced). Times must increase by the interval (within a minute: Binance stamps a few ms
late); anything else is a :class:`DataInputError` naming file, row and field.

What a nautilus 1.231 backtest does with these: the data engine publishes each update to subscribers
(``on_funding_rate``) and caches it, but neither the simulated exchange nor the portfolio pays or charges
funding on open positions; Keel accounts for it in its own P&L.
"""

from collections.abc import Sequence
from pathlib import Path

import msgspec
import polars as pl
import pyarrow as pa
from nautilus_trader.model.instruments import Instrument

from keel.data.bars import check_instrument_matches
from keel.data.bars import checked_fixed_from_float
from keel.data.bars import parse_freqtrade_file_name
from keel.data.bars import parse_interval
from keel.data.catalog_layout import FUNDING_RATE_UPDATE
from keel.data.errors import DataInputError
from keel.data.ingest import IngestReport
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.instrument_history import InstrumentVersions
from keel.data.instrument_history import read_on_version_in_force
from keel.data.quality import CheckPolicies
from keel.timestamps import iso_utc

BINANCE_FUNDING_INTERVAL_MINUTES = 480
RATE_PRECISION = 8
FUNDING_CANDLE_TYPE = "funding_rate"
# Binance settles on the interval boundary but stamps fundingTime up to a few ms after it.
_TIME_TOLERANCE_NANOS = 60_000_000_000
_NANOS_PER_MILLI = 1_000_000
_RATE_PATTERN = r"^-?\d{1,22}(\.\d*)?$"


class _BinanceFundingRate(msgspec.Struct):
    symbol: str
    fundingRate: str
    fundingTime: int
    markPrice: str | None = None


def read_freqtrade_funding(path: Path, instrument: Instrument, interval_minutes: int | None = None) -> SourceTable:
    """
    Read a freqtrade funding-rate feather (``date``, ``open`` = rate).

    Parameters
    ----------
    path : Path
        E.g. ``BTC_USDT_USDT-8h-funding_rate.feather``.
    instrument : Instrument
        The perpetual the rates are of (checked against the pair in the file name).
    interval_minutes : int, optional
        Minutes between settlements; from the file name (``8h`` -> 480) when None.

    Returns
    -------
    SourceTable

    Raises
    ------
    DataInputError
        Naming file, row and field on a bad or missing value, a rate off the 10^-8 grid, or a time step
        other than the interval.

    """
    path = Path(path)
    name = parse_freqtrade_file_name(path)
    if name is not None:
        if name.candle_type != FUNDING_CANDLE_TYPE:
            raise DataInputError(path, f"file name says candle type {name.candle_type!r}: expected a '-{FUNDING_CANDLE_TYPE}' file")
        check_instrument_matches(name, instrument, None, path)
        if interval_minutes is None:
            interval_minutes = parse_interval(name.interval, path).minutes
    if interval_minutes is None:
        raise DataInputError(path, "no interval given and the file name is not freqtrade's <PAIR>-<interval>-funding_rate.feather: expected the interval in minutes")
    try:
        raw = pl.read_ipc(path)
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a freqtrade funding-rate feather") from None
    except (OSError, pl.exceptions.ComputeError, pa.ArrowInvalid) as error:
        raise DataInputError(path, f"not a readable feather (Arrow IPC) file ({error}): expected freqtrade funding rates") from None
    missing = [column for column in ("date", "open") if column not in raw.columns]
    if missing:
        raise DataInputError(path, f"missing column(s) {missing}: expected date and open (the funding rate), got {raw.columns}")
    date = raw["date"]
    if not isinstance(date.dtype, pl.Datetime) or date.dtype.time_zone is None:
        raise DataInputError(path, f"field 'date' is {date.dtype}: expected a timezone-aware datetime (freqtrade writes UTC)")
    rows = pl.int_range(1, raw.height + 1, eager=True, dtype=pl.Int64)
    null_date = date.is_null()
    if null_date.any():
        raise DataInputError(path, "field 'date' is null: expected a datetime", int(rows.filter(null_date)[0]))
    ts = date.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").dt.epoch("ns")
    rate = checked_fixed_from_float(raw["open"], RATE_PRECISION, rows, "open", path, signed=True)
    return _table(path, instrument, ts, _decimal_text(rate), rows, interval_minutes, "date")


def read_binance_funding_json(path: Path, instrument: Instrument, interval_minutes: int = BINANCE_FUNDING_INTERVAL_MINUTES) -> SourceTable:
    """
    Read a saved Binance ``GET /fapi/v1/fundingRate`` response.

    Parameters
    ----------
    path : Path
        The JSON file: a list of ``{symbol, fundingRate, fundingTime[, markPrice]}``.
    instrument : Instrument
        The perpetual; every entry's ``symbol`` must be its raw symbol (``BTCUSDT``).
    interval_minutes : int, default 480
        Minutes between settlements (8 h for most Binance USDT-M perpetuals).

    Returns
    -------
    SourceTable

    Raises
    ------
    DataInputError
        Naming file, entry (1-based, as ``line``) and field on a malformed entry, another symbol, a
        rate that is not a decimal string, or a time step other than the interval.

    """
    path = Path(path)
    try:
        entries = msgspec.json.decode(path.read_bytes(), type=list[_BinanceFundingRate])
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a saved /fapi/v1/fundingRate response") from None
    except msgspec.ValidationError as error:
        raise DataInputError(path, f"unexpected shape ({error}): expected a list of {{symbol, fundingRate, fundingTime}}") from None
    except msgspec.DecodeError as error:
        raise DataInputError(path, f"bad JSON ({error}): expected a list of {{symbol, fundingRate, fundingTime}}") from None
    if not entries:
        raise DataInputError(path, "no entries: expected at least one funding rate")
    # Responses hold at most 1000 entries, so one Python object per entry costs nothing here.
    frame = pl.DataFrame(
        {
            "symbol": [entry.symbol for entry in entries],
            "rate": [entry.fundingRate for entry in entries],
            "time": [entry.fundingTime for entry in entries],
        },
        schema={"symbol": pl.String, "rate": pl.String, "time": pl.Int64},
    )
    rows = pl.int_range(1, frame.height + 1, eager=True, dtype=pl.Int64)
    raw_symbol = instrument.raw_symbol.value
    other_symbol = frame["symbol"] != raw_symbol
    if other_symbol.any():
        index = int(other_symbol.arg_true()[0])
        raise DataInputError(path, f"entry {index + 1} field 'symbol' is {frame['symbol'][index]!r}: expected {raw_symbol!r} ({instrument.id})", index + 1)
    not_decimal = ~frame["rate"].str.contains(_RATE_PATTERN)
    if not_decimal.any():
        index = int(not_decimal.arg_true()[0])
        raise DataInputError(path, f"entry {index + 1} field 'fundingRate' is {frame['rate'][index]!r}: expected a decimal string", index + 1)
    rate = _decimal_text(frame["rate"].cast(pl.Decimal(38, 16)))
    return _table(path, instrument, frame["time"] * _NANOS_PER_MILLI, rate, rows, interval_minutes, "fundingTime")


def ingest_funding_rates(
    paths: Sequence[Path],
    catalog: Path,
    instrument: InstrumentVersions,
    interval_minutes: int | None = None,
    checks: CheckPolicies | None = None,
    replace: bool = False,
) -> IngestReport:
    """
    Ingest funding-rate files of one perpetual, all or nothing.

    Parameters
    ----------
    paths : Sequence[Path]
        freqtrade ``.feather`` files and/or Binance ``.json`` responses.
    catalog : Path
        The ``ParquetDataCatalog`` root; created if missing.
    instrument : Instrument | Sequence[Instrument]
        The perpetual (e.g. ``BTCUSDT-PERP.BINANCE``), or its versions (tick-size history: each file is read on
        the one in force at its first settlement); the version used is also written to the catalog.
    interval_minutes : int, optional
        Minutes between settlements; from the freqtrade file name, or 480 for Binance JSON, when None.
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
        On any bad input or overlap with rates already ingested; nothing is written then.

    """
    catalog = Path(catalog).resolve()
    if not paths:
        raise DataInputError(catalog, "no file given: expected at least one funding-rate file")
    tables = []
    for path in map(Path, paths):
        suffix = path.suffix.lower()
        if suffix == ".feather":
            tables.append(read_on_version_in_force(instrument, lambda version, path=path: read_freqtrade_funding(path, version, interval_minutes)))
        elif suffix == ".json":
            minutes = interval_minutes or BINANCE_FUNDING_INTERVAL_MINUTES
            tables.append(read_on_version_in_force(instrument, lambda version, path=path, minutes=minutes: read_binance_funding_json(path, version, minutes)))
        else:
            raise DataInputError(path, f"unknown extension {suffix!r}: expected .feather (freqtrade) or .json (Binance fundingRate)")
    return commit_tables(catalog, [], tables, checks=checks, replace=replace)  # each table's instrument version is stored with it


def _decimal_text(fixed: pl.Series) -> pl.Series:
    """Return ``Decimal(38, 16)`` values as plain decimal strings without trailing zeros ("0.0001")."""
    text = fixed.cast(pl.String)
    return text.str.replace(r"(\.\d*?)0+$", "$1").str.strip_suffix(".")


def _table(path: Path, instrument: Instrument, ts: pl.Series, rate: pl.Series, rows: pl.Series, interval_minutes: int, time_field: str) -> SourceTable:
    interval_nanos = interval_minutes * 60_000_000_000
    step = ts.diff()
    wrong = ((step - interval_nanos).abs() > _TIME_TOLERANCE_NANOS).fill_null(False)
    if wrong.any():
        index = int(wrong.arg_true()[0])
        raise DataInputError(
            path,
            f"field '{time_field}': funding at {iso_utc(int(ts[index]))} comes {int(step[index]) / 60_000_000_000:g} min after the previous one: "
            f"expected one settlement every {interval_minutes} min, in time order",
            int(rows[index]),
        )
    frame = pl.DataFrame(
        {
            "rate": rate,
            "interval": pl.repeat(interval_minutes, ts.len(), dtype=pl.UInt16, eager=True),
            "next_funding_ns": pl.repeat(None, ts.len(), dtype=pl.UInt64, eager=True),
            "ts_event": ts.cast(pl.UInt64),
            "ts_init": ts.cast(pl.UInt64),
        }
    )
    return SourceTable(FUNDING_RATE_UPDATE, instrument.id.value, instrument, frame, path)

