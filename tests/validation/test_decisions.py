"""The decision log (append-only, hash-chained) and `keel promote` on top of it."""

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.settings import CONFIGS_DIR
from keel.validation.decisions import append_decision
from keel.validation.decisions import decisions_path
from keel.validation.decisions import read_decisions
from keel.validation.errors import GateInputError

VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
THRESHOLDS = CONFIGS_DIR / "gate.yaml"


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _gate_record(variant: Path, verdict: str) -> dict:
    return {
        "kind": "gate",
        "operator": "tester",
        "variant_path": str(variant),
        "variant_sha256": _sha256(variant),
        "session_id": "s1",
        "session_sha256": "0" * 64,
        "thresholds_path": str(THRESHOLDS),
        "thresholds_sha256": _sha256(THRESHOLDS),
        "verdict": verdict,
        "reasons": [] if verdict == "promote" else ["match ratio = 0.5, expected >= 0.9"],
    }


def test_decisions_are_appended_and_earlier_lines_never_rewritten(keel_home: Path) -> None:
    append_decision(_gate_record(VARIANT, "reject"))
    before = decisions_path().read_bytes()

    append_decision(_gate_record(VARIANT, "promote"))

    after = decisions_path().read_bytes()
    assert after.startswith(before)
    lines = after.splitlines()
    assert len(lines) == 2
    # Each line carries the hash of the one before it.
    assert json.loads(lines[0])["previous_sha256"] is None
    assert json.loads(lines[1])["previous_sha256"] == hashlib.sha256(lines[0]).hexdigest()
    assert [decision.record["verdict"] for decision in read_decisions()] == ["reject", "promote"]


def test_an_edited_decision_log_is_refused_naming_the_line(keel_home: Path) -> None:
    append_decision(_gate_record(VARIANT, "reject"))
    append_decision(_gate_record(VARIANT, "reject"))
    lines = decisions_path().read_text().splitlines()
    lines[0] = lines[0].replace('"reject"', '"promote"')
    decisions_path().write_text("\n".join(lines) + "\n")

    with pytest.raises(GateInputError, match="line 2 does not follow line 1"):
        read_decisions()
    result = CliRunner().invoke(app, ["promote", str(VARIANT)])
    assert result.exit_code == 2, result.output


def test_promote_refuses_a_variant_without_a_passing_record_and_records_one_with_it(keel_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(VARIANT.read_text() + "# one byte more is another file\n")
    append_decision(_gate_record(VARIANT, "promote"))
    append_decision(_gate_record(other, "reject"))

    never_gated = CliRunner().invoke(app, ["promote", str(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.sweep.yaml")])
    rejected = CliRunner().invoke(app, ["promote", str(other)])
    other_thresholds = tmp_path / "gate.yaml"
    other_thresholds.write_text(THRESHOLDS.read_text() + "# another desk's copy: other bytes, other thresholds on record\n")
    under_other_thresholds = CliRunner().invoke(app, ["promote", str(VARIANT), "--thresholds", str(other_thresholds)])
    assert len(read_decisions()) == 2  # refusals append nothing
    passing = CliRunner().invoke(app, ["promote", str(VARIANT), "--operator", "alice"])

    assert never_gated.exit_code == 1, never_gated.output
    assert rejected.exit_code == 1 and "reject" in rejected.output
    assert under_other_thresholds.exit_code == 1, under_other_thresholds.output
    assert passing.exit_code == 0, passing.output
    decisions = read_decisions()
    assert len(decisions) == 3
    promotion = decisions[-1].record
    assert promotion["kind"] == "promotion"
    assert promotion["operator"] == "alice"
    assert promotion["variant_sha256"] == _sha256(VARIANT)
    assert promotion["gate_decision_sha256"] == decisions[0].sha256


def test_a_later_rejection_of_the_same_variant_withdraws_its_pass(keel_home: Path) -> None:
    append_decision(_gate_record(VARIANT, "promote"))
    append_decision(_gate_record(VARIANT, "reject"))

    result = CliRunner().invoke(app, ["promote", str(VARIANT)])

    assert result.exit_code == 1, result.output
