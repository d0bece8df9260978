"""P&L from fills, by component, and the headline numbers of a run.

Everything is computed from the fills table (``keel.fills`` layout) and trade prices, so a backtest run and a
recorded live session are measured by the same code. P&L is the strategy's own: cash spent and received on
its fills plus its base-asset position marked at the last trade price, starting from zero. Every commission
counts, in whichever of the pair's currencies it was charged: one in the base asset (Binance takes a buy's
commission in the bought asset) is valued at its fill price, which nautilus's realized P&L leaves out.
"""

import math
from typing import Any

import msgspec
import pandas as pd
import polars as pl

from keel.variant import Variant

# Position sizes below this are treated as flat (float arithmetic on 1e-5 steps).
FLAT_EPSILON = 1e-12


class FeeCurrencyError(ValueError):
    """A fill's commission is in neither currency of the traded pair, so it cannot be valued at the fill price."""


class PnlComponents(msgspec.Struct, frozen=True):
    """
    The P&L of a set of fills, by component, in the quote currency.

    Parameters
    ----------
    currency : str
        The quote currency every component is in.
    gross : float
        Cash received minus cash spent on the fills, plus the net base quantity bought marked at ``mark_price``.
    fees : float
        Every positive commission, a base-asset one valued at its fill price.
    rebates : float
        Every negative commission (maker rebates), as a positive amount, valued like fees.
    net : float
        ``gross - fees + rebates``.
    notional : float
        Traded notional: the sum of quantity times price over the fills.
    mark_price : float, optional
        The price the open base quantity is marked at; None when there are no fills.
    fills : int
        Number of fills.
    """

    currency: str
    gross: float
    fees: float
    rebates: float
    net: float
    notional: float
    mark_price: float | None
    fills: int


def fill_cash_flows(fills: pl.DataFrame, base_currency: str) -> pl.DataFrame:
    """
    Return per fill: signed base quantity, gross quote cash flow and fee in quote currency.

    A fee charged in the base asset is converted at the fill price (``fee_quote``) and also reduces the base
    position (``fee_base``). A rebate is a negative fee.

    Raises
    ------
    FeeCurrencyError
        Naming the first fill whose commission is in neither ``base_currency`` nor the fill's quote currency
        (a fee in BNB, say), which no fill price values.
    """
    foreign = fills.filter(
        (pl.col("commission") != 0)
        & (pl.col("commission_currency") != base_currency)
        & (pl.col("commission_currency") != pl.col("quote_currency")),
    )
    if foreign.height:
        fill = foreign.row(0, named=True)
        raise FeeCurrencyError(
            f"fill {fill['trade_id']} of order {fill['client_order_id']} ({fill['instrument_id']}, ts_event "
            f"{fill['ts_event']}): commission {fill['commission']} {fill['commission_currency']} is in neither "
            f"{base_currency} nor {fill['quote_currency']}, so it cannot be valued at the fill price",
        )
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


def pnl_components(
    fills: pl.DataFrame,
    base_currency: str,
    quote_currency: str,
    mark_price: float | None,
) -> PnlComponents:
    """
    Return the P&L of ``fills`` (one pair, ``keel.fills`` layout) by component, the one P&L Keel reports.

    Parameters
    ----------
    fills : pl.DataFrame
        The fills.
    base_currency : str
        The pair's base currency.
    quote_currency : str
        The pair's quote currency; every fill must be priced in it.
    mark_price : float, optional
        Price to mark the net base quantity bought at (the last price the run saw); may be None only when
        there are no fills.

    Raises
    ------
    FeeCurrencyError
        For a commission in a third currency (see :func:`fill_cash_flows`).
    ValueError
        For a fill priced in another currency than ``quote_currency``, or fills without a ``mark_price``.
    """
    if fills.height == 0:
        return PnlComponents(quote_currency, 0.0, 0.0, 0.0, 0.0, 0.0, mark_price, 0)
    other_quotes = sorted(set(fills["quote_currency"]) - {quote_currency})
    if other_quotes:
        raise ValueError(f"fills priced in {other_quotes}, expected {quote_currency} only: P&L is of one pair")
    if mark_price is None:
        raise ValueError("a mark price is needed to value the position of fills")
    flows = fill_cash_flows(fills, base_currency)
    gross = float(flows["quote_gross"].sum()) + float(flows["base_gross"].sum()) * mark_price
    fees = float(flows["fee_quote"].clip(lower_bound=0.0).sum())
    rebates = abs(float(flows["fee_quote"].clip(upper_bound=0.0).sum()))  # abs: no "-0.0" without rebates
    return PnlComponents(
        currency=quote_currency,
        gross=gross,
        fees=fees,
        rebates=rebates,
        net=gross - fees + rebates,
        notional=float((flows["last_qty"] * flows["last_px"]).sum()),
        mark_price=mark_price,
        fills=fills.height,
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
    # Marked at the last trade print; a run with fills but no trade prints falls back to its last fill.
    mark_price = float(equity["price"][-1]) if equity.height else float(fills["last_px"][-1]) if fills.height else None
    pnl = pnl_components(fills, base_currency, quote_currency, mark_price)
    trips = round_trips(fills, base_currency)
    wins = [trip for trip in trips if trip > 0]
    curve = equity["pnl"] if equity.height else pl.Series([0.0])
    drawdown = float((curve.cum_max() - curve).max())
    return {
        "variant": variant.name,
        "instrument_id": variant.instrument_id,
        "run_config_id": run_config_id,
        "start": _iso(backtest_start_ns),
        "end": _iso(backtest_end_ns),
        "currency": quote_currency,
        "pnl_gross": pnl.gross,
        "fees": pnl.fees,
        "rebates": pnl.rebates,
        "pnl_net": pnl.net,
        "max_drawdown": drawdown,
        "orders": int(fills["client_order_id"].n_unique()) if fills.height else 0,
        "fills": fills.height,
        "round_trips": len(trips),
        "win_rate": len(wins) / len(trips) if trips else None,
        "avg_trip_pnl": sum(trips) / len(trips) if trips else None,
        "trip_t_stat": _t_stat(trips),
        "traded_notional": pnl.notional,
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
