"""P&L from fills, by component, and the headline numbers of a run.

Everything is computed from the fills table (``keel.fills`` layout) and trade prices, so a backtest run and a
recorded live session are measured by the same code. P&L is the strategy's own: cash spent and received on
its fills plus its base-asset position marked at the last trade price, starting from zero.
"""

import math
from typing import Any

import pandas as pd
import polars as pl

from keel.variant import Variant

# Position sizes below this are treated as flat (float arithmetic on 1e-5 steps).
FLAT_EPSILON = 1e-12


def fill_cash_flows(fills: pl.DataFrame, base_currency: str) -> pl.DataFrame:
    """
    Return per fill: signed base quantity, gross quote cash flow and fee in quote currency.

    A fee charged in the base asset (Binance takes the buy commission in the bought asset) is converted at the
    fill price and also reduces the base position.
    """
    sign = pl.when(pl.col("order_side") == "BUY").then(1.0).otherwise(-1.0)
    fee_in_base = pl.col("commission_currency") == base_currency
    return fills.select(
        "ts_event",
        "order_side",
        "last_qty",
        "last_px",
        (sign * pl.col("last_qty")).alias("base_gross"),
        (-sign * pl.col("last_qty") * pl.col("last_px")).alias("quote_gross"),
        pl.when(fee_in_base).then(pl.col("commission") * pl.col("last_px")).otherwise(pl.col("commission")).alias("fee_quote"),
        pl.when(fee_in_base).then(pl.col("commission")).otherwise(0.0).alias("fee_base"),
    )


def equity_curve(fills: pl.DataFrame, trades: pl.DataFrame, base_currency: str) -> pl.DataFrame:
    """
    Return the strategy's mark-to-market P&L at every trade print: ``ts``, ``price``, ``position``, ``pnl``.

    ``trades`` has ``ts`` (ns) and ``price``; fills count from their ``ts_event``.
    """
    flows = (
        fill_cash_flows(fills, base_currency)
        .sort("ts_event")
        .select(
            pl.col("ts_event").alias("ts"),
            (pl.col("base_gross") - pl.col("fee_base")).cum_sum().alias("position"),
            (pl.col("quote_gross") - pl.col("fee_quote") + pl.col("fee_base") * pl.col("last_px")).cum_sum().alias("cash"),
        )
    )
    curve = trades.sort("ts").join_asof(flows, on="ts", strategy="backward")
    return curve.with_columns(pl.col("position").fill_null(0.0), pl.col("cash").fill_null(0.0)).select(
        "ts",
        "price",
        "position",
        (pl.col("cash") + pl.col("position") * pl.col("price")).alias("pnl"),
    )


def round_trips(fills: pl.DataFrame, base_currency: str) -> list[float]:
    """Return the net P&L (quote) of each completed round trip: flat → position → flat."""
    trips: list[float] = []
    position = 0.0
    cash = 0.0
    for row in fill_cash_flows(fills, base_currency).sort("ts_event").iter_rows(named=True):
        position += row["base_gross"]
        cash += row["quote_gross"] - row["fee_quote"]
        # The bought-asset fee leaves dust that cannot be sold: a trip ends when the gross position is flat.
        if abs(position) <= FLAT_EPSILON:
            trips.append(cash)
            position = 0.0
            cash = 0.0
    return trips


def summarize(
    variant: Variant,
    fills: pl.DataFrame,
    equity: pl.DataFrame,
    positions_report: pd.DataFrame,
    open_orders: int,
    open_positions: int,
    base_currency: str,
    quote_currency: str,
    backtest_start_ns: int,
    backtest_end_ns: int,
    run_config_id: str,
    elapsed_secs: float,
) -> dict[str, Any]:
    """Return the run's headline numbers (the contents of ``summary.json``)."""
    flows = fill_cash_flows(fills, base_currency)
    last_price = float(equity["price"][-1]) if equity.height else 0.0
    gross_position = float(flows["base_gross"].sum()) if flows.height else 0.0
    gross = float(flows["quote_gross"].sum()) + gross_position * last_price if flows.height else 0.0
    fees = float(flows["fee_quote"].sum()) if flows.height else 0.0
    trips = round_trips(fills, base_currency)
    wins = [trip for trip in trips if trip > 0]
    pnl = equity["pnl"] if equity.height else pl.Series([0.0])
    drawdown = float((pnl.cum_max() - pnl).max())
    return {
        "variant": variant.name,
        "instrument_id": variant.instrument_id,
        "run_config_id": run_config_id,
        "start": _iso(backtest_start_ns),
        "end": _iso(backtest_end_ns),
        "currency": quote_currency,
        "pnl_gross": gross,
        "fees": fees,
        "pnl_net": gross - fees,
        "max_drawdown": drawdown,
        "orders": int(fills["client_order_id"].n_unique()) if fills.height else 0,
        "fills": fills.height,
        "round_trips": len(trips),
        "win_rate": len(wins) / len(trips) if trips else None,
        "avg_trip_pnl": sum(trips) / len(trips) if trips else None,
        "trip_t_stat": _t_stat(trips),
        "traded_notional": float((fills["last_qty"] * fills["last_px"]).sum()) if fills.height else 0.0,
        "positions": len(positions_report),
        "open_orders_at_end": open_orders,
        "open_positions_at_end": open_positions,
        "elapsed_secs": elapsed_secs,
    }


def _t_stat(values: list[float]) -> float | None:
    """Mean over standard error of per-trip P&L: how far from zero the average trip is, in noise units."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean / math.sqrt(variance / len(values)) if variance > 0 else None


def _iso(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, unit="ns", tz="UTC").isoformat()
