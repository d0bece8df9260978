"""
Peak memory of a backtest against the length of its window: the catalog streamed in chunks against loaded at once.

The issue's target: a full day of BTCUSDT L2 (trades, bookTicker quotes, depth diffs) under 4 GB peak. No full day
ships, so the window is the shipped real BTCUSDT recording repeated (``bench.recording_input``: every line real),
ingested once per length, and each backtest runs in a fresh process that reports its own peak resident set size.
Two lengths per mode give the memory per event (the slope); the report extrapolates both modes to a full day at
the sample's event rate (240 six-minute repetitions) and says whether the streamed mode meets the target.
"""

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.recording_input import repeated_recording
from keel.data.ingest import ingest_binance_spot
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR

SOURCE = SAMPLE_DIR / "binance_spot" / "btcusdt_20240808.gz"
VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
COPIES_PER_DAY = 240  # the sample spans six minutes
DEFAULT_COPIES = (2, 8)
TARGET_BYTES = 4 * 1024**3
MODES = {"streamed": "default", "loaded at once": None}

# The child reports VmHWM (the peak of its own address space), not getrusage's ru_maxrss: Linux keeps ru_maxrss
# across exec, so a child forked from this process (holding the ingest's memory) would report the parent's peak.
_CHILD = """
import json, re, sys
from pathlib import Path
from keel.backtests.runner import DEFAULT_CHUNK_SIZE, run_backtest
from keel.variant import load_variant
catalog, run_dir, chunk = sys.argv[1], sys.argv[2], sys.argv[3]
run = run_backtest(load_variant(sys.argv[4]), catalog, run_dir=run_dir, log_to_mlflow=False, tearsheet=False,
                   chunk_size=DEFAULT_CHUNK_SIZE if chunk == "default" else None)
peak_kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"peak_kib": peak_kib, "engine_secs": run.summary.elapsed_secs}))
"""


@dataclass(frozen=True)
class MemoryPoint:
    """One backtest: its mode, window length (copies of the sample), events in the catalog, peak RSS, engine time."""

    mode: str
    copies: int
    events: int
    peak_bytes: int
    engine_secs: float


@dataclass(frozen=True)
class MemoryResult:
    """Every measured point and, per mode, the fitted bytes per event and the extrapolated full-day peak."""

    points: list[MemoryPoint]
    bytes_per_event: dict[str, float]
    full_day_peak_bytes: dict[str, float]
    full_day_events: int

    @property
    def target_met(self) -> bool:
        """True if the streamed mode's extrapolated full day stays under the target."""
        return self.full_day_peak_bytes["streamed"] < TARGET_BYTES


def run(copies: tuple[int, int] = DEFAULT_COPIES, work_dir: Path | None = None) -> MemoryResult:
    """Ingest the repeated recording at two lengths and measure a backtest of each in both modes."""
    with tempfile.TemporaryDirectory(dir=work_dir) as folder:
        root = Path(folder)
        points = []
        for count in copies:
            recording = repeated_recording(SOURCE, root / f"btcusdt_x{count}.gz", count)
            catalog = root / f"catalog_x{count}"
            report = ingest_binance_spot([recording], catalog)
            events = sum(item.rows for item in report.files if item.data_type in ("trade_tick", "quote_tick", "order_book_deltas"))
            for mode, chunk in MODES.items():
                run_dir = root / f"run_{count}_{chunk}"
                output = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(catalog), str(run_dir), str(chunk), str(VARIANT)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                measured = json.loads(output.strip().splitlines()[-1])
                points.append(MemoryPoint(mode, count, events, measured["peak_kib"] * 1024, measured["engine_secs"]))
    per_copy_events = points[0].events / copies[0]
    full_day_events = int(per_copy_events * COPIES_PER_DAY)
    slopes, day_peaks = {}, {}
    for mode in MODES:
        small, large = (point for point in points if point.mode == mode)
        slope = (large.peak_bytes - small.peak_bytes) / (large.events - small.events)
        slopes[mode] = slope
        day_peaks[mode] = large.peak_bytes + slope * (full_day_events - large.events)
    return MemoryResult(points=points, bytes_per_event=slopes, full_day_peak_bytes=day_peaks, full_day_events=full_day_events)


def report(result: MemoryResult) -> str:
    """Return the side-by-side table and the extrapolation."""
    lines = ["", "Backtest peak memory (EMACross on the BTCUSDT recording repeated; fresh process per run)"]
    lines.append(f"  {'mode':<16} {'copies':>6} {'events':>11} {'peak RSS':>10} {'engine s':>9}")
    for point in result.points:
        lines.append(f"  {point.mode:<16} {point.copies:>6} {point.events:>11,} {point.peak_bytes / 1024**2:>8.0f} MB {point.engine_secs:>9.1f}")
    for mode in MODES:
        lines.append(
            f"  {mode}: {result.bytes_per_event[mode]:.0f} bytes/event; a full day ({result.full_day_events:,} events) "
            f"extrapolates to {result.full_day_peak_bytes[mode] / 1024**3:.2f} GB",
        )
    verdict = "met" if result.target_met else "MISSED"
    lines.append(f"  target: a full day under {TARGET_BYTES / 1024**3:.0f} GB peak, streamed: {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
