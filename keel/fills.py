"""One table layout for fills, shared by backtest runs and recorded live sessions.

The gate compares a backtest with a live session fill by fill, so both sides must describe a fill the
same way. Both build their table from nautilus ``OrderFilled`` events through :func:`fills_frame`.
"""

from collections.abc import Iterable
from pathlib import Path

import polars as pl
from nautilus_trader.model.enums import liquidity_side_to_str
from nautilus_trader.model.enums import order_side_to_str
from nautilus_trader.model.events import OrderFilled

from keel.atomic_files import write_parquet_atomic

FILLS_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64(),  # venue time of the fill, ns since epoch
    "ts_init": pl.Int64(),  # time the node created the event, ns since epoch
    "strategy_id": pl.String(),
    "instrument_id": pl.String(),
    "client_order_id": pl.String(),
    "venue_order_id": pl.String(),
    "trade_id": pl.String(),
    "order_side": pl.String(),  # BUY or SELL
    "last_qty": pl.Float64(),
    "last_px": pl.Float64(),
    "quote_currency": pl.String(),  # currency last_px is in (nautilus OrderFilled.currency)
    "commission": pl.Float64(),
    "commission_currency": pl.String(),
    "liquidity_side": pl.String(),  # MAKER or TAKER
}


def fills_frame(events: Iterable[OrderFilled]) -> pl.DataFrame:
    """Return one row per ``OrderFilled`` event, sorted by ``ts_event`` then ``trade_id``."""
    rows = [
        {
            "ts_event": event.ts_event,
            "ts_init": event.ts_init,
            "strategy_id": event.strategy_id.value,
            "instrument_id": event.instrument_id.value,
            "client_order_id": event.client_order_id.value,
            "venue_order_id": event.venue_order_id.value,
            "trade_id": event.trade_id.value,
            "order_side": order_side_to_str(event.order_side),
            "last_qty": float(event.last_qty),
            "last_px": float(event.last_px),
            "quote_currency": event.currency.code,
            "commission": float(event.commission),
            "commission_currency": event.commission.currency.code,
            "liquidity_side": liquidity_side_to_str(event.liquidity_side),
        }
        for event in events
    ]
    return pl.DataFrame(rows, schema=FILLS_SCHEMA).sort("ts_event", "trade_id")


def write_fills(frame: pl.DataFrame, path: Path) -> Path:
    """Write a fills table to Parquet atomically."""
    return write_parquet_atomic(frame, path)


def read_fills(path: Path) -> pl.DataFrame:
    """Read a fills table, checking it has the shared layout."""
    frame = pl.read_parquet(path)
    missing = [name for name in FILLS_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a Keel fills table, missing columns {missing}")
    return frame.select(list(FILLS_SCHEMA)).cast(FILLS_SCHEMA)
