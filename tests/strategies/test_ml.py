"""ML family: features equal in research and in the strategy, walk-forward splits, the MLflow round trip, the family checks.

Models are trained on the first half of the shipped Binance spot sample (23:54:14-23:57:00) into a temporary Keel
home and registered there, so the shipped variants' ``models:/ml_signal_<asset>usdt/latest`` resolve to them;
the backtests run over the whole sample (6 minutes), the second half out of sample.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
import yaml
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.config import ActorConfig
from nautilus_trader.common.config import ImportableActorConfig
from nautilus_trader.core.data import Data

from keel.backtests.result import load_run
from keel.backtests.runner import run_backtest
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.binance_usdm_ingest import sample_usdm_recordings
from keel.fills import read_fills
from keel.live.session import run_live_session
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.settings import CONFIGS_DIR
from keel.strategies.ml_features import FeatureSpec
from keel.strategies.ml_features import TapeFeatures
from keel.strategies.ml_features import decision_rows
from keel.strategies.ml_model import TrainingResult
from keel.strategies.ml_model import forward_returns
from keel.strategies.ml_model import read_tape
from keel.strategies.ml_model import tape_features
from keel.strategies.ml_model import train_signal_model
from keel.strategies.ml_model import walk_forward_splits
from keel.strategies.ml_signal import PREDICTION_SIGNAL
from keel.strategies.ml_signal import MLSignalConfig
from keel.strategies.ml_signal import load_signal_model
from keel.timestamps import utc_nanos
from keel.variant import Variant
from keel.variant import load_variant

VARIANTS = CONFIGS_DIR / "variants"
TRAINING_END = "2024-08-08T23:57:00Z"
LOOKAHEAD_CUT = "2024-08-08T23:58:30Z"
ASSETS = ("btc", "eth")
# Predictions of every backtest in this process, one list per run, in run order (PredictionRecorder appends).
RECORDINGS: list[list[tuple[int, float]]] = []


class PredictionRecorderConfig(ActorConfig, frozen=True):
    """Configuration of the prediction recorder (nothing to set)."""


class PredictionRecorder(Actor):
    """Record every ``ml_prediction`` signal a strategy publishes into a new list of :data:`RECORDINGS`."""

    def on_start(self) -> None:
        RECORDINGS.append([])
        self.subscribe_signal(PREDICTION_SIGNAL)

    def on_signal(self, signal: Data) -> None:
        RECORDINGS[-1].append((signal.ts_event, signal.value))


def _with_recorder(variant: Variant) -> Variant:
    recorder = ImportableActorConfig(actor_path="test_ml:PredictionRecorder", config_path="test_ml:PredictionRecorderConfig", config={})
    return msgspec.structs.replace(variant, actors=[*variant.actors, recorder])


@pytest.fixture(scope="module")
def ml_home(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TrainingResult]]:
    """A Keel home holding a model per asset trained on the sample's first half, registered as the variants expect."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEEL_HOME", str(tmp_path_factory.mktemp("ml_home")))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield {
            asset: train_signal_model(sample_catalog, f"{asset.upper()}USDT.BINANCE", f"ml_signal_{asset}usdt", end=TRAINING_END)
            for asset in ASSETS
        }


