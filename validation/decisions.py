"""Decisions on record: an append-only log of every gate verdict and every promotion.

``$KEEL_HOME/decisions.jsonl`` holds one JSON object per line. Lines are only ever appended (under an
exclusive lock), and each carries the sha256 of the line before it (``previous_sha256``), so a line
rewritten or removed afterwards breaks the chain and every later reader refuses the log, naming the line.
"""

import fcntl
import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from keel.settings import keel_home
from keel.validation.errors import GateInputError

DECISIONS_LOG = "decisions.jsonl"
GATE = "gate"
PROMOTION = "promotion"


@dataclass(frozen=True)
class Decision:
    """
    One line of the decision log.

    Parameters
    ----------
    sha256 : str
        sha256 of the line (without its newline): how later lines and promotions refer to it.
    record : dict[str, Any]
        The decoded line.

    """

    sha256: str
    record: dict[str, Any]


def decisions_path() -> Path:
    """Return the decision log of the current ``$KEEL_HOME``."""
    return keel_home() / DECISIONS_LOG


def operator_name(operator: str | None = None) -> str:
    """Return who decides: ``operator``, else ``$KEEL_OPERATOR``, else the login name."""
    return operator or os.environ.get("KEEL_OPERATOR") or getpass.getuser()


def append_decision(record: dict[str, Any]) -> Decision:
    """Append ``record`` (with ``time`` and ``previous_sha256`` added) to the log and return it as written."""
    path = decisions_path()
    with path.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        lines = handle.read().splitlines()
        previous = _line_sha256(lines[-1]) if lines else None
        written = {"time": datetime.now(UTC).isoformat(), **record, "previous_sha256": previous}
        line = json.dumps(written, default=str).encode()
        handle.write(line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return Decision(_line_sha256(line), written)


def read_decisions() -> list[Decision]:
    """
    Return every decision on record, oldest first, after checking the chain of line hashes.

    Raises
    ------
    GateInputError
        Naming the log and the line that is not valid JSON or does not follow the line before it.

    """
    path = decisions_path()
    if not path.is_file():
        return []
    decisions: list[Decision] = []
    previous: str | None = None
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise GateInputError(f"{path}: line {number} is not valid JSON ({error})") from None
        if not isinstance(record, dict) or record.get("previous_sha256") != previous:
            raise GateInputError(f"{path}: line {number} does not follow line {number - 1} (previous_sha256 differs): the log was edited")
        previous = _line_sha256(line)
        decisions.append(Decision(previous, record))
    return decisions


def latest_gate_decision(variant_sha256: str, thresholds_sha256: str) -> Decision | None:
    """Return the latest promote or reject verdict on record for that exact variant file under those thresholds."""
    verdicts = [
        decision
        for decision in read_decisions()
        if decision.record.get("kind") == GATE
        and decision.record.get("verdict") in ("promote", "reject")
        and decision.record.get("variant_sha256") == variant_sha256
        and decision.record.get("thresholds_sha256") == thresholds_sha256
    ]
    return verdicts[-1] if verdicts else None


def _line_sha256(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()
