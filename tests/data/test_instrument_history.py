"""Instrument versions: the right one is picked at any time, stored as nautilus stores versions, and enforced."""

import gzip
import hashlib
from pathlib import Path

import pytest
import yaml
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_usdm_ingest import DEFAULT_TICK_SIZE_HISTORY
from keel.data.binance_usdm_ingest import DEFAULT_USDM_EXCHANGE_INFO
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.binance_usdm_ingest import sample_usdm_recordings
from keel.data.errors import DataInputError
from keel.data.ingest import commit_tables
from keel.data.instrument_history import binance_usdm_instrument_versions
from keel.data.instrument_history import instrument_as_of

TICK_0_10_FROM = 1645233611962 * 1_000_000  # 2022-02-19T01:20:11.962Z
LISTED = 1569398400000 * 1_000_000  # 2019-09-25T08:00:00Z
SAMPLE = sample_usdm_recordings()[0]


@pytest.fixture(scope="module")
def btc_versions() -> list:
    return binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, DEFAULT_TICK_SIZE_HISTORY)["BTCUSDT"]


def _history(tmp_path: Path, edit) -> Path:
    document = yaml.safe_load(DEFAULT_TICK_SIZE_HISTORY.read_text())
    edit(document)
    path = tmp_path / "history.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_shipped_history_gives_two_btc_versions(btc_versions: list) -> None:
    eth_versions = binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, DEFAULT_TICK_SIZE_HISTORY)["ETHUSDT"]

    assert [(str(version.price_increment), version.ts_event, version.ts_init) for version in btc_versions] == [
        ("0.01", LISTED, LISTED),
        ("0.1", TICK_0_10_FROM, TICK_0_10_FROM),
    ]
    # The 0.10 version carries price bounds on its own grid; the other filters come from the exchangeInfo.
    assert (str(btc_versions[1].min_price), str(btc_versions[1].max_price)) == ("402.0", "1246396.6")
    assert str(btc_versions[1].size_increment) == str(btc_versions[0].size_increment) == "0.001"
    assert [str(version.price_increment) for version in eth_versions] == ["0.01"]


def test_as_of_picks_the_version_in_force(btc_versions: list) -> None:
    assert str(instrument_as_of(btc_versions, TICK_0_10_FROM - 1).price_increment) == "0.01"
    assert str(instrument_as_of(btc_versions, TICK_0_10_FROM).price_increment) == "0.1"
    assert str(instrument_as_of(list(reversed(btc_versions)), 1723161255030314667).price_increment) == "0.1"
    with pytest.raises(ValueError, match=r"no version of BTCUSDT-PERP\.BINANCE in force at 2019-09-25T07:59:59"):
        instrument_as_of(btc_versions, LISTED - 1)


def test_catalog_keeps_one_file_per_version_oldest_first(btc_versions: list, tmp_path: Path) -> None:
    report = commit_tables(tmp_path / "catalog", btc_versions, [])

    folder = tmp_path / "catalog" / "data" / "crypto_perpetual" / "BTCUSDT-PERP.BINANCE"
    assert len(list(folder.glob("*.parquet"))) == 2
    assert len(report.files) == 2
    read_back = ParquetDataCatalog(str(tmp_path / "catalog")).instruments(instrument_ids=["BTCUSDT-PERP.BINANCE"])
    # BacktestNode adds the first of these per id, the oldest: why an ingest writes only the versions it uses.
    assert [(str(version.price_increment), version.ts_init) for version in read_back] == [("0.01", LISTED), ("0.1", TICK_0_10_FROM)]
    assert str(instrument_as_of(read_back, TICK_0_10_FROM).price_increment) == "0.1"


def test_ingest_writes_the_version_in_force_at_the_data(tmp_path: Path) -> None:
    ingest_binance_usdm([SAMPLE], tmp_path / "catalog")

    instruments = ParquetDataCatalog(str(tmp_path / "catalog")).instruments()
    assert [(instrument.id.value, str(instrument.price_increment), instrument.ts_event) for instrument in instruments] == [
        ("BTCUSDT-PERP.BINANCE", "0.1", TICK_0_10_FROM)
    ]


def test_price_off_the_grid_of_the_version_in_force_is_refused(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    ingest_binance_usdm([SAMPLE], catalog, history=_history(tmp_path, lambda document: None))
    with gzip.open(SAMPLE, "rb") as file:
        lines = file.read().splitlines(keepends=True)
    index = next(index for index, line in enumerate(lines) if index > 300 and b"@trade" in line)
    price = lines[index].split(b'"p":"', 1)[1].split(b'"', 1)[0]
    # 0.05 is on the 2021 grid (0.01), not on the 2024 one (0.1).
    off_grid = lines[index].replace(b'"p":"' + price + b'"', b'"p":"' + price[:-1] + b'5"')
    corrupted = tmp_path / "off_grid.gz"
    with gzip.open(corrupted, "wb") as file:
        file.writelines([*lines[:index], off_grid, *lines[index + 1 :]])

    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match=r"trade price .*expected a multiple of the tick .*tick 0\.1 of the BTCUSDT-PERP\.BINANCE version in force from 2022-02-19T01:20:11\.962") as error:
        ingest_binance_usdm([corrupted], catalog)
    assert (error.value.path, error.value.line) == (corrupted, index + 1)
    assert _tree_digest(catalog) == before


def test_data_older_than_every_version_is_refused(tmp_path: Path) -> None:
    def start_in_2025(document: dict) -> None:
        document["symbols"]["BTCUSDT"] = [{**document["symbols"]["BTCUSDT"][1], "effective_from": "2025-01-01T00:00:00Z"}]

    with pytest.raises(DataInputError, match=r"BTCUSDT: no version of BTCUSDT-PERP\.BINANCE in force at 2024-08-08T23:54:15") as error:
        ingest_binance_usdm([SAMPLE], tmp_path / "catalog", history=_history(tmp_path, start_in_2025))
    assert error.value.path == SAMPLE
    assert not (tmp_path / "catalog").exists()


def test_history_disagreeing_with_the_exchange_info_is_refused(tmp_path: Path) -> None:
    def claim_0_10_in_2019(document: dict) -> None:
        document["symbols"]["BTCUSDT"][0]["filters"]["PRICE_FILTER"]["tickSize"] = "0.10"

    with pytest.raises(DataInputError, match=r"says PRICE_FILTER\.tickSize='0\.10', but the exchangeInfo served at 2021-07-21T09:04:03\.909.* says '0\.01'"):
        binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, _history(tmp_path, claim_0_10_in_2019))


def test_unquoted_decimal_in_history_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "history.yaml"
    path.write_text(DEFAULT_TICK_SIZE_HISTORY.read_text().replace('tickSize: "0.10"', "tickSize: 0.10"))

    with pytest.raises(DataInputError, match=r"field 'symbols\.BTCUSDT\[1\]\.filters\.PRICE_FILTER\.tickSize': expected a quoted decimal string, got 0\.1"):
        binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, path)


def test_versions_out_of_time_order_are_refused(tmp_path: Path) -> None:
    def reverse(document: dict) -> None:
        document["symbols"]["BTCUSDT"].reverse()

    with pytest.raises(DataInputError, match=r"field 'symbols\.BTCUSDT\[1\]\.effective_from': expected versions in strictly increasing time order"):
        binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, _history(tmp_path, reverse))
