"""The trend-following family (EMACross, Breakout): every shipped variant backtests on real data, trades, ends flat,
and its fills are pinned; no decision uses later data; the breakout's first signal equals an independent
computation from the raw bar file; an emulator session closes out on stop.

Spot variants run on the shipped Binance spot sample (trade ticks, quotes, L2). The BTC perpetual variants run on
the shipped day of BTCUSDT-PERP 1-minute bars with its funding rates; the ETH perpetual variants on three days of
ETHUSDT-PERP bars from ``../shared/data/real`` (skipped when absent).
"""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
import yaml
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from nautilus_trader.indicators import DonchianChannel
from typer.testing import CliRunner

from keel.backtests.result import RunResult
from keel.backtests.runner import run_backtest
from keel.data.bars import ingest_ohlcv_bars
from keel.data.funding import ingest_funding_rates
from keel.data.instruments import binance_usdm_instruments
from keel.fills import read_fills
from keel.live import cli as live_cli
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR
from keel.strategies.breakout import BreakoutConfig
from keel.strategies.breakout import RollingRange
from keel.strategies.ema_cross import EMACrossConfig
from keel.variant import Variant
from keel.variant import load_variant

VARIANTS = CONFIGS_DIR / "variants"
BTC_BARS = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-1m-futures.feather"
BTC_FUNDING = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-8h-funding_rate.feather"
ETH_FUTURES = Path("ft_typhonun/user_data/data/binance/futures")
ETH_WINDOW = ("2025-05-05T00:00:00Z", "2025-05-08T00:00:00Z")
MINUTE_NS = 60_000_000_000


def _perpetual_catalog(path: Path, symbol: str, bars: Path, funding: Path) -> Path:
    instrument = binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {symbol})[symbol]
    ingest_ohlcv_bars([bars], path, instrument)
    ingest_funding_rates([funding], path, instrument)
    return path


@pytest.fixture(scope="module")
def btc_perpetual_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's real BTCUSDT-PERP day of 1-minute bars (2025-05-05) with its funding history."""
    return _perpetual_catalog(tmp_path_factory.mktemp("btc_perpetual") / "catalog", "BTCUSDT", BTC_BARS, BTC_FUNDING)


