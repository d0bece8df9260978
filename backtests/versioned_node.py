"""A ``BacktestNode`` that runs each instrument on its definition in force at the backtest's start.

An instrument id can have several definitions in the catalog (``keel.data.instrument_history``: Binance moved
the BTCUSDT perpetual's tick from 0.01 to 0.1), one file per version. nautilus 1.231's ``BacktestNode`` adds
the *first* instrument the catalog returns per id, the oldest version, so a 2024 backtest would quote and
round on the 2019 tick. This node hands ``BacktestNode`` a catalog whose ``instruments()`` returns, per id,
only the version in force at the data config's ``start_time``; everything else (data loading included) is
nautilus' own.
"""

from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.backtest.node import BacktestNode
from nautilus_trader.core.datetime import dt_to_unix_nanos
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.instrument_history import instrument_as_of


class VersionedCatalog(ParquetDataCatalog):
    """
    A ``ParquetDataCatalog`` whose ``instruments()`` returns one version per id: the one in force at ``as_of_ns``.

    Parameters
    ----------
    path : str
        The catalog root.
    as_of_ns : int, optional
        The time (ns) the versions are chosen for; None keeps every version (nautilus' behaviour).
    **kwargs
        Passed to ``ParquetDataCatalog``.

    """

    def __init__(self, path: str, as_of_ns: int | None = None, **kwargs: object) -> None:
        super().__init__(path, **kwargs)
        self.as_of_ns = as_of_ns

    def instruments(self, instrument_type: type | None = None, instrument_ids: list[str] | None = None, **kwargs: object) -> list[Instrument]:
        """Return the catalog's instruments, one version per id when ``as_of_ns`` is set."""
        versions = super().instruments(instrument_type=instrument_type, instrument_ids=instrument_ids, **kwargs)
        if self.as_of_ns is None:
            return versions
        by_id: dict[str, list[Instrument]] = {}
        for version in versions:
            by_id.setdefault(version.id.value, []).append(version)
        return [in_force(group, self.as_of_ns) for group in by_id.values()]


def in_force(versions: list[Instrument], ts: int) -> Instrument:
    """Return the version of one instrument in force at ``ts``, or its earliest when none is yet (data before every version)."""
    if all(version.ts_event > ts for version in versions):
        return min(versions, key=lambda version: version.ts_event)
    return instrument_as_of(versions, ts)


class VersionedBacktestNode(BacktestNode):
    """``BacktestNode`` whose instruments are the versions in force at each data config's ``start_time``."""

    @classmethod
    def load_catalog(cls, config: BacktestDataConfig) -> ParquetDataCatalog:
        """Return the data config's catalog, choosing instrument versions at its ``start_time``."""
        as_of_ns = dt_to_unix_nanos(config.start_time) if config.start_time is not None else None
        return VersionedCatalog(
            path=config.catalog_path,
            as_of_ns=as_of_ns,
            fs_protocol=config.catalog_fs_protocol,
            fs_storage_options=config.catalog_fs_storage_options,
            fs_rust_storage_options=config.catalog_fs_rust_storage_options,
        )
