"""Build a nautilus ``TradingNode`` for one variant in one environment, and watch it start.

One node runs one strategy config: the trader id comes from the variant and environment names, so the
node's Redis keys (its memory of every order it sent) belong to that pair alone. What the trader runs (the
strategy, the session recorder, the variant's actors, the close-out controller) comes from
``keel.assembly.assemble``, the same function a backtest's node is built from. The Binance spot data and
execution clients load every instrument of the variant and get every base URL set explicitly: an unset URL
would silently mean the real venue.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import redis
from nautilus_trader.adapters.binance import BinanceAccountType
from nautilus_trader.adapters.binance import BinanceDataClientConfig
from nautilus_trader.adapters.binance import BinanceExecClientConfig
from nautilus_trader.adapters.binance import BinanceInstrumentProviderConfig
from nautilus_trader.adapters.binance import BinanceLiveDataClientFactory
from nautilus_trader.adapters.binance import BinanceLiveExecClientFactory
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.cache.config import CacheConfig
from nautilus_trader.common.config import DatabaseConfig
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.live.config import LiveExecEngineConfig
from nautilus_trader.live.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import InstrumentId

from keel.assembly import assemble
from keel.live.credentials import ApiCredentials
from keel.live.environment import LiveEnvironment
from keel.live.environment import StateConfig
from keel.live.environment import is_loopback_host
from keel.live.environment import url_host
from keel.live.session_layout import NODE_LOG_NAME
from keel.variant import Variant

CLIENT_NAME = "BINANCE"  # one Binance spot account per node; the factory key must not contain '-'
REDIS_PING_TIMEOUT_SECS = 2.0


class NodeSetupError(RuntimeError):
    """The node cannot be set up: an unreachable service, or a URL it must not use."""


class VenueNotServedError(ValueError):
    """A variant trades on a venue the environment's node has no client for."""


@dataclass(frozen=True)
class VenueEndpoints:
    """
    The venue URLs a node connects to; None keeps the adapter's production default (``live`` envs only).

    Parameters
    ----------
    http : str, optional
        REST base URL, for the data and execution clients.
    ws_stream : str, optional
        Market-data stream base URL.
    ws_api : str, optional
        WebSocket API URL carrying the account's order events.
    """

    http: str | None
    ws_stream: str | None
    ws_api: str | None


def trader_id_for(variant_name: str, environment_name: str) -> str:
    """Return the node's trader id, ``<VARIANT>-<ENV>``, upper-cased with other characters made ``_``."""

    def clean(text: str) -> str:
        return re.sub(r"[^A-Z0-9_]", "_", text.upper()) or "X"

    return f"{clean(variant_name)}-{clean(environment_name)}"


def check_venues_served(variant: Variant, environment: LiveEnvironment) -> None:
    """
    Refuse a variant whose venues the environment's node cannot serve.

    A node has one account: the environment's ``venue`` (``binance_spot``: nautilus's Binance spot clients), so
    the variant's venue models must be that one alone and its instruments must trade on the client's venue.
    Live USD-M futures and OKX nodes do not exist yet, even though those variants backtest.

    Raises
    ------
    VenueNotServedError
        Naming the variant's venues (or the instrument) and what the environment serves.
    """
    if variant.venues != [environment.venue]:
        raise VenueNotServedError(
            f"variant {variant.name!r} trades on venues {variant.venues}, but environment {environment.name!r} serves "
            f"one {environment.venue!r} account per node (venue: {environment.venue}); live nodes for other venues "
            "do not exist yet",
        )
    for instrument_id in variant.instrument_ids:
        if InstrumentId.from_str(instrument_id).venue.value != CLIENT_NAME:
            raise VenueNotServedError(
                f"variant {variant.name!r}: instrument {instrument_id} does not trade on {CLIENT_NAME}, the only venue "
                f"of environment {environment.name!r} ({environment.venue})",
            )


def check_endpoints(environment: LiveEnvironment, endpoints: VenueEndpoints) -> None:
    """
    Refuse endpoints an environment must not use.

    Raises
    ------
    NodeSetupError
        For an ``emulator`` environment, if any URL is unset (the adapter would fall back to the real venue)
        or not loopback.
    """
    if environment.kind != "emulator":
        return
    for name in ("http", "ws_stream", "ws_api"):
        url = getattr(endpoints, name)
        if url is None or not is_loopback_host(url_host(url)):
            raise NodeSetupError(
                f"environment {environment.name!r} is kind 'emulator' but endpoint {name} = {url!r} is not a "
                "loopback URL; refused",
            )


