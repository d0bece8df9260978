"""A run logged straight into the SQLite store reads back through MLflow exactly like one MLflow logged itself."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.db.utils import _get_latest_schema_revision

from keel.backtests.tracking import KNOWN_SCHEMA_REVISION
from keel.backtests.tracking import log_run
from keel.backtests.venues import venue_model_for
from keel.settings import CONFIGS_DIR
from keel.variant import Variant
from keel.variant import load_variant

SUMMARY = {"pnl_net": -0.17, "fees": 0.155, "fills": 14, "round_trips": 7, "win_rate": None, "trip_t_stat": float("nan"), "currency": "USDT"}


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


def test_the_direct_writer_was_checked_against_the_installed_mlflow_schema() -> None:
    # Fails after an mlflow upgrade: re-check the rows _insert_run writes against the new SqlAlchemyStore, then bump.
    assert _get_latest_schema_revision() == KNOWN_SCHEMA_REVISION


def test_direct_run_reads_back_like_an_mlflow_run(keel_home: Path, variant: Variant, run_dir: Path) -> None:
    venue = venue_model_for("binance_spot")
    # No store yet: MlflowClient creates it (and logs the first run); the second run goes in directly.
    by_mlflow = log_run(run_dir, variant, venue, SUMMARY, tags={"keel.trial": "1"})
    direct = log_run(run_dir, variant, venue, SUMMARY, tags={"keel.trial": "1"})

    client = MlflowClient(tracking_uri=f"sqlite:///{keel_home / 'mlflow.db'}")
    expected, written = client.get_run(by_mlflow), client.get_run(direct)
    assert written.info.status == expected.info.status == "FINISHED"
    assert written.info.run_name == expected.info.run_name == variant.name
    assert written.info.experiment_id == expected.info.experiment_id
    assert written.info.end_time >= written.info.start_time
    assert written.data.params == expected.data.params
    assert written.data.tags == expected.data.tags
    assert written.data.metrics.keys() == expected.data.metrics.keys() == {"pnl_net", "fees", "fills", "round_trips", "trip_t_stat"}
    assert written.data.metrics["pnl_net"] == expected.data.metrics["pnl_net"] == -0.17
    assert [metric.step for metric in client.get_metric_history(direct, "fills")] == [0]
    artifacts = {run_id: sorted(item.path for item in client.list_artifacts(run_id)) for run_id in (by_mlflow, direct)}
    assert artifacts[direct] == artifacts[by_mlflow] == ["nested", "summary.json"]
    assert Path(client.download_artifacts(direct, "nested/tearsheet.html")).read_text() == "<html></html>"
    found = client.search_runs([written.info.experiment_id], filter_string="params.`strategy.fast_period` = '50'")
    assert {run.info.run_id for run in found} == {by_mlflow, direct}


def test_new_experiment_goes_in_directly_with_keel_artifact_root(keel_home: Path, variant: Variant, run_dir: Path) -> None:
    venue = venue_model_for("binance_spot")
    log_run(run_dir, variant, venue, SUMMARY)

    run_id = log_run(run_dir, variant, venue, SUMMARY, experiment="sweep-new")

    client = MlflowClient(tracking_uri=f"sqlite:///{keel_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep-new")
    assert experiment.artifact_location == (keel_home / "mlartifacts").as_uri()
    assert client.get_run(run_id).info.experiment_id == experiment.experiment_id
    assert (keel_home / "mlartifacts" / run_id / "artifacts" / "summary.json").is_file()


def test_store_at_another_schema_revision_is_left_to_mlflow(
    keel_home: Path, variant: Variant, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venue = venue_model_for("binance_spot")
    log_run(run_dir, variant, venue, SUMMARY)
    # A copy under another home: MLflow caches its store per URI and process, and would not look at the copy's revision.
    other_home = tmp_path / "other"
    other_home.mkdir()
    shutil.copyfile(keel_home / "mlflow.db", other_home / "mlflow.db")
    with sqlite3.connect(other_home / "mlflow.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'not-a-revision'")
    monkeypatch.setenv("KEEL_HOME", str(other_home))

    # Written directly, the run would land in a schema Keel does not know; MLflow refuses the store instead.
    with pytest.raises(MlflowException, match="not-a-revision"):
        log_run(run_dir, variant, venue, SUMMARY)
