"""The gate end to end: sessions of the real nautilus adapter against the emulator, faithful and faulted."""

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from keel.cli import app
from keel.live.session import EmulatorOverrides
from keel.live.session import run_live_session
from keel.settings import CONFIGS_DIR
from keel.validation.checks import per_instrument
from keel.validation.gate import GateInputError
from keel.validation.gate import run_gate

VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
SPEED = 3.0  # the 6-minute sample in 2 min; much faster, a busy 2-core machine lags the replay and decisions drift


def _session(home: Path, catalog: Path, name: str, **faults: float) -> Path:
    result = run_live_session(
        VARIANT,
        "emulator",
        session_dir=home / name,
        overrides=EmulatorOverrides(catalog=catalog, speed=SPEED, **faults),
    )
    assert result.fills > 0
    return result.session_dir


@pytest.fixture(scope="module")
def sessions(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("gate_sessions")
    return {
        "faithful": _session(home, sample_catalog, "faithful"),
        "slippage": _session(home, sample_catalog, "slippage", slippage_bps=5.0),
        "dropped": _session(home, sample_catalog, "dropped", drop_fill_every=3),
    }


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.slow
@pytest.mark.requires_redis
def test_faithful_session_is_promoted(redis_service: None, sessions: dict[str, Path], keel_home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gate", str(VARIANT), str(sessions["faithful"]), "--out", str(tmp_path / "gate"), "--no-mlflow"])

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "gate" / "gate_report.json").read_text())
    assert report["verdict"] == "promote"
    assert report["matched"] > 0
    assert all(check["passed"] for check in report["checks"])
    assert (tmp_path / "gate" / "backtest" / "fills.parquet").is_file()


@pytest.mark.slow
@pytest.mark.requires_redis
def test_gate_backtest_replays_the_measured_order_round_trip(redis_service: None, sessions: dict[str, Path], keel_home: Path, tmp_path: Path) -> None:
    orders = pl.read_parquet(sessions["faithful"] / "orders.parquet")
    submitted = orders.filter(pl.col("event_type") == "OrderSubmitted").group_by("client_order_id").agg(pl.col("ts_init").min())
    answered = orders.filter(pl.col("event_type") == "OrderAccepted").group_by("client_order_id").agg(pl.col("ts_init").min())
    round_trips = submitted.join(answered, on="client_order_id", suffix="_answer").select((pl.col("ts_init_answer") - pl.col("ts_init")) / 1e6)

    report = run_gate(VARIANT, sessions["faithful"], out_dir=tmp_path / "gate", log_to_mlflow=False)

    assert report.latency_source == "measured"
    assert report.backtest_latency_ms == pytest.approx(float(round_trips.to_series().median()))
    venue = yaml.safe_load((tmp_path / "gate" / "backtest" / "venues.yaml").read_text())["BINANCE"]
    assert venue["latency"]["base_ms"] == pytest.approx(report.backtest_latency_ms)


@pytest.mark.slow
@pytest.mark.requires_redis
def test_session_with_slippage_is_rejected_for_price_and_pnl(redis_service: None, sessions: dict[str, Path], keel_home: Path, tmp_path: Path) -> None:
    report = run_gate(VARIANT, sessions["slippage"], out_dir=tmp_path / "gate", log_to_mlflow=False)

    assert not report.promoted
    failed = {check.name for check in report.checks if not check.passed}
    assert per_instrument("median price deviation (bps, + = live worse)", "BTCUSDT.BINANCE") in failed
    assert "|net P&L difference| (bps of backtest notional)" in failed
    # The emulator made every fill 5 bp worse; the gate sees at least that (the book also moved a little).
    assert report.matching.pairs["price_dev_bps"].median() > 4.0


@pytest.mark.slow
@pytest.mark.requires_redis
def test_session_with_dropped_fills_is_rejected_for_the_orders_the_venue_expired(
    redis_service: None, sessions: dict[str, Path], keel_home: Path, tmp_path: Path
) -> None:
    expired = pl.read_parquet(sessions["dropped"] / "orders.parquet").filter(pl.col("event_type") == "OrderExpired")["client_order_id"].n_unique()

    result = CliRunner().invoke(app, ["gate", str(VARIANT), str(sessions["dropped"]), "--out", str(tmp_path / "gate"), "--no-mlflow"])

    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "gate" / "gate_report.json").read_text())
    assert report["verdict"] == "reject"
    # The strategy re-sends an expired order, which can heal the fill sequence: matching alone may pass.
    refused = next(check for check in report["checks"] if check["name"].startswith("live orders the venue expired"))
    assert expired > 0 and refused["value"] == expired and not refused["passed"]


@pytest.mark.slow
@pytest.mark.requires_redis
def test_other_variant_than_the_session_ran_is_rejected(redis_service: None, sessions: dict[str, Path], keel_home: Path, tmp_path: Path) -> None:
    document = yaml.safe_load(VARIANT.read_text())
    document["strategy"]["config"]["fast_period"] = 30
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(document))

    report = run_gate(other, sessions["faithful"], out_dir=tmp_path / "gate", log_to_mlflow=False)

    assert not report.promoted
    assert "not the one the session ran" in report.reasons[0]


def test_missing_session_is_bad_input(keel_home: Path, tmp_path: Path) -> None:
    with pytest.raises(GateInputError, match="session.json"):
        run_gate(VARIANT, tmp_path / "no-session", log_to_mlflow=False)

    result = CliRunner().invoke(app, ["gate", str(VARIANT), str(tmp_path / "no-session")])
    assert result.exit_code == 2


def test_unknown_threshold_is_bad_input(keel_home: Path, tmp_path: Path) -> None:
    thresholds = tmp_path / "gate.yaml"
    thresholds.write_text("max_slippage: 3\n")

    with pytest.raises(GateInputError, match="gate.yaml"):
        run_gate(VARIANT, tmp_path, thresholds_path=thresholds, log_to_mlflow=False)