def check_redis(state: StateConfig) -> None:
    """
    Check the node's Redis store answers, so a node never starts without its memory.

    Raises
    ------
    NodeSetupError
        If Redis does not answer a PING, naming the host, port and the ``state`` fields to fix.
    """
    client = redis.Redis(
        host=state.redis_host,
        port=state.redis_port,
        socket_connect_timeout=REDIS_PING_TIMEOUT_SECS,
        socket_timeout=REDIS_PING_TIMEOUT_SECS,
    )
    try:
        client.ping()
    except redis.RedisError as error:
        raise NodeSetupError(
            f"Redis at {state.redis_host}:{state.redis_port} is unreachable ({error}); the live node keeps its "
            "orders there. Start Redis or fix state.redis_host / state.redis_port in the environment file.",
        ) from error
    finally:
        client.close()


def clear_node_state(state: StateConfig, trader_id: str) -> int:
    """Delete this trader's keys from Redis (and no other key); return how many were deleted."""
    client = redis.Redis(host=state.redis_host, port=state.redis_port, socket_timeout=REDIS_PING_TIMEOUT_SECS)
    try:
        keys = list(client.scan_iter(match=f"trader-{trader_id}:*", count=1000))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def build_node_config(
    variant: Variant,
    environment: LiveEnvironment,
    endpoints: VenueEndpoints,
    credentials: ApiCredentials,
    session_dir: Path,
) -> TradingNodeConfig:
    """
    Return the ``TradingNodeConfig`` running ``variant`` in ``environment``.

    Parameters
    ----------
    variant : Variant
        The strategy to run; its ``strategy`` section is used unchanged.
    environment : LiveEnvironment
        Venue adapter, state store, reconciliation and timeouts.
    endpoints : VenueEndpoints
        The URLs to connect to (checked against the environment kind).
    credentials : ApiCredentials
        API key and secret, given to the clients in memory.
    session_dir : Path
        The session folder: the recorder writes into it and the node logs to its ``node.log`` (the console
        only shows warnings and errors).
    """
    check_endpoints(environment, endpoints)
    components = assemble(variant, "live", session_dir=str(session_dir))
    instrument_provider = BinanceInstrumentProviderConfig(
        load_ids=frozenset(InstrumentId.from_str(instrument_id) for instrument_id in variant.instrument_ids),
    )
    shared = {
        "api_key": credentials.api_key,
        "api_secret": credentials.api_secret,
        "account_type": BinanceAccountType.SPOT,
        "environment": BinanceEnvironment[environment.environment],
        "base_url_http": endpoints.http,
        "base_url_ws": endpoints.ws_stream,
        "instrument_provider": instrument_provider,
    }
    data_client = BinanceDataClientConfig(**shared)
    exec_client = BinanceExecClientConfig(**(shared | {"base_url_ws": endpoints.ws_api}))
    timeouts = environment.timeouts
    return TradingNodeConfig(
        trader_id=trader_id_for(variant.name, environment.name),
        logging=LoggingConfig(
            # The console only shows problems; node.log gets the environment's level.
            log_level="WARNING",
            log_level_file=environment.log_level,
            log_directory=str(session_dir),
            log_file_name=NODE_LOG_NAME,
            log_colors=False,
        ),
        cache=CacheConfig(
            database=DatabaseConfig(
                type="redis",
                host=environment.state.redis_host,
                port=environment.state.redis_port,
                connection_timeout=int(timeouts.connection),
            ),
            encoding="msgpack",
        ),
        exec_engine=LiveExecEngineConfig(
            reconciliation=environment.reconciliation.enabled,
            reconciliation_lookback_mins=environment.reconciliation.lookback_mins,
            reconciliation_startup_delay_secs=environment.reconciliation.startup_delay_secs,
        ),
        strategies=components.strategies,
        actors=components.actors,
        controller=components.controller,
        data_clients={CLIENT_NAME: data_client},
        exec_clients={CLIENT_NAME: exec_client},
        timeout_connection=timeouts.connection,
        timeout_reconciliation=timeouts.reconciliation,
        timeout_portfolio=timeouts.portfolio,
        timeout_disconnection=timeouts.disconnection,
        timeout_post_stop=timeouts.post_stop,
    )


def build_node(config: TradingNodeConfig) -> TradingNode:
    """Create and build the node, registering the Binance client factories in code (see nautilus-api §0.10)."""
    node = TradingNode(config=config)
    node.add_data_client_factory(CLIENT_NAME, BinanceLiveDataClientFactory)
    node.add_exec_client_factory(CLIENT_NAME, BinanceLiveExecClientFactory)
    node.build()
    return node


def startup_failure(node: TradingNode) -> str | None:
    """
    Return why the node has not come up, or None if it has.

    A node whose clients never connect still reports RUNNING but never starts its strategies, so check the
    engines and every strategy explicitly.
    """
    kernel = node.kernel
    problems = []
    if not kernel.data_engine.check_connected():
        problems.append("the data client is not connected")
    if not kernel.exec_engine.check_connected():
        problems.append("the execution client is not connected")
    not_running = {str(key): value for key, value in node.trader.strategy_states().items() if value != "RUNNING"}
    if not_running:
        problems.append(f"strategies not RUNNING: {not_running}")
    return "; ".join(problems) or None
