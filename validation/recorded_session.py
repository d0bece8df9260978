"""A recorded session folder as the gate trusts it, checked before anything is compared.

The gate judges evidence, so the folder is refused (``GateInputError``, exit 2, naming the file) unless every
file of the layout (``keel.live.session_layout``) is there, the folder is exactly what its manifest sealed at
write time, ``session.json`` says the session completed and sums up the tables as they are (instrument,
counts, P&L), and the fills table and the order-event log are well formed and tell the same story fill for
fill. A missing input is a refusal, never a skipped check.
What was *traded* (flatness, instruments, sizes, prices) is judged later, by the gate's checks.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.fills import read_fills
from keel.live.session_layout import CATALOG_DIR
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import MANIFEST_JSON
from keel.live.session_layout import NODE_LOG
from keel.live.session_layout import ORDERS_PARQUET
from keel.live.session_layout import ORDERS_SCHEMA
from keel.live.session_layout import SESSION_JSON
from keel.live.session_layout import SessionIntegrityError
from keel.live.session_layout import VARIANT_YAML
from keel.live.session_layout import verify_manifest
from keel.pnl import InstrumentTerms
from keel.pnl import pnl_components
from keel.validation.errors import GateInputError
from keel.variant import Variant
from keel.variant import VariantError
from keel.variant import load_variant

REQUIRED_ENTRIES = (SESSION_JSON, VARIANT_YAML, CATALOG_DIR, FILLS_PARQUET, ORDERS_PARQUET, NODE_LOG, MANIFEST_JSON)
COMPLETED = "completed"

# Quantities are floats of decimal steps: equal within this.
QUANTITY_EPSILON = 1e-12

# The status an order has right after each event whose outcome is fixed (fills depend on the filled quantity,
# rejections of a cancel or modify leave the status as it was).
_STATUS_AFTER: dict[str, str] = {
    "OrderInitialized": "INITIALIZED",
    "OrderDenied": "DENIED",
    "OrderEmulated": "EMULATED",
    "OrderReleased": "RELEASED",
    "OrderSubmitted": "SUBMITTED",
    "OrderAccepted": "ACCEPTED",
    "OrderRejected": "REJECTED",
    "OrderCanceled": "CANCELED",
    "OrderExpired": "EXPIRED",
    "OrderTriggered": "TRIGGERED",
    "OrderPendingUpdate": "PENDING_UPDATE",
    "OrderPendingCancel": "PENDING_CANCEL",
}
_EVENTS_WITH_REASON = {"OrderDenied", "OrderRejected", "OrderCancelRejected", "OrderModifyRejected"}
_EVENT_TYPES = set(_STATUS_AFTER) | _EVENTS_WITH_REASON | {"OrderFilled", "OrderUpdated"}
TERMINAL_STATUSES = {"FILLED", "CANCELED", "EXPIRED", "REJECTED", "DENIED"}

# A fill as the order log records it, and the fills table's column for the same value.
_FILL_COLUMNS = {
    "ts_event": "ts_event",
    "ts_init": "ts_init",
    "strategy_id": "strategy_id",
    "instrument_id": "instrument_id",
    "client_order_id": "client_order_id",
    "venue_order_id": "venue_order_id",
    "order_side": "order_side",
    "quantity": "last_qty",
    "price": "last_px",
}
_ORDER_LOG_NOT_NULL = ("ts_event", "ts_init", "strategy_id", "instrument_id", "client_order_id", "event_type")


@dataclass(frozen=True)
class RecordedSession:
    """
    A session folder that passed every check of this module.

    Parameters
    ----------
    session_dir : Path
        The folder (resolved).
    session_id : str
        The folder's name.
    sha256 : str
        sha256 of its ``manifest.json``, which holds the sha256 of every other file: the session's hash.
    document : dict[str, Any]
        The content of ``session.json``.
    recorded_variant : Variant
        The variant of ``variant.yaml``.
    start_ns : int
        Node start (ns since epoch).
    end_ns : int
        Node stop (ns since epoch).
    fills : pl.DataFrame
        The live fills (``keel.fills`` layout).
    orders : pl.DataFrame
        The live order events (``keel.live.session_layout.ORDERS_SCHEMA``), in arrival order.
    instrument : Instrument
        The variant's instrument as recorded in the session's catalog.
    catalog_digests : dict[str, str]
        sha256 of every catalog file, from the verified manifest: what the backtest over the session reads.

    """

    session_dir: Path
    session_id: str
    sha256: str
    document: dict[str, Any]
    recorded_variant: Variant
    start_ns: int
    end_ns: int
    fills: pl.DataFrame
    orders: pl.DataFrame
    instrument: Instrument
    catalog_digests: dict[str, str]


def load_recorded_session(session_dir: str | Path, instrument_id: str) -> RecordedSession:
    """
    Check the session folder and return its content, or refuse it.

    Parameters
    ----------
    session_dir : str | Path
        A folder written by ``keel live``.
    instrument_id : str
        The instrument of the variant being gated; the catalog must hold it.

    Raises
    ------
    GateInputError
        Naming the file (and row or field) for a missing file, a folder that differs from its manifest, a
        session that did not complete, a malformed table, or fills the order log does not record the same way.

    """
    session_dir = Path(session_dir).resolve()
    for name in REQUIRED_ENTRIES:
        if not (session_dir / name).exists():
            raise GateInputError(f"{session_dir / name}: missing; is {session_dir} a complete session folder written by `keel live`?")
    try:
        verify_manifest(session_dir)
    except SessionIntegrityError as error:
        raise GateInputError(f"session changed after recording: {error}") from None
    manifest = json.loads((session_dir / MANIFEST_JSON).read_text())
    document = _session_document(session_dir / SESSION_JSON)
    try:
        recorded_variant = load_variant(session_dir / VARIANT_YAML)
    except VariantError as error:
        raise GateInputError(str(error)) from None
    fills = _fills(session_dir / FILLS_PARQUET)
    orders = _orders(session_dir / ORDERS_PARQUET)
    check_order_log(fills, orders, session_dir / FILLS_PARQUET, session_dir / ORDERS_PARQUET)
    instrument = _instrument(session_dir / CATALOG_DIR, instrument_id)
    _check_currencies(fills, instrument, session_dir / FILLS_PARQUET)
    _check_summary(document, fills, orders, instrument, session_dir / SESSION_JSON)
    return RecordedSession(
        session_dir=session_dir,
        session_id=session_dir.name,
        sha256=file_sha256(session_dir / MANIFEST_JSON),
        document=document,
        recorded_variant=recorded_variant,
        start_ns=document["start_ns"],
        end_ns=document["end_ns"],
        fills=fills,
        orders=orders,
        instrument=instrument,
        catalog_digests={path: digest for path, digest in manifest["files"].items() if path.startswith(f"{CATALOG_DIR}/")},
    )


def file_sha256(path: Path) -> str:
    """Return the sha256 hex digest of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_order_log(fills: pl.DataFrame, orders: pl.DataFrame, fills_path: Path, orders_path: Path) -> None:
    """
    Refuse an order log that is not a possible order history, or that records other fills than the fills table.

    Every ``OrderFilled`` event must equal its fill (times, ids, side, quantity, price), each order keeps one
    strategy, instrument, side and type, a status follows from its event, an order never fills beyond its
    quantity, and a ``reason`` appears only on the events that carry one.

    Raises
    ------
    GateInputError
        Naming the file, the order and the column of the first inconsistency.

    """
    logged = orders.filter(pl.col("event_type") == "OrderFilled")
    if logged.height != fills.height:
        raise GateInputError(f"{orders_path}: {logged.height} OrderFilled events, but {fills_path} holds {fills.height} fills")
    order_by = ["client_order_id", "ts_init", "ts_event"]
    logged = logged.sort(order_by, maintain_order=True)
    recorded = fills.sort(order_by, maintain_order=True)
    for log_column, fill_column in _FILL_COLUMNS.items():
        differs = logged[log_column].ne_missing(recorded[fill_column])
        if differs.any():
            row = int(differs.arg_true()[0])
            raise GateInputError(
                f"{fills_path} and {orders_path} disagree on fill {recorded['trade_id'][row]} of order "
                f"{recorded['client_order_id'][row]}: {fill_column} is {recorded[fill_column][row]} in the fills, "
                f"{log_column} is {logged[log_column][row]} in the order log",
            )
    for (client_order_id,), events in orders.group_by("client_order_id", maintain_order=True):
        _check_order_events(str(client_order_id), events, orders_path)


