"""Run one variant over the catalog with ``BacktestNode`` and write a self-contained run folder.

A variant may trade several instruments on several venues: every instrument's data is loaded, every venue
model becomes a simulated venue, and the node's trader comes from :func:`keel.assembly.assemble`, as a live
node's does. The catalog is streamed in chunks (``chunk_size`` events), so memory stays bounded however long the
window.

Run folder::

    <run>/variant.yaml       the exact variant that ran
    <run>/venues.yaml        the venue models it ran against, by nautilus venue
    <run>/fills.parquet      one row per fill (keel.fills layout, the same as a live session's)
    <run>/orders.parquet     one row per order (nautilus orders report)
    <run>/positions.parquet  one row per position (nautilus positions report)
    <run>/account.parquet    balance history per venue (nautilus account reports)
    <run>/equity.parquet     mark-to-market P&L over time per instrument and in total (keel.pnl.EQUITY_SCHEMA)
    <run>/funding.parquet    funding settlements of perpetual positions (keel.pnl.FUNDING_PAYMENTS_SCHEMA)
    <run>/summary.json       headline numbers and P&L components (backtests.result.RunSummary)
    <run>/fill_audit.json    taker fills against the quoted top at their time (catalogs with quotes)
    <run>/fill_audit.parquet the same, per fill
    <run>/tearsheet.html     price with fills, equity and drawdown (opens offline)
"""

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import polars as pl
from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.config import BacktestRunConfig
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.assembly import assemble
from keel.atomic_files import write_json_atomic
from keel.backtests.fill_audit import audit_fills
from keel.backtests.fill_audit import write_audit
from keel.backtests.result import ACCOUNT_PARQUET
from keel.backtests.result import EQUITY_PARQUET
from keel.backtests.result import FILLS_PARQUET
from keel.backtests.result import FUNDING_PARQUET
from keel.backtests.result import ORDERS_PARQUET
from keel.backtests.result import POSITIONS_PARQUET
from keel.backtests.result import RunResult
from keel.backtests.result import RunSummary
from keel.backtests.result import SUMMARY_JSON
from keel.backtests.result import VARIANT_YAML
from keel.backtests.result import VENUES_YAML
from keel.backtests.result import write_venues
from keel.backtests.tearsheet import write_tearsheet
from keel.backtests.tracking import log_run
from keel.backtests.venues import VenueModel
from keel.backtests.venues import venue_models_for
from keel.backtests.versioned_node import VersionedBacktestNode
from keel.backtests.versioned_node import in_force
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import catalog_files
from keel.data.series import mark_prices
from keel.fills import fills_frame
from keel.fills import write_fills
from keel.pnl import InstrumentTerms
from keel.pnl import TOTAL
from keel.pnl import equity_curve
from keel.pnl import max_drawdown
from keel.pnl import portfolio_pnl
from keel.pnl import round_trips
from keel.pnl import t_stat
from keel.pnl import total_equity
from keel.settings import runs_dir
from keel.settlement import catalog_funding
from keel.timestamps import iso_utc
from keel.timestamps import optional_utc_nanos
from keel.variant import Variant
from keel.variant import write_variant

DATA_TYPES: dict[str, type] = {
    "order_book_deltas": OrderBookDelta,
    "trade_tick": TradeTick,
    "quote_tick": QuoteTick,
    "bar": Bar,
}
# Events per chunk the node streams from the catalog. A chunk becomes Python data objects (about 1 kB an event
# with the engine's copies), so 20k events hold peak memory flat whatever the window (bench/backtest_memory.py);
# 200k cost ~130 MB more and gained nothing in speed.
DEFAULT_CHUNK_SIZE = 20_000


class BacktestInputError(ValueError):
    """The catalog lacks what the variant needs (instrument, data in the window)."""


