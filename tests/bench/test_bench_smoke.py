"""The ingest benchmark, run on a tiny input: every route reported, and their catalogs read back identical."""

import json
import subprocess
import sys
from pathlib import Path

from keel.settings import REPO_ROOT


def test_bench_reports_every_route_and_identical_read_back(tmp_path: Path) -> None:
    # `bench` lives beside the packages, importable from the repo root as `python -m bench` (how `make bench` runs it).
    output = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--rows", "20000", "--repeats", "1", "--json", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(output.read_text())
    assert set(result["routes"]) == {"keel", "wrangler", "keel+checks"}
    for route in result["routes"].values():
        assert route["rows"] == 20000
        assert route["rows_per_second"] > 0
    assert result["read_back_identical"] is True
    assert result["read_back_rows"] == 20000
    assert isinstance(result["ratio_target"]["passed"], bool)
    assert isinstance(result["throughput_target"]["passed"], bool)
