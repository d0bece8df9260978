"""The gate against a fee mismatch and a slow venue: each session is rejected for its own fault only.

Two real sessions (the live node against the emulator, ~1.5 min each) are recorded per module: one whose venue
charged more than the listed fee (``extra_fee_bps``), one whose venue answers every order late
(``order_latency_ms``). Everything else the strategy traded is as in a faithful session, so only the checks of
that fault may fail. (Injected slippage and dropped fills are in test_gate.py.)
"""

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.fills import read_fills
from keel.live.session import EmulatorOverrides
from keel.live.session import run_live_session
from keel.live.session_layout import CATALOG_DIR
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.settings import CONFIGS_DIR
from keel.validation.checks import per_instrument
from keel.validation.gate import run_gate

VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
BTCUSDT = "BTCUSDT.BINANCE"
SPEED = 3.0  # the 6-minute sample in 2 min; much faster, a busy 2-core machine lags the replay and decisions drift
EXTRA_FEE_BPS = 10.0
# The session replays the sample up to here: the variant buys, sells and buys again, decisions tens of seconds
# apart, and closes out on stop. From 23:57:52 its EMAs cross back and forth within a second, where a loaded
# machine's live node can act a few hundred ms late and skip a round trip the backtest takes; that is the
# faithful gate's concern (test_gate.py) and would hide what this module tests.
WINDOW_END = "2024-08-08T23:57:40Z"
# configs/gate.yaml max_pnl_diff_bps_of_backtest_notional: how far a faithful session's fees may differ.
FAITHFUL_FEE_TOLERANCE_BPS = 2.0
FEE_CHECKS = {
    "|fees P&L difference| (bps of backtest notional)",
    "|net P&L difference| (bps of backtest notional)",
}
# What the strategy traded (prices, quantities, which orders) is untouched by a fee mismatch.
TRADED_CHECKS = {
    "live orders",
    "match ratio",
    "unmatched backtest orders",
    "unmatched live orders",
    "matched orders of another side",
    "matched orders of another order type",
    "matched orders of another liquidity side",
    per_instrument("largest |quantity difference| of a matched order (size steps)", BTCUSDT),
    "largest |fill count difference| of a matched order",
    per_instrument("median price deviation (bps, + = live worse)", BTCUSDT),
    per_instrument("p95 |price deviation| (bps)", BTCUSDT),
    "|gross P&L difference| (bps of backtest notional)",
}


# The venue acts on every order this late; configs/gate.yaml max_median_round_trip_ms is 250.
ORDER_LATENCY_MS = 400.0
LATENCY_CHECK = "median order round trip (ms)"


def _faulted_session(sample_catalog: Path, folder: Path, name: str, overrides: EmulatorOverrides) -> Path:
    environment = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    environment["emulator"]["end"] = WINDOW_END
    env_path = folder / f"{name}.yaml"
    env_path.write_text(yaml.safe_dump(environment))
    result = run_live_session(VARIANT, env_path, session_dir=folder / name, overrides=overrides)
    assert result.fills >= 4  # buy, sell, buy, close-on-stop sell
    return result.session_dir


