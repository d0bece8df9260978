"""ML-driven signal: a model trained offline (``keel.strategies.ml_model``) predicts the forward return from tape features."""


import numpy as np
from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import PositiveFloat
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoFuture
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import FIXED_PRECISION

from keel.settings import mlflow_fluent_store
from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig
from keel.strategies.ml_features import FeatureSpec
from keel.strategies.ml_features import TapeFeatures

LONG = 1
FLAT = 0
SHORT = -1
# The signal every prediction is published as (``publish_signal``): an actor subscribing to it records them.
PREDICTION_SIGNAL = "ml_prediction"


class MLSignalConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``MLSignal`` (plus the fields every Keel strategy has, ``KeelStrategyConfig``).

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade, on its trade prints. A spot pair is traded long-only; a perpetual or dated
        future long and short.
    model_uri : str
        MLflow URI of a model ``keel.strategies.ml_model`` trained and registered (``models:/<name>/<version>``,
        ``models:/<name>/latest``, ``runs:/<run>/model``); resolved against ``$MLFLOW_TRACKING_URI`` or the
        Keel home's store. The model predicts the forward return in basis points from the features its metadata
        names (``keel.strategies.ml_features.FeatureSpec``), which the strategy computes print by print.
    entry_bps : PositiveFloat, default 2.0
        Enter when the predicted forward return is at least this (buy) or at most its negative (sell short,
        where shorting is allowed), in basis points.
    exit_bps : NonNegativeFloat, default 0.0
        Exit a long when the prediction is at most ``-exit_bps`` (a short: at least ``+exit_bps``): the opposite
        signal. 0 exits as soon as the predicted sign turns.
    max_holding_events : PositiveInt, default 500
        Exit after this many trade prints in a position, whatever the model says.
    predict_every_events : PositiveInt, default 50
        Predict on every this-many-th trade print (counting from the first): a prediction costs tens of
        microseconds, a feature update under one, so predicting on every print would make the model the
        bottleneck. Features are updated on every print regardless.
    """

    instrument_id: InstrumentId
    model_uri: str
    entry_bps: PositiveFloat = 2.0
    exit_bps: NonNegativeFloat = 0.0
    max_holding_events: PositiveInt = 500
    predict_every_events: PositiveInt = 50

    def __post_init__(self) -> None:
        if not self.model_uri.strip():
            raise ValueError("model_uri is empty: expected an MLflow model URI such as models:/ml_signal_btcusdt/latest")


class MLSignal(KeelStrategy):
    """
    Trade the sign of a model's predicted forward return, one position at a time.

    On start the model is loaded from ``model_uri`` with the feature spec stored in its metadata; the strategy
    calls the raw scikit-learn model on a preallocated numpy row (the pyfunc wrapper builds a DataFrame and checks
    the schema on every call). Every trade print updates the features; every ``predict_every_events``-th print,
    once they are ready, the model predicts, the prediction is published as the ``ml_prediction`` signal, and the
    position follows it: enter beyond ``entry_bps``, exit on the opposite signal or after ``max_holding_events``
    prints. Decisions depend only on the prints and the strategy's own orders and position, never on the wall
    clock.
    """

    def __init__(self, config: MLSignalConfig) -> None:
        super().__init__(config)
        self.model = None
        self.features: TapeFeatures | None = None
        self.batch: np.ndarray = np.zeros((1, 0))
        self.price_unit = 1
        self.size_unit = 1
        self.allows_short = False
        self.position_side = FLAT
        self.held_events = 0
        self.working_order: ClientOrderId | None = None

    def on_start_strategy(self) -> None:
        instrument_id = self.config.instrument_id
        instrument = self.instrument(instrument_id)
        self.allows_short = isinstance(instrument, (CryptoPerpetual, CryptoFuture))
        # Raw fixed-point values divided by these are exact integer ticks and size steps, the features' inputs.
        self.price_unit = 10 ** (FIXED_PRECISION - instrument.price_precision)
        self.size_unit = 10 ** (FIXED_PRECISION - instrument.size_precision)
        self.model, spec = load_signal_model(self.config.model_uri)
        self.features = TapeFeatures(spec)
        # The model sees a view of the features' own row: no copy, no allocation per prediction.
        self.batch = self.features.row.reshape(1, -1)
        self._refresh_position_side()
        self.subscribe_trade_ticks(instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        features = self.features
        ready = features.push(tick.price.raw // self.price_unit, tick.size.raw // self.size_unit, tick.aggressor_side, tick.ts_event)
        if self.position_side != FLAT:
            self.held_events += 1
        if not ready or features.count % self.config.predict_every_events:
            if self.position_side != FLAT and self.held_events >= self.config.max_holding_events:
                self._exit()
            return
        prediction = float(self.model.predict(self.batch)[0])
        self.publish_signal(PREDICTION_SIGNAL, prediction, tick.ts_event)
        self.decide(prediction, tick.price.as_double())

    def decide(self, prediction: float, price: float) -> None:
        """Act on one prediction (forward return, bp) at ``price``."""
        config = self.config
        if self.position_side == FLAT:
            if prediction >= config.entry_bps:
                self._enter(OrderSide.BUY, price)
            elif prediction <= -config.entry_bps and self.allows_short:
                self._enter(OrderSide.SELL, price)
            return
        opposite = prediction <= -config.exit_bps if self.position_side == LONG else prediction >= config.exit_bps
        if opposite or self.held_events >= config.max_holding_events:
            self._exit()

    def _enter(self, side: OrderSide, price: float) -> None:
        if self._order_working():
            return
        instrument_id = self.config.instrument_id
        self.working_order = self.submit_market(instrument_id, side, self.entry_quantity(instrument_id, price))

    def _exit(self) -> None:
        if self._order_working():
            return
        self.working_order = self.flatten(self.config.instrument_id)

    def _order_working(self) -> bool:
        # One order at a time, tracked from its creation (live, a queued submission is neither in flight nor open).
        return self.working_order is not None and not self.cache.order(self.working_order).is_closed

    def on_order_filled(self, event: OrderFilled) -> None:
        super().on_order_filled(event)
        self._refresh_position_side()

    def _refresh_position_side(self) -> None:
        instrument_id = self.config.instrument_id
        if self.closable(instrument_id) is None:
            side = FLAT
        else:
            side = LONG if self.signed_position(instrument_id) > 0 else SHORT
        if side != self.position_side:
            self.held_events = 0
        self.position_side = side

    def on_stop_strategy(self) -> None:
        self.unsubscribe_trade_ticks(self.config.instrument_id)

    def on_reset(self) -> None:
        super().on_reset()
        if self.features is not None:
            self.features.reset()
            self.batch = self.features.row.reshape(1, -1)
        self.position_side = FLAT
        self.held_events = 0
        self.working_order = None


def load_signal_model(model_uri: str) -> tuple[object, FeatureSpec]:
    """
    Load a model ``keel.strategies.ml_model`` registered, and the feature spec it was trained on.

    Raises
    ------
    ValueError
        If the URI resolves to no model, or to a model without the feature spec in its metadata.
    """
    import mlflow  # costs seconds to import: only strategies of this family pay it, once per process
    from threadpoolctl import threadpool_limits

    with mlflow_fluent_store() as store:
        try:
            loaded = mlflow.pyfunc.load_model(model_uri)
        except Exception as error:  # mlflow raises MlflowException, OSError or its own subclasses depending on the store
            raise ValueError(
                f"model_uri {model_uri!r}: no such model in {store} ({error}); train and register one with "
                "python -m keel.strategies.ml_model (docs/strategies/ml.md)",
            ) from error
    metadata = loaded.metadata.metadata or {}
    if "features" not in metadata:
        raise ValueError(f"model_uri {model_uri!r}: its metadata has no 'features' (a FeatureSpec); expected a model logged by keel.strategies.ml_model")
    # scikit-learn's tree predictions run on an OpenMP pool; for one row, waking it costs more than the trees,
    # and on a busy machine a spinning pool takes a hundred milliseconds a call. One thread, for this process.
    threadpool_limits(limits=1, user_api="openmp")
    return loaded.get_raw_model(), FeatureSpec.from_dict(metadata["features"])