@pytest.fixture(scope="module")
def eth_perpetual_catalog(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six weeks of real ETHUSDT-PERP 1-minute bars and funding rates from ../shared/data/real (runs use three days)."""
    folder = shared_data_dir / ETH_FUTURES
    return _perpetual_catalog(
        tmp_path_factory.mktemp("eth_perpetual") / "catalog",
        "ETHUSDT",
        folder / "ETH_USDT_USDT-1m-futures.feather",
        folder / "ETH_USDT_USDT-8h-funding_rate.feather",
    )


def _run(variant: Variant, catalog: Path, run_dir: Path, window: tuple[str, str] | tuple[None, None] = (None, None)) -> RunResult:
    start, end = window
    return run_backtest(variant, catalog, run_dir=run_dir, start=start, end=end, log_to_mlflow=False, tearsheet=False)


def _assert_trades_and_pinned(run: RunResult, fills: int, fingerprint: str, min_round_trips: int) -> None:
    assert_closed_out(run)
    assert run.summary.round_trips >= min_round_trips
    assert (run.fills.height, fills_fingerprint(run.fills)) == (fills, fingerprint)


# -- spot: trade ticks, long-only ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fills", "fingerprint"),
    [
        ("ema_cross_eth_binance_spot", 20, "701494f5c2f9e648"),
        ("breakout_btc_binance_spot", 31, "c03af2488cfb54ce"),
        ("breakout_eth_binance_spot", 31, "4ca2307b94bd3358"),
    ],
)
def test_spot_variant_trades_long_only_and_is_pinned(name: str, fills: int, fingerprint: str, sample_catalog: Path, tmp_path: Path) -> None:
    run = _run(load_variant(VARIANTS / f"{name}.yaml"), sample_catalog, tmp_path / "run")

    _assert_trades_and_pinned(run, fills, fingerprint, min_round_trips=5)
    # Long-only: the position never goes below zero, so every sell follows the buys that made it.
    signed = pl.when(pl.col("order_side") == "BUY").then(pl.col("last_qty")).otherwise(-pl.col("last_qty"))
    assert run.fills.select(signed.cum_sum().min()).item() >= -1e-12
    assert run.summary.funding == 0


def test_btc_spot_variant_is_the_base_ema_cross_variant() -> None:
    family = load_variant(VARIANTS / "ema_cross_btc_binance_spot.yaml")
    base = load_variant(VARIANTS / "ema_cross_btcusdt.yaml")

    # The same strategy, config and venue as ema_cross_btcusdt.yaml, whose fills tests/strategies/test_ema_cross.py
    # pins, so its fills are those (a second backtest of the sample would only repeat that one).
    assert (family.venues, family.strategy) == (base.venues, base.strategy)


def test_breakout_no_decision_uses_later_ticks(sample_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(VARIANTS / "breakout_btc_binance_spot.yaml")

    assert_no_lookahead(variant, sample_catalog, "2024-08-08T23:56:00Z", tmp_path, end="2024-08-08T23:57:00Z")


# -- perpetuals: 1-minute bars, long and short, funding in the P&L -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "fills", "fingerprint"),
    [
        ("ema_cross_btc_binance_usdm_bars", 15, "42299d34889afd96"),
        ("breakout_btc_binance_usdm_bars", 26, "fdfa984797ee38ff"),
    ],
)
def test_btc_perpetual_variant_goes_long_and_short_and_is_pinned(
    name: str, fills: int, fingerprint: str, btc_perpetual_catalog: Path, tmp_path: Path
) -> None:
    run = _run(load_variant(VARIANTS / f"{name}.yaml"), btc_perpetual_catalog, tmp_path / "run")

    _assert_perpetual(run, fills, fingerprint)


@pytest.mark.requires_shared
@pytest.mark.parametrize(
    ("name", "fills", "fingerprint"),
    [
        ("ema_cross_eth_binance_usdm_bars", 39, "d24ba45ff644104f"),
        ("breakout_eth_binance_usdm_bars", 74, "cf10d445aa3fe6a3"),
    ],
)
def test_eth_perpetual_variant_goes_long_and_short_and_is_pinned(
    name: str, fills: int, fingerprint: str, eth_perpetual_catalog: Path, tmp_path: Path
) -> None:
    run = _run(load_variant(VARIANTS / f"{name}.yaml"), eth_perpetual_catalog, tmp_path / "run", ETH_WINDOW)

    _assert_perpetual(run, fills, fingerprint)


def _assert_perpetual(run: RunResult, fills: int, fingerprint: str) -> None:
    _assert_trades_and_pinned(run, fills, fingerprint, min_round_trips=1)
    # Short as well as long: the running position goes below zero somewhere.
    signed = pl.when(pl.col("order_side") == "BUY").then(pl.col("last_qty")).otherwise(-pl.col("last_qty"))
    positions = run.fills.select(signed.cum_sum().alias("position"))["position"]
    assert positions.min() < 0 < positions.max()
    # Funding is part of the P&L of a position held across a settlement.
    assert run.summary.funding != 0
    assert run.summary.pnl_net == pytest.approx(run.summary.pnl_gross - run.summary.fees + run.summary.rebates + run.summary.funding)


@pytest.mark.parametrize("name", ["ema_cross_btc_binance_usdm_bars", "breakout_btc_binance_usdm_bars"])
def test_no_decision_uses_later_bars(name: str, btc_perpetual_catalog: Path, tmp_path: Path) -> None:
    assert_no_lookahead(load_variant(VARIANTS / f"{name}.yaml"), btc_perpetual_catalog, "2025-05-05T14:00:00Z", tmp_path)


def test_breakout_first_signal_equals_the_raw_bars(btc_perpetual_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(VARIANTS / "breakout_btc_binance_usdm_bars.yaml")
    config = BreakoutConfig.parse(json.dumps(variant.strategy.config))

    run = _run(variant, btc_perpetual_catalog, tmp_path / "run")

    # From the feather file: the first bar, once both the channel and the ATR have their periods of earlier bars,
    # whose close is beyond the highest high or lowest low of the N bars before it. A bar's time is its close.
    period = config.channel_period
    bars = pl.read_ipc(BTC_BARS).select(
        (pl.col("date").dt.epoch("ns") + MINUTE_NS).alias("ts"),
        "close",
        pl.col("high").shift(1).rolling_max(period).alias("upper"),
        pl.col("low").shift(1).rolling_min(period).alias("lower"),
    )
    warm = bars.slice(max(period, config.atr_period))
    first = warm.filter((pl.col("close") > pl.col("upper")) | (pl.col("close") < pl.col("lower"))).row(0, named=True)
    first_order = run.orders.sort("ts_init").row(0, named=True)
    assert int(first_order["ts_init"]) == first["ts"]
    assert first_order["side"] == ("BUY" if first["close"] > first["upper"] else "SELL")


def test_ema_cross_first_signal_equals_numpy_emas_of_the_raw_bars(btc_perpetual_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(VARIANTS / "ema_cross_btc_binance_usdm_bars.yaml")
    config = EMACrossConfig.parse(json.dumps(variant.strategy.config))

    run = _run(variant, btc_perpetual_catalog, tmp_path / "run")

    # From the feather file, with numpy: both EMAs (alpha = 2 / (period + 1), seeded with the first close) of the
    # closes up to and including each bar; the first bar once the slow EMA has its period whose spread leaves the band.
    bars = pl.read_ipc(BTC_BARS)
    closes = bars["close"].to_numpy()
    times = bars["date"].dt.epoch("ns").to_numpy() + MINUTE_NS

    def ema(period: int) -> np.ndarray:
        alpha = 2.0 / (period + 1)
        values = np.empty_like(closes)
        values[0] = closes[0]
        for index in range(1, closes.size):
            values[index] = alpha * closes[index] + (1 - alpha) * values[index - 1]
        return values

    fast, slow = ema(config.fast_period), ema(config.slow_period)
    spread_bps = (fast - slow) / slow * 10_000
    outside = np.flatnonzero(np.abs(spread_bps[config.slow_period - 1 :]) > config.entry_threshold_bps) + config.slow_period - 1
    first = int(outside[0])
    first_order = run.orders.sort("ts_init").row(0, named=True)
    assert int(first_order["ts_init"]) == times[first]
    assert first_order["side"] == ("BUY" if spread_bps[first] > 0 else "SELL")


def test_rolling_range_equals_nautilus_donchian_channel() -> None:
    prices = pl.read_ipc(BTC_BARS).select("high", "low").rows()

    for period in (1, 2, 120):
        rolling, donchian = RollingRange(period), DonchianChannel(period)
        for high, low in prices:
            rolling.update(high, low)
            donchian.update_raw(high, low)
            assert (rolling.upper, rolling.lower, rolling.initialized) == (donchian.upper, donchian.lower, donchian.initialized)


def test_breakout_config_rejects_bars_of_another_instrument() -> None:
    with pytest.raises(ValueError, match="bar_type"):
        BreakoutConfig.parse(
            json.dumps({"instrument_id": "ETHUSDT-PERP.BINANCE", "bar_type": "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"}),
        )


# -- live: close-on-stop in an emulator session ------------------------------------------------------------------


def _live_app() -> typer.Typer:
    app = typer.Typer()
    live_cli.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer in sub-command mode, as in the keel app
        """Unused."""

    return app


@pytest.mark.slow
@pytest.mark.requires_redis
def test_breakout_emulator_session_closes_out_on_stop(redis_service: None, sample_catalog: Path, tmp_path: Path) -> None:
    # 50 s of the sample at ten times speed: the backtest enters at 23:55:02 and would exit at 23:55:09, so the
    # session most likely stops holding a position its close-on-stop must sell.
    environment = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    environment["emulator"] |= {"catalog": str(sample_catalog), "start": "2024-08-08T23:54:15Z", "end": "2024-08-08T23:55:05Z", "speed": 10.0}
    env_path = tmp_path / "emulator.yaml"
    env_path.write_text(yaml.safe_dump(environment))
    session_dir = tmp_path / "session"

    result = CliRunner().invoke(
        _live_app(),
        ["live", str(VARIANTS / "breakout_btc_binance_spot.yaml"), "--env", str(env_path), "--session-dir", str(session_dir)],
    )

    assert result.exit_code == 0, result.output
    session = json.loads((session_dir / SESSION_JSON).read_text())
    assert (session["status"], session["after_stop"]["flat"]) == ("completed", True)
    after_stop = session["after_stop"]["by_instrument"]["BTCUSDT.BINANCE"]
    assert (after_stop["open_orders"], after_stop["open_positions"]) == ([], [])
    fills = read_fills(session_dir / FILLS_PARQUET)
    assert set(fills["order_side"]) == {"BUY", "SELL"}
    assert fills.sort("ts_event")["order_side"][-1] == "SELL"