def _check_order_events(client_order_id: str, events: pl.DataFrame, orders_path: Path) -> None:
    where = f"{orders_path}: order {client_order_id}"
    for column in ("strategy_id", "instrument_id", "order_side", "order_type"):
        values = events[column].drop_nulls().unique()
        if values.len() > 1:
            raise GateInputError(f"{where}: {column} changes between its events ({sorted(values.to_list())})")
    venue_ids = events["venue_order_id"].drop_nulls().unique()
    if venue_ids.len() > 1:
        raise GateInputError(f"{where}: venue_order_id changes between its events ({sorted(venue_ids.to_list())})")
    order_quantity: float | None = None
    filled = 0.0
    for event in events.iter_rows(named=True):
        event_type, status = event["event_type"], event["status"]
        if (event["reason"] is not None) != (event_type in _EVENTS_WITH_REASON):
            raise GateInputError(f"{where}: reason {event['reason']!r} on an {event_type} event ({sorted(_EVENTS_WITH_REASON)} carry one, no other)")
        if event_type == "OrderFilled":
            filled += event["quantity"]
            if order_quantity is not None and filled > order_quantity + QUANTITY_EPSILON:
                raise GateInputError(f"{where}: filled {filled:g}, beyond its quantity {order_quantity:g}")
            expected = "FILLED" if order_quantity is not None and filled >= order_quantity - QUANTITY_EPSILON else "PARTIALLY_FILLED"
            if status is not None and status != expected:
                raise GateInputError(f"{where}: status {status} after a fill bringing it to {filled:g} of {order_quantity}, expected {expected}")
            continue
        if event["quantity"] is not None:
            order_quantity = event["quantity"]
        if status is not None and event_type in _STATUS_AFTER and status != _STATUS_AFTER[event_type]:
            raise GateInputError(f"{where}: status {status} after {event_type}, expected {_STATUS_AFTER[event_type]}")


