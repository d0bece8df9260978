"""Record runs in MLflow: parameters from the variant and venue model, metrics from the summary, the run folder.

The tracking store defaults to SQLite in ``$KEEL_HOME`` and artifacts to ``$KEEL_HOME/mlartifacts`` (set
per experiment at creation), so nothing lands in the working directory. Only the variant, the venue model
and computed numbers are sent: no environment, no credentials.
"""

import time
from pathlib import Path
from typing import Any

from keel.backtests.venues import VenueModel
from keel.settings import keel_home
from keel.settings import mlflow_tracking_uri
from keel.variant import Variant


def log_run(
    run_dir: Path,
    variant: Variant,
    venue: VenueModel,
    summary: dict[str, Any],
    experiment: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Log one backtest as an MLflow run and return its run id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from mlflow.entities import Param

    # An explicit client, not mlflow's fluent API: mlflow.set_tracking_uri() also sets $MLFLOW_TRACKING_URI
    # for the whole process, which would pin every later run to this store whatever $KEEL_HOME says.
    client = MlflowClient(tracking_uri=mlflow_tracking_uri())
    experiment_name = experiment or variant.strategy.strategy_path.rsplit(":", 1)[-1]
    found = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        found.experiment_id
        if found
        else client.create_experiment(experiment_name, artifact_location=(keel_home() / "mlartifacts").as_uri())
    )
    params = {f"strategy.{key}": value for key, value in variant.strategy.config.items()}
    params.update(_flatten("venue", venue.to_primitives()))
    timestamp = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), timestamp, 0)
        for key, value in summary.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    run = client.create_run(
        experiment_id,
        run_name=variant.name,
        tags={"keel.variant": variant.name, "keel.run_dir": str(run_dir), **(tags or {})},
    )
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=metrics, params=[Param(key, str(value)[:500]) for key, value in params.items()])
    client.log_artifacts(run_id, str(run_dir))
    client.set_terminated(run_id)
    return run_id


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(f"{prefix}.{key}", item))
        return flat
    return {prefix: value}
