"""The order round trip a live session actually had, so the gate's backtest can replay it.

hftbacktest's method for aligning a backtest with live: replay the live window with the latency measured live,
not an assumed one. A session's ``orders.parquet`` holds every order event with the node's receive time
(``ts_init``); from ``OrderSubmitted`` to the venue's first answer (accepted, filled or rejected) is the round
trip as the strategy lived it: wire both ways, the adapter, and the node's own queue when it is busy. Only the
node's clock is used, so an offset between the venue's and the node's clock cannot distort it.
"""

import polars as pl

_SUBMITTED = "OrderSubmitted"
_VENUE_ANSWERS = ("OrderAccepted", "OrderFilled", "OrderRejected", "OrderCanceled", "OrderExpired")


def order_round_trips_ms(orders: pl.DataFrame) -> pl.Series:
    """
    Return, per order, the time from ``OrderSubmitted`` to the first venue answer, in ms (node clock).

    Parameters
    ----------
    orders : pl.DataFrame
        A session's order events (``keel.live.session_layout.ORDERS_SCHEMA``: client_order_id, event_type,
        ts_init, ...).

    Returns
    -------
    pl.Series
        One value per order that was submitted and answered; orders without both events are left out.

    """
    submitted = orders.filter(pl.col("event_type") == _SUBMITTED).group_by("client_order_id").agg(pl.col("ts_init").min().alias("submitted"))
    answered = (
        orders.filter(pl.col("event_type").is_in(_VENUE_ANSWERS)).group_by("client_order_id").agg(pl.col("ts_init").min().alias("answered"))
    )
    joined = submitted.join(answered, on="client_order_id").sort("client_order_id")
    return ((joined["answered"] - joined["submitted"]) / 1e6).alias("round_trip_ms")


def median_round_trip_ms(orders: pl.DataFrame) -> float | None:
    """Return the median order round trip of a session in ms, or None when no order was submitted and answered."""
    round_trips = order_round_trips_ms(orders)
    return float(round_trips.median()) if round_trips.len() else None
