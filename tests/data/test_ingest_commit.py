"""commit_tables: appending later data works, different data for a held window is refused, tables are staged one at a time, and any failure leaves the catalog unchanged."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import read_recording
from keel.data.binance_recording import recording_frames
from keel.data.catalog_layout import TRADE_TICK
from keel.data.errors import DataInputError
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.ingest import sample_recordings
from keel.data.instruments import binance_spot_instruments


@pytest.fixture(scope="module")
def ethusdt_trades() -> tuple:
    """Return the ETHUSDT instrument, its parsed trades from the shipped sample, and the recording path."""
    recording = next(path for path in sample_recordings() if path.name.startswith("ethusdt"))
    instrument = binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {"ETHUSDT"})["ETHUSDT"]
    trades = recording_frames(read_recording(recording), {"ETHUSDT": instrument})["ETHUSDT"].trades
    return instrument, trades, recording


def _listing(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_appending_a_later_window_extends_the_catalog(ethusdt_trades: tuple, tmp_path: Path) -> None:
    instrument, trades, recording = ethusdt_trades
    catalog = tmp_path / "catalog"
    half = trades.height // 2

    commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.head(half), recording)])
    report = commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.slice(half), recording)])

    assert [item.status for item in report.files if item.data_type == TRADE_TICK] == ["written"]
    ticks = ParquetDataCatalog(str(catalog)).trade_ticks(instrument_ids=[instrument.id.value])
    assert [tick.trade_id.value for tick in ticks] == trades["trade_id"].to_list()
    assert len(list((catalog / "data" / TRADE_TICK / instrument.id.value).glob("*.parquet"))) == 2


def test_different_data_for_a_held_window_is_refused_naming_both_files(ethusdt_trades: tuple, tmp_path: Path) -> None:
    instrument, trades, recording = ethusdt_trades
    catalog = tmp_path / "catalog"
    commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.head(600), recording)])
    existing = next((catalog / "data" / TRADE_TICK / instrument.id.value).glob("*.parquet"))
    before = _listing(catalog)

    with pytest.raises(DataInputError) as raised:
        commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.slice(500, 500), recording)])

    assert raised.value.path == recording
    assert str(existing) in raised.value.problem
    assert "different data" in raised.value.problem
    assert _listing(catalog) == before


def test_tables_are_staged_one_at_a_time_and_a_later_failure_writes_nothing(ethusdt_trades: tuple, tmp_path: Path) -> None:
    instrument, trades, recording = ethusdt_trades
    catalog = tmp_path / "catalog"
    commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.head(100), recording)])
    before = _listing(catalog)
    staged_when_asked: list[int] = []

    def tables() -> Iterator[SourceTable]:
        for start in (100, 1000, 2000):
            # What the ingest has staged beside the catalog by the time it asks for the next table.
            staged_when_asked.append(len(list(tmp_path.glob(".catalog.ingest-*/data/trade_tick/*/*.parquet"))))
            yield SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.slice(start, 900), recording)
        raise DataInputError(recording, "a bad last file")

    with pytest.raises(DataInputError, match="a bad last file"):
        commit_tables(catalog, [], tables())

    assert staged_when_asked == [0, 1, 2]
    assert _listing(catalog) == before
    assert list(tmp_path.glob(".catalog.ingest-*")) == []
