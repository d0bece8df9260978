"""Run one variant over the catalog with ``BacktestNode`` and write a self-contained run folder.

Run folder::

    <run>/variant.yaml       the exact variant that ran
    <run>/venue.yaml         the venue model it ran against
    <run>/fills.parquet      one row per fill (keel.fills layout, the same as a live session's)
    <run>/orders.parquet     one row per order (nautilus orders report)
    <run>/positions.parquet  one row per position (nautilus positions report)
    <run>/account.parquet    balance history (nautilus account report)
    <run>/equity.parquet     mark-to-market P&L over time (quote currency)
    <run>/summary.json       headline numbers and P&L components
    <run>/fill_audit.json    taker fills against the quoted top at their time (catalogs with quotes)
    <run>/fill_audit.parquet the same, per fill
    <run>/tearsheet.html     price with fills, equity and drawdown (opens offline)
"""

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import yaml
from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.config import BacktestRunConfig
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.trading.config import ImportableControllerConfig

from keel.backtests.fill_audit import audit_fills
from keel.backtests.fill_audit import write_audit
from keel.backtests.performance import equity_curve
from keel.backtests.performance import summarize
from keel.backtests.tearsheet import write_tearsheet
from keel.backtests.tracking import log_run
from keel.backtests.venues import VenueModel
from keel.backtests.venues import venue_model_for
from keel.backtests.versioned_node import VersionedBacktestNode
from keel.backtests.versioned_node import in_force
from keel.fills import fills_frame
from keel.fills import write_fills
from keel.settings import runs_dir
from keel.variant import Variant
from keel.variant import write_variant

DATA_TYPES: dict[str, type] = {
    "order_book_deltas": OrderBookDelta,
    "trade_tick": TradeTick,
    "quote_tick": QuoteTick,
}


class BacktestInputError(ValueError):
    """The catalog lacks what the variant needs (instrument, data in the window)."""


@dataclass(frozen=True)
class BacktestOutcome:
    """
    What a backtest produced.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    summary : dict[str, Any]
        The contents of ``summary.json``.
    fills : pl.DataFrame
        The fills (``keel.fills`` layout).

    """

    run_dir: Path
    summary: dict[str, Any]
    fills: pl.DataFrame


