"""The backtest runner on the real sample: run folder, determinism, MLflow, bad input."""

import json
from pathlib import Path

import polars as pl
import pytest
from mlflow import MlflowClient

from keel.backtests.result import load_run
from keel.backtests.runner import BacktestInputError
from keel.backtests.runner import run_backtest
from keel.fills import read_fills
from keel.pnl import TOTAL
from keel.settings import CONFIGS_DIR
from keel.variant import Variant
from keel.variant import load_variant

RUN_FILES = (
    "variant.yaml",
    "venues.yaml",
    "fills.parquet",
    "orders.parquet",
    "positions.parquet",
    "account.parquet",
    "equity.parquet",
    "funding.parquet",
    "summary.json",
    "tearsheet.html",
)


@pytest.fixture
def variant() -> Variant:
    return load_variant(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml")


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KEEL_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


def test_run_folder_holds_every_artifact_and_agrees_with_itself(variant: Variant, sample_catalog: Path, keel_home: Path) -> None:
    outcome = run_backtest(variant, sample_catalog, log_to_mlflow=False)

    assert outcome.run_dir.parent == keel_home / "runs"
    for name in RUN_FILES:
        assert (outcome.run_dir / name).is_file(), name
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    fills = read_fills(outcome.run_dir / "fills.parquet")
    assert summary["fills"] == fills.height == outcome.fills.height > 0
    assert summary["pnl_net"] == pytest.approx(summary["pnl_gross"] - summary["fees"])
    # The last point of the equity curve is the net P&L, per instrument and in total.
    equity = pl.read_parquet(outcome.run_dir / "equity.parquet")
    total = equity.filter(pl.col("instrument_id") == TOTAL)
    assert total.height > 0 and total["pnl"][-1] == pytest.approx(summary["pnl_net"])
    assert equity.filter(pl.col("instrument_id") == "BTCUSDT.BINANCE")["pnl"][-1] == pytest.approx(summary["by_instrument"]["BTCUSDT.BINANCE"]["net"])
    # Fees are the instrument's 0.1% taker rate on every fill.
    assert summary["fees"] == pytest.approx(0.001 * summary["traded_notional"], rel=1e-6)
    assert load_variant(outcome.run_dir / "variant.yaml") == variant
    # The typed result is what the folder holds: a later stage may use either.
    loaded = load_run(outcome.run_dir)
    assert (loaded.summary, loaded.variant, loaded.venues) == (outcome.summary, outcome.variant, outcome.venues)
    for name in ("fills", "orders", "positions", "equity", "funding"):
        assert getattr(loaded, name).equals(getattr(outcome, name)), name


def test_same_config_twice_gives_identical_fills(variant: Variant, sample_catalog: Path, tmp_path: Path) -> None:
    first = run_backtest(variant, sample_catalog, run_dir=tmp_path / "a", log_to_mlflow=False, tearsheet=False)
    second = run_backtest(variant, sample_catalog, run_dir=tmp_path / "b", log_to_mlflow=False, tearsheet=False)

    assert first.fills.height > 0
    assert first.fills.equals(second.fills)


def test_window_limits_the_data(variant: Variant, sample_catalog: Path, tmp_path: Path) -> None:
    outcome = run_backtest(
        variant,
        sample_catalog,
        run_dir=tmp_path / "run",
        start="2024-08-08T23:56:00Z",
        end="2024-08-08T23:58:00Z",
        log_to_mlflow=False,
        tearsheet=False,
    )

    first_fill, last_fill = outcome.fills["ts_event"].min(), outcome.fills["ts_event"].max()
    assert first_fill >= 1_723_161_360_000_000_000  # 23:56:00
    assert last_fill <= 1_723_161_480_000_000_000  # 23:58:00


def test_run_is_recorded_in_mlflow(variant: Variant, sample_catalog: Path, keel_home: Path) -> None:
    outcome = run_backtest(variant, sample_catalog, log_to_mlflow=True, tearsheet=False)

    client = MlflowClient(tracking_uri=f"sqlite:///{keel_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("EMACross")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["strategy.fast_period"] == "50"
    assert run.data.metrics["fills"] == outcome.summary.fills
    assert run.data.tags["keel.variant"] == variant.name
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"fills.parquet", "summary.json", "variant.yaml"} <= artifacts


def test_unknown_instrument_is_a_clear_error(variant: Variant, sample_catalog: Path, tmp_path: Path) -> None:
    other = variant.with_config("solusdt", {"instrument_id": "SOLUSDT.BINANCE"})

    with pytest.raises(BacktestInputError, match="no instrument SOLUSDT.BINANCE"):
        run_backtest(other, sample_catalog, run_dir=tmp_path / "run", log_to_mlflow=False)
    assert not (tmp_path / "run").exists()
