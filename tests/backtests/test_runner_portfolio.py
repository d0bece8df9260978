"""Variants of several instruments and venues: one run, P&L per instrument and in total, funding settled on perpetuals.

The funding check recomputes the payments from the raw freqtrade files (the sample's real BTCUSDT-PERP 1-minute
bars and 8-hour funding rates of 2025-05-05) and the run's fills, without Keel's P&L code.
"""

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from probes import probe_variant

from keel.backtests.runner import BacktestInputError
from keel.backtests.runner import run_backtest
from keel.backtests.venues import VenueModelError
from keel.backtests.venues import load_venue_model
from keel.data.bars import ingest_ohlcv_bars
from keel.data.funding import ingest_funding_rates
from keel.data.instruments import binance_usdm_instruments
from keel.pnl import TOTAL
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR

BARS = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-1m-futures.feather"
FUNDING = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-8h-funding_rate.feather"
PERP = "BTCUSDT-PERP.BINANCE"
BAR_TYPE = f"{PERP}-1-MINUTE-LAST-EXTERNAL"
MINUTE_NS = 60_000_000_000


@pytest.fixture(scope="module")
def perpetual_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's real BTCUSDT-PERP day of 1-minute bars with its funding history."""
    path = tmp_path_factory.mktemp("perpetual") / "catalog"
    instrument = binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"]
    ingest_ohlcv_bars([BARS], path, instrument)
    ingest_funding_rates([FUNDING], path, instrument)
    return path


def test_one_variant_trades_two_instruments_and_adds_them_up(sample_catalog: Path, tmp_path: Path) -> None:
    variant = probe_variant(
        "BasketProbe",
        {"instrument_ids": ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"], "trade_sizes": ["0.0002", "0.005"], "every_n_trades": 400},
    )

    run = run_backtest(variant, sample_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)

    summary = run.summary
    per_instrument = run.fills.group_by("instrument_id").len()
    assert dict(per_instrument.iter_rows()) .keys() == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}
    assert min(per_instrument["len"]) >= 5
    assert set(summary.by_instrument) == {"BTCUSDT.BINANCE", "ETHUSDT.BINANCE"}
    assert summary.fills == sum(part.fills for part in summary.by_instrument.values()) == run.fills.height
    assert summary.pnl_net == pytest.approx(sum(part.net for part in summary.by_instrument.values()))
    assert summary.fees == pytest.approx(0.001 * summary.traded_notional, rel=1e-6)
    # Each instrument's equity ends at its own net; the total ends at the sum.
    for instrument_id, part in summary.by_instrument.items():
        curve = run.equity.filter(pl.col("instrument_id") == instrument_id)
        assert curve.height > 100 and curve["pnl"][-1] == pytest.approx(part.net)
    assert run.equity.filter(pl.col("instrument_id") == TOTAL)["pnl"][-1] == pytest.approx(summary.pnl_net)
    assert summary.fill_audit is not None and summary.fill_audit["taker_fills"] == run.fills.height


def test_streaming_the_catalog_in_chunks_changes_nothing(sample_catalog: Path, tmp_path: Path) -> None:
    variant = probe_variant("TapeProbe", {"instrument_id": "BTCUSDT.BINANCE", "trade_size": "0.0002", "every_n_trades": 150})

    whole = run_backtest(variant, sample_catalog, run_dir=tmp_path / "whole", log_to_mlflow=False, tearsheet=False, chunk_size=None)
    chunked = run_backtest(variant, sample_catalog, run_dir=tmp_path / "chunked", log_to_mlflow=False, tearsheet=False, chunk_size=5_000)

    assert whole.fills.height > 20
    assert chunked.fills.drop("ts_init").equals(whole.fills.drop("ts_init"))
    assert chunked.summary.pnl_net == whole.summary.pnl_net


