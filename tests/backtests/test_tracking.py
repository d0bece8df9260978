"""A run logged straight into the SQLite store reads back through MLflow exactly like one MLflow logged itself."""

import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.db.utils import _get_latest_schema_revision

from keel.backtests.result import RunResult
from keel.backtests.result import RunSummary
from keel.backtests.tracking import KNOWN_SCHEMA_REVISION
from keel.backtests.tracking import log_run
from keel.backtests.venues import venue_model_for
from keel.fills import fills_frame
from keel.pnl import PnlComponents
from keel.settings import CONFIGS_DIR
from keel.variant import Variant
from keel.variant import load_variant

BTCUSDT = "BTCUSDT.BINANCE"


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KEEL_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def variant() -> Variant:
    return load_variant(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "nested").mkdir(parents=True)
    (folder / "summary.json").write_text('{"pnl_net": -0.17}')
    (folder / "nested" / "tearsheet.html").write_text("<html></html>")
    return folder


@pytest.fixture
def run(variant: Variant, run_dir: Path) -> RunResult:
    """A run's result as the runner returns it; its numbers are made up (a NaN t-stat and a missing win rate included)."""
    pnl = PnlComponents(currency="USDT", gross=-0.015, fees=0.155, rebates=0.0, funding=0.0, net=-0.17, notional=155.0, mark_price=61_000.0, fills=14)
    summary = RunSummary(
        variant=variant.name, instrument_ids=[BTCUSDT], venues=variant.venues, run_config_id="x", start="2024-08-08T23:54:14Z",
        end="2024-08-09T00:00:00Z", currency="USDT", pnl_gross=-0.015, fees=0.155, rebates=0.0, funding=0.0, pnl_net=-0.17,
        max_drawdown=0.17, orders=14, fills=14, round_trips=7, win_rate=None, avg_trip_pnl=-0.024, trip_t_stat=float("nan"),
        traded_notional=155.0, positions=7, open_orders_at_end=0, open_positions_at_end=0, elapsed_secs=1.9, simulated_secs=346.0,
        by_instrument={BTCUSDT: pnl},
    )
    empty = pl.DataFrame()
    return RunResult(
        run_dir=run_dir, variant=variant, venues={"BINANCE": venue_model_for("binance_spot")}, summary=summary,
        fills=fills_frame([]), orders=empty, positions=empty, equity=empty, funding=empty,
    )


def test_the_direct_writer_was_checked_against_the_installed_mlflow_schema() -> None:
    # Fails after an mlflow upgrade: re-check the rows _insert_run writes against the new SqlAlchemyStore, then bump.
    assert _get_latest_schema_revision() == KNOWN_SCHEMA_REVISION


def test_direct_run_reads_back_like_an_mlflow_run(keel_home: Path, variant: Variant, run: RunResult) -> None:
    # No store yet: MlflowClient creates it (and logs the first run); the second run goes in directly.
    by_mlflow = log_run(run, tags={"keel.trial": "1"})
    direct = log_run(run, tags={"keel.trial": "1"})

    client = MlflowClient(tracking_uri=f"sqlite:///{keel_home / 'mlflow.db'}")
    expected, written = client.get_run(by_mlflow), client.get_run(direct)
    assert written.info.status == expected.info.status == "FINISHED"
    assert written.info.run_name == expected.info.run_name == variant.name
    assert written.info.experiment_id == expected.info.experiment_id
    assert written.info.end_time >= written.info.start_time
    assert written.data.params == expected.data.params
    assert written.data.tags == expected.data.tags
    assert written.data.metrics.keys() == expected.data.metrics.keys() == set(run.summary.metrics()) | {f"pnl_net.{BTCUSDT}"}
    assert "win_rate" not in written.data.metrics and "trip_t_stat" in written.data.metrics
    assert written.data.metrics["pnl_net"] == expected.data.metrics["pnl_net"] == -0.17
    assert [metric.step for metric in client.get_metric_history(direct, "fills")] == [0]
    artifacts = {run_id: sorted(item.path for item in client.list_artifacts(run_id)) for run_id in (by_mlflow, direct)}
    assert artifacts[direct] == artifacts[by_mlflow] == ["nested", "summary.json"]
    assert Path(client.download_artifacts(direct, "nested/tearsheet.html")).read_text() == "<html></html>"
    found = client.search_runs([written.info.experiment_id], filter_string="params.`strategy.fast_period` = '50'")
    assert {run.info.run_id for run in found} == {by_mlflow, direct}


def test_new_experiment_goes_in_directly_with_keel_artifact_root(keel_home: Path, variant: Variant, run: RunResult) -> None:
    log_run(run)

    run_id = log_run(run, experiment="sweep-new")

    client = MlflowClient(tracking_uri=f"sqlite:///{keel_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep-new")
    assert experiment.artifact_location == (keel_home / "mlartifacts").as_uri()
    assert client.get_run(run_id).info.experiment_id == experiment.experiment_id
    assert (keel_home / "mlartifacts" / run_id / "artifacts" / "summary.json").is_file()


def test_store_at_another_schema_revision_is_left_to_mlflow(
    keel_home: Path, run: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_run(run)
    # A copy under another home: MLflow caches its store per URI and process, and would not look at the copy's revision.
    other_home = tmp_path / "other"
    other_home.mkdir()
    shutil.copyfile(keel_home / "mlflow.db", other_home / "mlflow.db")
    with sqlite3.connect(other_home / "mlflow.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'not-a-revision'")
    monkeypatch.setenv("KEEL_HOME", str(other_home))

    # Written directly, the run would land in a schema Keel does not know; MLflow refuses the store instead.
    with pytest.raises(MlflowException, match="not-a-revision"):
        log_run(run)
