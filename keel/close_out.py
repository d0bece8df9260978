"""The close-out controller every node has: it stops every strategy at a given time, so close-on-stop happens
while market data still flows.

A backtest that simply runs out of data stops its strategies after the last data point: their close-out
orders then wait in the simulated latency queue forever and the run ends holding a position. Live, a node
stops while the venue is still there and the close-out fills. In a backtest this controller reproduces the
live order of events: it stops the strategies shortly before the data ends. Live nodes get it without a stop
time today (the node's own stop closes out); it is the place for flattening with retries.
"""

import pandas as pd
from nautilus_trader.common.config import ActorConfig
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.trading.controller import Controller
from nautilus_trader.trading.trader import Trader


class CloseOutControllerConfig(ActorConfig, frozen=True, kw_only=True):
    """
    Configuration for ``CloseOutController``.

    Parameters
    ----------
    stop_at_ns : int, optional
        Node time (ns since epoch: simulated in a backtest, wall time live) at which every running strategy is
        stopped; None sets no timer.
    sweep_after_ns : int, optional
        Time after ``stop_at_ns`` at which the controller asks every stopped strategy that still holds a position
        to flatten again (a strategy with a ``flatten_all`` method, ``keel.strategies.base``): an order in flight
        when the strategy stopped can fill after its close-out, and a stopped strategy receives no more events.
        None: no second pass.

    """

    stop_at_ns: int | None = None
    sweep_after_ns: int | None = None


class CloseOutController(Controller):
    """Stops every running strategy at ``stop_at_ns``, then flattens what in-flight orders left ``sweep_after_ns`` later."""

    def __init__(self, trader: Trader, config: CloseOutControllerConfig) -> None:
        super().__init__(trader=trader, config=config)

    def on_start(self) -> None:
        if self.config.stop_at_ns is None:
            return
        self.clock.set_time_alert(
            name="keel-close-out",
            alert_time=pd.Timestamp(self.config.stop_at_ns, unit="ns", tz="UTC"),
            callback=self._stop_strategies,
        )
        if self.config.sweep_after_ns is not None:
            self.clock.set_time_alert(
                name="keel-close-out-sweep",
                alert_time=pd.Timestamp(self.config.stop_at_ns + self.config.sweep_after_ns, unit="ns", tz="UTC"),
                callback=self._sweep,
            )

    def on_stop(self) -> None:
        # Nothing to clean up: the timer dies with the node. Defined so nautilus does not warn on every stop.
        return

    def _stop_strategies(self, event: TimeEvent) -> None:
        for strategy in self._trader.strategies():
            if strategy.is_running:
                self.stop_strategy(strategy)

    def _sweep(self, event: TimeEvent) -> None:
        for strategy in self._trader.strategies():
            flatten_all = getattr(strategy, "flatten_all", None)
            if flatten_all is None or strategy.is_running or not self.cache.positions_open(strategy_id=strategy.id):
                continue
            # A spot position left as dust (a base-asset commission) sends nothing: only a real close is reported.
            if flatten_all():
                self.log.warning(f"{strategy.id} stopped holding a position (an order was in flight at its stop): flattened it")
