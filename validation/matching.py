"""Match backtest orders to live orders, fill for fill.

Fills are first aggregated per order (one market order may fill in several pieces, and not in the same
pieces on both sides): side, total quantity, volume-weighted price, time of the first fill, fees.

The two order sequences are then aligned like two strings (edit distance): each order is either matched to
one order of the other side or left unmatched. A match needs the same side and a time lag within the
tolerance, and costs ``|lag| / tolerance`` (at most 1); leaving an order unmatched costs 1. The cheapest
alignment is kept. Unlike pairing the n-th fill with the n-th fill, one fill missing in the middle leaves
exactly one order unmatched and the rest still paired; unlike nearest-in-time pairing, order is preserved.
The alignment is O(n·m) in time and memory, fine for the hundreds of orders of a gate session.
"""

from dataclasses import dataclass

import polars as pl

from keel.backtests.performance import fill_cash_flows

ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "client_order_id": pl.String(),
    "order_side": pl.String(),
    "quantity": pl.Float64(),
    "avg_px": pl.Float64(),
    "ts_event": pl.Int64(),
    "fills": pl.UInt32(),
    "fee_quote": pl.Float64(),
}


@dataclass(frozen=True)
class Matching:
    """
    The alignment of backtest orders with live orders.

    Parameters
    ----------
    pairs : pl.DataFrame
        One row per matched pair: ``side``, ``backtest_order``, ``live_order``, quantities, prices,
        ``price_dev_bps`` (signed, positive = live worse for the strategy) and ``lag_ms`` (live - backtest).
    unmatched_backtest : pl.DataFrame
        Backtest orders with no live counterpart.
    unmatched_live : pl.DataFrame
        Live orders with no backtest counterpart.

    """

    pairs: pl.DataFrame
    unmatched_backtest: pl.DataFrame
    unmatched_live: pl.DataFrame


def orders_from_fills(fills: pl.DataFrame, base_currency: str) -> pl.DataFrame:
    """Aggregate a fills table (``keel.fills`` layout) into one row per order, in time order."""
    flows = fill_cash_flows(fills, base_currency).with_columns(fills["client_order_id"])
    return (
        flows.group_by("client_order_id")
        .agg(
            pl.col("order_side").first(),
            pl.col("last_qty").sum().alias("quantity"),
            ((pl.col("last_qty") * pl.col("last_px")).sum() / pl.col("last_qty").sum()).alias("avg_px"),
            pl.col("ts_event").min(),
            pl.len().alias("fills"),
            pl.col("fee_quote").sum(),
        )
        .sort("ts_event", "client_order_id")
        .select(list(ORDERS_SCHEMA))
        .cast(ORDERS_SCHEMA)
    )


def match_orders(backtest: pl.DataFrame, live: pl.DataFrame, tolerance_ms: float) -> Matching:
    """Align backtest and live orders (both from :func:`orders_from_fills`) within ``tolerance_ms``."""
    b_rows = backtest.to_dicts()
    l_rows = live.to_dicts()
    n, m = len(b_rows), len(l_rows)
    tolerance_ns = tolerance_ms * 1_000_000
    # cost[i][j]: cheapest alignment of the first i backtest and first j live orders.
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[""] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0], move[i][0] = float(i), "b"
    for j in range(1, m + 1):
        cost[0][j], move[0][j] = float(j), "l"
    for i in range(1, n + 1):
        b_row = b_rows[i - 1]
        for j in range(1, m + 1):
            best, step = cost[i - 1][j] + 1.0, "b"
            if cost[i][j - 1] + 1.0 < best:
                best, step = cost[i][j - 1] + 1.0, "l"
            l_row = l_rows[j - 1]
            lag = abs(l_row["ts_event"] - b_row["ts_event"])
            if l_row["order_side"] == b_row["order_side"] and lag <= tolerance_ns:
                matched = cost[i - 1][j - 1] + lag / tolerance_ns
                if matched < best:
                    best, step = matched, "m"
            cost[i][j], move[i][j] = best, step

    pairs, unmatched_b, unmatched_l = [], [], []
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == "m":
            pairs.append(_pair(b_rows[i - 1], l_rows[j - 1]))
            i, j = i - 1, j - 1
        elif step == "b":
            unmatched_b.append(i - 1)
            i -= 1
        else:
            unmatched_l.append(j - 1)
            j -= 1
    pairs.reverse()
    return Matching(
        pairs=pl.DataFrame(pairs, schema=PAIRS_SCHEMA),
        unmatched_backtest=backtest[sorted(unmatched_b)] if unmatched_b else backtest.clear(),
        unmatched_live=live[sorted(unmatched_l)] if unmatched_l else live.clear(),
    )


PAIRS_SCHEMA: dict[str, pl.DataType] = {
    "side": pl.String(),
    "backtest_order": pl.String(),
    "live_order": pl.String(),
    "backtest_qty": pl.Float64(),
    "live_qty": pl.Float64(),
    "backtest_px": pl.Float64(),
    "live_px": pl.Float64(),
    "price_dev_bps": pl.Float64(),
    "lag_ms": pl.Float64(),
}


def _pair(backtest: dict, live: dict) -> dict:
    sign = 1.0 if backtest["order_side"] == "BUY" else -1.0
    return {
        "side": backtest["order_side"],
        "backtest_order": backtest["client_order_id"],
        "live_order": live["client_order_id"],
        "backtest_qty": backtest["quantity"],
        "live_qty": live["quantity"],
        "backtest_px": backtest["avg_px"],
        "live_px": live["avg_px"],
        # Paying more on a buy or receiving less on a sell is worse for the strategy: positive.
        "price_dev_bps": sign * (live["avg_px"] - backtest["avg_px"]) / backtest["avg_px"] * 10_000,
        "lag_ms": (live["ts_event"] - backtest["ts_event"]) / 1_000_000,
    }
