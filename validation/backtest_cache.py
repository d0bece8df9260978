"""Reuse the gate's backtest over a session when nothing it depends on changed.

The backtest over a session is determined by the variant, the venue models (with the latency the gate chose),
the window and the catalog files; their hash is the key. A gate run again on the same session (by an
operator, or by tests that tamper with the fills of copies of one session) copies the cached run folder
instead of running nautilus again.
"""

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from keel.backtests.result import RunResult
from keel.backtests.result import load_run
from keel.backtests.venues import VenueModel
from keel.variant import Variant


def backtest_key(variant: Variant, venues: dict[str, VenueModel], start_ns: int, end_ns: int, catalog_digests: dict[str, str]) -> str:
    """Return the sha256 of everything the backtest over a session depends on (``venues`` by nautilus venue)."""
    inputs = {
        "strategy": variant.to_primitives()["strategy"],
        "actors": variant.to_primitives()["actors"],
        "venues": {name: venue.to_primitives() for name, venue in venues.items()},
        "start_ns": start_ns,
        "end_ns": end_ns,
        "catalog": catalog_digests,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def cached_backtest(cache_dir: Path | None, key: str, run_dir: Path, run: Callable[[Path], RunResult]) -> RunResult:
    """
    Return the backtest ``run`` would write into ``run_dir``, from ``cache_dir/<key>`` when it is there.

    Without a cache folder it simply runs. A fresh run is copied into the cache (complete or not at all).
    """
    if cache_dir is None:
        return run(run_dir)
    cached = Path(cache_dir) / key
    if not cached.is_dir():
        outcome = run(run_dir)
        staging = cached.with_name(cached.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(run_dir, staging)
        staging.rename(cached)
        return outcome
    shutil.copytree(cached, run_dir)
    return load_run(run_dir)
