"""MeanReversion: config validation, the rolling statistics and its decisions against numpy, the family checks on real data.

The spot variants run on the shipped Binance spot sample (6 minutes of BTCUSDT and ETHUSDT prints); the BTCUSDT
perpetual variant on the shipped day of 1-minute bars (2025-05-05); the ETHUSDT perpetual variant on the same day
cut from ../shared/data/real, and both perpetual variants over a week of it.
"""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from numpy.lib.stride_tricks import sliding_window_view
from nautilus_trader.model.data import BarType
from nautilus_trader.model.identifiers import InstrumentId

from keel.backtests.result import RunResult
from keel.backtests.result import load_run
from keel.backtests.runner import run_backtest
from keel.backtests.sweep import load_space
from keel.backtests.sweep import space_path_for
from keel.data.bars import ingest_ohlcv_bars
from keel.data.funding import ingest_funding_rates
from keel.data.instruments import binance_usdm_instruments
from keel.data.series import trade_prices
from keel.fills import read_fills
from keel.live.session import run_live_session
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR
from keel.strategies.mean_reversion import MeanReversionConfig
from keel.strategies.mean_reversion import RollingMoments
from keel.variant import load_variant

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")
VARIANTS = CONFIGS_DIR / "variants"
SHARED_PERP_BARS = "ft_typhonun/user_data/data/binance/futures"
USDM_EXCHANGE_INFO = SAMPLE_DIR / "binance_usdm" / "exchange_info.json"


def test_config_rejects_exit_not_below_entry() -> None:
    with pytest.raises(ValueError, match="exit_z"):
        MeanReversionConfig(instrument_id=BTCUSDT, entry_z=1.0, exit_z=1.0)


def test_config_rejects_a_window_of_one_price() -> None:
    with pytest.raises(ValueError, match="window"):
        MeanReversionConfig(instrument_id=BTCUSDT, window=1)


def test_config_rejects_bars_of_another_instrument() -> None:
    with pytest.raises(ValueError, match="bar_type"):
        MeanReversionConfig(instrument_id=BTCUSDT, bar_type=BarType.from_str("ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL"))


@pytest.mark.parametrize("instrument", ["btc", "eth"])
@pytest.mark.parametrize("venue", ["binance_spot", "binance_usdm_bars"])
def test_every_variant_has_a_sweep_space_its_config_accepts(instrument: str, venue: str) -> None:
    path = VARIANTS / f"mean_reversion_{instrument}_{venue}.yaml"

    space = load_space(space_path_for(path), load_variant(path))  # builds the strategy at the space's lows

    assert {"window", "entry_z", "exit_z"} <= set(space.parameters)


