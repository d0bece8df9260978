"""``keel promote``: a variant file goes forward only with a passing gate decision on record for it.

The variant is identified by the sha256 of its file: the exact bytes the gate ran, not its name. The latest
promote-or-reject verdict on record for that file, under the thresholds in force (their file's sha256), must be
``promote``; refusals do not count either way (they judged no evidence). The promotion itself is appended to
the same decision log, pointing at the gate decision it relies on.
"""

from dataclasses import dataclass
from pathlib import Path

from keel.validation.decisions import PROMOTION
from keel.validation.decisions import Decision
from keel.validation.decisions import append_decision
from keel.validation.decisions import latest_gate_decision
from keel.validation.decisions import operator_name
from keel.validation.decisions import read_decisions
from keel.validation.errors import GateInputError
from keel.validation.recorded_session import file_sha256
from keel.validation.thresholds import resolve_thresholds_path


class PromotionRefused(RuntimeError):
    """No passing gate decision is on record for the variant file (exit 1)."""


@dataclass(frozen=True)
class Promotion:
    """
    A recorded promotion.

    Parameters
    ----------
    decision : Decision
        The promotion line appended to the decision log.
    gate_decision : Decision
        The passing gate decision it relies on.

    """

    decision: Decision
    gate_decision: Decision


def promote(variant_path: str | Path, thresholds_path: str | Path | None = None, operator: str | None = None) -> Promotion:
    """
    Promote the variant file if its latest gate verdict on record (under these thresholds) is ``promote``.

    Raises
    ------
    GateInputError
        If the variant or thresholds file is missing, or the decision log was edited.
    PromotionRefused
        If no gate verdict is on record for that exact file, or the latest one is a rejection.

    """
    variant_path = Path(variant_path)
    thresholds = resolve_thresholds_path(thresholds_path)
    for path, what in ((variant_path, "variant"), (thresholds, "gate thresholds")):
        if not path.is_file():
            raise GateInputError(f"{path}: {what} file not found")
    variant_sha256 = file_sha256(variant_path)
    thresholds_sha256 = file_sha256(thresholds)
    gate_decision = latest_gate_decision(variant_sha256, thresholds_sha256)
    if gate_decision is None:
        raise PromotionRefused(
            f"{variant_path}: no gate verdict on record for this exact file (sha256 {variant_sha256}) under {thresholds} "
            f"(sha256 {thresholds_sha256}); run `keel gate` on a session of it first",
        )
    if gate_decision.record["verdict"] != "promote":
        raise PromotionRefused(
            f"{variant_path}: its latest gate verdict ({gate_decision.record['time']}, session {gate_decision.record['session_id']}) "
            f"is {gate_decision.record['verdict']}: {'; '.join(gate_decision.record['reasons'])}",
        )
    decision = append_decision(
        {
            "kind": PROMOTION,
            "operator": operator_name(operator),
            "variant_path": str(variant_path.resolve()),
            "variant_sha256": variant_sha256,
            "thresholds_path": str(thresholds.resolve()),
            "thresholds_sha256": thresholds_sha256,
            "session_id": gate_decision.record["session_id"],
            "session_sha256": gate_decision.record["session_sha256"],
            "gate_decision_sha256": gate_decision.sha256,
        },
    )
    return Promotion(decision=decision, gate_decision=gate_decision)


def require_promotion(variant_path: str | Path) -> Decision:
    """
    Return the latest promotion on record for this exact variant file; what ``keel live --env live`` requires.

    Raises
    ------
    GateInputError
        If the variant file is missing or the decision log was edited.
    PromotionRefused
        If the file (its sha256) was never promoted.

    """
    variant_path = Path(variant_path)
    if not variant_path.is_file():
        raise GateInputError(f"{variant_path}: variant file not found")
    variant_sha256 = file_sha256(variant_path)
    promotions = [decision for decision in read_decisions() if decision.record.get("kind") == PROMOTION and decision.record.get("variant_sha256") == variant_sha256]
    if not promotions:
        raise PromotionRefused(
            f"{variant_path}: never promoted (sha256 {variant_sha256}); a variant trades live only after a passing "
            "`keel gate` on an emulator or paper session of this exact file and `keel promote`",
        )
    return promotions[-1]
