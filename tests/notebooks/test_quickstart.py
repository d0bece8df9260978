"""The quickstart notebook runs top to bottom (notebooks rot silently otherwise)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from keel.settings import REPO_ROOT


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "quickstart.ipynb", as_version=4)

    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    summary_cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and "run_backtest(base, catalog)" in cell.source)
    assert summary_cell.outputs, "the backtest cell produced no output"
    assert (tmp_path / "home" / "mlflow.db").is_file()
