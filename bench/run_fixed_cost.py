"""
The fixed cost of a backtest run: ``keel backtest`` wall time, split into the engine and everything else.

Each run is the real command in its own process (the environment's ``keel`` script, MLflow on) over the shipped
sample: the base variant ``configs/variants/ema_cross_btcusdt.yaml`` on a catalog ingested from
``data/sample/binance_spot``. Wall time is measured around the process; the engine's share is the run's own
``elapsed_secs`` (summary.json: nautilus's node run, data loading and simulation); the fixed cost is the rest:
interpreter start, imports, catalog look-ups, P&L, run folder, tearsheet, MLflow, process exit.

The first run in a fresh ``$KEEL_HOME`` creates the MLflow store (schema migrations through MLflow) and is
reported apart; the timed runs are the ones after it, as every later run of a user is. After each run the
bench checks the run is in the MLflow store with its params, metrics and artifacts.

Target (issue 8): fixed cost under 2 s, MLflow on.
"""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.ingest_trades import bench_folder
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.settings import CONFIGS_DIR

VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
TARGET_FIXED_SECS = 2.0


@dataclass(frozen=True)
class RunTiming:
    """
    One ``keel backtest`` process.

    Parameters
    ----------
    wall_secs : float
        Process start to exit.
    engine_secs : float
        The run's ``elapsed_secs``.
    tearsheet_bytes : int
        Size of the run's tearsheet.html.

    """

    wall_secs: float
    engine_secs: float
    tearsheet_bytes: int

    @property
    def fixed_secs(self) -> float:
        """Everything but the engine."""
        return self.wall_secs - self.engine_secs


@dataclass(frozen=True)
class FixedCostResult:
    """
    The first run (store creation) and the timed runs after it.

    Parameters
    ----------
    first : RunTiming
        The run that created the MLflow store.
    runs : list[RunTiming]
        The timed runs.

    """

    first: RunTiming
    runs: list[RunTiming]

    @property
    def median(self) -> RunTiming:
        """The run of median fixed cost."""
        return sorted(self.runs, key=lambda run: run.fixed_secs)[len(self.runs) // 2]

    @property
    def target_met(self) -> bool:
        """Whether the median fixed cost is under the target."""
        return self.median.fixed_secs < TARGET_FIXED_SECS


def run(repeats: int = 3, work_dir: Path | None = None) -> FixedCostResult:
    """Ingest the sample into a fresh catalog, then time one store-creating run and ``repeats`` runs after it."""
    with bench_folder(work_dir, "keel-bench-fixed-cost-") as folder:
        catalog = folder / "catalog"
        ingest_binance_spot(sample_recordings(), catalog)
        home = folder / "home"
        first = time_backtest(catalog, home)
        return FixedCostResult(first=first, runs=[time_backtest(catalog, home) for _ in range(repeats)])


def time_backtest(catalog: Path, home: Path) -> RunTiming:
    """Run ``keel backtest`` once in its own process with MLflow on, check what it recorded, and time it."""
    command = [str(Path(sys.executable).with_name("keel")), "backtest", str(VARIANT), "--catalog", str(catalog), "--mlflow"]
    environment = {**os.environ, "KEEL_HOME": str(home)}
    environment.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"keel backtest failed ({finished.returncode}): {finished.stderr.strip()}")
    run_dir = Path(next(line.split(":", 1)[1].strip() for line in finished.stdout.splitlines() if line.startswith("run folder:")))
    _check_recorded(home / "mlflow.db", run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    return RunTiming(wall_secs=wall, engine_secs=float(summary["elapsed_secs"]), tearsheet_bytes=(run_dir / "tearsheet.html").stat().st_size)


def _check_recorded(store: Path, run_dir: Path) -> None:
    """Raise unless the run of ``run_dir`` is in the store, finished, with params, metrics and every artifact."""
    with sqlite3.connect(store) as connection:
        found = connection.execute(
            "SELECT runs.run_uuid, runs.status, runs.artifact_uri FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid"
            " WHERE tags.key = 'keel.run_dir' AND tags.value = ?",
            (str(run_dir),),
        ).fetchone()
        if found is None:
            raise RuntimeError(f"{store}: no MLflow run for {run_dir}")
        run_id, status, artifact_uri = found
        params = connection.execute("SELECT count(*) FROM params WHERE run_uuid = ?", (run_id,)).fetchone()[0]
        metrics = connection.execute("SELECT count(*) FROM latest_metrics WHERE run_uuid = ?", (run_id,)).fetchone()[0]
    artifacts = Path(artifact_uri.removeprefix("file://"))
    missing = sorted(path.name for path in run_dir.iterdir() if not (artifacts / path.name).exists())
    if status != "FINISHED" or not params or not metrics or missing:
        raise RuntimeError(f"{store}: run {run_id} is {status} with {params} params, {metrics} metrics, artifacts missing: {missing}")


def report(result: FixedCostResult) -> str:
    """Return the human-readable report."""
    lines = [
        f"keel backtest, fixed cost (MLflow on; {VARIANT.name} on the shipped sample, {len(result.runs)} runs after the first)",
        f"  {'run':<28} {'wall':>8} {'engine':>8} {'fixed':>8} {'tearsheet':>10}",
    ]
    rows = [("first (creates MLflow store)", result.first)] + [(f"#{index}", timing) for index, timing in enumerate(result.runs, start=1)]
    for name, timing in rows:
        lines.append(f"  {name:<28} {timing.wall_secs:7.2f}s {timing.engine_secs:7.2f}s {timing.fixed_secs:7.2f}s {timing.tearsheet_bytes / 1000:8.0f}kB")
    median = result.median
    lines.append(
        f"  median fixed cost {median.fixed_secs:.2f} s (wall {median.wall_secs:.2f} s, engine {median.engine_secs:.2f} s), "
        f"mean {statistics.mean(timing.fixed_secs for timing in result.runs):.2f} s; target < {TARGET_FIXED_SECS:.0f} s: "
        + ("met" if result.target_met else "NOT met")
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