@pytest.mark.parametrize("instrument_id", ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"])
def test_incremental_features_equal_the_batch_form_on_every_real_print(sample_catalog: Path, instrument_id: str) -> None:
    spec = FeatureSpec(return_horizons=(1, 7, 60), flow_windows=(3, 50), volatility_window=40, duration_window=25)
    tape = read_tape(sample_catalog, instrument_id)
    batch = tape_features(tape, spec)

    incremental = TapeFeatures(spec)
    rows = np.full_like(batch, np.nan)
    prints = zip(tape.price_ticks.tolist(), tape.size_steps.tolist(), tape.aggressor_sides.tolist(), tape.ts_event.tolist(), strict=True)
    for index, (price, size, side, ts_event) in enumerate(prints):
        if incremental.push(price, size, side, ts_event):
            rows[index] = incremental.row

    assert np.isnan(batch[: spec.warmup - 1]).all()
    assert not np.isnan(batch[spec.warmup - 1 :]).any()
    np.testing.assert_array_equal(rows, batch)  # bit for bit, NaN where not ready
    # Spot checks against the raw prints: the 7-print return and the 50-print order-flow imbalance of the last print.
    prices, sizes, sides = tape.price_ticks, tape.size_steps, tape.aggressor_sides
    assert batch[-1, 1] == pytest.approx(prices[-1] / prices[-8] - 1.0, rel=1e-12)
    signed = np.where(sides[-50:] == 1, sizes[-50:], -sizes[-50:])
    assert batch[-1, 4] == pytest.approx(signed.sum() / sizes[-50:].sum(), rel=1e-12)


def test_features_at_a_print_ignore_every_later_print(sample_catalog: Path) -> None:
    tape = read_tape(sample_catalog, "BTCUSDT.BINANCE")
    spec = FeatureSpec()
    cut = 5_000
    whole = tape_features(tape, spec)
    truncated = read_tape(sample_catalog, "BTCUSDT.BINANCE", end=int(tape.ts_init[cut - 1]))

    np.testing.assert_array_equal(tape_features(truncated, spec)[:cut], whole[:cut])


def test_walk_forward_folds_never_train_on_the_scored_fold_or_after(sample_catalog: Path) -> None:
    horizon = 100
    tape = read_tape(sample_catalog, "ETHUSDT.BINANCE")
    labels = forward_returns(tape.price_ticks, horizon)
    rows = np.flatnonzero(~np.isnan(tape_features(tape, FeatureSpec())).any(axis=1) & ~np.isnan(labels))

    splits = walk_forward_splits(rows, 4, horizon)

    assert len(splits) == 4
    for (train, test), (_, following) in zip(splits, [*splits[1:], (None, np.array([rows[-1] + 1]))], strict=True):
        # Every trained label (horizon prints forward) ends before the fold's first scored print.
        assert train.max() + horizon < test.min()
        assert test.max() < following.min()  # folds follow each other in time
    assert np.concatenate([test for _, test in splits]).tolist() == rows[rows >= splits[0][1][0]].tolist()
    # A label is the return to the print `horizon` later.
    assert labels[0] == pytest.approx((tape.price_ticks[horizon] / tape.price_ticks[0] - 1.0) * 10_000)


def test_training_scores_walk_forward_and_registers_a_loadable_model(ml_home: dict[str, TrainingResult]) -> None:
    for asset, result in ml_home.items():
        assert result.model_uri == f"models:/ml_signal_{asset}usdt/1"
        assert len(result.folds) == 4
        for fold in result.folds:
            assert fold.last_train_row + 100 < fold.first_test_row
            assert 0.0 <= fold.hit_rate <= 1.0
        model, spec = load_signal_model(result.model_uri)
        assert spec == FeatureSpec()
        assert model.n_features_in_ == len(spec.names)


def test_unknown_model_uri_is_refused_with_the_uri(ml_home: dict[str, TrainingResult]) -> None:
    with pytest.raises(ValueError, match="models:/no_such_model/1"):
        load_signal_model("models:/no_such_model/1")


def test_config_refuses_an_empty_model_uri() -> None:
    with pytest.raises(ValueError, match="model_uri"):
        MLSignalConfig(instrument_id="BTCUSDT.BINANCE", model_uri=" ")


@pytest.mark.parametrize(
    ("asset", "fills", "fingerprint"),
    [
        ("btc", 19, "30d8551ca84fb019"),
        ("eth", 26, "18751fdc966805ee"),
    ],
)
def test_variant_round_trip_and_family_checks(
    asset: str, fills: int, fingerprint: str, ml_home: dict[str, TrainingResult], sample_catalog: Path, tmp_path: Path,
) -> None:
    """
    The ML round trip and the family checks on one pair of runs.

    Research (batch features of the catalog's prints, the model loaded by its registered URI) and the strategy
    inside a backtest predict the same values at the same prints, compared row by row; the strategy trades,
    ends flat, its fills are the pinned ones, and truncating the data changes no earlier decision.
    """
    variant = _with_recorder(load_variant(VARIANTS / f"ml_signal_{asset}_binance_spot.yaml"))
    config = variant.strategy.config
    RECORDINGS.clear()

    assert_no_lookahead(variant, sample_catalog, LOOKAHEAD_CUT, tmp_path)

    run = load_run(tmp_path / "full")
    assert_closed_out(run)
    assert run.fills.height == fills
    assert fills_fingerprint(run.fills) == fingerprint

    model, spec = load_signal_model(ml_home[asset].model_uri)
    tape = read_tape(sample_catalog, config["instrument_id"])
    rows = decision_rows(tape.price_ticks.size, spec, config["predict_every_events"])
    research = list(zip(tape.ts_event[rows].tolist(), model.predict(tape_features(tape, spec)[rows]).tolist(), strict=True))
    full, cut = RECORDINGS
    assert len(full) > 100
    assert full == research[: len(full)]  # every prediction, bit for bit
    assert cut == research[: len(cut)]
    # The strategy stopped (close-out) before the data's end: research's predictions it did not make are all after.
    close_out_ns = int(max(model.close_out_before_end_ms for model in run.venues.values()) * 1_000_000)
    assert (tape.ts_init[rows[len(full) :]] >= utc_nanos(run.summary.end) - close_out_ns).all()


@pytest.fixture(scope="module")
def usdm_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped 40 s of the BTCUSDT perpetual (trades, quotes, L2 deltas), 2024-08-08 23:54:15-23:54:55."""
    path = tmp_path_factory.mktemp("usdm") / "catalog"
    ingest_binance_usdm(sample_usdm_recordings(), path)
    return path


def _sides_opened(fills: pl.DataFrame) -> set[str]:
    """Return the sides positions were opened on: a fill that starts from flat opens one."""
    signed = fills.sort("ts_event").select(
        "order_side", pl.when(pl.col("order_side") == "BUY").then(pl.col("last_qty")).otherwise(-pl.col("last_qty")).cum_sum().alias("after"),
    )
    before = signed["after"].shift(1, fill_value=0.0)
    return set(signed.filter(before.abs() < 1e-12)["order_side"])


def test_perpetual_is_traded_long_and_short(ml_home: dict[str, TrainingResult], usdm_catalog: Path, tmp_path: Path) -> None:
    # No shipped perpetual tape is long enough to train on and trade after, so the BTC spot model (its features
    # are ratios: scale-free) trades the 40 s perpetual slice, predicting every 10 prints.
    spot = load_variant(VARIANTS / "ml_signal_btc_binance_spot.yaml")
    overrides = {"instrument_id": "BTCUSDT-PERP.BINANCE", "model_uri": ml_home["btc"].model_uri, "predict_every_events": 10, "entry_bps": 0.5}
    variant = msgspec.structs.replace(spot.with_config("ml_signal_btc_perpetual", overrides), venues=["binance_usdm"])

    run = run_backtest(variant, usdm_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)

    assert_closed_out(run)
    assert _sides_opened(run.fills) == {"BUY", "SELL"}
    assert (run.fills.height, fills_fingerprint(run.fills)) == (24, "67fbb1878f65c6f9")


@pytest.mark.slow
@pytest.mark.requires_redis
def test_emulator_session_closes_out_on_stop(redis_service: None, ml_home: dict[str, TrainingResult], sample_catalog: Path, tmp_path: Path) -> None:
    # The ETH variant, predicting every 10 prints, on 23:57:00-23:58:30 at 10x: it trades, and holds a position
    # at stop that the close-on-stop sells (the node's child process finds the model in the same Keel home).
    document = yaml.safe_load((VARIANTS / "ml_signal_eth_binance_spot.yaml").read_text())
    document["strategy"]["config"] |= {"predict_every_events": 10, "exit_bps": 5.0, "max_holding_events": 10**6}
    variant_path = tmp_path / "ml_signal_session.yaml"
    variant_path.write_text(yaml.safe_dump(document))
    environment = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    environment["emulator"] |= {"catalog": str(sample_catalog), "start": "2024-08-08T23:57:00Z", "end": "2024-08-08T23:58:30Z", "speed": 10.0}
    env_path = tmp_path / "emulator.yaml"
    env_path.write_text(yaml.safe_dump(environment))

    run_live_session(variant_path, env_path, session_dir=tmp_path / "session")

    session = json.loads((tmp_path / "session" / SESSION_JSON).read_text())
    assert session["status"] == "completed"
    assert session["after_stop"]["flat"] is True
    fills = read_fills(tmp_path / "session" / FILLS_PARQUET).sort("ts_event", maintain_order=True)
    orders = fills.unique("client_order_id", keep="first", maintain_order=True)
    assert orders["order_side"].to_list()[:1] == ["BUY"]
    assert orders["order_side"].to_list()[-1] == "SELL"
    bought, sold = (fills.filter(pl.col("order_side") == side)["last_qty"].sum() for side in ("BUY", "SELL"))
    # Everything bought was sold but the commission Binance took in ETH, less than one 0.0001 step per buy.
    assert 0 <= bought - sold < orders.filter(pl.col("order_side") == "BUY").height * 0.0001
