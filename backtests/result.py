"""The typed result of a backtest run: what later stages (gate, sweep, research) need, read once.

``run_backtest`` returns a :class:`RunResult` holding the tables it also writes to the run folder, so a caller
never re-reads files the runner just wrote; :func:`load_run` rebuilds the same struct from a run folder (a cached
backtest, a finished sweep trial).
"""

import json
from pathlib import Path

import msgspec
import polars as pl
import yaml

from keel.backtests.venues import VenueModel
from keel.fills import read_fills
from keel.pnl import EQUITY_SCHEMA
from keel.pnl import FUNDING_PAYMENTS_SCHEMA
from keel.pnl import PnlComponents
from keel.variant import Variant
from keel.variant import load_variant

SUMMARY_JSON = "summary.json"
VARIANT_YAML = "variant.yaml"
VENUES_YAML = "venues.yaml"
FILLS_PARQUET = "fills.parquet"
ORDERS_PARQUET = "orders.parquet"
POSITIONS_PARQUET = "positions.parquet"
ACCOUNT_PARQUET = "account.parquet"
EQUITY_PARQUET = "equity.parquet"
FUNDING_PARQUET = "funding.parquet"


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """
    The headline numbers of a run (``summary.json``); money is in ``currency``.

    Parameters
    ----------
    variant : str
        Variant name.
    instrument_ids : list[str]
        The instruments the variant traded.
    venues : list[str]
        The venue models it ran against.
    run_config_id : str
        nautilus's run config id.
    start : str
        First simulated time, ISO-8601 UTC.
    end : str
        Last simulated time, ISO-8601 UTC.
    currency : str
        The P&L currency of every instrument.
    pnl_gross : float
        Trading P&L before fees and funding, positions marked at the last price.
    fees : float
        Commissions paid.
    rebates : float
        Commissions received (maker rebates).
    funding : float
        Perpetual funding received (negative: paid), settled from the catalog's rates.
    pnl_net : float
        ``pnl_gross - fees + rebates + funding``.
    max_drawdown : float
        Largest fall of the total P&L from its running peak.
    orders : int
        Orders with at least one fill.
    fills : int
        Fills.
    round_trips : int
        Completed flat → position → flat trips, over instruments.
    win_rate : float, optional
        Share of trips with positive net P&L.
    avg_trip_pnl : float, optional
        Mean net P&L per trip.
    trip_t_stat : float, optional
        Mean over standard error of the trips' P&L.
    traded_notional : float
        Sum of quantity times price over the fills.
    positions : int
        Positions nautilus opened.
    open_orders_at_end : int
        Orders still working after the run (close-on-stop leaves none).
    open_positions_at_end : int
        Positions still open after the run.
    elapsed_secs : float
        Wall time of the engine (nautilus's node run: data loading and simulation).
    simulated_secs : float
        Simulated time the run spans.
    by_instrument : dict[str, PnlComponents]
        The P&L of each instrument.
    fill_audit : dict[str, object], optional
        Taker fills against the quoted top (``keel.backtests.fill_audit``), for catalogs with quotes.
    """

    variant: str
    instrument_ids: list[str]
    venues: list[str]
    run_config_id: str
    start: str
    end: str
    currency: str
    pnl_gross: float
    fees: float
    rebates: float
    funding: float
    pnl_net: float
    max_drawdown: float
    orders: int
    fills: int
    round_trips: int
    win_rate: float | None
    avg_trip_pnl: float | None
    trip_t_stat: float | None
    traded_notional: float
    positions: int
    open_orders_at_end: int
    open_positions_at_end: int
    elapsed_secs: float
    simulated_secs: float
    by_instrument: dict[str, PnlComponents]
    fill_audit: dict[str, object] | None = None

    def metric(self, name: str) -> float | None:
        """
        Return the numeric field ``name`` (an objective of a sweep).

        Raises
        ------
        KeyError
            If ``name`` is not a numeric field.
        """
        if name not in NUMERIC_FIELDS:
            raise KeyError(f"{name!r} is not a numeric field of a run summary: expected one of {sorted(NUMERIC_FIELDS)}")
        value = getattr(self, name)
        return None if value is None else float(value)

    def metrics(self) -> dict[str, float]:
        """Return every numeric field that has a value (what MLflow records)."""
        values = {name: getattr(self, name) for name in NUMERIC_FIELDS}
        return {name: float(value) for name, value in values.items() if value is not None}

    def to_primitives(self) -> dict[str, object]:
        """Return the summary as plain data (``summary.json``)."""
        return msgspec.to_builtins(self)


NUMERIC_FIELDS = frozenset(
    name
    for name, annotation in RunSummary.__annotations__.items()
    if annotation in (float, int, float | None, int | None)
)


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    """
    A finished backtest run: its folder and everything a later stage reads.

    Parameters
    ----------
    run_dir : Path
        The run folder (holding the same tables as files).
    variant : Variant
        The variant that ran.
    venues : dict[str, VenueModel]
        The venue models it ran against, by nautilus venue.
    summary : RunSummary
        Headline numbers and P&L components.
    fills : pl.DataFrame
        One row per fill (``keel.fills`` layout).
    orders : pl.DataFrame
        nautilus's orders report, values as text.
    positions : pl.DataFrame
        nautilus's positions report, values as text.
    equity : pl.DataFrame
        P&L over time per instrument and in total (``keel.pnl.EQUITY_SCHEMA``, total rows ``TOTAL``).
    funding : pl.DataFrame
        Funding settlements of the perpetuals (``keel.pnl.FUNDING_PAYMENTS_SCHEMA``).
    """

    run_dir: Path
    variant: Variant
    venues: dict[str, VenueModel]
    summary: RunSummary
    fills: pl.DataFrame
    orders: pl.DataFrame
    positions: pl.DataFrame
    equity: pl.DataFrame
    funding: pl.DataFrame


def write_venues(venues: dict[str, VenueModel], path: Path) -> None:
    """Write the venue models of a run (``venues.yaml``)."""
    path.write_text(yaml.safe_dump({name: model.to_primitives() for name, model in venues.items()}, sort_keys=False))


def load_run(run_dir: str | Path) -> RunResult:
    """
    Return the result of a finished run from its folder.

    Raises
    ------
    FileNotFoundError
        If the folder lacks one of the run's files (naming it).
    """
    run_dir = Path(run_dir)
    for name in (SUMMARY_JSON, VARIANT_YAML, VENUES_YAML, FILLS_PARQUET, ORDERS_PARQUET, POSITIONS_PARQUET, EQUITY_PARQUET, FUNDING_PARQUET):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name}: missing; not a finished Keel run folder")
    venues = {name: msgspec.convert(model, VenueModel) for name, model in yaml.safe_load((run_dir / VENUES_YAML).read_text()).items()}
    return RunResult(
        run_dir=run_dir,
        variant=load_variant(run_dir / VARIANT_YAML),
        venues=venues,
        summary=msgspec.convert(json.loads((run_dir / SUMMARY_JSON).read_text()), RunSummary),
        fills=read_fills(run_dir / FILLS_PARQUET),
        orders=pl.read_parquet(run_dir / ORDERS_PARQUET),
        positions=pl.read_parquet(run_dir / POSITIONS_PARQUET),
        equity=pl.read_parquet(run_dir / EQUITY_PARQUET).cast(EQUITY_SCHEMA),
        funding=pl.read_parquet(run_dir / FUNDING_PARQUET).cast(FUNDING_PAYMENTS_SCHEMA),
    )