def open_orders_at_end(orders: pl.DataFrame) -> list[str]:
    """Return the orders whose last recorded status is not final (still working when the session stopped)."""
    last = orders.group_by("client_order_id", maintain_order=True).agg(pl.col("status").last())
    return last.filter(~pl.col("status").is_in(sorted(TERMINAL_STATUSES)) | pl.col("status").is_null())["client_order_id"].to_list()


def _session_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise GateInputError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise GateInputError(f"{path}: expected a JSON object")
    if document.get("status") != COMPLETED:
        raise GateInputError(
            f"{path}: status is {document.get('status')!r} (failure: {document.get('failure')}), expected {COMPLETED!r}: "
            "only a session that ran to its end and stopped flat is evidence",
        )
    for key, kind in (("variant", dict), ("start_ns", int), ("end_ns", int), ("instrument_ids", list), ("counts", dict), ("pnl", dict), ("after_stop", dict)):
        if not isinstance(document.get(key), kind):
            raise GateInputError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    if document["end_ns"] <= document["start_ns"]:
        raise GateInputError(f"{path}: end_ns {document['end_ns']} is not after start_ns {document['start_ns']}")
    if not isinstance(document["after_stop"].get("flat"), bool):
        raise GateInputError(f"{path}: field 'after_stop.flat' missing or not a bool")
    return document


def _fills(path: Path) -> pl.DataFrame:
    try:
        fills = read_fills(path)
    except (ValueError, pl.exceptions.PolarsError, OSError) as error:
        raise GateInputError(f"{path}: {error}") from None
    for column in fills.columns:
        if fills[column].null_count():
            raise GateInputError(f"{path}: column {column} has {fills[column].null_count()} empty values")
    duplicated = fills.filter(pl.struct("instrument_id", "trade_id").is_duplicated())
    if duplicated.height:
        raise GateInputError(f"{path}: trade_id {duplicated['trade_id'][0]} of {duplicated['instrument_id'][0]} appears {duplicated.height} times")
    _require_values(path, fills, "order_side", {"BUY", "SELL"})
    _require_values(path, fills, "liquidity_side", {"MAKER", "TAKER"})
    for column in ("last_qty", "last_px"):
        if (fills[column] <= 0).any():
            raise GateInputError(f"{path}: column {column} has values <= 0")
    return fills


