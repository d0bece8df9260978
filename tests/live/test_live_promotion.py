"""A live environment trades only a variant file that was promoted; the check comes before anything connects."""

import shutil
from pathlib import Path

import pytest

from keel.live.session import LiveSessionError
from keel.live.session import run_live_session
from keel.settings import CONFIGS_DIR
from keel.validation.decisions import GATE
from keel.validation.decisions import PROMOTION
from keel.validation.decisions import append_decision
from keel.validation.promotion import PromotionRefused
from keel.validation.promotion import require_promotion
from keel.validation.recorded_session import file_sha256

VARIANT = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"
LIVE_ENV = CONFIGS_DIR / "env" / "binance_live.example.yaml"


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_live_environment_refuses_a_variant_never_promoted(keel_home: Path, tmp_path: Path) -> None:
    session_dir = tmp_path / "session"

    with pytest.raises(LiveSessionError, match="never promoted"):
        run_live_session(VARIANT, LIVE_ENV, session_dir=session_dir, duration=60.0)

    assert not session_dir.exists()


def test_a_promotion_of_another_file_does_not_count(keel_home: Path, tmp_path: Path) -> None:
    promoted = tmp_path / "promoted.yaml"
    shutil.copyfile(VARIANT, promoted)
    with promoted.open("a") as handle:
        handle.write("# reviewed\n")  # other bytes: another file as far as the record goes
    _promote(promoted)

    assert require_promotion(promoted).record["variant_sha256"] == file_sha256(promoted)
    with pytest.raises(PromotionRefused, match="never promoted"):
        require_promotion(VARIANT)


def test_a_gate_verdict_alone_is_not_a_promotion(keel_home: Path) -> None:
    append_decision({"kind": GATE, "verdict": "promote", "variant_sha256": file_sha256(VARIANT), "thresholds_sha256": "x", "reasons": []})

    with pytest.raises(PromotionRefused):
        require_promotion(VARIANT)


def _promote(variant: Path) -> None:
    gate = append_decision({"kind": GATE, "verdict": "promote", "variant_sha256": file_sha256(variant), "thresholds_sha256": "x", "reasons": []})
    append_decision({"kind": PROMOTION, "variant_sha256": file_sha256(variant), "gate_decision_sha256": gate.sha256})
