"""Research side of the ML family: read a tape, build features and labels, train on walk-forward splits, register.

``train_signal_model`` reads the trade prints of one instrument from a catalog window, computes the features with
:func:`keel.strategies.ml_features.batch_features` (the definition the strategy updates incrementally) and the
label, the forward return over ``label_horizon`` prints in basis points (the label looks forward, the features
never do), scores a scikit-learn gradient-boosted regressor out of sample on walk-forward folds (each fold
trained only on rows whose labels end before the fold begins), trains the final model on every row, logs it to
MLflow (the Keel home's store, ``keel.settings.mlflow_tracking_uri``) with its feature spec in the model's
metadata, registers it and returns its ``models:/<name>/<version>`` URI. ``MLSignal`` loads it by that URI.

Command line (prints the URI)::

    python -m keel.strategies.ml_model --catalog var/catalog --instrument-id BTCUSDT.BINANCE \
        --model-name ml_signal_btcusdt --end 2024-08-08T23:57:00Z
"""

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from threadpoolctl import threadpool_limits

from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import catalog_files
from keel.data.inventory import read_columns
from keel.settings import keel_home
from keel.settings import mlflow_fluent_store
from keel.strategies.ml_features import FeatureSpec
from keel.strategies.ml_features import batch_features
from keel.timestamps import optional_utc_nanos

EXPERIMENT = "ml_signal_training"
BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Tape:
    """
    The trade prints of one instrument in the order a node receives them (by ``ts_init``, stable).

    Parameters
    ----------
    ts_init, ts_event : np.ndarray
        Receipt and exchange times (ns, int64).
    price_ticks, size_steps : np.ndarray
        Price in ticks and size in size steps of the instrument (int64).
    aggressor_sides : np.ndarray
        nautilus aggressor side per print (1 buyer, 2 seller, 0 none).
    """

    ts_init: np.ndarray
    ts_event: np.ndarray
    price_ticks: np.ndarray
    size_steps: np.ndarray
    aggressor_sides: np.ndarray


@dataclass(frozen=True)
class FoldScore:
    """
    Out-of-sample score of one walk-forward fold.

    Parameters
    ----------
    train_rows, test_rows : int
        Rows trained on and scored.
    last_train_row, first_test_row : int
        Tape indices bounding the fold: every trained row's label ends before ``first_test_row``.
    information_coefficient : float
        Pearson correlation of the predictions with the realized forward returns on the fold (NaN if constant).
    hit_rate : float
        Share of the fold's rows with a non-zero realized return whose predicted sign is right.
    """

    train_rows: int
    test_rows: int
    last_train_row: int
    first_test_row: int
    information_coefficient: float
    hit_rate: float


@dataclass(frozen=True)
class TrainingResult:
    """
    What ``train_signal_model`` produced.

    Parameters
    ----------
    model_uri : str
        ``models:/<name>/<version>`` of the registered model.
    run_id : str
        The MLflow run that logged it (parameters, fold metrics, the model).
    folds : list[FoldScore]
        Walk-forward out-of-sample scores, in time order.
    """

    model_uri: str
    run_id: str
    folds: list[FoldScore]


def read_tape(catalog: str | Path, instrument_id: str, start: int | str | None = None, end: int | str | None = None) -> Tape:
    """Return the trade prints of ``instrument_id`` in the catalog window ``[start, end]`` (by ``ts_init``)."""
    catalog = Path(catalog)
    instruments = ParquetDataCatalog(str(catalog)).instruments(instrument_ids=[instrument_id])
    if not instruments:
        raise ValueError(f"{catalog}: no instrument {instrument_id} in the catalog")
    instrument = instruments[0]
    files = [item for item in catalog_files(catalog) if item.data_type == TRADE_TICK and item.identifier == instrument_id]
    columns = read_columns(files, ["ts_init", "ts_event", "price", "size", "aggressor_side"], optional_utc_nanos(start), optional_utc_nanos(end))
    if columns.height == 0:
        raise ValueError(f"{catalog}: no trade prints of {instrument_id} in [{start}, {end}]")
    # Exact decimals to integer ticks and steps: rounding the float product is exact for any real price.
    frame = columns.sort("ts_init", maintain_order=True).select(
        pl.col("ts_init").cast(pl.Int64),
        pl.col("ts_event").cast(pl.Int64),
        (pl.col("price").cast(pl.Float64) * 10**instrument.price_precision).round().cast(pl.Int64).alias("price_ticks"),
        (pl.col("size").cast(pl.Float64) * 10**instrument.size_precision).round().cast(pl.Int64).alias("size_steps"),
        pl.col("aggressor_side").cast(pl.Int64),
    )
    return Tape(
        ts_init=frame["ts_init"].to_numpy(),
        ts_event=frame["ts_event"].to_numpy(),
        price_ticks=frame["price_ticks"].to_numpy(),
        size_steps=frame["size_steps"].to_numpy(),
        aggressor_sides=frame["aggressor_side"].to_numpy(),
    )


