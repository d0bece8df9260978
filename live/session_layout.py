"""The recorded session folder: its file names and the order-event table.

The validation gate reads these files, so their names and columns are a contract::

    <session>/session.json     what ran, where, when, with which fault knobs, and the outcome
    <session>/variant.yaml     the exact variant that ran
    <session>/catalog/         ParquetDataCatalog: the instrument and the recorded trades, quotes, book deltas
    <session>/fills.parquet    keel.fills layout
    <session>/orders.parquet   one row per order event (ORDERS_SCHEMA)
    <session>/node.log         the node's log
"""

import json
from pathlib import Path
from typing import Any

import polars as pl

SESSION_JSON = "session.json"
VARIANT_YAML = "variant.yaml"
CATALOG_DIR = "catalog"
FILLS_PARQUET = "fills.parquet"
ORDERS_PARQUET = "orders.parquet"
NODE_LOG_NAME = "node"  # nautilus appends ".log"
NODE_LOG = f"{NODE_LOG_NAME}.log"

ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64(),  # venue (or node) time of the event, ns since epoch
    "ts_init": pl.Int64(),  # time the node created the event, ns since epoch
    "strategy_id": pl.String(),
    "instrument_id": pl.String(),
    "client_order_id": pl.String(),
    "venue_order_id": pl.String(),  # null until the venue accepted the order
    "event_type": pl.String(),  # nautilus event class, e.g. OrderAccepted, OrderFilled
    "order_side": pl.String(),  # BUY or SELL
    "order_type": pl.String(),  # MARKET, LIMIT, ...
    "quantity": pl.Float64(),  # the fill's last_qty for OrderFilled, else the order quantity
    "price": pl.Float64(),  # the fill's last_px for OrderFilled, else the order's limit price (or null)
    "status": pl.String(),  # order status right after the event
    "reason": pl.String(),  # why, for denied / rejected / cancel-rejected events
}


def orders_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return the order-event table of ``rows`` (dicts keyed like ``ORDERS_SCHEMA``), in arrival order."""
    return pl.DataFrame(rows, schema=ORDERS_SCHEMA)


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` through a temporary file, so a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    frame.write_parquet(temporary)
    temporary.replace(path)
    return path


def write_json_atomic(document: dict[str, Any], path: Path) -> Path:
    """Write ``document`` as indented JSON through a temporary file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    temporary.replace(path)
    return path
