"""PairSpread: config validation, the regression against numpy, and the family checks on real data.

The spot variant runs on the shipped Binance spot sample (BTCUSDT and ETHUSDT ticks, 6 minutes); the perpetual
variant runs on 1-minute bars of the real BTCUSDT and ETHUSDT perpetuals in ../shared/data/real.
"""

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.result import RunResult
from keel.backtests.runner import run_backtest
from keel.data.bars import ingest_ohlcv_bars
from keel.data.funding import ingest_funding_rates
from keel.data.instruments import binance_usdm_instruments
from keel.fills import read_fills
from keel.live.session import run_live_session
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR
from keel.strategies.pair_spread import PairSpreadConfig
from keel.strategies.pair_spread import RollingRegression
from keel.variant import load_variant

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")
ETHUSDT = InstrumentId.from_str("ETHUSDT.BINANCE")
SPOT_VARIANT = CONFIGS_DIR / "variants" / "pair_spread_btc_eth_binance_spot.yaml"
PERP_VARIANT = CONFIGS_DIR / "variants" / "pair_spread_btc_eth_binance_usdm_bars.yaml"
PERP_BARS = "ft_typhonun/user_data/data/binance/futures"


def test_config_rejects_exit_not_below_entry() -> None:
    with pytest.raises(ValueError, match="exit_z"):
        PairSpreadConfig(dependent_instrument_id=BTCUSDT, hedge_instrument_id=ETHUSDT, entry_z=1.0, exit_z=1.0)


def test_config_rejects_legs_on_two_venues() -> None:
    with pytest.raises(ValueError, match="both legs on one venue"):
        PairSpreadConfig(dependent_instrument_id=BTCUSDT, hedge_instrument_id=InstrumentId.from_str("ETH-USDT.OKX"))


def _samples(catalog: Path, interval_ms: int) -> list[tuple[int, float, float]]:
    """
    Return the strategy's samples recomputed from the raw prints: (ts_init of the event that takes it, BTC, ETH).

    Prints are read in the engine's order (``ts_init``); an interval is one of ``ts_event // interval``, which
    only moves forward, and a sample is the last price of each leg when an event of a later interval arrives.
    """
    ticks = ParquetDataCatalog(str(catalog)).trade_ticks([str(BTCUSDT), str(ETHUSDT)])
    prints = pl.DataFrame(
        {
            "ts_init": [tick.ts_init for tick in ticks],
            "ts_event": [tick.ts_event for tick in ticks],
            "is_btc": [tick.instrument_id == BTCUSDT for tick in ticks],
            "price": [float(tick.price) for tick in ticks],
        },
    ).sort("ts_init", maintain_order=True)
    samples = []
    bucket, btc, eth = -1, math.nan, math.nan
    for ts_init, ts_event, is_btc, price in prints.iter_rows():
        if ts_event // (interval_ms * 1_000_000) > bucket:
            if bucket >= 0 and not (math.isnan(btc) or math.isnan(eth)):
                samples.append((ts_init, btc, eth))
            bucket = ts_event // (interval_ms * 1_000_000)
        btc, eth = (price, eth) if is_btc else (btc, price)
    return samples


def test_regression_equals_numpy_least_squares_on_real_prices(sample_catalog: Path) -> None:
    window = 60
    samples = _samples(sample_catalog, 1000)
    x = np.log([eth for _, _, eth in samples])
    y = np.log([btc for _, btc, _ in samples])
    regression = RollingRegression(window)
    checked = 0

    for index in range(len(samples)):
        regression.update(x[index] - x[0], y[index] - y[0])
        if index + 1 < window:
            assert math.isnan(regression.z) or not regression.is_full
            continue
        window_x, window_y = x[index + 1 - window : index + 1], y[index + 1 - window : index + 1]
        slope, intercept = np.polyfit(window_x, window_y, 1)
        residuals = window_y - (slope * window_x + intercept)
        assert regression.slope == pytest.approx(slope, rel=1e-6)
        assert regression.z == pytest.approx(residuals[-1] / residuals.std(), rel=1e-5, abs=1e-6)
        checked += 1

    assert checked > 250  # the 6-minute sample gives ~345 one-second samples


