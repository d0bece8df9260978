"""OHLCV bars from freqtrade feather / JSON and CSV: exact round trips through nautilus' catalog, refused bad input.

The feather is a real one-day cut of freqtrade's Binance USDT-M BTCUSDT 1m data (``data/sample/bars``). The CSV
and JSON variants are written here from that same frame (CSV: decimal text of each float, ISO dates; JSON:
freqtrade's ``[ts_ms, o, h, l, c, v]`` rows), so all three layouts must give the very same bars.
"""

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.bars import ingest_ohlcv_bars
from keel.data.bars import parse_freqtrade_file_name
from keel.data.bars import parse_interval
from keel.data.errors import DataInputError
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.instruments import binance_spot_instruments
from keel.data.instruments import binance_usdm_instruments
from keel.settings import SAMPLE_DIR

FEATHER = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-1m-futures.feather"
BAR_TYPE = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
MINUTE_NS = 60_000_000_000


@pytest.fixture(scope="module")
def perpetual() -> Instrument:
    return binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"]


@pytest.fixture(scope="module")
def source() -> pl.DataFrame:
    return pl.read_ipc(FEATHER)


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def write_feather(folder: Path, frame: pl.DataFrame, name: str = FEATHER.name) -> Path:
    path = folder / name
    frame.write_ipc(path)
    return path


@pytest.fixture
def catalog(tmp_path: Path, perpetual: Instrument, source: pl.DataFrame) -> Path:
    """A catalog already holding the first hour of the sample, so 'unchanged' is checked on a non-empty catalog."""
    path = tmp_path / "catalog"
    folder = tmp_path / "first_hour"
    folder.mkdir()
    ingest_ohlcv_bars([write_feather(folder, source.head(60))], path, perpetual)
    return path


def assert_refused(path: Path, catalog: Path, instrument: Instrument, row: int | None, message: str, **options: object) -> None:
    before = tree_digest(catalog)
    with pytest.raises(DataInputError, match=message) as error:
        ingest_ohlcv_bars([path], catalog, instrument, **options)
    assert error.value.path == path
    assert error.value.line == row
    assert tree_digest(catalog) == before
    assert not [item for item in catalog.parent.iterdir() if item.name.startswith(".catalog.ingest-")]


def test_file_name_gives_pair_market_and_interval() -> None:
    futures = parse_freqtrade_file_name(Path("BTC_USDT_USDT-1m-futures.feather"))
    assert (futures.base, futures.quote, futures.market, futures.interval) == ("BTC", "USDT", "futures", "1m")
    spot = parse_freqtrade_file_name(Path("ETH_USDT-5m.feather"))
    assert (spot.base, spot.market, spot.interval, spot.candle_type) == ("ETH", "spot", "5m", None)
    assert parse_freqtrade_file_name(Path("BTCUSDT-1m-2022-09-05.zip")) is None
    assert parse_interval("4h", FEATHER).bar_type(_spot()["BTCUSDT"]) == "BTCUSDT.BINANCE-4-HOUR-LAST-EXTERNAL"
    with pytest.raises(DataInputError, match="months have no fixed length"):
        parse_interval("1M", FEATHER)


def test_feather_round_trip(tmp_path: Path, perpetual: Instrument, source: pl.DataFrame) -> None:
    report = ingest_ohlcv_bars([FEATHER], tmp_path / "catalog", perpetual)

    assert [item.instrument_id for item in report.files if item.data_type == "bar"] == [BAR_TYPE]
    bars = ParquetDataCatalog(str(tmp_path / "catalog")).bars(bar_types=[BAR_TYPE])
    assert len(bars) == source.height == 1440
    first, last = bars[0], bars[-1]
    assert (str(first.open), str(first.high), str(first.low), str(first.close), str(first.volume)) == ("94230.20", "94230.30", "94159.70", "94220.00", "465.598")
    assert (str(last.open), str(last.high), str(last.low), str(last.close), str(last.volume)) == ("94706.80", "94706.80", "94680.80", "94696.70", "42.752")
    # freqtrade's date is the bar's open; nautilus stamps bars at their close.
    assert first.ts_init == first.ts_event == 1_746_403_200_000_000_000 + MINUTE_NS
    assert last.ts_init == 1_746_489_600_000_000_000
    # Every value equals the decimal the float was printed from.
    assert [bar.close.as_decimal() for bar in bars] == [Decimal(repr(value)) for value in source["close"]]
    assert [bar.volume.as_decimal() for bar in bars] == [Decimal(repr(value)) for value in source["volume"]]


