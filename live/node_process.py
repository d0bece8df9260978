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
from keel.live.recorder import SessionRecorderConfig
from keel.live.session_layout import VARIANT_YAML
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
    open_positions : list[str]
        Positions still open after stop (close-on-stop leaves none).
    dust_positions : list[str]
        Positions left after stop that no order can close (below the venue's size or notional minimum).
    open_orders : list[str]
        Orders still working after stop (close-on-stop leaves none).
    net_positions : dict[str, str]
        Net position per instrument after stop.
    realized_pnl : dict[str, str]
        nautilus's realized P&L per instrument after stop (e.g. ``"-0.02 USDT"``): it leaves out commissions
        taken in the base asset, so the session's own P&L is computed from its fills instead.
    recording : dict[str, Any]
        The recorder's summary: record counts, re-stamped records, final books.
    """

    start_ns: int = 0
    end_ns: int = 0
    failure: str | None = None
    strategy_states: dict[str, str] = field(default_factory=dict)
    open_positions: list[str] = field(default_factory=list)
    dust_positions: list[str] = field(default_factory=list)
    open_orders: list[str] = field(default_factory=list)
    net_positions: dict[str, str] = field(default_factory=dict)
    realized_pnl: dict[str, str] = field(default_factory=dict)
    recording: dict[str, Any] = field(default_factory=dict)


def run_node_job(job: NodeJob, stop_requested: Event, results: Queue) -> None:
    """Child-process entry point: run the node and put its ``NodeOutcome`` on ``results``."""
    outcome = NodeOutcome()
    try:
        session_dir = Path(job.session_dir)
        variant = load_variant(session_dir / VARIANT_YAML)
        config = build_node_config(variant, job.environment, job.endpoints, job.credentials, session_dir)
        _run(job, variant.instrument_ids, config, stop_requested, outcome)
    except Exception as error:  # reported to the parent, which writes it into session.json
        outcome.failure = outcome.failure or f"{type(error).__name__}: {error}"
    results.put(outcome)


def _run(
    job: NodeJob,
    instrument_ids: list[str],
    config: TradingNodeConfig,
    stop_requested: Event,
    outcome: NodeOutcome,
) -> None:
    environment = job.environment
    if environment.state.fresh_on_start:
        clear_node_state(environment.state, config.trader_id.value)
    node = build_node(config)
    recorder = SessionRecorder(
        SessionRecorderConfig(session_dir=job.session_dir, instrument_ids=[InstrumentId.from_str(instrument_id) for instrument_id in instrument_ids]),
    )
    node.trader.add_actor(recorder)
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
        _inspect_after_stop(node, [InstrumentId.from_str(instrument_id) for instrument_id in instrument_ids], outcome)
        node.dispose()
        outcome.end_ns = time.time_ns()
        outcome.recording = recorder.summary()


def _inspect_after_stop(node: TradingNode, instrument_ids: list[InstrumentId], outcome: NodeOutcome) -> None:
    cache = node.cache
    outcome.strategy_states = {str(key): value for key, value in node.trader.strategy_states().items()}
    for position in cache.positions_open():
        if is_dust(position, cache.instrument(position.instrument_id)):
            outcome.dust_positions.append(repr(position))
        else:
            outcome.open_positions.append(repr(position))
    outcome.open_orders = [repr(order) for order in cache.orders_open()]
    outcome.net_positions = {instrument_id.value: str(node.portfolio.net_position(instrument_id)) for instrument_id in instrument_ids}
    realized = {instrument_id.value: node.portfolio.realized_pnl(instrument_id) for instrument_id in instrument_ids}
    outcome.realized_pnl = {key: str(value) if value is not None else "0" for key, value in realized.items()}


def is_dust(position: Position, instrument: Instrument | None) -> bool:
    """
    Return True if no order can close ``position``: the venue would refuse it by its size or notional filters.

    Binance spot takes a buy's commission in the bought asset, so closing exactly what was bought is
    impossible: the sell is rounded down to the size step and a remainder below the step (or below the
    minimum quantity / notional) stays in the account. Such a position is reported as dust, not as open.
    """
    if instrument is None:
        return False
    if position.quantity < instrument.size_increment:
        return True
    closable = instrument.make_qty(position.quantity, round_down=True)
    if closable == 0 or (instrument.min_quantity is not None and closable < instrument.min_quantity):
        return True
    if instrument.min_notional is not None:
        notional = instrument.notional_value(closable, instrument.make_price(position.avg_px_open))
        return notional < instrument.min_notional
    return False
