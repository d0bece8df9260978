"""Where Keel keeps its artifacts, and the embedded defaults for its services.

Everything a run writes lives under one home folder, ``$KEEL_HOME`` (default ``./var``), so a fresh clone
needs no service to work: the catalog is Parquet files, MLflow and Optuna use SQLite files there. Point
``MLFLOW_TRACKING_URI`` or ``--storage`` at PostgreSQL to share them between machines.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "data" / "sample"
CONFIGS_DIR = REPO_ROOT / "configs"


def keel_home() -> Path:
    """Return the artifact home folder (``$KEEL_HOME`` or ``./var``), created if missing."""
    home = Path(os.environ.get("KEEL_HOME", "var")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_catalog_path() -> Path:
    """Return the default nautilus ``ParquetDataCatalog`` folder."""
    return keel_home() / "catalog"


def runs_dir() -> Path:
    """Return the folder holding one sub-folder per backtest run."""
    return keel_home() / "runs"


def sweeps_dir() -> Path:
    """Return the folder holding one sub-folder per parameter sweep."""
    return keel_home() / "sweeps"


def sessions_dir() -> Path:
    """Return the folder holding one sub-folder per recorded live session."""
    return keel_home() / "sessions"


def mlflow_tracking_uri() -> str:
    """Return ``$MLFLOW_TRACKING_URI``, or a SQLite store in the home folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{keel_home() / 'mlflow.db'}"


@contextmanager
def mlflow_fluent_store() -> Iterator[str]:
    """
    Point mlflow's fluent API (``mlflow.start_run``, ``mlflow.pyfunc.load_model``) at Keel's store for a block.

    ``mlflow.set_tracking_uri`` also sets ``$MLFLOW_TRACKING_URI`` for the whole process, which would pin every later
    run of the process to this store whatever ``$KEEL_HOME`` says; the previous URI and variable come back after the
    block. Code that can use an explicit ``MlflowClient(tracking_uri=...)`` should (``keel.backtests.tracking`` does).
    """
    import mlflow

    variable = os.environ.get("MLFLOW_TRACKING_URI")
    previous = mlflow.get_tracking_uri()
    uri = mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable
