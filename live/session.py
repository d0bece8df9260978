"""Run a variant live in an environment and leave a recorded session folder behind.

For the emulator environment the session makes a random API key pair (in memory only), starts the loopback
Binance spot emulator on the catalog, runs the node until the emulator's replay ends or ``duration``
elapses, stops it (the strategy closes out on stop; the node's cache is checked afterwards) and writes the
session folder (layout in ``keel.live.session_layout``).
"""

import multiprocessing
import time
from contextlib import AbstractContextManager
from contextlib import nullcontext
from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import nautilus_trader
import polars as pl
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.atomic_files import write_json_atomic
from keel.fills import fills_frame
from keel.fills import read_fills
from keel.live.credentials import ApiCredentials
from keel.live.credentials import resolve_credentials
from keel.live.environment import EmulatorSettings
from keel.live.environment import LiveEnvironment
from keel.live.environment import load_environment
from keel.live.environment import resolve_environment_path
from keel.live.node import VenueEndpoints
from keel.live.node import check_redis
from keel.live.node import check_venues_served
from keel.live.node import trader_id_for
from keel.live.node_process import NodeJob
from keel.live.node_process import NodeOutcome
from keel.live.node_process import run_node_job
from keel.live.session_layout import CATALOG_DIR
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import ORDERS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.live.session_layout import VARIANT_YAML
from keel.live.session_layout import write_manifest
from keel.pnl import InstrumentTerms
from keel.pnl import PnlComponents
from keel.pnl import PortfolioPnl
from keel.pnl import portfolio_pnl
from keel.settings import default_catalog_path
from keel.settings import sessions_dir
from keel.starting_balances import starting_balances
from keel.settlement import catalog_funding
from keel.variant import load_variant
from keel.variant import write_variant

FEED_POLL_SECS = 0.5
CHILD_EXIT_GRACE_SECS = 30.0


class LiveSessionError(RuntimeError):
    """A session could not start, or its node failed; ``session_dir`` holds what was recorded, if anything."""

    def __init__(self, message: str, session_dir: Path | None = None) -> None:
        super().__init__(message)
        self.session_dir = session_dir


class SessionInputError(ValueError):
    """A session argument is wrong: a bad override or duration, a missing catalog, a used session folder."""


@dataclass(frozen=True)
class EmulatorOverrides:
    """
    Command-line overrides of the environment's emulator settings; None keeps the file's value.

    Parameters
    ----------
    catalog : Path, optional
        Catalog to replay.
    speed : float, optional
        Replay speed.
    slippage_bps : float, optional
        Market-fill slippage in basis points.
    drop_fill_every : int, optional
        Every N-th order that would fill expires unfilled instead.
    order_latency_ms : float, optional
        Delay before the emulator acts on an order.
    extra_fee_bps : float, optional
        Basis points of notional the emulator charges every fill on top of the listed maker/taker rate.
    """

    catalog: Path | None = None
    speed: float | None = None
    slippage_bps: float | None = None
    drop_fill_every: int | None = None
    order_latency_ms: float | None = None
    extra_fee_bps: float | None = None

    def is_empty(self) -> bool:
        """Return True if nothing is overridden."""
        return all(value is None for value in asdict(self).values())


@dataclass(frozen=True)
class SessionResult:
    """
    A finished session.

    Parameters
    ----------
    session_dir : Path
        The session folder.
    orders : int
        Orders the node sent (distinct client order ids).
    fills : int
        Fills received.
    final_positions : dict[str, str]
        nautilus's net position of each instrument after stop.
    pnl : PnlComponents
        The session's P&L by component over all instruments, from its fills (every commission included) and
        funding, as in ``session.json``.
    pnl_by_instrument : dict[str, PnlComponents]
        The same per instrument.
    nautilus_realized_pnl : dict[str, str]
        nautilus's realized P&L of each instrument after stop, which leaves out commissions taken in the base
        asset and the mark of what is left (dust); shown for comparison only.
    flat : bool
        True if no position and no working order were left after stop.
    session : dict[str, Any]
        The content of ``session.json``.
    """

    session_dir: Path
    orders: int
    fills: int
    final_positions: dict[str, str]
    pnl: PnlComponents
    pnl_by_instrument: dict[str, PnlComponents]
    nautilus_realized_pnl: dict[str, str]
    flat: bool
    session: dict[str, Any]


def run_live_session(
    variant_path: str | Path,
    env_path: str | Path = "emulator",
    session_dir: str | Path | None = None,
    duration: float | None = None,
    overrides: EmulatorOverrides = EmulatorOverrides(),
) -> SessionResult:
    """
    Run ``variant_path`` live in the environment ``env_path`` and record the session.

    The node runs in a child process (``spawn``), so a script calling this must do so under
    ``if __name__ == "__main__":``; the ``keel`` command, pytest and notebooks need nothing.

    Parameters
    ----------
    variant_path : str or Path
        The variant file (the same one a backtest runs).
    env_path : str or Path
        Environment file, or ``emulator`` for ``configs/env/emulator.yaml``.
    session_dir : str or Path, optional
        Session folder to create (must not exist or be empty); default
        ``$KEEL_HOME/sessions/<variant>-<env>-<UTC time>``.
    duration : float, optional
        Stop after this many seconds from node start; default: when the emulator's replay ends (an
        emulator environment) or never (a live one; stop with Ctrl-C).
    overrides : EmulatorOverrides
        Overrides of the environment's emulator settings.

    Raises
    ------
    keel.variant.VariantError, keel.live.environment.EnvironmentFileError
        For a bad variant or environment file.
    keel.live.node.VenueNotServedError
        For a variant trading on a venue the environment's node does not serve.
    SessionInputError
        For a bad override or duration, a missing catalog, or a session folder that is not empty.
    LiveSessionError
        If Redis is unreachable, the node failed, or the session's P&L cannot be computed (a commission in a
        third currency); ``session_dir`` then holds session.json with the failure and whatever was recorded.
    """
    environment = load_environment(env_path)
    variant = load_variant(variant_path)
    check_venues_served(variant, environment)
    environment = _apply_overrides(environment, overrides, Path(resolve_environment_path(env_path)))
    if duration is not None and duration <= 0:
        raise SessionInputError(f"--duration must be > 0 seconds, got {duration}")
    if environment.kind == "live" and duration is None:
        raise SessionInputError("a live environment needs --duration (there is no replay whose end stops it)")
    if environment.kind == "live":
        _require_promotion(variant_path)
    try:
        check_redis(environment.state)
    except RuntimeError as error:
        raise LiveSessionError(str(error)) from error
    folder = _session_folder(session_dir, variant.name, environment.name)
    write_variant(variant, folder / VARIANT_YAML)
    credentials = resolve_credentials(environment.credentials)
    with _venue(environment, variant.instrument_ids, credentials) as endpoints:
        job = NodeJob(
            session_dir=str(folder),
            environment=environment,
            endpoints=endpoints.endpoints,
            credentials=credentials,
            duration_secs=duration,
        )
        outcome = _run_child(job, endpoints, environment)
    trader_id = trader_id_for(variant.name, environment.name)
    session = _session_document(variant_path, env_path, variant, environment, trader_id, outcome, folder)
    write_json_atomic(session, folder / SESSION_JSON)
    write_manifest(folder)  # the last write: what was recorded is sealed as recorded, failed sessions too
    if outcome.failure is not None:
        raise LiveSessionError(f"live session failed: {outcome.failure} (recorded in {folder})", folder)
    if "error" in session["pnl"]:
        raise LiveSessionError(f"cannot compute the session's P&L: {session['pnl']['error']} (recorded in {folder})", folder)
    return _result(folder, session)


def _require_promotion(variant_path: str | Path) -> None:
    """Refuse a live environment for a variant file that was never promoted (``keel promote``)."""
    from keel.validation.errors import GateInputError
    from keel.validation.promotion import PromotionRefused
    from keel.validation.promotion import require_promotion

    try:
        require_promotion(variant_path)
    except (GateInputError, PromotionRefused) as error:
        raise LiveSessionError(f"refused to trade live: {error}") from error


class _Venue:
    """The endpoints of the venue a session connects to, and (for the emulator) the feed's end."""

    def __init__(self, endpoints: VenueEndpoints, emulator_thread: Any | None) -> None:
        self.endpoints = endpoints
        self.emulator_thread = emulator_thread

    def feed_finished(self) -> bool:
        """Return True once the emulator's replay has ended (never, for a real venue)."""
        if self.emulator_thread is None:
            time.sleep(FEED_POLL_SECS)
            return False
        return bool(self.emulator_thread.wait_feed_finished(FEED_POLL_SECS))


class _EmulatorVenue(AbstractContextManager):
    def __init__(self, settings: EmulatorSettings, instrument_ids: list[str], credentials: ApiCredentials, balances: dict[str, str]) -> None:
        from keel.live.emulator import EmulatorConfig
        from keel.live.emulator import EmulatorThread

        config = EmulatorConfig(
            catalog_path=settings.catalog,
            instrument_ids=instrument_ids,
            api_key=credentials.api_key,
            api_secret=credentials.api_secret,
            host=settings.host,
            port=settings.port,
            speed=settings.speed,
            start_ns=settings.start_ns,
            end_ns=settings.end_ns,
            starting_balances=balances,
            slippage_bps=settings.slippage_bps,
            drop_fill_every=settings.drop_fill_every,
            order_latency_ms=settings.order_latency_ms,
            extra_fee_bps=settings.extra_fee_bps,
            require_ed25519_logon=settings.require_ed25519_logon,
            # The node starts in a child process, seconds later on a loaded machine: it must see the whole window.
            replay_on_first_subscription=True,
        )
        self._thread = EmulatorThread(config)

    def __enter__(self) -> _Venue:
        emulator = self._thread.__enter__()
        endpoints = VenueEndpoints(http=emulator.http_url, ws_stream=emulator.ws_stream_url, ws_api=emulator.ws_api_url)
        return _Venue(endpoints, self._thread)

    def __exit__(self, *exc_info: object) -> None:
        self._thread.__exit__(*exc_info)


def _venue(environment: LiveEnvironment, instrument_ids: list[str], credentials: ApiCredentials) -> AbstractContextManager:
    if environment.kind == "emulator":
        return _EmulatorVenue(environment.emulator, instrument_ids, credentials, starting_balances(environment.venue))
    endpoints = environment.endpoints
    return nullcontext(
        _Venue(
            VenueEndpoints(
                http=endpoints.http if endpoints else None,
                ws_stream=endpoints.ws_stream if endpoints else None,
                ws_api=endpoints.ws_api if endpoints else None,
            ),
            None,
        ),
    )


def _run_child(job: NodeJob, venue: _Venue, environment: LiveEnvironment) -> NodeOutcome:
    context = multiprocessing.get_context("spawn")
    stop_requested = context.Event()
    results = context.Queue()
    child = context.Process(target=run_node_job, args=(job, stop_requested, results), name="keel-live-node")
    child.start()
    stop_deadline: float | None = None
    grace = environment.timeouts.post_stop + environment.timeouts.disconnection + CHILD_EXIT_GRACE_SECS
    try:
        while child.is_alive():
            try:
                if stop_deadline is None and venue.feed_finished():
                    stop_requested.set()
                    stop_deadline = time.monotonic() + grace
            except KeyboardInterrupt:
                # The node stops gracefully (close-on-stop); keep waiting so the session folder is complete.
                stop_requested.set()
                stop_deadline = time.monotonic() + grace
            if stop_deadline is not None:
                child.join(timeout=FEED_POLL_SECS)
                if child.is_alive() and time.monotonic() > stop_deadline:
                    child.terminate()
                    child.join()
                    return NodeOutcome(failure=f"node did not stop within {grace:g}s of the stop request; terminated")
        try:
            return results.get(timeout=5.0)
        except Exception:  # the child died without reporting (crash, kill)
            return NodeOutcome(failure=f"node process exited with code {child.exitcode} without a report")
    finally:
        if child.is_alive():
            child.terminate()
        child.join()


def _apply_overrides(environment: LiveEnvironment, overrides: EmulatorOverrides, env_file: Path) -> LiveEnvironment:
    if overrides.is_empty():
        settings = environment.emulator
    elif environment.emulator is None:
        raise SessionInputError(
            f"{env_file}: --catalog/--speed/--slippage-bps/--drop-fill-every/--order-latency-ms/--extra-fee-bps only "
            "apply to an emulator environment",
        )
    else:
        changes = {key: value for key, value in asdict(overrides).items() if value is not None}
        if "catalog" in changes:
            changes["catalog"] = str(Path(changes["catalog"]).resolve())
        try:
            settings = msgspec.structs.replace(environment.emulator, **changes)
        except ValueError as error:
            raise SessionInputError(f"emulator override: {error}") from error
    if settings is None:
        return environment
    if settings.catalog is None:
        settings = msgspec.structs.replace(settings, catalog=str(default_catalog_path()))
    if not (Path(settings.catalog) / "data").is_dir():
        raise SessionInputError(
            f"emulator catalog {settings.catalog} has no data/ folder: ingest data first (keel data ingest) or "
            f"pass --catalog / set emulator.catalog in {env_file}",
        )
    if settings.speed <= 0:
        raise SessionInputError(f"--speed must be > 0, got {settings.speed}")
    return msgspec.structs.replace(environment, emulator=settings)


def _session_folder(session_dir: str | Path | None, variant_name: str, environment_name: str) -> Path:
    if session_dir is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = sessions_dir() / f"{variant_name}-{environment_name}-{stamp}"
    else:
        folder = Path(session_dir)
    if folder.exists() and any(folder.iterdir()):
        raise SessionInputError(f"session folder {folder} already exists and is not empty; choose another")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _session_document(
    variant_path: str | Path,
    env_path: str | Path,
    variant: Any,
    environment: LiveEnvironment,
    trader_id: str,
    outcome: NodeOutcome,
    folder: Path,
) -> dict[str, Any]:
    fills = read_fills(folder / FILLS_PARQUET) if (folder / FILLS_PARQUET).exists() else None
    orders = pl.read_parquet(folder / ORDERS_PARQUET) if (folder / ORDERS_PARQUET).exists() else None
    emulator = environment.emulator
    # A node that failed was not seen to stop cleanly: its cache cannot vouch for what it left behind.
    flat = outcome.failure is None and not outcome.left_open()
    return {
        "status": "failed" if outcome.failure else "completed" if flat else "not_flat",
        "failure": outcome.failure,
        "variant": variant.to_primitives(),
        "variant_path": str(Path(variant_path).resolve()),
        "env": environment.name,
        "env_kind": environment.kind,
        "env_path": str(resolve_environment_path(env_path).resolve()),
        "environment": environment.to_primitives(),  # holds env var names only, never a key or secret
        "instrument_ids": variant.instrument_ids,
        "trader_id": trader_id,
        "start_ns": outcome.start_ns,
        "end_ns": outcome.end_ns,
        "emulator": None
        if emulator is None
        else msgspec.to_builtins(emulator) | {"start_ns": emulator.start_ns, "end_ns": emulator.end_ns},
        "nautilus_version": nautilus_trader.__version__,
        "counts": {
            "records": outcome.recording.get("records", {}),
            "order_events": 0 if orders is None else orders.height,
            "orders": 0 if orders is None else orders["client_order_id"].n_unique(),
            "fills": 0 if fills is None else fills.height,
        },
        "restamped_ts_init": outcome.recording.get("restamped_ts_init", {}),
        "final_books": outcome.recording.get("final_books", {}),
        "pnl": session_pnl(folder, variant.instrument_ids, fills, outcome.recording.get("last_trade_prices", {})),
        "after_stop": {
            "flat": flat,
            "strategy_states": outcome.strategy_states,
            # realized_pnl is nautilus's: without base-asset commissions; see "pnl"
            "by_instrument": {instrument_id: asdict(item) for instrument_id, item in outcome.instruments.items()},
        },
    }


def session_pnl(
    folder: Path,
    instrument_ids: list[str],
    fills: pl.DataFrame | None,
    last_trade_prices: dict[str, str],
) -> dict[str, Any]:
    """
    Return the session's P&L (``keel.pnl.PortfolioPnl`` as plain data plus ``marks``), or ``{"error": why}``.

    Each instrument's position is marked at the last trade the recorder saw; a node that died without reporting
    it is marked at its last fill. Perpetual funding is settled from the funding rates in the session's catalog,
    by the same code as a backtest's.

    Parameters
    ----------
    folder : Path
        The session folder; its catalog must hold the instruments (the recorder writes them on start).
    instrument_ids : list[str]
        The variant's instruments.
    fills : pl.DataFrame, optional
        The session's fills (``keel.fills`` layout); None if the session wrote none.
    last_trade_prices : dict[str, str]
        The recorder's last trade price per instrument.
    """
    catalog_dir = folder / CATALOG_DIR
    catalog = ParquetDataCatalog(str(catalog_dir)) if catalog_dir.is_dir() else None
    terms: dict[str, InstrumentTerms] = {}
    for instrument_id in instrument_ids:
        versions = catalog.instruments(instrument_ids=[instrument_id]) if catalog is not None else []
        if not versions:
            return {"error": f"{catalog_dir}: instrument {instrument_id} was never recorded, so its currencies are unknown"}
        terms[instrument_id] = InstrumentTerms.of(versions[0])
    fills = fills if fills is not None else fills_frame([])
    marks: dict[str, dict[str, Any]] = {}
    for instrument_id in instrument_ids:
        own = fills.filter(pl.col("instrument_id") == instrument_id)
        if instrument_id in last_trade_prices:
            marks[instrument_id] = {"price": float(last_trade_prices[instrument_id]), "source": "last_trade"}
        elif own.height:
            marks[instrument_id] = {"price": float(own["last_px"][-1]), "source": "last_fill"}
    try:
        funding = catalog_funding(catalog_dir, fills, terms)
        pnl = portfolio_pnl(fills, terms, {key: mark["price"] for key, mark in marks.items()}, funding)
    except ValueError as error:  # FeeCurrencyError and PnlInputError included: recorded, then raised by run_live_session
        return {"error": f"{folder / FILLS_PARQUET}: {error}"}
    return msgspec.to_builtins(pnl) | {"marks": marks}


def _result(folder: Path, session: dict[str, Any]) -> SessionResult:
    after_stop = session["after_stop"]
    pnl = msgspec.convert({key: value for key, value in session["pnl"].items() if key != "marks"}, PortfolioPnl)
    instruments = after_stop["by_instrument"]
    return SessionResult(
        session_dir=folder,
        orders=session["counts"]["orders"],
        fills=session["counts"]["fills"],
        final_positions={instrument_id: item["net_position"] for instrument_id, item in instruments.items()},
        pnl=pnl.total,
        pnl_by_instrument=pnl.by_instrument,
        nautilus_realized_pnl={instrument_id: item["realized_pnl"] for instrument_id, item in instruments.items()},
        flat=after_stop["flat"],
        session=session,
    )
