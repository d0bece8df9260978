"""Where Keel keeps its artifacts, and the embedded defaults for its services.

Everything a run writes lives under one home folder, ``$KEEL_HOME`` (default ``./var``), so a fresh clone
needs no service to work: the catalog is Parquet files, MLflow and Optuna use SQLite files there. Point
``MLFLOW_TRACKING_URI`` or ``--storage`` at PostgreSQL to share them between machines.
"""

import os
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