def run_backtest(
    variant: Variant,
    catalog_path: str | Path,
    run_dir: str | Path | None = None,
    start: int | str | None = None,
    end: int | str | None = None,
    venues: Sequence[VenueModel] | None = None,
    log_to_mlflow: bool = True,
    experiment: str | None = None,
    tags: dict[str, str] | None = None,
    tearsheet: bool = True,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
) -> RunResult:
    """
    Backtest ``variant`` over the catalog and write its run folder.

    Parameters
    ----------
    variant : Variant
        What to run.
    catalog_path : str | Path
        The ``ParquetDataCatalog`` holding the instruments and their trades, quotes, L2 deltas or bars.
    run_dir : str | Path, optional
        Run folder to create; default ``$KEEL_HOME/runs/<utc time>-<variant name>``.
    start, end : int | str, optional
        Data window (ns since epoch or ISO-8601); default: all the catalog has.
    venues : Sequence[VenueModel], optional
        Venue models replacing the shipped ones of the variant's venues with the same nautilus venue.
    log_to_mlflow : bool, default True
        Record the run in MLflow (experiment ``experiment`` or the strategy class name).
    experiment : str, optional
        MLflow experiment name.
    tags : dict[str, str], optional
        Extra MLflow tags (e.g. the sweep and trial).
    tearsheet : bool, default True
        Write ``tearsheet.html`` (sweeps skip it per trial).
    chunk_size : int, optional
        Stream the catalog this many events at a time; None loads the whole window at once.

    Raises
    ------
    BacktestInputError
        If the catalog has no such instrument or no data in the window.

    """
    catalog_path = Path(catalog_path).resolve()
    models = venue_models_for(variant) | {model.name: model for model in venues or []}
    start_ns, end_ns = optional_utc_nanos(start), optional_utc_nanos(end)
    catalog = ParquetDataCatalog(str(catalog_path))
    files = catalog_files(catalog_path)
    present = {instrument_id: _data_types_with_data(files, instrument_id, start_ns, end_ns) for instrument_id in variant.instrument_ids}
    versions = {instrument_id: catalog.instruments(instrument_ids=[instrument_id]) for instrument_id in variant.instrument_ids}
    for instrument_id, data_types in present.items():
        if not versions[instrument_id]:
            raise BacktestInputError(f"{catalog_path}: no instrument {instrument_id} in the catalog (ingest it first)")
        if "trade_tick" not in data_types and "bar" not in data_types:
            raise BacktestInputError(f"{catalog_path}: no trades or bars for {instrument_id} in the requested window")
        model = models[instrument_id.rsplit(".", 1)[-1]]
        if model.book_type != "L1_MBP" and "order_book_deltas" not in data_types:
            # An L2 book without deltas stays empty: every market order would be rejected for want of liquidity.
            raise BacktestInputError(
                f"{catalog_path}: {instrument_id} has no order book deltas in the window, but its venue model "
                f"{model.name} matches on an {model.book_type} book; ingest depth data or run with an L1_MBP model "
                "(e.g. configs/venues/binance_usdm_bars.yaml for bars)",
            )
    # The window's start picks the instrument versions (tick-size history) the node and this runner use.
    # The span of the market data the node replays (funding histories reach far beyond it).
    market = [item for item in files if item.data_type in DATA_TYPES and _belongs_to(item, variant.instrument_ids)]
    first_ns = min(item.first_ts for item in market)
    last_data_ns = max(item.last_ts for item in market)
    start_ns = start_ns or first_ns
    last_ns = min(end_ns, last_data_ns) if end_ns else last_data_ns
    instruments = {instrument_id: in_force(versions[instrument_id], start_ns) for instrument_id in variant.instrument_ids}
    terms = {instrument_id: InstrumentTerms.of(instrument) for instrument_id, instrument in instruments.items()}
    currencies = {item.quote_currency for item in terms.values()}
    if len(currencies) != 1:
        raise BacktestInputError(f"variant {variant.name!r}: instruments settle in {sorted(currencies)}; one run has one P&L currency")

    run_dir = Path(run_dir) if run_dir else runs_dir() / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{variant.name}"
    if run_dir.exists():
        raise BacktestInputError(f"{run_dir}: run folder already exists")
    close_out_ms = max(model.close_out_before_end_ms for model in models.values())
    # Half the close-out time later the controller flattens what an order in flight at the stop left open, while
    # market data still flows to fill it.
    components = assemble(variant, "backtest", stop_at_ns=last_ns - int(close_out_ms * 1_000_000), sweep_after_ns=int(close_out_ms * 500_000))
    run_config = BacktestRunConfig(
        engine=BacktestEngineConfig(
            trader_id="BACKTESTER-001",
            logging=LoggingConfig(log_level="ERROR"),
            strategies=components.strategies,
            actors=components.actors,
            controller=components.controller,
        ),
        venues=[model.to_config() for model in models.values()],
        data=[config for instrument_id, data_types in present.items() for config in _data_configs(catalog_path, files, instrument_id, data_types, start_ns, end_ns)],
        chunk_size=chunk_size,
        dispose_on_completion=False,
        raise_exception=True,
    )
    node = VersionedBacktestNode(configs=[run_config])
    try:
        started = time.perf_counter()
        result = node.run()[0]
        engine_secs = time.perf_counter() - started
        engine = node.get_engine(run_config.id)
        fills = fills_frame(
            event for order in engine.cache.orders() for event in order.events if isinstance(event, OrderFilled)
        )
        orders_report = engine.trader.generate_orders_report()
        positions_report = engine.trader.generate_positions_report()
        account_reports = {name: engine.trader.generate_account_report(Venue(name)) for name in models}
        open_orders = len(engine.cache.orders_open())
        open_positions = len(engine.cache.positions_open())
    finally:
        node.dispose()

    prices = mark_prices(catalog_path, variant.instrument_ids, start_ns, end_ns)
    funding = catalog_funding(catalog_path, fills, terms, start_ns, last_ns, prices)
    curves = [
        equity_curve(
            fills.filter(pl.col("instrument_id") == instrument_id),
            prices.filter(pl.col("instrument_id") == instrument_id),
            instrument_terms,
            funding.filter(pl.col("instrument_id") == instrument_id),
        )
        for instrument_id, instrument_terms in terms.items()
    ]
    equity = pl.concat([*curves, total_equity(curves)])
    marks = {instrument_id: float(curve["price"][-1]) for instrument_id, curve in zip(terms, curves, strict=True) if curve.height}
    marks |= {instrument_id: float(group["last_px"][-1]) for (instrument_id,), group in fills.group_by("instrument_id") if instrument_id not in marks}
    pnl = portfolio_pnl(fills, terms, marks, funding)
    trips = [trip for instrument_id, instrument_terms in terms.items() for trip in round_trips(fills.filter(pl.col("instrument_id") == instrument_id), instrument_terms)]
    wins = [trip for trip in trips if trip > 0]
    has_quotes = all("quote_tick" in present[instrument_id] for instrument_id in set(fills["instrument_id"]))
    # Every run says how many of its taker fills beat the quoted top: the fill model's fidelity, measured.
    audit = audit_fills(fills, catalog_path) if fills.height and has_quotes else None
    summary = RunSummary(
        variant=variant.name,
        instrument_ids=variant.instrument_ids,
        venues=variant.venues,
        run_config_id=run_config.id,
        start=iso_utc(int(result.backtest_start or 0)),
        end=iso_utc(int(result.backtest_end or 0)),
        currency=pnl.total.currency,
        pnl_gross=pnl.total.gross,
        fees=pnl.total.fees,
        rebates=pnl.total.rebates,
        funding=pnl.total.funding,
        pnl_net=pnl.total.net,
        max_drawdown=max_drawdown(equity.filter(pl.col("instrument_id") == TOTAL)["pnl"]),
        orders=int(fills["client_order_id"].n_unique()) if fills.height else 0,
        fills=fills.height,
        round_trips=len(trips),
        win_rate=len(wins) / len(trips) if trips else None,
        avg_trip_pnl=sum(trips) / len(trips) if trips else None,
        trip_t_stat=t_stat(trips),
        traded_notional=pnl.total.notional,
        positions=len(positions_report),
        open_orders_at_end=open_orders,
        open_positions_at_end=open_positions,
        elapsed_secs=engine_secs,
        simulated_secs=float(result.elapsed_time),
        by_instrument=pnl.by_instrument,
        fill_audit=audit.to_dict() if audit is not None else None,
    )
    orders, positions = _report_frame(orders_report), _report_frame(positions_report)
    # Written beside the final name and renamed at the end: a run folder is complete or absent.
    staging = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if audit is not None:
        write_audit(audit, staging)
    write_variant(variant, staging / VARIANT_YAML)
    write_venues(models, staging / VENUES_YAML)
    write_fills(fills, staging / FILLS_PARQUET)
    orders.write_parquet(staging / ORDERS_PARQUET)
    positions.write_parquet(staging / POSITIONS_PARQUET)
    _accounts_frame(account_reports).write_parquet(staging / ACCOUNT_PARQUET)
    equity.write_parquet(staging / EQUITY_PARQUET)
    funding.write_parquet(staging / FUNDING_PARQUET)
    write_json_atomic(summary.to_primitives(), staging / SUMMARY_JSON)
    if tearsheet:
        write_tearsheet(staging / "tearsheet.html", variant.name, summary.to_primitives(), prices, fills, equity)
    staging.rename(run_dir)
    run = RunResult(
        run_dir=run_dir,
        variant=variant,
        venues=models,
        summary=summary,
        fills=fills,
        orders=orders,
        positions=positions,
        equity=equity,
        funding=funding,
    )
    if log_to_mlflow:
        log_run(run, experiment=experiment, tags=tags)
    return run


