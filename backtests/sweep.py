"""Parameter sweeps: an Optuna study over a few strategy config values, one backtest per trial.

The search space lives beside the variant (``<variant>.sweep.yaml``)::

    objective: pnl_net        # a numeric field of summary.json (backtests.result.RunSummary)
    direction: maximize
    min_round_trips: 3        # fewer round trips: the trial is pruned, not scored
    parameters:
      fast_period: {type: int, low: 10, high: 100, step: 10}
      entry_threshold_bps: {type: float, low: 0.0, high: 5.0, log: false}

Every trial is recorded in Optuna (on disk by default, resumable) and in MLflow (experiment
``sweep-<study>``); the best trials are written out as variant files.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import optuna

from keel.backtests.result import NUMERIC_FIELDS
from keel.backtests.runner import run_backtest
from keel.config_files import load_struct
from keel.settings import sweeps_dir
from keel.variant import Variant
from keel.variant import load_variant
from keel.variant import write_variant


class SweepError(ValueError):
    """A search-space file is missing or malformed."""


class Parameter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    One swept config value.

    Parameters
    ----------
    type : str
        ``int`` or ``float``.
    low : float
        Lowest value.
    high : float
        Highest value.
    step : float, optional
        Grid step (ints default to 1).
    log : bool, default False
        Sample on a log scale.

    """

    type: str
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int | float:
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


class SearchSpace(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    What a sweep varies and how it scores trials.

    Parameters
    ----------
    parameters : dict[str, Parameter]
        Strategy config values to vary.
    objective : str, default "pnl_net"
        The ``summary.json`` key to optimise.
    direction : str, default "maximize"
        ``maximize`` or ``minimize``.
    min_round_trips : int, default 3
        Trials with fewer round trips are pruned.

    """

    parameters: dict[str, Parameter]
    objective: str = "pnl_net"
    direction: str = "maximize"
    min_round_trips: int = 3


@dataclass(frozen=True)
class SweepOutcome:
    """
    What a sweep call did.

    Parameters
    ----------
    study_name : str
        The Optuna study.
    sweep_dir : Path
        ``$KEEL_HOME/sweeps/<study>``: study.db (default storage), runs/, variants/.
    objective : str
        The optimised summary key.
    total_trials : int
        Trials in the study after this call.
    new_trials : int
        Trials this call added.
    best : list[tuple[Path, float, dict[str, Any]]]
        Variant file, objective value and parameters of the best trials, best first.

    """

    study_name: str
    sweep_dir: Path
    objective: str
    total_trials: int
    new_trials: int
    best: list[tuple[Path, float, dict[str, Any]]]


def space_path_for(variant_path: Path) -> Path:
    """Return ``<variant>.sweep.yaml`` beside ``<variant>.yaml``."""
    return variant_path.with_name(f"{variant_path.stem}.sweep.yaml")


def load_space(path: Path, variant: Variant) -> SearchSpace:
    """Load a search-space file and check it against the variant's config."""
    space = load_struct(path, SearchSpace, SweepError, "search-space")
    if space.objective not in NUMERIC_FIELDS:
        raise SweepError(f"{path}: objective: expected a numeric field of a run summary {sorted(NUMERIC_FIELDS)}, got {space.objective!r}")
    if space.direction not in ("maximize", "minimize"):
        raise SweepError(f"{path}: direction: expected 'maximize' or 'minimize', got {space.direction!r}")
    for name, parameter in space.parameters.items():
        if parameter.type not in ("int", "float"):
            raise SweepError(f"{path}: parameters.{name}.type: expected 'int' or 'float', got {parameter.type!r}")
        if parameter.low > parameter.high:
            raise SweepError(f"{path}: parameters.{name}: low {parameter.low} is above high {parameter.high}")
    try:
        variant.with_config(variant.name, {name: p.low if p.type == "float" else int(p.low) for name, p in space.parameters.items()}).build_strategy()
    except Exception as error:  # unknown field or a value the strategy config rejects
        raise SweepError(f"{path}: parameters do not fit {variant.strategy.config_path}: {error}") from error
    return space


def run_sweep(
    variant_path: str | Path,
    catalog_path: str | Path,
    trials: int = 20,
    space_path: str | Path | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    start: int | str | None = None,
    end: int | str | None = None,
    top: int = 3,
    log_to_mlflow: bool = True,
) -> SweepOutcome:
    """Add ``trials`` trials to the study of ``variant_path`` and write the ``top`` best as variant files."""
    variant_path = Path(variant_path)
    base = load_variant(variant_path)
    space = load_space(Path(space_path) if space_path else space_path_for(variant_path), base)
    study_name = study_name or base.name
    sweep_dir = sweeps_dir() / study_name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{sweep_dir / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction=space.direction,
        load_if_exists=True,
        # Seeded by the number of trials already there: a resumed study samples new points, and the same
        # sequence of calls gives the same trials.
        sampler=optuna.samplers.TPESampler(seed=len(_existing_trials(study_name, storage))),
    )
    before = len(study.trials)

    def objective(trial: optuna.Trial) -> float:
        params = {name: parameter.suggest(trial, name) for name, parameter in space.parameters.items()}
        try:
            candidate = base.with_config(f"{base.name}-t{trial.number:04d}", params, origin=_origin(study_name, trial.number))
            candidate.build_strategy()
        except Exception as error:  # an invalid combination (e.g. fast >= slow) is not a result
            raise optuna.TrialPruned(f"invalid config {params}: {error}") from error
        outcome = run_backtest(
            candidate,
            catalog_path,
            run_dir=sweep_dir / "runs" / f"trial-{trial.number:04d}",
            start=start,
            end=end,
            log_to_mlflow=log_to_mlflow,
            experiment=f"sweep-{study_name}",
            tags={"keel.study": study_name, "keel.trial": str(trial.number)},
            tearsheet=False,
        )
        summary = outcome.summary
        for key, value in summary.metrics().items():
            trial.set_user_attr(key, value)
        if summary.round_trips < space.min_round_trips:
            raise optuna.TrialPruned(f"{summary.round_trips} round trips < {space.min_round_trips}")
        value = summary.metric(space.objective)
        if value is None:
            raise optuna.TrialPruned(f"objective {space.objective} undefined for this trial")
        return float(value)

    study.optimize(objective, n_trials=trials)
    best = _write_best(study, base, space, sweep_dir / "variants", top)
    return SweepOutcome(
        study_name=study_name,
        sweep_dir=sweep_dir,
        objective=space.objective,
        total_trials=len(study.trials),
        new_trials=len(study.trials) - before,
        best=best,
    )


def _existing_trials(study_name: str, storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    except KeyError:  # no such study yet
        return []


def _origin(study_name: str, trial_number: int) -> dict[str, Any]:
    return {"study": study_name, "trial": trial_number}


def _write_best(study: optuna.Study, base: Variant, space: SearchSpace, folder: Path, top: int) -> list[tuple[Path, float, dict[str, Any]]]:
    completed = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    completed.sort(key=lambda trial: trial.value, reverse=space.direction == "maximize")
    best = []
    for rank, trial in enumerate(completed[:top], start=1):
        origin = {**_origin(study.study_name, trial.number), "rank": rank, "objective": space.objective, "value": trial.value}
        variant = base.with_config(f"{base.name}-t{trial.number:04d}", trial.params, origin=origin)
        path = write_variant(variant, folder / f"{variant.name}.yaml")
        best.append((path, float(trial.value), dict(trial.params)))
    if not best:
        raise SweepError(f"study {study.study_name}: no trial completed (all pruned or failed); widen the search space")
    return best