@pytest.fixture(scope="module")
def fee_mismatch_session(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    overrides = EmulatorOverrides(catalog=sample_catalog, speed=SPEED, extra_fee_bps=EXTRA_FEE_BPS)
    return _faulted_session(sample_catalog, tmp_path_factory.mktemp("gate_faults"), "extra_fee", overrides)


@pytest.fixture(scope="module")
def slow_venue_session(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    overrides = EmulatorOverrides(catalog=sample_catalog, speed=SPEED, order_latency_ms=ORDER_LATENCY_MS)
    return _faulted_session(sample_catalog, tmp_path_factory.mktemp("gate_faults"), "slow_venue", overrides)


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.slow
@pytest.mark.requires_redis
def test_fee_mismatch_session_records_the_knob_and_pays_the_listed_rate_plus_the_extra(
    redis_service: None, fee_mismatch_session: Path
) -> None:
    session = json.loads((fee_mismatch_session / SESSION_JSON).read_text())
    assert session["emulator"]["extra_fee_bps"] == EXTRA_FEE_BPS
    instrument = ParquetDataCatalog(str(fee_mismatch_session / CATALOG_DIR)).instruments(instrument_ids=[BTCUSDT])[0]
    assert instrument.id == InstrumentId.from_str(BTCUSDT)
    rates = {"MAKER": float(instrument.maker_fee), "TAKER": float(instrument.taker_fee)}
    fills = read_fills(fee_mismatch_session / FILLS_PARQUET)

    assert fills.height > 0
    for fill in fills.iter_rows(named=True):
        rate = rates[fill["liquidity_side"]] + EXTRA_FEE_BPS / 10_000
        # Binance spot: a buy pays in the bought asset (base), a sell in the quote; rounded to 1e-8.
        if fill["order_side"] == "BUY":
            expected, currency = fill["last_qty"] * rate, "BTC"
        else:
            expected, currency = fill["last_qty"] * fill["last_px"] * rate, "USDT"
        assert fill["commission_currency"] == currency
        assert fill["commission"] == pytest.approx(expected, abs=0.6e-8)


@pytest.mark.slow
@pytest.mark.requires_redis
def test_gate_rejects_the_fee_mismatch_for_fees_and_net_only(
    redis_service: None, fee_mismatch_session: Path, keel_home: Path, tmp_path: Path
) -> None:
    report = run_gate(VARIANT, fee_mismatch_session, out_dir=tmp_path / "gate", log_to_mlflow=False)

    assert not report.promoted
    assert len(report.checks) > 10
    failed = {check.name for check in report.checks if not check.passed}
    assert failed == FEE_CHECKS
    assert TRADED_CHECKS <= {check.name for check in report.checks if check.passed}

    # The extra fee the venue charged, from the live fills alone, in bp of the backtest's notional.
    fills = read_fills(fee_mismatch_session / FILLS_PARQUET)
    live_notional = float(fills.select((pl.col("last_qty") * pl.col("last_px")).sum()).item())
    backtest_notional = report.pnl["backtest"]["notional"]
    extra_bps = live_notional * EXTRA_FEE_BPS / backtest_notional
    fees_difference_bps = (report.pnl["live"]["fees"] - report.pnl["backtest"]["fees"]) / backtest_notional * 10_000
    # What is left over is the difference a faithful session has, which the gate allows.
    assert fees_difference_bps == pytest.approx(extra_bps, abs=FAITHFUL_FEE_TOLERANCE_BPS)
    assert fees_difference_bps == pytest.approx(EXTRA_FEE_BPS, abs=FAITHFUL_FEE_TOLERANCE_BPS)


@pytest.mark.slow
@pytest.mark.requires_redis
def test_gate_rejects_a_slow_venue_for_its_round_trip(redis_service: None, slow_venue_session: Path, keel_home: Path, tmp_path: Path) -> None:
    orders = pl.read_parquet(slow_venue_session / "orders.parquet")
    submitted = orders.filter(pl.col("event_type") == "OrderSubmitted").group_by("client_order_id").agg(pl.col("ts_init").min())
    answered = orders.filter(pl.col("event_type").is_in(["OrderAccepted", "OrderRejected"])).group_by("client_order_id").agg(pl.col("ts_init").min().alias("answered"))
    round_trips_ms = submitted.join(answered, on="client_order_id").select((pl.col("answered") - pl.col("ts_init")) / 1e6).to_series()

    report = run_gate(VARIANT, slow_venue_session, out_dir=tmp_path / "gate", log_to_mlflow=False)

    # The venue answered every order after the injected delay (the node's clock: at least that long).
    assert round_trips_ms.len() >= 4 and round_trips_ms.min() >= ORDER_LATENCY_MS
    assert not report.promoted
    assert len(report.checks) > 10
    latency = next(check for check in report.checks if check.name == LATENCY_CHECK)
    assert not latency.passed and latency.value == pytest.approx(float(round_trips_ms.median()), rel=0.01)
    # The backtest over the session replayed that latency, so what was traded still agrees.
    assert TRADED_CHECKS - {"|gross P&L difference| (bps of backtest notional)"} <= {check.name for check in report.checks if check.passed}
