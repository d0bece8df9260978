"""Instrument versions over time: one instrument id, several definitions, each in force from its ``ts_event``.

Venues change an instrument's filters while its id stays the same: Binance moved the BTCUSDT perpetual's
tick from 0.01 to 0.10, so a 2021 book and a 2024 book need different instruments under one id. A
version is a complete nautilus instrument whose ``ts_event`` (and ``ts_init``) is when that definition
took effect; it stays in force until the next version's ``ts_event``.

The catalog stores versions the way nautilus does: ``ParquetDataCatalog.write_data([instrument])`` once
per version writes one file per version, ``data/crypto_perpetual/<id>/<ts>_<ts>.parquet``, and
``.instruments()`` returns every version, oldest first. ``BacktestNode`` adds only the *first* instrument
it gets per id (``if instrument.id not in engine.cache.instrument_ids()``), i.e. the oldest version, so a
Keel ingest writes only the versions its data is priced on (see :mod:`keel.data.binance_usdm_ingest`).

A history file lists, per symbol, the versions as patches of a saved ``exchangeInfo`` symbol entry:

.. code-block:: yaml

    symbols:
      BTCUSDT:
        - effective_from: "2022-02-19T01:20:11.962Z"
          filters:
            PRICE_FILTER: {tickSize: "0.10", minPrice: "402", maxPrice: "1246396.60"}
          evidence: ["where this fact was checked"]

Values must be quoted strings: YAML would read ``0.10`` as the float 0.1, and nautilus takes precision
from the decimal string.
"""

import copy
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from nautilus_trader.core.datetime import unix_nanos_to_iso8601
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import Instrument

from keel.data.errors import DataInputError
from keel.data.ingest import SourceTable
from keel.data.instruments import crypto_perpetual_from_binance_symbol
from keel.data.instruments import is_perpetual
from keel.data.instruments import load_exchange_info
from keel.data.instruments import select_symbol_entries
from keel.data.instruments import server_time_ns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The keys that define an instrument's grid: a history and an exchangeInfo of the same moment must agree on them.
_GRID_KEYS = (("PRICE_FILTER", "tickSize"), ("LOT_SIZE", "stepSize"))


@dataclass(frozen=True)
class FilterVersion:
    """
    One entry of a history file: exchangeInfo filter values in force from a point in time.

    Parameters
    ----------
    effective_from : int
        When the values took effect (ns since the epoch, UTC).
    filters : dict[str, dict[str, str]]
        Filter type (``PRICE_FILTER``) -> key (``tickSize``) -> decimal string, as Binance writes them.
    evidence : tuple[str, ...]
        Where each fact was checked.

    """

    effective_from: int
    filters: dict[str, dict[str, str]]
    evidence: tuple[str, ...]