@pytest.fixture(scope="module")
def spot_run(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The spot variant backtested over the whole shipped sample."""
    run_dir = tmp_path_factory.mktemp("pair_spot") / "run"
    return run_backtest(load_variant(SPOT_VARIANT), sample_catalog, run_dir=run_dir, log_to_mlflow=False, tearsheet=False)


def test_first_order_is_sent_at_the_first_sample_beyond_entry_z(sample_catalog: Path, spot_run: RunResult) -> None:
    config = load_variant(SPOT_VARIANT).strategy.config
    samples = _samples(sample_catalog, config["sample_interval_ms"])
    x, y = np.log([eth for _, _, eth in samples]), np.log([btc for _, btc, _ in samples])
    window = config["window"]
    first = None
    for index in range(window - 1, len(samples)):
        window_x, window_y = x[index + 1 - window : index + 1], y[index + 1 - window : index + 1]
        slope, intercept = np.polyfit(window_x, window_y, 1)
        residuals = window_y - (slope * window_x + intercept)
        z = residuals[-1] / residuals.std()
        if abs(z) > config["entry_z"]:
            first = (samples[index][0], "BUY", "BTCUSDT.BINANCE" if z < 0 else "ETHUSDT.BINANCE")
            break

    orders = spot_run.orders.sort("ts_init", maintain_order=True)
    assert first is not None
    assert (int(orders["ts_init"][0]), orders["side"][0], orders["instrument_id"][0]) == first


def test_spot_variant_trades_and_is_pinned(spot_run: RunResult) -> None:
    run = spot_run

    assert_closed_out(run)
    assert run.fills.height == 10
    # Spot cannot sell short: every entry is a buy, every sale closes a position bought before.
    entries = run.orders.filter(pl.col("side") == "BUY")
    assert entries.height == run.orders.height // 2
    assert fills_fingerprint(run.fills) == "960058d04fe5d173"


def test_spot_variant_decides_nothing_from_later_data(sample_catalog: Path, tmp_path: Path) -> None:
    assert_no_lookahead(load_variant(SPOT_VARIANT), sample_catalog, "2024-08-08T23:57:30Z", tmp_path, end="2024-08-08T23:58:30Z")


@pytest.fixture(scope="module")
def perpetual_bars_catalog(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Thirty days of real 1-minute bars and funding rates of the BTCUSDT and ETHUSDT perpetuals (May 2025)."""
    path = tmp_path_factory.mktemp("pair_perpetuals") / "catalog"
    instruments = binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT", "ETHUSDT"})
    for symbol, asset in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH")):
        folder = shared_data_dir / PERP_BARS
        ingest_ohlcv_bars([folder / f"{asset}_USDT_USDT-1m-futures.feather"], path, instruments[symbol])
        ingest_funding_rates([folder / f"{asset}_USDT_USDT-8h-funding_rate.feather"], path, instruments[symbol])
    return path


@pytest.mark.requires_shared
def test_perpetual_variant_trades_both_legs_over_a_week(perpetual_bars_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(PERP_VARIANT)

    run = run_backtest(
        variant, perpetual_bars_catalog, run_dir=tmp_path / "run", start="2025-05-10T00:00:00Z", end="2025-05-17T00:00:00Z",
        log_to_mlflow=False, tearsheet=False,
    )

    assert_closed_out(run)
    sides = set(run.fills.select("instrument_id", "order_side").unique().rows())
    # Perpetuals sell short: both legs are bought and sold.
    assert sides == {(leg, side) for leg in ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE") for side in ("BUY", "SELL")}
    assert run.fills.height == 300
    assert fills_fingerprint(run.fills) == "bdf47802300d76b8"


@pytest.mark.slow
@pytest.mark.requires_redis
def test_emulator_session_trades_then_leaves_nothing_behind(redis_service: None, sample_catalog: Path, tmp_path: Path) -> None:
    document = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    # The backtest enters at 23:55:25 (after the 60-sample warm-up) and exits at 23:56:15; the session stops after both.
    document["emulator"] |= {"catalog": str(sample_catalog), "start": "2024-08-08T23:54:15Z", "end": "2024-08-08T23:56:40Z", "speed": 10.0}
    env_path = tmp_path / "emulator.yaml"
    env_path.write_text(yaml.safe_dump(document))
    # The emulator stamps events with its own clock, so at speed 10 a second of event time holds ten seconds of
    # data: the variant samples ten times as often to see the data as the backtest does.
    variant = yaml.safe_load(SPOT_VARIANT.read_text())
    variant["strategy"]["config"]["sample_interval_ms"] //= 10
    variant_path = tmp_path / SPOT_VARIANT.name
    variant_path.write_text(yaml.safe_dump(variant))

    run_live_session(variant_path, env_path, session_dir=tmp_path / "session")

    session = json.loads((tmp_path / "session" / SESSION_JSON).read_text())
    assert session["status"] == "completed"
    fills = read_fills(tmp_path / "session" / FILLS_PARQUET)
    assert fills.height >= 2, "the session never traded"
    assert session["after_stop"]["flat"] is True
    for leg in ("BTCUSDT.BINANCE", "ETHUSDT.BINANCE"):
        after_stop = session["after_stop"]["by_instrument"][leg]
        assert (after_stop["open_orders"], after_stop["open_positions"]) == ([], [])
