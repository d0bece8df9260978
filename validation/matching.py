"""Match backtest orders to live orders, fill for fill.

Fills are first aggregated per order (one market order may fill in several pieces, and not in the same
pieces on both sides): side, instrument, strategy, liquidity, total quantity, volume-weighted price, number of
fills, time of the first fill, fees. A value that differs between the fills of one order shows as ``MIXED``.

The two order sequences are then aligned like two strings (edit distance): each order is either matched to
one order of the other side or left unmatched. A match needs a time lag within the tolerance and costs
``|lag| / tolerance`` (at most 1), plus 1 when the sides differ; leaving an order unmatched costs 1. The
cheapest alignment is kept, so an order whose side was flipped still pairs with its twin (cost below the 2 of
leaving both unmatched) and the gate names the side as what differs, while same-side twins are preferred. Unlike pairing the n-th fill with the n-th fill, one fill missing in the middle leaves
exactly one order unmatched and the rest still paired; unlike nearest-in-time pairing, order is preserved.
The alignment is O(n·m) in time and memory, fine for the hundreds of orders of a gate session.

A variant of several instruments is aligned per instrument (:func:`match_orders_by_instrument`): an order
matches only an order of the same instrument, so a busy instrument cannot borrow the twins of a quiet one.
"""

from dataclasses import dataclass

import polars as pl

from keel.pnl import InstrumentTerms
from keel.pnl import fill_cash_flows

ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "client_order_id": pl.String(),
    "order_side": pl.String(),
    "instrument_id": pl.String(),
    "strategy_id": pl.String(),
    "liquidity_side": pl.String(),
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
        One row per matched pair (``PAIRS_SCHEMA``): the order ids, side, instrument, strategy, liquidity,
        quantity, average price and number of fills of each, ``price_dev_bps`` (signed, positive = live worse
        for the strategy), ``lag_ms`` (live - backtest) and the backtest order's first fill time.
    unmatched_backtest : pl.DataFrame
        Backtest orders with no live counterpart.
    unmatched_live : pl.DataFrame
        Live orders with no backtest counterpart.

    """

    pairs: pl.DataFrame
    unmatched_backtest: pl.DataFrame
    unmatched_live: pl.DataFrame


def orders_from_fills(fills: pl.DataFrame, terms: InstrumentTerms) -> pl.DataFrame:
    """Aggregate one instrument's fills (``keel.fills`` layout) into one row per order, in time order."""
    flows = fill_cash_flows(fills, terms).with_columns(
        fills["client_order_id"], fills["instrument_id"], fills["strategy_id"], fills["liquidity_side"]
    )
    return (
        flows.group_by("client_order_id")
        .agg(
            *[_one_value(column) for column in ("order_side", "instrument_id", "strategy_id", "liquidity_side")],
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


def match_orders_by_instrument(
    backtest_fills: pl.DataFrame,
    live_fills: pl.DataFrame,
    terms: dict[str, InstrumentTerms],
    tolerance_ms: float,
) -> Matching:
    """
    Align the orders of backtest and live fills instrument by instrument within ``tolerance_ms``.

    Parameters
    ----------
    backtest_fills, live_fills : pl.DataFrame
        Fills (``keel.fills`` layout) of instruments of ``terms`` only.
    terms : dict[str, InstrumentTerms]
        The instruments, by id.
    tolerance_ms : float
        Largest time lag of a matched pair.

    Returns
    -------
    Matching
        The pairs of every instrument, then the unmatched orders of each side, each in time order.
    """
    per_instrument = [
        match_orders(
            orders_from_fills(backtest_fills.filter(pl.col("instrument_id") == instrument_id), instrument_terms),
            orders_from_fills(live_fills.filter(pl.col("instrument_id") == instrument_id), instrument_terms),
            tolerance_ms,
        )
        for instrument_id, instrument_terms in terms.items()
    ]
    by_time = ["ts_event", "client_order_id"]
    return Matching(
        pairs=pl.concat([matching.pairs for matching in per_instrument]).sort("backtest_ts_event", "backtest_order"),
        unmatched_backtest=pl.concat([matching.unmatched_backtest for matching in per_instrument]).sort(by_time),
        unmatched_live=pl.concat([matching.unmatched_live for matching in per_instrument]).sort(by_time),
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
            if lag <= tolerance_ns:
                matched = cost[i - 1][j - 1] + lag / tolerance_ns + (l_row["order_side"] != b_row["order_side"])
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
    "side": pl.String(),  # the backtest's
    "backtest_order": pl.String(),
    "live_order": pl.String(),
    "live_side": pl.String(),
    "backtest_instrument": pl.String(),
    "live_instrument": pl.String(),
    "backtest_strategy": pl.String(),
    "live_strategy": pl.String(),
    "backtest_liquidity": pl.String(),
    "live_liquidity": pl.String(),
    "backtest_qty": pl.Float64(),
    "live_qty": pl.Float64(),
    "backtest_fills": pl.UInt32(),
    "live_fills": pl.UInt32(),
    "backtest_px": pl.Float64(),
    "live_px": pl.Float64(),
    "price_dev_bps": pl.Float64(),
    "lag_ms": pl.Float64(),
    "backtest_ts_event": pl.Int64(),
}

MIXED = "MIXED"


def _one_value(column: str) -> pl.Expr:
    """The value all fills of an order share, or ``MIXED``."""
    return pl.when(pl.col(column).n_unique() == 1).then(pl.col(column).first()).otherwise(pl.lit(MIXED)).alias(column)


def _pair(backtest: dict, live: dict) -> dict:
    sign = 1.0 if backtest["order_side"] == "BUY" else -1.0
    return {
        "side": backtest["order_side"],
        "backtest_order": backtest["client_order_id"],
        "live_order": live["client_order_id"],
        "live_side": live["order_side"],
        "backtest_instrument": backtest["instrument_id"],
        "live_instrument": live["instrument_id"],
        "backtest_strategy": backtest["strategy_id"],
        "live_strategy": live["strategy_id"],
        "backtest_liquidity": backtest["liquidity_side"],
        "live_liquidity": live["liquidity_side"],
        "backtest_qty": backtest["quantity"],
        "live_qty": live["quantity"],
        "backtest_fills": backtest["fills"],
        "live_fills": live["fills"],
        "backtest_px": backtest["avg_px"],
        "live_px": live["avg_px"],
        # Paying more on a buy or receiving less on a sell is worse for the strategy: positive (+ 0.0: a sell at
        # the backtest's price deviates by 0, not -0).
        "price_dev_bps": sign * (live["avg_px"] - backtest["avg_px"]) / backtest["avg_px"] * 10_000 + 0.0,
        "lag_ms": (live["ts_event"] - backtest["ts_event"]) / 1_000_000,
        "backtest_ts_event": backtest["ts_event"],
    }
