"""The Optuna sweep: trials are backtests, the study resumes, the best trials become variant files."""

from pathlib import Path

import optuna
import pytest
import yaml

from keel.backtests.sweep import SweepError
from keel.backtests.sweep import run_sweep
from keel.settings import CONFIGS_DIR
from keel.variant import load_variant

BASE = CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml"


@pytest.fixture
def keel_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KEEL_HOME", str(home))
    return home


@pytest.fixture
def space(tmp_path: Path) -> Path:
    # Narrow enough that every trial trades on the 6-minute sample.
    path = tmp_path / "space.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "objective": "pnl_net",
                "direction": "maximize",
                "min_round_trips": 1,
                "parameters": {
                    "fast_period": {"type": "int", "low": 20, "high": 60, "step": 10},
                    "slow_period": {"type": "int", "low": 120, "high": 240, "step": 40},
                },
            },
        ),
    )
    return path


def test_sweep_writes_loadable_best_variants_and_resumes(keel_home: Path, space: Path, sample_catalog: Path) -> None:
    first = run_sweep(BASE, sample_catalog, trials=2, space_path=space, top=2, log_to_mlflow=False)

    assert first.new_trials == 2
    assert 1 <= len(first.best) <= 2
    values = [value for _, value, _ in first.best]
    assert values == sorted(values, reverse=True)
    for path, value, params in first.best:
        variant = load_variant(path)
        assert variant.origin["study"] == first.study_name
        assert variant.origin["value"] == value
        for name, chosen in params.items():
            assert variant.strategy.config[name] == chosen

    second = run_sweep(BASE, sample_catalog, trials=1, space_path=space, top=2, log_to_mlflow=False)

    assert second.total_trials == 3
    assert second.new_trials == 1
    study = optuna.load_study(study_name=first.study_name, storage=f"sqlite:///{first.sweep_dir / 'study.db'}")
    assert len(study.trials) == 3
    assert all(trial.user_attrs["fills"] > 0 for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE)


def test_space_naming_an_unknown_config_field_is_refused(keel_home: Path, tmp_path: Path, sample_catalog: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"parameters": {"no_such_field": {"type": "int", "low": 1, "high": 2}}}))

    with pytest.raises(SweepError, match="bad.yaml"):
        run_sweep(BASE, sample_catalog, trials=1, space_path=path, log_to_mlflow=False)
