"""Run one live node in its own process, from start to dispose, and report what it left behind.

nautilus keeps process-wide state (the logger is initialised once per process, so a second node in the same
process would log into the first one's file), so every session runs its node in a fresh child process.
The parent passes the job in memory (credentials included: they never touch disk or the environment of the
child) and asks the node to stop through an event.
"""

import time
from dataclasses import dataclass
from dataclasses import field
from multiprocessing.synchronize import Event
from pathlib import Path
from queue import Queue
from typing import Any

from nautilus_trader.live.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.position import Position

from keel.live.credentials import ApiCredentials
from keel.live.environment import LiveEnvironment
from keel.live.node import VenueEndpoints
from keel.live.node import build_node
from keel.live.node import build_node_config
from keel.live.node import clear_node_state
from keel.live.node import startup_failure
from keel.live.recorder import SessionRecorder
from keel.live.session_layout import VARIANT_YAML
from keel.sizing import closable_quantity
from keel.variant import load_variant

STOP_POLL_SECS = 0.2


@dataclass(frozen=True)
class NodeJob:
    """
    Everything the child process needs to run the node.

    Parameters
    ----------
    session_dir : str
        Session folder; ``variant.yaml`` must already be in it.
    environment : LiveEnvironment
        The environment.
    endpoints : VenueEndpoints
        URLs to connect to.
    credentials : ApiCredentials
        API key and secret (in memory only).
    duration_secs : float, optional
        Stop the node this long after it starts; None runs until asked to stop.
    """

    session_dir: str
    environment: LiveEnvironment
    endpoints: VenueEndpoints
    credentials: ApiCredentials
    duration_secs: float | None


@dataclass
class InstrumentAfterStop:
    """
    What the node's cache held of one instrument after stop.

    Parameters
    ----------
    net_position : str
        nautilus's net position.
    realized_pnl : str
        nautilus's realized P&L (e.g. ``"-0.02 USDT"``): it leaves out commissions taken in the base asset, so
        the session's own P&L is computed from its fills instead.
    open_positions : list[str]
        Positions still open (close-on-stop leaves none).
    dust_positions : list[str]
        Positions left that no order can close (``is_dust``): not open, and not flat either.
    open_orders : list[str]
        Orders still working (close-on-stop leaves none).
    """

    net_position: str = "0"
    realized_pnl: str = "0"
    open_positions: list[str] = field(default_factory=list)
    dust_positions: list[str] = field(default_factory=list)
    open_orders: list[str] = field(default_factory=list)


@dataclass
class NodeOutcome:
    """
    What the node did and what it left behind after stopping, as seen through its own cache.

    Parameters
    ----------
    start_ns : int
        Wall time the node started, ns since epoch.
    end_ns : int
        Wall time the node had stopped, ns since epoch.
    failure : str, optional
        Why the run failed (clients never connected, strategy never RUNNING, an exception), or None.
    strategy_states : dict[str, str]
        State of each strategy when the node stopped.
    instruments : dict[str, InstrumentAfterStop]
        Per instrument (the variant's, and any other the cache held a position or an order of): what was left
        after stop. Empty when the node never reported.
    recording : dict[str, Any]
        The recorder's summary: record counts, re-stamped records, final books, last trade prices.
    """

    start_ns: int = 0
    end_ns: int = 0
    failure: str | None = None
    strategy_states: dict[str, str] = field(default_factory=dict)
    instruments: dict[str, InstrumentAfterStop] = field(default_factory=dict)
    recording: dict[str, Any] = field(default_factory=dict)

    def left_open(self) -> bool:
        """Return True if a position (dust aside) or a working order was left after stop."""
        return any(item.open_positions or item.open_orders for item in self.instruments.values())


def run_node_job(job: NodeJob, stop_requested: Event, results: Queue) -> None:
    """Child-process entry point: run the node and put its ``NodeOutcome`` on ``results``."""
    outcome = NodeOutcome()
    try:
        session_dir = Path(job.session_dir)
        variant = load_variant(session_dir / VARIANT_YAML)
        config = build_node_config(variant, job.environment, job.endpoints, job.credentials, session_dir)
        _run(job, [InstrumentId.from_str(instrument_id) for instrument_id in variant.instrument_ids], config, stop_requested, outcome)
    except Exception as error:  # reported to the parent, which writes it into session.json
        outcome.failure = outcome.failure or f"{type(error).__name__}: {error}"
    results.put(outcome)