def test_csv_and_json_give_the_same_bars(tmp_path: Path, perpetual: Instrument, source: pl.DataFrame) -> None:
    csv_frame = source.with_columns(pl.col("date").dt.to_string("%Y-%m-%dT%H:%M:%S%:z"), *(pl.col(name).map_elements(repr, return_dtype=pl.String) for name in ("open", "high", "low", "close", "volume")))
    csv_path = tmp_path / "csv" / "BTC_USDT_USDT-1m-futures.csv"
    csv_path.parent.mkdir()
    csv_frame.write_csv(csv_path)
    json_path = tmp_path / "json" / "BTC_USDT_USDT-1m-futures.json"
    json_path.parent.mkdir()
    rows = source.with_columns(pl.col("date").dt.epoch("ms")).rows()
    json_path.write_text(json.dumps([list(row) for row in rows]))

    ingest_ohlcv_bars([FEATHER], tmp_path / "from_feather", perpetual)
    ingest_ohlcv_bars([csv_path], tmp_path / "from_csv", perpetual)
    ingest_ohlcv_bars([json_path], tmp_path / "from_json", perpetual)

    def bars(catalog: str) -> list[tuple]:
        return [(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts_event, bar.ts_init) for bar in ParquetDataCatalog(str(tmp_path / catalog)).bars(bar_types=[BAR_TYPE])]

    expected = bars("from_feather")
    assert len(expected) == 1440
    assert bars("from_csv") == expected
    assert bars("from_json") == expected


def test_csv_with_millisecond_dates(tmp_path: Path, perpetual: Instrument) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("date,open,high,low,close,volume\n1746403200000,94230.2,94230.3,94159.7,94220.0,465.598\n1746403260000,94220.0,94220.0,94200.1,94200.1,3.5\n")

    ingest_ohlcv_bars([path], tmp_path / "catalog", perpetual, interval="1m", market="futures")

    bars = ParquetDataCatalog(str(tmp_path / "catalog")).bars(bar_types=[BAR_TYPE])
    assert [str(bar.close) for bar in bars] == ["94220.00", "94200.10"]
    assert [bar.ts_init for bar in bars] == [1_746_403_260_000_000_000, 1_746_403_320_000_000_000]


def test_off_grid_price_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    frame = source.with_columns(pl.when(pl.int_range(pl.len()) == 99).then(94230.257).otherwise(pl.col("low")).alias("low"))
    path = write_feather(tmp_path, frame)

    assert_refused(path, catalog, perpetual, 100, r"field 'low' is 94230.257: expected a multiple of 10\^-2")


def test_high_below_close_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    frame = source.with_columns(pl.when(pl.int_range(pl.len()) == 200).then(pl.col("close") - 10).otherwise(pl.col("high")).alias("high"))
    path = write_feather(tmp_path, frame)

    assert_refused(path, catalog, perpetual, 201, r"field 'high': bar at 2025-05-05T03:20:00Z has open=.*: expected high >= max\(open, close\)")


def test_low_above_open_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    frame = source.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.max_horizontal("open", "close") + 1).otherwise(pl.col("low")).alias("low"))
    path = write_feather(tmp_path, frame)

    assert_refused(path, catalog, perpetual, 6, r"field 'low': .* expected low <= min\(open, close\)")


def test_negative_volume_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    frame = source.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(-1.0).otherwise(pl.col("volume")).alias("volume"))
    path = write_feather(tmp_path, frame)

    assert_refused(path, catalog, perpetual, 1, "field 'volume' is -1.0: expected a non-negative number")