def test_perpetual_funding_equals_an_independent_computation(perpetual_catalog: Path, tmp_path: Path) -> None:
    variant = probe_variant(
        "BarHoldProbe",
        {"instrument_id": PERP, "bar_type": BAR_TYPE, "trade_size": "0.01", "side": "BUY"},
        venues=("binance_usdm_bars",),
    )

    run = run_backtest(variant, perpetual_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)

    fills = run.fills
    assert fills.height == 2 and fills["order_side"].to_list() == ["BUY", "SELL"]
    # From the raw files: the settlements between the two fills, the position then, the close of the last bar
    # that closed before the settlement (a bar's time is its close: open + 1 minute).
    bars = pl.read_ipc(BARS).select((pl.col("date").dt.epoch("ns") + MINUTE_NS).alias("ts"), "close")
    rates = pl.read_ipc(FUNDING).select(pl.col("date").dt.epoch("ns").alias("ts"), pl.col("open").alias("rate"))
    opened, closed = fills["ts_event"].to_list()
    expected = []
    for ts, rate in rates.iter_rows():
        if opened < ts <= closed:
            mark = bars.filter(pl.col("ts") < ts)["close"][-1]
            expected.append(-0.01 * mark * rate)
    assert len(expected) == 2  # 08:00 and 16:00 of 2025-05-05
    assert run.funding.filter(pl.col("position") != 0)["payment"].to_list() == pytest.approx(expected, rel=1e-12)
    assert run.summary.funding == pytest.approx(sum(expected), rel=1e-12)
    assert run.summary.pnl_net == pytest.approx(run.summary.pnl_gross - run.summary.fees + run.summary.rebates + sum(expected))
    # Taker fees at the USDT-M rate, in USDT.
    assert run.summary.fees == pytest.approx(0.0005 * run.summary.traded_notional, rel=1e-9)
    assert run.equity.filter(pl.col("instrument_id") == TOTAL)["pnl"][-1] == pytest.approx(run.summary.pnl_net)


def test_an_l2_model_without_depth_is_refused(perpetual_catalog: Path, tmp_path: Path) -> None:
    variant = probe_variant("BarHoldProbe", {"instrument_id": PERP, "bar_type": BAR_TYPE, "trade_size": "0.01"}, venues=("binance_usdm",))

    with pytest.raises(BacktestInputError, match=r"BTCUSDT-PERP.BINANCE has no order book deltas .* L2_MBP book"):
        run_backtest(variant, perpetual_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)
    assert not (tmp_path / "run").exists()


def test_an_instrument_without_a_venue_model_is_refused(sample_catalog: Path, tmp_path: Path) -> None:
    variant = probe_variant("TapeProbe", {"instrument_id": "BTC-USDT.OKX", "trade_size": "0.0002"})

    with pytest.raises(VenueModelError, match=r"instrument BTC-USDT.OKX trades on OKX, but none of its venues \['binance_spot'\] models OKX"):
        run_backtest(variant, sample_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)


def test_two_models_of_one_venue_are_refused(sample_catalog: Path, tmp_path: Path) -> None:
    variant = probe_variant("TapeProbe", {"instrument_id": "BTCUSDT.BINANCE", "trade_size": "0.0002"}, venues=("binance_spot", "binance_usdm"))

    with pytest.raises(VenueModelError, match="hold two models of venue BINANCE"):
        run_backtest(variant, sample_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)


def test_every_shipped_venue_model_loads() -> None:
    models = {path.stem: load_venue_model(path) for path in sorted((CONFIGS_DIR / "venues").glob("*.yaml"))}

    assert set(models) >= {"binance_spot", "binance_usdm", "binance_usdm_bars", "okx"}
    assert {name: model.account_type for name, model in models.items()} == {
        "binance_spot": "CASH", "binance_usdm": "MARGIN", "binance_usdm_bars": "MARGIN", "okx": "MARGIN",
    }
    assert Decimal(models["binance_usdm"].starting_balances[0].split()[0]) > 0