def _belongs_to(item: CatalogFile, instrument_ids: list[str]) -> bool:
    """Return True if a catalog file holds data of one of the instruments (bars: ``<instrument>-<spec>`` folders)."""
    return any(item.identifier == instrument_id or (item.data_type == "bar" and item.identifier.startswith(f"{instrument_id}-")) for instrument_id in instrument_ids)


def _data_types_with_data(files: list[CatalogFile], instrument_id: str, start_ns: int | None, end_ns: int | None) -> list[str]:
    present = []
    for item in files:
        in_window = (end_ns is None or item.first_ts <= end_ns) and (start_ns is None or item.last_ts >= start_ns)
        if item.data_type in DATA_TYPES and _belongs_to(item, [instrument_id]) and in_window and item.data_type not in present:
            present.append(item.data_type)
    return present


def _data_configs(catalog_path: Path, files: list[CatalogFile], instrument_id: str, data_types: list[str], start_ns: int | None, end_ns: int | None) -> list[BacktestDataConfig]:
    configs = []
    for name in data_types:
        bar_types = None
        if name == "bar":
            bar_types = sorted({item.identifier for item in files if item.data_type == "bar" and item.identifier.startswith(f"{instrument_id}-")})
            BarType.from_str(bar_types[0])  # a malformed folder name fails here, naming itself
        configs.append(
            BacktestDataConfig(
                catalog_path=str(catalog_path),
                data_cls=DATA_TYPES[name],
                instrument_id=InstrumentId.from_str(instrument_id) if bar_types is None else None,
                bar_types=bar_types,
                start_time=start_ns,
                end_time=end_ns,
            ),
        )
    return configs


def _accounts_frame(reports: dict[str, pd.DataFrame]) -> pl.DataFrame:
    frames = [_report_frame(report).with_columns(pl.lit(name).alias("venue")) for name, report in reports.items() if not report.empty]
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


def _report_frame(report: pd.DataFrame) -> pl.DataFrame:
    # nautilus reports mix Python objects (Money, enums, Timestamps) in object columns: keep them as text.
    if report.empty:
        return pl.DataFrame()
    flat = report.reset_index()
    return pl.DataFrame(
        {str(column): [None if value is None else str(value) for value in flat[column]] for column in flat.columns},
        schema={str(column): pl.String for column in flat.columns},
    )
