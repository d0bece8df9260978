"""The recorded session folder: its file names and the order-event table.

The validation gate reads these files, so their names and columns are a contract::

    <session>/session.json     what ran, where, when, with which fault knobs, and the outcome
    <session>/variant.yaml     the exact variant that ran
    <session>/catalog/         ParquetDataCatalog: the instrument and the recorded trades, quotes, book deltas
    <session>/fills.parquet    keel.fills layout
    <session>/orders.parquet   one row per order event (ORDERS_SCHEMA)
    <session>/node.log         the node's log
    <session>/manifest.json    sha256 of every other file, written last: the folder as it was recorded

The manifest seals the folder at write time: a gate (or anyone) calls :func:`verify_manifest` before trusting
the files, so a fill table edited, a file deleted or one slipped in afterwards is refused, not judged. The
gate writes its own reports into ``<session>/gate/``, which the manifest leaves out.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from keel.atomic_files import write_json_atomic

SESSION_JSON = "session.json"
VARIANT_YAML = "variant.yaml"
CATALOG_DIR = "catalog"
FILLS_PARQUET = "fills.parquet"
ORDERS_PARQUET = "orders.parquet"
NODE_LOG_NAME = "node"  # nautilus appends ".log"
NODE_LOG = f"{NODE_LOG_NAME}.log"
MANIFEST_JSON = "manifest.json"
GATE_DIR = "gate"  # written after recording by the gate, so outside the manifest
MANIFEST_ALGORITHM = "sha256"

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




class SessionIntegrityError(ValueError):
    """A session folder differs from its manifest, or has none; the message names the file and what is wrong."""


def write_manifest(session_dir: Path) -> Path:
    """
    Seal ``session_dir``: write ``manifest.json`` with the sha256 of every file in it, atomically.

    Every file counts, ``catalog/`` included; ``manifest.json`` itself and the ``gate/`` sub-folder do not.
    Call it as the very last write of a session.

    Returns
    -------
    Path
        The manifest's path.
    """
    session_dir = Path(session_dir)
    document = {"algorithm": MANIFEST_ALGORITHM, "files": _digests(session_dir)}
    return write_json_atomic(document, session_dir / MANIFEST_JSON)


def verify_manifest(session_dir: Path) -> None:
    """
    Check that ``session_dir`` holds exactly the files its manifest lists, with the recorded content.

    Raises
    ------
    SessionIntegrityError
        Naming the manifest if it is missing or malformed, else the first file (in path order) that is
        missing, was added, or whose hash differs from the recorded one.
    """
    session_dir = Path(session_dir)
    recorded = _read_manifest(session_dir / MANIFEST_JSON)
    present = _digests(session_dir)
    for relative in sorted(recorded.keys() | present.keys()):
        where = f"{session_dir / relative}"
        if relative not in present:
            raise SessionIntegrityError(f"{where}: missing (listed in {MANIFEST_JSON} when the session was recorded)")
        if relative not in recorded:
            raise SessionIntegrityError(f"{where}: added after recording (not in {MANIFEST_JSON})")
        if present[relative] != recorded[relative]:
            raise SessionIntegrityError(
                f"{where}: content changed after recording "
                f"({MANIFEST_ALGORITHM} {recorded[relative]} recorded, {present[relative]} now)",
            )


def _digests(session_dir: Path) -> dict[str, str]:
    """Return {relative posix path: sha256 hex digest} of every sealed file under ``session_dir``, sorted."""
    if not session_dir.is_dir():
        raise SessionIntegrityError(f"{session_dir}: not a session folder (no such directory)")
    digests: dict[str, str] = {}
    for path in sorted(session_dir.rglob("*")):
        relative = path.relative_to(session_dir)
        if not path.is_file() or relative.as_posix() == MANIFEST_JSON or relative.parts[0] == GATE_DIR:
            continue
        with path.open("rb") as handle:
            digests[relative.as_posix()] = hashlib.file_digest(handle, MANIFEST_ALGORITHM).hexdigest()
    return digests


def _read_manifest(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise SessionIntegrityError(f"{path}: missing: the session folder was never sealed")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SessionIntegrityError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict) or document.get("algorithm") != MANIFEST_ALGORITHM:
        raise SessionIntegrityError(f"{path}: expected an object with algorithm {MANIFEST_ALGORITHM!r}")
    files = document.get("files")
    if not isinstance(files, dict) or not all(isinstance(value, str) for value in files.values()):
        raise SessionIntegrityError(f"{path}: expected 'files' to map relative paths to hex digests")
    return files
