"""Record runs in MLflow: parameters from the variant and venue model, metrics from the summary, the run folder.

The tracking store defaults to SQLite in ``$KEEL_HOME`` and artifacts to ``$KEEL_HOME/mlartifacts`` (set
per experiment at creation), so nothing lands in the working directory. Only the variant, the venue model
and computed numbers are sent: no environment, no credentials (MLflow's own usage telemetry is switched off).

Two ways in, one result. Importing mlflow and opening its SQLAlchemy store costs 2.5-4 s per process, more
than the engine takes on the demo sample, so a run goes into an existing SQLite store at the schema revision
Keel was checked against (:data:`KNOWN_SCHEMA_REVISION`) with the standard library: the same rows mlflow's
``SqlAlchemyStore`` writes for ``create_run``, ``log_batch`` and ``set_terminated``, in one transaction, after
the artifacts are copied where mlflow's local artifact repository puts them. Everything else (no store yet,
another revision, another database or artifact scheme) goes through ``MlflowClient``, which creates and
checks the store.
"""

import math
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from keel.backtests.result import RunResult
from keel.settings import keel_home
from keel.settings import mlflow_tracking_uri

# The alembic head of the pinned mlflow (requirements.lock): the schema the direct writer's rows were checked
# against, by tests/backtests/test_tracking.py. A store at any other revision goes through MlflowClient.
KNOWN_SCHEMA_REVISION = "dc11669786a5"
# mlflow's single-tenant workspace, the one MlflowClient reads and writes.
DEFAULT_WORKSPACE = "default"
# A SQLite store busy with another process's write is waited for this long before failing.
SQLITE_TIMEOUT_SECS = 30.0


@dataclass(frozen=True)
class RunRecord:
    """
    One run as MLflow stores it.

    Parameters
    ----------
    experiment : str
        Experiment name, created if missing.
    artifact_location : str
        Artifact root URI of the experiment if it is created.
    run_name : str
        The run's name (also its ``mlflow.runName`` tag).
    tags : dict[str, str]
        Run tags.
    params : dict[str, str]
        Run parameters, values as text.
    metrics : dict[str, float]
        Metrics, logged once at step 0.

    """

    experiment: str
    artifact_location: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


def log_run(run: RunResult, experiment: str | None = None, tags: dict[str, str] | None = None) -> str:
    """
    Log one backtest as a finished MLflow run, with the run folder as its artifacts, and return its run id.

    Parameters: the strategy config (``strategy.<field>``) and every venue model (``venue.<nautilus venue>.<knob>``);
    metrics: every numeric field of the summary, in total, and the net P&L per instrument (``pnl_net.<instrument>``).
    """
    variant = run.variant
    params = {f"strategy.{key}": value for key, value in variant.strategy.config.items()}
    params["venues"] = ",".join(variant.venues)
    for name, model in run.venues.items():
        params.update(_flatten(f"venue.{name}", model.to_primitives()))
    metrics = run.summary.metrics()
    metrics.update({f"pnl_net.{instrument_id}": part.net for instrument_id, part in run.summary.by_instrument.items()})
    record = RunRecord(
        experiment=experiment or variant.strategy.strategy_path.rsplit(":", 1)[-1],
        artifact_location=(keel_home() / "mlartifacts").as_uri(),
        run_name=variant.name,
        tags={"keel.variant": variant.name, "keel.run_dir": str(run.run_dir), **(tags or {})},
        params={key: str(value)[:500] for key, value in params.items()},
        metrics=metrics,
    )
    run_dir = run.run_dir
    uri = mlflow_tracking_uri()
    store = sqlite_store_path(uri)
    if store is not None and store.is_file():
        run_id = _log_to_sqlite(store, record, run_dir)
        if run_id is not None:
            return run_id
    return _log_with_mlflow(uri, record, run_dir)


