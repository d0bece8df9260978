"""A recorded session folder as the gate trusts it, checked before anything is compared.

The gate judges evidence, so the folder is refused (``GateInputError``, exit 2, naming the file) unless every
file of the layout (``keel.live.session_layout``) is there, the folder is exactly what its manifest sealed at
write time, ``session.json`` says the session completed and sums up the tables as they are (instruments,
counts, and its P&L, recomputed with ``keel.pnl.portfolio_pnl`` and ``keel.settlement.catalog_funding`` as
``keel live`` computed it), and the fills table and the order-event log are well formed and tell the same
story fill for fill. A missing input is a refusal, never a skipped check.
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
from keel.pnl import PnlInputError
from keel.pnl import portfolio_pnl
from keel.settlement import catalog_funding
from keel.validation.errors import GateInputError
from keel.variant import Variant
from keel.variant import VariantError
from keel.variant import load_variant

REQUIRED_ENTRIES = (SESSION_JSON, VARIANT_YAML, CATALOG_DIR, FILLS_PARQUET, ORDERS_PARQUET, NODE_LOG, MANIFEST_JSON)
COMPLETED = "completed"
# Where ``keel live`` took an instrument's mark: the recorder's last trade, or the last fill when it saw none.
MARK_SOURCES = frozenset({"last_trade", "last_fill"})

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
    instruments : dict[str, Instrument]
        Every instrument of the session (``session.json`` instrument_ids), as recorded in its catalog, by id.
    terms : dict[str, InstrumentTerms]
        Their P&L terms, by id.
    funding : pl.DataFrame
        The funding the session's perpetual positions paid or received (``keel.pnl.FUNDING_PAYMENTS_SCHEMA``),
        settled from the session's catalog as ``keel live`` settled it; empty for spot pairs.
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
    instruments: dict[str, Instrument]
    terms: dict[str, InstrumentTerms]
    funding: pl.DataFrame
    catalog_digests: dict[str, str]


def load_recorded_session(session_dir: str | Path, instrument_ids: list[str]) -> RecordedSession:
    """
    Check the session folder and return its content, or refuse it.

    Parameters
    ----------
    session_dir : str | Path
        A folder written by ``keel live``.
    instrument_ids : list[str]
        The instruments of the variant being gated; the session and its catalog must hold every one.

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
    session_json = session_dir / SESSION_JSON
    missing = [instrument_id for instrument_id in instrument_ids if instrument_id not in document["instrument_ids"]]
    if missing:
        raise GateInputError(f"{session_json}: instrument_ids {document['instrument_ids']} do not hold the variant's {missing}")
    instruments = {instrument_id: _instrument(session_dir / CATALOG_DIR, instrument_id) for instrument_id in document["instrument_ids"]}
    terms = {instrument_id: _terms(instrument, session_dir / CATALOG_DIR) for instrument_id, instrument in instruments.items()}
    _check_fill_instruments(fills, terms, session_dir / FILLS_PARQUET, session_json)
    _check_currencies(fills, terms, session_dir / FILLS_PARQUET)
    _check_counts(document, fills, orders, session_json)
    funding = catalog_funding(session_dir / CATALOG_DIR, fills, terms)
    _check_pnl(document, fills, terms, funding, session_json)
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
        instruments=instruments,
        terms=terms,
        funding=funding,
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


def _check_fill_instruments(fills: pl.DataFrame, terms: dict[str, InstrumentTerms], fills_path: Path, session_json: Path) -> None:
    """Every fill is of an instrument the session traded: its P&L has no terms for any other."""
    unknown = sorted(set(fills["instrument_id"].unique().to_list()) - set(terms))
    if unknown:
        raise GateInputError(f"{fills_path}: fills of {unknown}, not instruments of the session ({sorted(terms)} in {session_json.name} instrument_ids)")


def _check_counts(document: dict[str, Any], fills: pl.DataFrame, orders: pl.DataFrame, path: Path) -> None:
    """``session.json`` counts the tables as they were written."""
    counts = {"fills": fills.height, "orders": orders["client_order_id"].n_unique(), "order_events": orders.height}
    for key, actual in counts.items():
        if document["counts"].get(key) != actual:
            raise GateInputError(f"{path}: counts.{key} is {document['counts'].get(key)}, the session's tables hold {actual}")