def tape_features(tape: Tape, spec: FeatureSpec) -> np.ndarray:
    """Return the features of every print of ``tape`` (NaN rows before the warm-up)."""
    return batch_features(spec, tape.price_ticks, tape.size_steps, tape.aggressor_sides, tape.ts_event)


def forward_returns(price_ticks: np.ndarray, horizon: int) -> np.ndarray:
    """Return the label at every print: the return to the print ``horizon`` prints later, in bp (NaN at the end)."""
    prices = np.asarray(price_ticks, dtype=np.float64)
    labels = np.full(prices.size, np.nan)
    labels[:-horizon] = (prices[horizon:] - prices[:-horizon]) / prices[:-horizon] * BASIS_POINTS
    return labels


def walk_forward_splits(rows: np.ndarray, folds: int, horizon: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """
    Return ``folds`` (train, test) pairs of tape indices over ``rows`` (sorted), expanding-window walk-forward.

    The rows are cut into ``folds + 1`` consecutive blocks; fold ``k`` scores block ``k + 1`` and trains on the
    rows before it whose label (``horizon`` prints forward) ends before the block's first print, so no trained
    label overlaps the scored prints.
    """
    if folds < 1:
        raise ValueError(f"folds ({folds}) must be at least 1")
    blocks = np.array_split(np.asarray(rows), folds + 1)
    if any(block.size == 0 for block in blocks):
        raise ValueError(f"{len(rows)} rows cannot make {folds} walk-forward folds")
    splits = []
    for block in blocks[1:]:
        first_test = block[0]
        train = rows[rows + horizon < first_test]
        if train.size == 0:
            raise ValueError(f"walk-forward fold starting at row {first_test} has no row whose {horizon}-print label ends before it")
        splits.append((train, block))
    return splits


def new_regressor(seed: int = 0):
    """Return the model family: a small gradient-boosted tree regressor (deterministic, exact per-row predictions)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    # Trees compare and add leaf values row by row, so a row's prediction is the same bit for bit in a batch of
    # ten thousand (research) and alone (the strategy).
    return HistGradientBoostingRegressor(max_iter=50, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=50, early_stopping=False, random_state=seed)


def score_fold(predictions: np.ndarray, realized: np.ndarray) -> tuple[float, float]:
    """Return the information coefficient and the hit rate of ``predictions`` against ``realized`` returns."""
    constant = np.std(predictions) == 0.0 or np.std(realized) == 0.0
    information_coefficient = float("nan") if constant else float(np.corrcoef(predictions, realized)[0, 1])
    moved = realized != 0.0
    hit_rate = float(np.mean(np.sign(predictions[moved]) == np.sign(realized[moved]))) if moved.any() else float("nan")
    return information_coefficient, hit_rate


def train_signal_model(
    catalog: str | Path,
    instrument_id: str,
    model_name: str,
    start: int | str | None = None,
    end: int | str | None = None,
    spec: FeatureSpec | None = None,
    label_horizon: int = 100,
    folds: int = 4,
    seed: int = 0,
) -> TrainingResult:
    """
    Train, score walk-forward, log and register a model for ``MLSignal``; return its URI and scores.

    Parameters
    ----------
    catalog : str | Path
        ``ParquetDataCatalog`` holding the instrument and its trade prints.
    instrument_id : str
        The instrument whose prints make the features and labels.
    model_name : str
        Registered model name (a new version per call).
    start, end : int | str, optional
        Training window (ns or ISO-8601); default all the catalog has. Keep data after ``end`` for evaluation.
    spec : FeatureSpec, optional
        The features (default ``FeatureSpec()``), stored in the model's metadata for the strategy.
    label_horizon : int, default 100
        Prints ahead the label's forward return is measured over.
    folds : int, default 4
        Walk-forward folds scored out of sample before the final model is trained on every row.
    seed : int, default 0
        The regressor's random state.
    """
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    spec = spec or FeatureSpec()
    tape = read_tape(catalog, instrument_id, start, end)
    features = tape_features(tape, spec)
    labels = forward_returns(tape.price_ticks, label_horizon)
    rows = np.flatnonzero(~np.isnan(features).any(axis=1) & ~np.isnan(labels))
    if rows.size < (folds + 1) * 10:
        raise ValueError(f"{catalog}: {rows.size} rows of {instrument_id} with features and a label in [{start}, {end}]: too few to train on")

    scores = []
    # One OpenMP thread: on a machine shared with other work scikit-learn's spinning pool made a fit 15x slower
    # (5.2 s against 0.36 s on the sample, same trees).
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in walk_forward_splits(rows, folds, label_horizon):
            model = new_regressor(seed).fit(features[train], labels[train])
            information_coefficient, hit_rate = score_fold(model.predict(features[test]), labels[test])
            scores.append(FoldScore(train.size, test.size, int(train[-1]), int(test[0]), information_coefficient, hit_rate))
        model = new_regressor(seed).fit(features[rows], labels[rows])

    # MLflow sends usage telemetry unless told not to (as keel.backtests.tracking does).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with mlflow_fluent_store():
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            mlflow.create_experiment(EXPERIMENT, artifact_location=(keel_home() / "mlartifacts").as_uri())
        mlflow.set_experiment(EXPERIMENT)
        with mlflow.start_run(run_name=model_name) as run:
            mlflow.log_params({
                "instrument_id": instrument_id, "catalog": str(catalog), "start": str(start), "end": str(end),
                "label_horizon": label_horizon, "folds": folds, "seed": seed, "rows": int(rows.size), **spec.to_dict(),
            })
            for step, score in enumerate(scores):
                mlflow.log_metrics({"oos_information_coefficient": score.information_coefficient, "oos_hit_rate": score.hit_rate}, step=step)
            logged = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=model_name,
                signature=infer_signature(features[rows[:100]], model.predict(features[rows[:100]])),
                metadata={"features": spec.to_dict(), "label_horizon": label_horizon, "instrument_id": instrument_id},
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                # Named, not inferred: inferring runs the model in a subprocess, seconds for nothing.
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"],
            )
    return TrainingResult(model_uri=f"models:/{model_name}/{logged.registered_model_version}", run_id=run.info.run_id, folds=scores)


def main(arguments: list[str] | None = None) -> None:
    """Train and register a model from the command line and print its URI and walk-forward scores."""
    parser = argparse.ArgumentParser(prog="python -m keel.strategies.ml_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", required=True, help="ParquetDataCatalog folder")
    parser.add_argument("--instrument-id", required=True, help="e.g. BTCUSDT.BINANCE")
    parser.add_argument("--model-name", required=True, help="registered model name, e.g. ml_signal_btcusdt")
    parser.add_argument("--start", help="training window start (ISO-8601)")
    parser.add_argument("--end", help="training window end (ISO-8601)")
    parser.add_argument("--label-horizon", type=int, default=100, help="prints ahead of the label's forward return")
    parser.add_argument("--folds", type=int, default=4, help="walk-forward folds")
    options = parser.parse_args(arguments)
    result = train_signal_model(
        options.catalog, options.instrument_id, options.model_name, options.start, options.end,
        label_horizon=options.label_horizon, folds=options.folds,
    )
    for number, score in enumerate(result.folds):
        print(f"fold {number}: trained on {score.train_rows} rows, scored {score.test_rows}: IC {score.information_coefficient:.3f}, hit rate {score.hit_rate:.3f}")
    print(result.model_uri)


if __name__ == "__main__":
    main()
