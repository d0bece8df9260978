"""Backtests run each instrument on the definition in force at their start, not on nautilus' first (oldest) one."""

from pathlib import Path

import pytest
from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.model.objects import Price
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.versioned_node import VersionedBacktestNode
from keel.data.binance_usdm_ingest import DEFAULT_TICK_SIZE_HISTORY
from keel.data.binance_usdm_ingest import DEFAULT_USDM_EXCHANGE_INFO
from keel.data.ingest import commit_tables
from keel.data.instrument_history import binance_usdm_instrument_versions

PERPETUAL = "BTCUSDT-PERP.BINANCE"
AUGUST_2024_NS = 1_723_161_255_000_000_000  # 2024-08-08T23:54:15Z, the shipped USDT-M recording's start
FEBRUARY_2020_NS = 1_582_329_602_000_000_000  # 2020-02-22T00:00:02Z, the Tardis sample's start


@pytest.fixture(scope="module")
def two_version_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a catalog holding both BTCUSDT perpetual definitions: tick 0.01 (2019) and tick 0.1 (2022)."""
    catalog = tmp_path_factory.mktemp("versions") / "catalog"
    versions = binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, DEFAULT_TICK_SIZE_HISTORY, {"BTCUSDT"})["BTCUSDT"]
    commit_tables(catalog, versions, [])
    return catalog


def _data_config(catalog: Path, start_ns: int | None) -> BacktestDataConfig:
    return BacktestDataConfig(
        catalog_path=str(catalog), data_cls="nautilus_trader.model.data:TradeTick", instrument_id=PERPETUAL, start_time=start_ns
    )


def test_plain_catalog_returns_every_version_oldest_first(two_version_catalog: Path) -> None:
    # This is what nautilus' BacktestNode iterates, adding the first instrument per id.
    versions = ParquetDataCatalog(str(two_version_catalog)).instruments(instrument_ids=[PERPETUAL])

    assert [version.price_increment for version in versions] == [Price.from_str("0.01"), Price.from_str("0.1")]


@pytest.mark.parametrize(("start_ns", "tick"), [(AUGUST_2024_NS, "0.1"), (FEBRUARY_2020_NS, "0.01")])
def test_node_catalog_returns_the_version_in_force_at_the_start(two_version_catalog: Path, start_ns: int, tick: str) -> None:
    catalog = VersionedBacktestNode.load_catalog(_data_config(two_version_catalog, start_ns))

    versions = catalog.instruments(instrument_ids=[PERPETUAL])

    assert [version.price_increment for version in versions] == [Price.from_str(tick)]


def test_node_catalog_without_a_start_keeps_every_version(two_version_catalog: Path) -> None:
    catalog = VersionedBacktestNode.load_catalog(_data_config(two_version_catalog, None))

    assert len(catalog.instruments(instrument_ids=[PERPETUAL])) == 2