def _run(
    job: NodeJob,
    instrument_ids: list[InstrumentId],
    config: TradingNodeConfig,
    stop_requested: Event,
    outcome: NodeOutcome,
) -> None:
    environment = job.environment
    if environment.state.fresh_on_start:
        clear_node_state(environment.state, config.trader_id.value)
    node = build_node(config)
    recorder = _recorder(node)
    loop = node.get_event_loop()
    stopping = False
    came_up = False

    def stop(reason: str | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if reason is None and not came_up:
            reason = f"node stopped before it came up: {startup_failure(node)}"
        if reason is not None:
            outcome.failure = reason
        node.stop()

    def watchdog() -> None:
        problem = None if came_up else startup_failure(node)
        if problem is not None:
            stop(f"node did not come up within {environment.timeouts.watchdog:g}s: {problem}")

    deadline = None if job.duration_secs is None else time.monotonic() + job.duration_secs

    def poll() -> None:
        nonlocal came_up
        came_up = came_up or startup_failure(node) is None
        if stop_requested.is_set() or (deadline is not None and time.monotonic() >= deadline):
            stop(None)
            return
        loop.call_later(STOP_POLL_SECS, poll)

    loop.call_later(environment.timeouts.watchdog, watchdog)
    loop.call_soon(poll)
    outcome.start_ns = time.time_ns()
    try:
        node.run()
    finally:
        _inspect_after_stop(node, instrument_ids, outcome)
        node.dispose()
        outcome.end_ns = time.time_ns()
        outcome.recording = recorder.summary()


def _recorder(node: TradingNode) -> SessionRecorder:
    """Return the session recorder the assembly put on the node's trader (its summary is read after the run)."""
    recorders = [actor for actor in node.trader.actors() if isinstance(actor, SessionRecorder)]
    if len(recorders) != 1:
        raise RuntimeError(f"the node's trader runs {len(recorders)} session recorders, expected 1 (keel.assembly.assemble)")
    return recorders[0]


def _inspect_after_stop(node: TradingNode, instrument_ids: list[InstrumentId], outcome: NodeOutcome) -> None:
    cache = node.cache
    outcome.strategy_states = {str(key): value for key, value in node.trader.strategy_states().items()}
    instruments = {instrument_id.value: InstrumentAfterStop() for instrument_id in instrument_ids}
    for instrument_id in instrument_ids:
        item = instruments[instrument_id.value]
        item.net_position = str(node.portfolio.net_position(instrument_id))
        realized = node.portfolio.realized_pnl(instrument_id)
        item.realized_pnl = str(realized) if realized is not None else "0"
    for position in cache.positions_open():
        item = instruments.setdefault(position.instrument_id.value, InstrumentAfterStop())
        if is_dust(position, cache.instrument(position.instrument_id)):
            item.dust_positions.append(repr(position))
        else:
            item.open_positions.append(repr(position))
    for order in cache.orders_open():
        instruments.setdefault(order.instrument_id.value, InstrumentAfterStop()).open_orders.append(repr(order))
    outcome.instruments = instruments


def is_dust(position: Position, instrument: Instrument | None) -> bool:
    """
    Return True if no order can close ``position``: the venue would refuse it by its size or notional filters.

    Binance spot takes a buy's commission in the bought asset, so closing exactly what was bought is
    impossible: the sell is rounded down to the size step and a remainder below the step (or below the
    minimum quantity / notional, valued at the position's opening price) stays in the account. Such a position
    is reported as dust, not as open. The rule itself is ``keel.sizing.closable_quantity``, the one strategies
    size their closing orders by.
    """
    if instrument is None:
        return False
    return closable_quantity(instrument, position.quantity.as_decimal(), position.avg_px_open) is None
