"""Keel's MLflow store is pointed at for a block only: the process's MLflow settings come back after it."""

import os
from pathlib import Path

import mlflow
import pytest

from keel.settings import mlflow_fluent_store


def test_the_fluent_store_is_restored_after_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()

    with mlflow_fluent_store() as uri:
        assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
        assert mlflow.get_tracking_uri() == uri

    # mlflow.set_tracking_uri sets the variable for the whole process; after the block it is gone again.
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() == before