def sqlite_store_path(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` tracking URI, or None for any other store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or "?" in uri or len(uri) == len(prefix):
        return None
    return Path(uri.removeprefix(prefix))


def _log_to_sqlite(store: Path, record: RunRecord, run_dir: Path) -> str | None:
    """Write the run straight into the store; None (nothing written) when the store is not one Keel can write."""
    connection = sqlite3.connect(store, timeout=SQLITE_TIMEOUT_SECS, isolation_level=None)
    try:
        # BEGIN IMMEDIATE takes the write lock before reading, so the experiment id found stays valid.
        connection.execute("BEGIN IMMEDIATE")
        try:
            run_id = _insert_run(connection, record, run_dir)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT" if run_id else "ROLLBACK")
        return run_id
    finally:
        connection.close()


def _insert_run(connection: sqlite3.Connection, record: RunRecord, run_dir: Path) -> str | None:
    if _schema_revision(connection) != KNOWN_SCHEMA_REVISION:
        return None
    found = connection.execute(
        "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments WHERE name = ? AND workspace = ?",
        (record.experiment, DEFAULT_WORKSPACE),
    ).fetchone()
    if found is None:
        now = _now_ms()
        cursor = connection.execute(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time, workspace)"
            " VALUES (?, ?, 'active', ?, ?, ?)",
            (record.experiment, record.artifact_location, now, now, DEFAULT_WORKSPACE),
        )
        experiment_id, artifact_location, lifecycle_stage = cursor.lastrowid, record.artifact_location, "active"
    else:
        experiment_id, artifact_location, lifecycle_stage = found
    location = urlparse(artifact_location or "")
    if lifecycle_stage != "active" or location.scheme != "file" or location.netloc or location.query:
        # A deleted experiment, or artifacts elsewhere than a local folder: MlflowClient says or does what is right.
        return None
    run_id = uuid.uuid4().hex
    run_artifacts = f"{artifact_location.rstrip('/')}/{run_id}/artifacts"
    start = _now_ms()
    # Artifacts first: a run row in the store always has its files, as mlflow's log_artifacts leaves them.
    shutil.copytree(run_dir, Path(url2pathname(location.path)) / run_id / "artifacts", copy_function=shutil.copyfile)
    connection.execute(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time,"
        " end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, experiment_id)"
        " VALUES (?, ?, 'UNKNOWN', '', '', 'unknown', 'FINISHED', ?, ?, NULL, '', 'active', ?, ?)",
        (run_id, record.run_name, start, _now_ms(), run_artifacts, experiment_id),
    )
    tags = {**record.tags, "mlflow.runName": record.run_name}
    connection.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", [(key, value, run_id) for key, value in tags.items()])
    connection.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", [(key, value, run_id) for key, value in record.params.items()])
    metrics = [(key, *_sanitized(value), start, run_id) for key, value in record.metrics.items()]
    connection.executemany("INSERT INTO metrics (key, is_nan, value, timestamp, run_uuid, step) VALUES (?, ?, ?, ?, ?, 0)", metrics)
    connection.executemany("INSERT INTO latest_metrics (key, is_nan, value, timestamp, run_uuid, step) VALUES (?, ?, ?, ?, ?, 0)", metrics)
    return run_id


def _schema_revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:  # not an MLflow store (yet)
        return None
    return row[0] if row else None


def _sanitized(value: float) -> tuple[bool, float]:
    """Return ``(is_nan, value)`` as mlflow stores a metric: NaN as 0 with the flag, infinities as the largest floats."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, math.copysign(1.7976931348623157e308, value)
    return False, value


def _log_with_mlflow(uri: str, record: RunRecord, run_dir: Path) -> str:
    # MLflow sends usage telemetry to its servers unless told not to; Keel sends nothing the docstring does not list.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from mlflow.entities import Param

    # An explicit client, not mlflow's fluent API: mlflow.set_tracking_uri() also sets $MLFLOW_TRACKING_URI
    # for the whole process, which would pin every later run to this store whatever $KEEL_HOME says.
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(record.experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(record.experiment, artifact_location=record.artifact_location)
    timestamp = _now_ms()
    run = client.create_run(experiment_id, run_name=record.run_name, tags=record.tags)
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, timestamp, 0) for key, value in record.metrics.items()],
        params=[Param(key, value) for key, value in record.params.items()],
    )
    client.log_artifacts(run_id, str(run_dir))
    client.set_terminated(run_id)
    return run_id


def _now_ms() -> int:
    return int(time.time() * 1000)


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(f"{prefix}.{key}", item))
        return flat
    return {prefix: value}