def test_gap_is_refused_unless_allowed(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    frame = pl.concat([source[:700], source[705:]])
    path = write_feather(tmp_path, frame)

    assert_refused(path, catalog, perpetual, 701, r"field 'open_time': bar opens 2025-05-05T11:45:00Z, 6 min after the previous bar")

    ingest_ohlcv_bars([path], tmp_path / "gappy", perpetual, allow_gaps=True)
    assert len(ParquetDataCatalog(str(tmp_path / "gappy")).bars(bar_types=[BAR_TYPE])) == 1435


def test_reordered_rows_are_refused_even_with_gaps_allowed(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    frame = pl.concat([source[:300], source[301:302], source[300:301], source[302:]])
    path = write_feather(tmp_path, frame)

    assert_refused(path, catalog, perpetual, 302, "field 'open_time': bar opens .*, -1 min after the previous bar", allow_gaps=True)


def test_missing_column_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    path = write_feather(tmp_path, source.drop("volume"))

    assert_refused(path, catalog, perpetual, None, r"missing column\(s\) \['volume'\]")


def test_bad_csv_value_names_line(catalog: Path, perpetual: Instrument, tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT_USDT-1m-futures.csv"
    path.write_text("date,open,high,low,close,volume\n2025-05-05T00:00:00Z,94230.2,94230.3,94159.7,94220.0,465.598\n2025-05-05T00:01:00Z,94220.0,9422O.0,94200.1,94200.1,3.5\n")

    assert_refused(path, catalog, perpetual, 3, "field 'high' is '9422O.0': expected a non-negative decimal string")


def test_instrument_must_match_the_file_name(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    spot = _spot()
    assert_refused(FEATHER, catalog, spot["ETHUSDT"], None, "file name says pair BTC/USDT, but instrument ETHUSDT.BINANCE trades ETH/USDT")
    assert_refused(FEATHER, catalog, spot["BTCUSDT"], None, "data is futures, but instrument BTCUSDT.BINANCE is a CurrencyPair")
    spot_named = write_feather(tmp_path, source, "BTC_USDT-1m.feather")
    assert_refused(spot_named, catalog, perpetual, None, "data is spot, but instrument BTCUSDT-PERP.BINANCE is a CryptoPerpetual")


@pytest.mark.requires_shared
def test_full_month_of_freqtrade_futures_bars(shared_data_dir: Path, perpetual: Instrument, tmp_path: Path) -> None:
    path = shared_data_dir / "ft_typhonun/user_data/data/binance/futures/BTC_USDT_USDT-1m-futures.feather"

    report = ingest_ohlcv_bars([path], tmp_path / "catalog", perpetual)

    assert [item.rows for item in report.files if item.data_type == "bar"] == [43199]
    bars = ParquetDataCatalog(str(tmp_path / "catalog")).bars(bar_types=[BAR_TYPE])
    assert (str(bars[0].open), str(bars[-1].close)) == ("95505.40", "106588.40")


def _spot() -> dict[str, Instrument]:
    return binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {"BTCUSDT", "ETHUSDT"})


def test_bars_are_stored_on_the_instrument_version_in_force(tmp_path: Path) -> None:
    # The shipped exchangeInfo is of 2021 (tick 0.01); the bars are of 2025, when the perpetual's tick was 0.1.
    from keel.data.binance_usdm_ingest import DEFAULT_TICK_SIZE_HISTORY
    from keel.data.binance_usdm_ingest import DEFAULT_USDM_EXCHANGE_INFO
    from keel.data.instrument_history import binance_usdm_instrument_versions

    versions = binance_usdm_instrument_versions(DEFAULT_USDM_EXCHANGE_INFO, DEFAULT_TICK_SIZE_HISTORY, {"BTCUSDT"})["BTCUSDT"]

    ingest_ohlcv_bars([FEATHER], tmp_path / "catalog", versions)

    catalog = ParquetDataCatalog(str(tmp_path / "catalog"))
    stored = catalog.instruments(instrument_ids=["BTCUSDT-PERP.BINANCE"])
    assert [str(instrument.price_increment) for instrument in stored] == ["0.1"]
    bars = catalog.bars(bar_types=[BAR_TYPE])
    assert len(bars) == 1440
    assert bars[0].close.precision == 1