def _check_pnl(document: dict[str, Any], fills: pl.DataFrame, terms: dict[str, InstrumentTerms], funding: pl.DataFrame, path: Path) -> None:
    """
    ``session.json``'s pnl is what ``keel live`` computes from the tables: ``portfolio_pnl`` of the fills at the
    recorded marks, with the funding ``catalog_funding`` settles from the session's catalog.
    """
    recorded = document["pnl"]
    if "error" in recorded:
        raise GateInputError(f"{path}: pnl has no result ({recorded['error']})")
    marks = recorded.get("marks")
    if not isinstance(marks, dict):
        raise GateInputError(f"{path}: field 'pnl.marks' missing or not an object")
    prices: dict[str, float] = {}
    for instrument_id, mark in marks.items():
        if not isinstance(mark, dict) or not isinstance(mark.get("price"), float | int) or mark.get("source") not in MARK_SOURCES:
            raise GateInputError(f"{path}: pnl.marks.{instrument_id} is {mark}, expected {{'price': a number, 'source': one of {sorted(MARK_SOURCES)}}}")
        prices[instrument_id] = float(mark["price"])
    try:
        computed = msgspec.to_builtins(portfolio_pnl(fills, terms, prices, funding))
    except ValueError as error:  # FeeCurrencyError and PnlInputError: tables no P&L can be computed from
        raise GateInputError(f"{path}: pnl cannot be recomputed from the session's tables: {error}") from None
    _compare(computed, {key: value for key, value in recorded.items() if key != "marks"}, "pnl", path)


def _compare(computed: object, recorded: object, field: str, path: Path) -> None:
    """Refuse, naming the first field (``pnl.by_instrument.<id>.fees``) where ``recorded`` differs from ``computed``."""
    if isinstance(computed, dict):
        if not isinstance(recorded, dict) or set(recorded) != set(computed):
            raise GateInputError(f"{path}: {field} is {recorded}, the fills give fields {sorted(computed)}")
        for key, value in computed.items():
            _compare(value, recorded[key], f"{field}.{key}", path)
        return
    if isinstance(computed, float):
        same = isinstance(recorded, float | int) and math.isclose(computed, recorded, rel_tol=1e-9, abs_tol=1e-12)
    else:
        same = computed == recorded
    if not same:
        raise GateInputError(f"{path}: {field} is {recorded}, the fills give {computed}")


def _check_currencies(fills: pl.DataFrame, terms: dict[str, InstrumentTerms], path: Path) -> None:
    """A fill is priced in its instrument's P&L currency, and charged in its base or that currency (what a fill price values)."""
    for instrument_id, instrument_terms in terms.items():
        own = fills.filter(pl.col("instrument_id") == instrument_id)
        _require_values(path, own, "quote_currency", {instrument_terms.quote_currency}, instrument_id)
        currencies = {instrument_terms.base_currency, instrument_terms.quote_currency}
        _require_values(path, own.filter(pl.col("commission") != 0), "commission_currency", currencies, instrument_id)


def _require_values(path: Path, frame: pl.DataFrame, column: str, allowed: set[str], instrument_id: str | None = None) -> None:
    unknown = sorted(set(frame[column].unique().to_list()) - allowed)
    if unknown:
        of = f" for {instrument_id}" if instrument_id else ""
        raise GateInputError(f"{path}: column {column} has {unknown}{of}, expected one of {sorted(allowed)}")


def _instrument(catalog_dir: Path, instrument_id: str) -> Instrument:
    instruments = ParquetDataCatalog(str(catalog_dir)).instruments(instrument_ids=[instrument_id])
    if not instruments:
        raise GateInputError(f"{catalog_dir}: no instrument {instrument_id}; the session did not record the instrument")
    return instruments[0]


def _terms(instrument: Instrument, catalog_dir: Path) -> InstrumentTerms:
    try:
        return InstrumentTerms.of(instrument)
    except PnlInputError as error:
        raise GateInputError(f"{catalog_dir}: {error}") from None
