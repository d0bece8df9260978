"""Checks every strategy family's tests run: a pinned fingerprint of its fills, close-on-stop, no lookahead.

A family test backtests a shipped variant file on real data and calls these; the fingerprint is pinned in the
test, so an unintended change of behaviour fails it (update it deliberately, with the reason in the commit).
"""

import hashlib
from pathlib import Path

import polars as pl

from keel.backtests.result import RunResult
from keel.backtests.runner import run_backtest
from keel.timestamps import utc_nanos
from keel.variant import Variant

FINGERPRINT_COLUMNS = ("ts_event", "instrument_id", "order_side", "last_qty", "last_px", "liquidity_side")


def fills_fingerprint(fills: pl.DataFrame) -> str:
    """Return the sha256 (first 16 hex digits) of the fills' time, instrument, side, quantity, price and liquidity."""
    rows = fills.select(FINGERPRINT_COLUMNS).sort("ts_event", "instrument_id", maintain_order=True).rows()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def assert_closed_out(run: RunResult) -> None:
    """Assert the run traded, then left no working order and no open position (close-on-stop)."""
    assert run.fills.height > 0, "the variant never traded on this data"
    assert run.summary.open_orders_at_end == 0, f"{run.summary.open_orders_at_end} orders still working after stop"
    assert run.summary.open_positions_at_end == 0, f"{run.summary.open_positions_at_end} positions still open after stop"


def assert_no_lookahead(variant: Variant, catalog: Path, cut: str, tmp_path: Path, end: str | None = None) -> None:
    """
    Assert that truncating the data at ``cut`` changes no order submitted before it.

    Runs the variant up to ``end`` (default: all data) and up to ``cut``, and compares every order submitted
    before the truncated run's close-out began (its strategies stop ``close_out_before_end_ms`` before ``cut``):
    same count, same instruments, sides, quantities, types and prices. A decision that used data from after its
    time would differ.
    """
    full = run_backtest(variant, catalog, run_dir=tmp_path / "full", end=end, log_to_mlflow=False, tearsheet=False)
    cut_run = run_backtest(variant, catalog, run_dir=tmp_path / "cut", end=cut, log_to_mlflow=False, tearsheet=False)
    close_out_ms = max(model.close_out_before_end_ms for model in cut_run.venues.values())
    decided_before = utc_nanos(cut) - int(close_out_ms * 1_000_000)

    def decisions(run: RunResult) -> list[tuple]:
        orders = run.orders
        assert orders.height > 0, f"{run.run_dir}: no orders"
        columns = ["ts_init", "instrument_id", "side", "type", "quantity", "price"]
        present = [column for column in columns if column in orders.columns]
        early = orders.filter(pl.col("ts_init").cast(pl.Int64) < decided_before)
        return sorted(early.select(present).rows())

    before_full, before_cut = decisions(full), decisions(cut_run)
    assert len(before_full) > 0, "no order before the cut: choose a later cut"
    assert before_cut == before_full