def load_filter_history(path: Path) -> dict[str, list[FilterVersion]]:
    """
    Read a history file (YAML, see the module docstring) into versions per symbol, oldest first.

    Parameters
    ----------
    path : Path
        The history file.

    Returns
    -------
    dict[str, list[FilterVersion]]
        Keyed by Binance symbol.

    Raises
    ------
    DataInputError
        Naming the field of a missing, unquoted or malformed value, or of versions not in time order.

    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected an instrument history YAML file") from None
    except yaml.YAMLError as error:
        line = error.problem_mark.line + 1 if getattr(error, "problem_mark", None) else None
        raise DataInputError(path, f"not valid YAML ({error}): expected an instrument history file", line) from None
    symbols = document.get("symbols") if isinstance(document, dict) else None
    if not isinstance(symbols, dict) or not symbols:
        raise DataInputError(path, "field 'symbols': expected a mapping of symbol -> list of versions")
    return {symbol: _versions(path, symbol, entries) for symbol, entries in symbols.items()}


def binance_usdm_instrument_versions(
    exchange_info: Path,
    history: Path,
    symbols: set[str] | None = None,
) -> dict[str, list[CryptoPerpetual]]:
    """
    Build every known version of ``<SYMBOL>-PERP.BINANCE`` perpetuals, oldest first.

    Each version is the symbol's exchangeInfo entry with the version's filter values patched in, with
    ``ts_event`` = ``ts_init`` = its ``effective_from``. A symbol absent from the history has one version,
    the exchangeInfo as it is, in force from the response's ``serverTime``.

    Parameters
    ----------
    exchange_info : Path
        A saved ``GET /fapi/v1/exchangeInfo`` response: the filters the history does not change.
    history : Path
        The history file (:func:`load_filter_history`).
    symbols : set[str], optional
        Only these symbols; all perpetuals in the exchangeInfo when None.

    Returns
    -------
    dict[str, list[CryptoPerpetual]]
        Keyed by Binance symbol.

    Raises
    ------
    DataInputError
        If a file is malformed, a symbol is missing, a version patches a filter the entry does not have, or
        the version in force at the exchangeInfo's ``serverTime`` disagrees with that exchangeInfo.

    """
    exchange_info, history = Path(exchange_info), Path(history)
    document = load_exchange_info(exchange_info)
    entries = select_symbol_entries(document, exchange_info, symbols, is_perpetual, "a PERPETUAL contract entry")
    served_at = server_time_ns(document)
    versions_by_symbol = load_filter_history(history)
    result = {}
    for symbol, entry in entries.items():
        versions = versions_by_symbol.get(symbol)
        if versions is None:
            result[symbol] = [crypto_perpetual_from_binance_symbol(entry, exchange_info, served_at)]
            continue
        _check_against_exchange_info(history, symbol, versions, entry, served_at)
        result[symbol] = [
            crypto_perpetual_from_binance_symbol(_patched(entry, version, history, symbol), history, version.effective_from)
            for version in versions
        ]
    return result


def instrument_as_of(versions: Sequence[Instrument], ts: int) -> Instrument:
    """
    Return the version in force at ``ts``: the one with the latest ``ts_event`` not after it.

    Parameters
    ----------
    versions : Sequence[Instrument]
        Versions of one instrument id, in any order (e.g. ``ParquetDataCatalog.instruments(instrument_ids=[id])``).
    ts : int
        The time (ns since the epoch, UTC).

    Returns
    -------
    Instrument

    Raises
    ------
    ValueError
        If ``versions`` is empty, mixes instrument ids, or none is in force yet at ``ts``.

    """
    if not versions:
        raise ValueError("no instrument versions given: expected at least one")
    ids = {version.id for version in versions}
    if len(ids) != 1:
        raise ValueError(f"versions of several instruments given ({sorted(str(value) for value in ids)}): expected one id")
    in_force = [version for version in versions if version.ts_event <= ts]
    if not in_force:
        earliest = min(version.ts_event for version in versions)
        raise ValueError(
            f"no version of {versions[0].id} in force at {unix_nanos_to_iso8601(ts)}: "
            f"the earliest takes effect at {unix_nanos_to_iso8601(earliest)}"
        )
    return max(in_force, key=lambda version: version.ts_event)


def _versions(path: Path, symbol: str, entries: Any) -> list[FilterVersion]:
    where = f"symbols.{symbol}"
    if not isinstance(entries, list) or not entries:
        raise DataInputError(path, f"field '{where}': expected a non-empty list of versions")
    versions = [_version(path, f"{where}[{index}]", entry) for index, entry in enumerate(entries)]
    for index in range(1, len(versions)):
        if versions[index].effective_from <= versions[index - 1].effective_from:
            raise DataInputError(
                path, f"field '{where}[{index}].effective_from': expected versions in strictly increasing time order"
            )
    return versions


def _version(path: Path, where: str, entry: Any) -> FilterVersion:
    if not isinstance(entry, dict):
        raise DataInputError(path, f"field '{where}': expected a mapping with effective_from, filters, evidence")
    filters = entry.get("filters")
    if not isinstance(filters, dict) or not filters:
        raise DataInputError(path, f"field '{where}.filters': expected a mapping of filter type -> values")
    checked: dict[str, dict[str, str]] = {}
    for filter_type, values in filters.items():
        if not isinstance(values, dict) or not values:
            raise DataInputError(path, f"field '{where}.filters.{filter_type}': expected a mapping of key -> decimal string")
        for key, value in values.items():
            _decimal_string(path, f"{where}.filters.{filter_type}.{key}", value)
        checked[filter_type] = dict(values)
    evidence = entry.get("evidence")
    if not isinstance(evidence, list) or not evidence or not all(isinstance(item, str) for item in evidence):
        raise DataInputError(path, f"field '{where}.evidence': expected a non-empty list of sources (strings)")
    return FilterVersion(_timestamp_ns(path, f"{where}.effective_from", entry.get("effective_from")), checked, tuple(evidence))


def _decimal_string(path: Path, where: str, value: Any) -> Decimal:
    if not isinstance(value, str):
        raise DataInputError(path, f"field '{where}': expected a quoted decimal string, got {value!r} ({type(value).__name__})")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise DataInputError(path, f"field '{where}': expected a decimal string, got {value!r}") from None


def _timestamp_ns(path: Path, where: str, value: Any) -> int:
    # Quoted on purpose: unquoted, YAML turns the text into a datetime and drops sub-microsecond digits.
    if not isinstance(value, str):
        raise DataInputError(path, f"field '{where}': expected a quoted ISO 8601 UTC time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DataInputError(path, f"field '{where}': expected an ISO 8601 time like 2022-02-19T01:20:11.962Z, got {value!r}") from None
    if moment.utcoffset() != timedelta(0):
        raise DataInputError(path, f"field '{where}': expected a UTC time (suffix Z), got {value!r}")
    # Integer arithmetic: a float timestamp would lose nanoseconds.
    return (moment - _EPOCH) // _MICROSECOND * 1_000


def _patched(entry: dict[str, Any], version: FilterVersion, history: Path, symbol: str) -> dict[str, Any]:
    patched = copy.deepcopy(entry)
    filters = {item.get("filterType"): item for item in patched.get("filters", []) if isinstance(item, dict)}
    for filter_type, values in version.filters.items():
        if filter_type not in filters:
            raise DataInputError(
                history,
                f"field 'symbols.{symbol}' version from {unix_nanos_to_iso8601(version.effective_from)} patches {filter_type}: "
                f"expected a filter the exchangeInfo entry has ({sorted(filters)})",
            )
        filters[filter_type].update(values)
    return patched


def _check_against_exchange_info(
    history: Path, symbol: str, versions: list[FilterVersion], entry: dict[str, Any], served_at: int
) -> None:
    # The exchangeInfo is itself a dated observation: the history's grid must agree with it. Price bounds
    # (minPrice, maxPrice) move with the market, so they are not compared.
    in_force = [version for version in versions if version.effective_from <= served_at]
    if not in_force:
        return
    version = in_force[-1]
    filters = {item.get("filterType"): item for item in entry.get("filters", []) if isinstance(item, dict)}
    for filter_type, key in _GRID_KEYS:
        value = version.filters.get(filter_type, {}).get(key)
        if value is not None:
            observed = filters.get(filter_type, {}).get(key)
            if observed is None or Decimal(str(observed)) != Decimal(value):
                raise DataInputError(
                    history,
                    f"field 'symbols.{symbol}' version from {unix_nanos_to_iso8601(version.effective_from)} says "
                    f"{filter_type}.{key}={value!r}, but the exchangeInfo served at {unix_nanos_to_iso8601(served_at)} "
                    f"says {observed!r}: expected the history to agree with every dated exchangeInfo",
                )


InstrumentVersions = Instrument | Sequence[Instrument]


def read_on_version_in_force(versions: InstrumentVersions, read: Callable[[Instrument], SourceTable]) -> SourceTable:
    """
    Parse a file on the instrument version in force at the file's first row.

    The file's first timestamp is only known once it is parsed, and parsing needs an instrument: the file is
    read first on the finest grid of all versions (every real price and size fits it), then again on the
    version in force at its first ``ts_init`` unless that is the same one, which checks the data against the
    grid that really applied.

    Parameters
    ----------
    versions : Instrument | Sequence[Instrument]
        One instrument (used as it is), or the versions of one instrument id.
    read : Callable[[Instrument], SourceTable]
        Parses the file on the given instrument.

    Returns
    -------
    SourceTable

    Raises
    ------
    DataInputError
        From ``read``, or when no version is in force yet at the file's first row.

    """
    def one_table(version: Instrument) -> Generator[SourceTable, None, None]:
        yield read(version)

    return next(read_chunks_on_version_in_force(versions, one_table))


def read_chunks_on_version_in_force(versions: InstrumentVersions, read: Callable[[Instrument], Generator[SourceTable, None, None]]) -> Generator[SourceTable, None, None]:
    """
    Parse a file read in chunks on the instrument version in force at its first row (see :func:`read_on_version_in_force`).

    Only the first chunk is read twice, when the finest grid is not the version in force; the rest of the
    file is read once, on that version.

    Parameters
    ----------
    versions : Instrument | Sequence[Instrument]
        One instrument (used as it is), or the versions of one instrument id.
    read : Callable[[Instrument], Generator[SourceTable, None, None]]
        Parses the file on the given instrument, yielding at least one table.

    Yields
    ------
    SourceTable

    Raises
    ------
    DataInputError
        From ``read``, or when no version is in force yet at the file's first row.

    """
    if isinstance(versions, Instrument):
        yield from read(versions)
        return
    finest = min(versions, key=lambda version: (version.price_increment.as_decimal(), version.size_increment.as_decimal()))
    tables = read(finest)
    first = next(tables)
    try:
        chosen = instrument_as_of(versions, first.first_ts)
    except ValueError as error:
        raise DataInputError(first.source, f"{error}; expected data no older than the instrument history") from None
    if chosen is not finest:
        tables.close()  # releases the file the finest-grid read holds open
        tables = read(chosen)
        first = next(tables)
    yield first
    yield from tables
