"""`keel.data.synthetic`: deterministic, on the grids, calibrated on the real sample, and readable by nautilus from a catalog."""

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import catalog_files
from keel.data.fixed_point import off_grid_mask
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.inventory import read_columns
from keel.data.synthetic import DEFAULT_MODEL
from keel.data.synthetic import DEFAULT_QUOTE_MODEL
from keel.data.synthetic import calibrate
from keel.data.synthetic import calibrate_quotes
from keel.data.synthetic import is_synthetic
from keel.data.synthetic import synthetic_instrument
from keel.data.synthetic import synthetic_quotes
from keel.data.synthetic import synthetic_trades

BTCUSDT = "BTCUSDT.BINANCE"
SYNTHETIC_BTCUSDT = "BTCUSDT-SYNTH.BINANCE"
START_NS = 1_723_161_254_000_000_000  # the sample's first minute
TRADE_COLUMNS = ["price", "size", "aggressor_side", "ts_event", "ts_init"]


@pytest.fixture(scope="module")
def real_instrument(sample_catalog: Path) -> Instrument:
    (instrument,) = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=[BTCUSDT])
    return instrument


@pytest.fixture(scope="module")
def instrument(real_instrument: Instrument) -> Instrument:
    return synthetic_instrument(real_instrument)


def _folder(catalog: Path, data_type: str, identifier: str = BTCUSDT) -> list:
    return [item for item in catalog_files(catalog) if item.data_type == data_type and item.identifier == identifier]


def _assert_close(measured: object, expected: object, relative: float) -> None:
    for field in fields(expected):
        assert math.isclose(getattr(measured, field.name), getattr(expected, field.name), rel_tol=relative), field.name


def test_synthetic_instrument_changes_only_the_id(real_instrument: Instrument, instrument: Instrument) -> None:
    real, copy = type(real_instrument).to_dict(real_instrument), type(instrument).to_dict(instrument)

    assert instrument.id.value == SYNTHETIC_BTCUSDT
    assert is_synthetic(instrument.id) and not is_synthetic(real_instrument.id)
    assert {key for key in real if real[key] != copy[key]} == {"id"}
    with pytest.raises(ValueError, match="expected a synthetic instrument"):
        synthetic_trades(real_instrument, 10, START_NS, seed=1)


def test_same_seed_same_frame_other_seed_other_frame(instrument: Instrument) -> None:
    first = synthetic_trades(instrument, 20_000, START_NS, seed=3)

    assert first.equals(synthetic_trades(instrument, 20_000, START_NS, seed=3))
    assert not first.equals(synthetic_trades(instrument, 20_000, START_NS, seed=4))
    assert synthetic_quotes(instrument, first, seed=5).equals(synthetic_quotes(instrument, first, seed=5))


def test_trades_and_quotes_are_on_the_grids_ordered_and_consistent(instrument: Instrument) -> None:
    rows = 200_000
    trades = synthetic_trades(instrument, rows, START_NS, seed=11, first_trade_id=500)
    quotes = synthetic_quotes(instrument, trades, seed=12)
    ts_init, ts_event = trades["ts_init"].to_numpy(), trades["ts_event"].to_numpy()

    assert trades.height == quotes.height == rows
    assert trades.schema == {
        "price": pl.Decimal(38, 16), "size": pl.Decimal(38, 16), "aggressor_side": pl.UInt8,
        "trade_id": pl.String, "ts_event": pl.UInt64, "ts_init": pl.UInt64,
    }
    assert not off_grid_mask(trades["price"].cast(pl.String), instrument.price_precision).any()
    assert not off_grid_mask(trades["size"].cast(pl.String), instrument.size_precision).any()
    assert (trades["price"] > 0).all() and (trades["size"] > 0).all()
    assert trades["trade_id"].cast(pl.Int64).to_list() == list(range(500, 500 + rows))
    assert ts_init[0] == START_NS and (np.diff(ts_init) >= 0).all()
    assert (np.diff(ts_event) >= 0).all() and (ts_event <= ts_init).all()
    assert set(trades["aggressor_side"].unique().to_list()) == {1, 2}
    for column in ("bid_price", "ask_price"):
        assert not off_grid_mask(quotes[column].cast(pl.String), instrument.price_precision).any()
    for column in ("bid_size", "ask_size"):
        assert not off_grid_mask(quotes[column].cast(pl.String), instrument.size_precision).any()
        assert (quotes[column] > 0).all()
    assert (quotes["bid_price"] < quotes["ask_price"]).all()
    touch = pl.when(trades["aggressor_side"] == 1).then(quotes["ask_price"]).otherwise(quotes["bid_price"])
    assert trades.select(touch.alias("touch"))["touch"].equals(trades["price"], check_names=False)
    assert quotes["ts_init"].equals(trades["ts_init"])


def test_shipped_model_is_the_samples_calibration_and_synthetic_data_reproduces_it(sample_catalog: Path, instrument: Instrument) -> None:
    real_trades = read_columns(_folder(sample_catalog, TRADE_TICK), TRADE_COLUMNS)
    real_quotes = read_columns(_folder(sample_catalog, QUOTE_TICK), ["bid_price", "ask_price", "bid_size", "ask_size"])
    tick = instrument.price_increment.as_decimal()

    real_model = calibrate(real_trades)
    real_quote_model = calibrate_quotes(real_quotes, tick)
    trades = synthetic_trades(instrument, 300_000, START_NS, seed=21)
    synthetic_model = calibrate(trades)
    synthetic_quote_model = calibrate_quotes(synthetic_quotes(instrument, trades, seed=22), tick)

    assert real_trades.height == 9757
    _assert_close(DEFAULT_MODEL, real_model, relative=1e-3)  # the constants are this calibration, rounded
    _assert_close(DEFAULT_QUOTE_MODEL, real_quote_model, relative=1e-3)
    _assert_close(synthetic_model, real_model, relative=0.05)
    _assert_close(synthetic_quote_model, real_quote_model, relative=0.05)


def test_commit_tables_writes_synthetic_data_nautilus_reads_back(instrument: Instrument, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    trades = synthetic_trades(instrument, 50_000, START_NS, seed=31)
    quotes = synthetic_quotes(instrument, trades, seed=32)
    source = Path("synthetic-seed-31")

    report = commit_tables(
        catalog,
        [instrument],
        [SourceTable(TRADE_TICK, SYNTHETIC_BTCUSDT, instrument, trades, source), SourceTable(QUOTE_TICK, SYNTHETIC_BTCUSDT, instrument, quotes, source)],
    )
    nautilus = ParquetDataCatalog(str(catalog))
    ticks = nautilus.trade_ticks(instrument_ids=[SYNTHETIC_BTCUSDT])
    quote_ticks = nautilus.quote_ticks(instrument_ids=[SYNTHETIC_BTCUSDT])

    assert report.changed_catalog
    assert {item.instrument_id for item in report.files} == {SYNTHETIC_BTCUSDT}
    assert [item.id.value for item in nautilus.instruments()] == [SYNTHETIC_BTCUSDT]
    assert len(ticks) == len(quote_ticks) == trades.height
    assert (ticks[0].price.as_decimal(), ticks[-1].price.as_decimal()) == (trades["price"][0], trades["price"][-1])
    assert (ticks[0].trade_id.value, ticks[-1].trade_id.value) == ("1", "50000")
    assert (quote_ticks[-1].bid_price.as_decimal(), quote_ticks[-1].ask_price.as_decimal()) == (quotes["bid_price"][-1], quotes["ask_price"][-1])