def _orders(path: Path) -> pl.DataFrame:
    try:
        orders = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise GateInputError(f"{path}: {error}") from None
    missing = [name for name in ORDERS_SCHEMA if name not in orders.columns]
    if missing:
        raise GateInputError(f"{path}: not a session order log, missing columns {missing}")
    orders = orders.select(list(ORDERS_SCHEMA)).cast(ORDERS_SCHEMA)
    for column in _ORDER_LOG_NOT_NULL:
        if orders[column].null_count():
            raise GateInputError(f"{path}: column {column} has {orders[column].null_count()} empty values")
    _require_values(path, orders, "event_type", _EVENT_TYPES)
    _require_values(path, orders.filter(pl.col("order_side").is_not_null()), "order_side", {"BUY", "SELL"})
    return orders


def _check_summary(document: dict[str, Any], fills: pl.DataFrame, orders: pl.DataFrame, instrument: Instrument, path: Path) -> None:
    """``session.json`` sums up the tables as they were written: its instrument, counts and P&L must be theirs."""
    if instrument.id.value not in document["instrument_ids"]:
        raise GateInputError(f"{path}: instrument_ids {document['instrument_ids']} do not hold the variant's {instrument.id.value}")
    counts = {"fills": fills.height, "orders": orders["client_order_id"].n_unique(), "order_events": orders.height}
    for key, actual in counts.items():
        if document["counts"].get(key) != actual:
            raise GateInputError(f"{path}: counts.{key} is {document['counts'].get(key)}, the session's tables hold {actual}")
    recorded = document["pnl"]
    if "error" in recorded or not isinstance(recorded.get("mark_price"), float | int | None):
        raise GateInputError(f"{path}: pnl has no result ({recorded.get('error', 'mark_price missing')})")
    computed = msgspec.to_builtins(
        pnl_components(fills, InstrumentTerms.of(instrument), recorded["mark_price"]),
    )
    for key, value in computed.items():
        expected = recorded.get(key)
        same = value == expected if not isinstance(value, float) else isinstance(expected, float | int) and math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
        if not same:
            raise GateInputError(f"{path}: pnl.{key} is {expected}, the fills give {value}")


def _check_currencies(fills: pl.DataFrame, instrument: Instrument, path: Path) -> None:
    """A fill is priced in the pair's quote currency, and charged in one of its two currencies (what a fill price values)."""
    base, quote = instrument.base_currency.code, instrument.quote_currency.code
    _require_values(path, fills, "quote_currency", {quote})
    _require_values(path, fills.filter(pl.col("commission") != 0), "commission_currency", {base, quote})


def _require_values(path: Path, frame: pl.DataFrame, column: str, allowed: set[str]) -> None:
    unknown = sorted(set(frame[column].unique().to_list()) - allowed)
    if unknown:
        raise GateInputError(f"{path}: column {column} has {unknown}, expected one of {sorted(allowed)}")


def _instrument(catalog_dir: Path, instrument_id: str) -> Instrument:
    instruments = ParquetDataCatalog(str(catalog_dir)).instruments(instrument_ids=[instrument_id])
    if not instruments:
        raise GateInputError(f"{catalog_dir}: no instrument {instrument_id}; the session did not record the variant's instrument")
    instrument = instruments[0]
    if not isinstance(instrument, CurrencyPair):
        # Spot pairs pay no funding; for perpetuals the gate would need funding accounting it does not have.
        raise GateInputError(
            f"{catalog_dir}: {instrument_id} is a {type(instrument).__name__}; the gate validates spot (CurrencyPair) sessions "
            "only, as it has no funding accounting for derivatives",
        )
    return instrument
