"""Variant files: round trip, and clear errors naming the file and the field."""

from pathlib import Path

import pytest
import yaml

from keel.settings import CONFIGS_DIR
from keel.variant import VariantError
from keel.variant import load_variant
from keel.variant import write_variant

BASE = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"


def _write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_round_trip_and_with_config(tmp_path: Path) -> None:
    base = load_variant(BASE)
    changed = base.with_config("faster", {"fast_period": 20}, origin={"study": "s", "trial": 3})

    loaded = load_variant(write_variant(changed, tmp_path / "faster.yaml"))

    assert loaded == changed
    assert loaded.strategy.config["fast_period"] == 20
    assert loaded.strategy.config["slow_period"] == base.strategy.config["slow_period"]
    assert loaded.origin == {"study": "s", "trial": 3}
    assert loaded.build_strategy().config.fast_period == 20


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VariantError, match="nope.yaml: variant file not found"):
        load_variant(tmp_path / "nope.yaml")


def test_unknown_top_level_field_is_named(tmp_path: Path) -> None:
    document = {**yaml.safe_load(BASE.read_text()), "stratgy": {}}

    with pytest.raises(VariantError, match=r"bad.yaml: .*stratgy"):
        load_variant(_write(tmp_path / "bad.yaml", document))


def test_strategy_config_the_class_rejects_is_named(tmp_path: Path) -> None:
    document = yaml.safe_load(BASE.read_text())
    document["strategy"]["config"]["fast_period"] = "fast"

    with pytest.raises(VariantError, match=r"bad.yaml: strategy cannot be built .*fast_period"):
        load_variant(_write(tmp_path / "bad.yaml", document))


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(VariantError, match="expected a mapping"):
        load_variant(_write(tmp_path / "list.yaml", [1, 2]))