def test_rolling_moments_equal_numpy_on_real_prices(sample_catalog: Path) -> None:
    prices = trade_prices(sample_catalog, [str(BTCUSDT)])["price"].to_numpy()
    window = 150  # the sample's 9,757 prints wrap the ring 65 times
    moments = RollingMoments(window)
    windows = sliding_window_view(prices, window)

    seen = []
    for index, price in enumerate(prices):
        moments.push(float(price))
        assert moments.is_full == (index + 1 >= window)
        if moments.is_full:
            seen.append((moments.mean(), moments.variance(), moments.mean_square()))

    means, variances, mean_squares = np.array(seen).T
    np.testing.assert_allclose(means, windows.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(variances, windows.var(axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mean_squares, np.mean(windows**2, axis=1), rtol=1e-12)


def _signals(prices: np.ndarray, config: dict) -> dict[str, np.ndarray]:
    """Return the z-score, the deviation from the mean (bp) and the realized volatility (bp) at every print, by numpy."""
    window, volatility_window = config["window"], config["volatility_window"]
    windows = sliding_window_view(prices, window)
    mean = np.full(prices.size, np.nan)
    std = np.full(prices.size, np.nan)
    mean[window - 1 :], std[window - 1 :] = windows.mean(axis=1), windows.std(axis=1)
    returns = prices[1:] / prices[:-1] - 1.0
    volatility = np.full(prices.size, np.nan)
    # At print i: the returns into prints i - volatility_window + 1 .. i.
    volatility[volatility_window:] = np.sqrt(np.mean(sliding_window_view(returns, volatility_window) ** 2, axis=1)) * 10_000
    return {"z": (prices - mean) / std, "deviation_bps": np.abs(prices - mean) / mean * 10_000, "volatility_bps": volatility}


def _check_variant(variant_file: str, catalog: Path, cut: str, tmp_path: Path, fills: int, fingerprint: str) -> RunResult:
    """
    Run the family checks on a shipped variant and return its full run: no lookahead at ``cut``; it trades, ends
    flat with no working order, and its fills are the pinned ones.

    The full run is the one ``assert_no_lookahead`` makes, read back from its folder (one backtest fewer).
    """
    variant = load_variant(VARIANTS / variant_file)

    assert_no_lookahead(variant, catalog, cut, tmp_path)

    run = load_run(tmp_path / "full")
    assert_closed_out(run)
    assert run.fills.height == fills
    assert fills_fingerprint(run.fills) == fingerprint
    return run


def _assert_long_only(fills: pl.DataFrame) -> None:
    """Assert the first fill buys and sales never exceed what was bought before them (spot cannot sell short)."""
    ordered = fills.sort("ts_event", maintain_order=True)
    position = ordered.select(pl.when(pl.col("order_side") == "BUY").then(pl.col("last_qty")).otherwise(-pl.col("last_qty")).cum_sum())
    assert ordered["order_side"][0] == "BUY"
    assert position.to_series().min() >= -1e-12


def test_btc_spot_variant_and_its_decisions_against_numpy(sample_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(VARIANTS / "mean_reversion_btc_binance_spot.yaml")
    config = variant.strategy.config
    prints = trade_prices(sample_catalog, [str(BTCUSDT)])
    times, prices = prints["ts"].to_numpy(), prints["price"].to_numpy()
    signals = _signals(prices, config)
    z = signals["z"]
    enters = (z < -config["entry_z"]) & (signals["deviation_bps"] >= config["min_deviation_bps"]) & (signals["volatility_bps"] <= config["max_volatility_bps"])

    run = _check_variant("mean_reversion_btc_binance_spot.yaml", sample_catalog, "2024-08-08T23:58:00Z", tmp_path, 15, "e2c9a08a92d24ce9")

    _assert_long_only(run.fills)
    orders = run.orders.sort("ts_init", maintain_order=True)
    order_times = [int(ts) for ts in orders["ts_init"]]
    assert orders["side"].to_list()[:2] == ["BUY", "SELL"]
    # The first entry is the first print the numpy signal allows (both windows full: NaN compares False).
    assert order_times[0] == times[np.argmax(enters)]
    # The first exit is the first print from the entry's fill on at or above -exit_z, or the max_holding_events-th.
    filled_at = run.fills.sort("ts_event")["ts_event"][0]
    held = np.flatnonzero(times >= filled_at)
    reverted = held[z[held] >= -config["exit_z"]]
    exit_index = min(reverted[0], held[config["max_holding_events"] - 1])
    assert order_times[1] == times[exit_index]
    # Every entry was sent at a print the numpy signal allows (spot is long-only: entries are the buys).
    for ts in orders.filter(pl.col("side") == "BUY")["ts_init"]:
        assert enters[times == int(ts)].any()


def test_eth_spot_variant(sample_catalog: Path, tmp_path: Path) -> None:
    run = _check_variant("mean_reversion_eth_binance_spot.yaml", sample_catalog, "2024-08-08T23:58:00Z", tmp_path, 20, "900809bf4aa7ff96")

    _assert_long_only(run.fills)


def _perpetual_catalog(path: Path, bars: Path, funding: Path, symbol: str) -> Path:
    instrument = binance_usdm_instruments(USDM_EXCHANGE_INFO, {symbol})[symbol]
    ingest_ohlcv_bars([bars], path, instrument)
    ingest_funding_rates([funding], path, instrument)
    return path


@pytest.fixture(scope="module")
def btc_perpetual_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped day of real BTCUSDT-PERP 1-minute bars (2025-05-05) with its funding rates."""
    folder = SAMPLE_DIR / "bars"
    path = tmp_path_factory.mktemp("btc_perpetual") / "catalog"
    return _perpetual_catalog(path, folder / "BTC_USDT_USDT-1m-futures.feather", folder / "BTC_USDT_USDT-8h-funding_rate.feather", "BTCUSDT")


@pytest.fixture(scope="module")
def eth_perpetual_day(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same day of real ETHUSDT-PERP 1-minute bars, cut from ../shared/data/real, with its funding rates."""
    folder = shared_data_dir / SHARED_PERP_BARS
    cut = tmp_path_factory.mktemp("eth_perpetual_bars") / "ETH_USDT_USDT-1m-futures.feather"  # the name says what it holds
    day = pl.read_ipc(folder / "ETH_USDT_USDT-1m-futures.feather").filter(pl.col("date").dt.date() == pl.date(2025, 5, 5))
    day.write_ipc(cut)
    path = cut.parent.parent / "catalog"
    return _perpetual_catalog(path, cut, folder / "ETH_USDT_USDT-8h-funding_rate.feather", "ETHUSDT")


def _sides_traded(fills: pl.DataFrame) -> set[str]:
    """Return the sides positions were opened on: a fill that starts from flat opens one."""
    signed = fills.sort("ts_event").select(
        "order_side", pl.when(pl.col("order_side") == "BUY").then(pl.col("last_qty")).otherwise(-pl.col("last_qty")).cum_sum().alias("after"),
    )
    before = signed["after"].shift(1, fill_value=0.0)
    return set(signed.filter(before.abs() < 1e-12)["order_side"])


def test_btc_perpetual_variant(btc_perpetual_day: Path, tmp_path: Path) -> None:
    run = _check_variant("mean_reversion_btc_binance_usdm_bars.yaml", btc_perpetual_day, "2025-05-05T14:00:00Z", tmp_path, 28, "daae21480de4fe54")

    assert _sides_traded(run.fills) == {"BUY", "SELL"}  # a perpetual is traded long and short


@pytest.mark.requires_shared
def test_eth_perpetual_variant(eth_perpetual_day: Path, tmp_path: Path) -> None:
    run = _check_variant("mean_reversion_eth_binance_usdm_bars.yaml", eth_perpetual_day, "2025-05-05T14:00:00Z", tmp_path, 36, "cad24b679db6242a")

    assert _sides_traded(run.fills) == {"BUY", "SELL"}


@pytest.fixture(scope="module")
def perpetual_month(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Thirty days and more of real BTCUSDT-PERP and ETHUSDT-PERP 1-minute bars and funding rates (May 2025)."""
    folder = shared_data_dir / SHARED_PERP_BARS
    path = tmp_path_factory.mktemp("perpetual_month") / "catalog"
    for symbol, asset in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH")):
        _perpetual_catalog(path, folder / f"{asset}_USDT_USDT-1m-futures.feather", folder / f"{asset}_USDT_USDT-8h-funding_rate.feather", symbol)
    return path


@pytest.mark.requires_shared
@pytest.mark.parametrize(
    ("variant_file", "fills", "fingerprint"),
    [
        ("mean_reversion_btc_binance_usdm_bars.yaml", 100, "622849bc79c0fc7b"),
        ("mean_reversion_eth_binance_usdm_bars.yaml", 60, "b19e85c0830f30ca"),
    ],
)
def test_perpetual_variant_over_three_days(variant_file: str, fills: int, fingerprint: str, perpetual_month: Path, tmp_path: Path) -> None:
    variant = load_variant(VARIANTS / variant_file)

    run = run_backtest(
        variant, perpetual_month, run_dir=tmp_path / "run", start="2025-05-10T00:00:00Z", end="2025-05-13T00:00:00Z",
        log_to_mlflow=False, tearsheet=False,
    )

    assert_closed_out(run)
    assert _sides_traded(run.fills) == {"BUY", "SELL"}
    assert run.fills.height == fills
    assert fills_fingerprint(run.fills) == fingerprint
    # Funding is settled on the positions held across 8-hour settlements.
    assert run.summary.funding != 0.0


@pytest.mark.slow
@pytest.mark.requires_redis
def test_emulator_session_closes_out_the_position_it_holds_at_stop(redis_service: None, sample_catalog: Path, tmp_path: Path) -> None:
    # The BTC spot variant made quick to warm up; on 23:54:15-23:56:15 it buys, sells, and buys at 23:55:15 a
    # position the signal holds to the end (the same window backtested: the last sale is the close-on-stop).
    document = yaml.safe_load((VARIANTS / "mean_reversion_btc_binance_spot.yaml").read_text())
    document["strategy"]["config"] |= {"window": 600, "entry_z": 1.0, "min_deviation_bps": 0.0, "max_holding_events": 10**6, "volatility_window": 50}
    variant_path = tmp_path / "mean_reversion_session.yaml"
    variant_path.write_text(yaml.safe_dump(document))
    environment = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    environment["emulator"] |= {"catalog": str(sample_catalog), "start": "2024-08-08T23:54:15Z", "end": "2024-08-08T23:56:15Z", "speed": 10.0}
    env_path = tmp_path / "emulator.yaml"
    env_path.write_text(yaml.safe_dump(environment))

    run_live_session(variant_path, env_path, session_dir=tmp_path / "session")

    session = json.loads((tmp_path / "session" / SESSION_JSON).read_text())
    assert session["status"] == "completed"
    assert session["after_stop"]["flat"] is True
    fills = read_fills(tmp_path / "session" / FILLS_PARQUET).sort("ts_event", maintain_order=True)
    orders = fills.unique("client_order_id", keep="first", maintain_order=True)
    assert orders["order_side"].to_list() == ["BUY", "SELL", "BUY", "SELL"]
    bought, sold = (fills.filter(pl.col("order_side") == side)["last_qty"].sum() for side in ("BUY", "SELL"))
    # Everything bought was sold but the commission Binance took in BTC, less than one 0.00001 step per buy.
    assert 0 <= bought - sold < 2 * 0.00001
