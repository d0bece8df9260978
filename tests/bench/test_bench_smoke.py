"""The ingest benchmarks, run on a tiny input: every route of both reported, and their catalogs read back identical."""

import json
import subprocess
import sys
from pathlib import Path

from keel.settings import REPO_ROOT


def test_bench_reports_every_route_and_identical_read_back(tmp_path: Path) -> None:
    # `bench` lives beside the packages, importable from the repo root as `python -m bench` (how `make bench` runs it).
    output = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "ingest", "fixed-cost", "--rows", "20000", "--repeats", "1", "--json", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    results = json.loads(output.read_text())
    expected_routes = {
        "trade_writer": {"keel", "wrangler", "keel+checks"},
        "dump_file": {"keel", "wrangler"},
        "recording_binance-spot": {"keel", "nautilus"},
        "recording_binance-usdm": {"keel", "nautilus"},
        "recording_okx": {"keel", "nautilus"},
    }
    assert set(results) == set(expected_routes)
    for name, result in results.items():
        assert set(result["routes"]) == expected_routes[name]
        for route in result["routes"].values():
            # The recording benches repeat a whole recording, so they write about, not exactly, the rows asked for.
            assert route["rows"] == 20000 if not name.startswith("recording_") else route["rows"] > 10000
            assert route["rows_per_second"] > 0
        assert result["read_back_identical"] is True
        assert result.get("read_back_rows", 20000) == 20000
        assert isinstance(result["ratio_target"]["passed"], bool)
        assert isinstance(result["throughput_target"]["passed"], bool)