def to_ns(value: int | str | pd.Timestamp | None) -> int | None:
    """Return a time given as ns since epoch, an ISO-8601 string (UTC if no zone) or a Timestamp, as ns."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    timestamp = pd.Timestamp(value)
    if timestamp.tzinfo is None:
        timestamp = timestamp.tz_localize("UTC")
    return int(timestamp.value)


def run_backtest(
    variant: Variant,
    catalog_path: str | Path,
    run_dir: str | Path | None = None,
    start: int | str | None = None,
    end: int | str | None = None,
    venue: VenueModel | None = None,
    log_to_mlflow: bool = True,
    experiment: str | None = None,
    tags: dict[str, str] | None = None,
    tearsheet: bool = True,
) -> BacktestOutcome:
    """
    Backtest ``variant`` over the catalog and write its run folder.

    Parameters
    ----------
    variant : Variant
        What to run.
    catalog_path : str | Path
        The ``ParquetDataCatalog`` holding the instrument and its trades, quotes and L2 deltas.
    run_dir : str | Path, optional
        Run folder to create; default ``$KEEL_HOME/runs/<utc time>-<variant name>``.
    start, end : int | str, optional
        Data window (ns since epoch or ISO-8601); default: all the catalog has.
    venue : VenueModel, optional
        Venue model; default the shipped model of ``variant.venue``.
    log_to_mlflow : bool, default True
        Record the run in MLflow (experiment ``experiment`` or the strategy class name).
    experiment : str, optional
        MLflow experiment name.
    tags : dict[str, str], optional
        Extra MLflow tags (e.g. the sweep and trial).
    tearsheet : bool, default True
        Write ``tearsheet.html`` (sweeps skip it per trial).

    Raises
    ------
    BacktestInputError
        If the catalog has no such instrument or no data in the window.

    """
    catalog_path = Path(catalog_path).resolve()
    venue = venue or venue_model_for(variant.venue)
    instrument_id = InstrumentId.from_str(variant.instrument_id)
    start_ns, end_ns = to_ns(start), to_ns(end)
    catalog = ParquetDataCatalog(str(catalog_path))
    versions = catalog.instruments(instrument_ids=[instrument_id.value])
    if not versions:
        raise BacktestInputError(f"{catalog_path}: no instrument {instrument_id} in the catalog (ingest it first)")
    data_types = _data_types_with_data(catalog, instrument_id.value, start_ns, end_ns)
    if "trade_tick" not in data_types:
        raise BacktestInputError(f"{catalog_path}: no trades for {instrument_id} in the requested window")
    # The window's start picks the instrument version (tick-size history) the node and this runner use.
    start_ns = start_ns or _first_ts(catalog, instrument_id.value)
    instrument = in_force(versions, start_ns)
    last_ns = min(end_ns, _last_ts(catalog, instrument_id.value)) if end_ns else _last_ts(catalog, instrument_id.value)

    run_dir = Path(run_dir) if run_dir else runs_dir() / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{variant.name}"
    if run_dir.exists():
        raise BacktestInputError(f"{run_dir}: run folder already exists")
    run_config = BacktestRunConfig(
        engine=BacktestEngineConfig(
            trader_id="BACKTESTER-001",
            logging=LoggingConfig(log_level="ERROR"),
            strategies=[variant.strategy],
            controller=ImportableControllerConfig(
                controller_path="keel.backtests.close_out:CloseOutController",
                config_path="keel.backtests.close_out:CloseOutControllerConfig",
                config={"stop_at_ns": last_ns - int(venue.close_out_before_end_ms * 1_000_000)},
            ),
        ),
        venues=[venue.to_config()],
        data=[
            BacktestDataConfig(
                catalog_path=str(catalog_path),
                data_cls=DATA_TYPES[name],
                instrument_id=instrument_id,
                start_time=start_ns,
                end_time=end_ns,
            )
            for name in data_types
        ],
        dispose_on_completion=False,
        raise_exception=True,
    )
    node = VersionedBacktestNode(configs=[run_config])
    try:
        result = node.run()[0]
        engine = node.get_engine(run_config.id)
        fills = fills_frame(
            event for order in engine.cache.orders() for event in order.events if isinstance(event, OrderFilled)
        )
        orders_report = engine.trader.generate_orders_report()
        positions_report = engine.trader.generate_positions_report()
        account_report = engine.trader.generate_account_report(Venue(venue.name))
        open_orders = len(engine.cache.orders_open())
        open_positions = len(engine.cache.positions_open())
    finally:
        node.dispose()

    trades = _trade_prices(catalog, instrument_id.value, start_ns, end_ns)
    equity = equity_curve(fills, trades, base_currency=instrument.base_currency.code)
    summary = summarize(
        variant=variant,
        fills=fills,
        equity=equity,
        positions_report=positions_report,
        open_orders=open_orders,
        open_positions=open_positions,
        base_currency=instrument.base_currency.code,
        quote_currency=instrument.quote_currency.code,
        backtest_start_ns=int(result.backtest_start or 0),
        backtest_end_ns=int(result.backtest_end or 0),
        run_config_id=run_config.id,
        elapsed_secs=float(result.elapsed_time),
    )
    # Written beside the final name and renamed at the end: a run folder is complete or absent.
    staging = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if "quote_tick" in data_types:
        # Every run says how many of its taker fills beat the quoted top: the fill model's fidelity, measured.
        audit = audit_fills(fills, catalog_path)
        summary["fill_audit"] = audit.to_dict()
        write_audit(audit, staging)
    _write_run(staging, variant, venue, fills, orders_report, positions_report, account_report, equity, summary)
    if tearsheet:
        write_tearsheet(staging / "tearsheet.html", variant.name, summary, trades, fills, equity)
    staging.rename(run_dir)
    if log_to_mlflow:
        log_run(run_dir, variant, venue, summary, experiment=experiment, tags=tags)
    return BacktestOutcome(run_dir=run_dir, summary=summary, fills=fills)


def _data_types_with_data(catalog: ParquetDataCatalog, instrument_id: str, start_ns: int | None, end_ns: int | None) -> list[str]:
    present = []
    for name, data_cls in DATA_TYPES.items():
        intervals = catalog.get_intervals(data_cls, instrument_id)
        if any((end_ns is None or first <= end_ns) and (start_ns is None or last >= start_ns) for first, last in intervals):
            present.append(name)
    return present


def _first_ts(catalog: ParquetDataCatalog, instrument_id: str) -> int:
    return min(first for data_cls in DATA_TYPES.values() for first, _ in catalog.get_intervals(data_cls, instrument_id))


def _last_ts(catalog: ParquetDataCatalog, instrument_id: str) -> int:
    return max(last for data_cls in DATA_TYPES.values() for _, last in catalog.get_intervals(data_cls, instrument_id))


def _trade_prices(catalog: ParquetDataCatalog, instrument_id: str, start_ns: int | None, end_ns: int | None) -> pl.DataFrame:
    ticks = catalog.trade_ticks(instrument_ids=[instrument_id], start=start_ns, end=end_ns)
    return pl.DataFrame(
        {"ts": [tick.ts_init for tick in ticks], "price": [float(tick.price) for tick in ticks]},
        schema={"ts": pl.Int64, "price": pl.Float64},
    )


def _write_run(
    run_dir: Path,
    variant: Variant,
    venue: VenueModel,
    fills: pl.DataFrame,
    orders_report: pd.DataFrame,
    positions_report: pd.DataFrame,
    account_report: pd.DataFrame,
    equity: pl.DataFrame,
    summary: dict[str, Any],
) -> None:
    write_variant(variant, run_dir / "variant.yaml")
    (run_dir / "venue.yaml").write_text(yaml.safe_dump(venue.to_primitives(), sort_keys=False))
    write_fills(fills, run_dir / "fills.parquet")
    for name, report in (("orders", orders_report), ("positions", positions_report), ("account", account_report)):
        _report_frame(report).write_parquet(run_dir / f"{name}.parquet")
    equity.write_parquet(run_dir / "equity.parquet")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def _report_frame(report: pd.DataFrame) -> pl.DataFrame:
    # nautilus reports mix Python objects (Money, enums, Timestamps) in object columns: keep them as text.
    if report.empty:
        return pl.DataFrame()
    flat = report.reset_index()
    return pl.DataFrame(
        {str(column): [None if value is None else str(value) for value in flat[column]] for column in flat.columns},
        schema={str(column): pl.String for column in flat.columns},
    )
