"""Environment files: where a variant runs live (venue adapter, credentials, state store, timeouts, emulator).

A variant file says *what* trades; an environment file says *where*. ``configs/env/emulator.yaml`` runs the
variant against the loopback Binance spot emulator on a catalog; ``configs/env/binance_live.example.yaml``
shows the same fields for the real venue. The loader refuses, for an emulator environment, anything that
would send traffic to a host other than loopback.
"""

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from keel.config_files import load_struct
from keel.settings import CONFIGS_DIR
from keel.timestamps import utc_nanos

EMULATOR_ENV_NAME = "emulator"
LOOPBACK_HOST_NAMES = frozenset({"localhost"})


class EnvironmentFileError(ValueError):
    """An environment file is missing, malformed, or would reach a host it must not reach."""


class CredentialsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    Where the venue API key and secret come from. The secret itself is never written in the file.

    Parameters
    ----------
    source : {"generated", "env"}
        ``generated``: a random key pair made in memory for each run (emulator only); ``env``: read from
        the environment variables named below when the session starts.
    key_type : {"hmac", "ed25519"}
        Kind of generated key (``generated`` only); Binance's WS-API logon officially wants Ed25519.
    api_key_env : str
        Environment variable holding the API key (``env`` only).
    api_secret_env : str
        Environment variable holding the API secret, or the Ed25519 private key PEM (``env`` only).
    """

    source: Literal["generated", "env"]
    key_type: Literal["hmac", "ed25519"] = "hmac"
    api_key_env: str = ""
    api_secret_env: str = ""


class EndpointsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    Venue URLs for a ``live`` environment; a null field keeps the adapter's built-in production URL.

    Parameters
    ----------
    http : str, optional
        REST base URL (data and execution clients).
    ws_stream : str, optional
        Market-data stream base URL (data client ``base_url_ws``).
    ws_api : str, optional
        WebSocket API URL for user data (execution client ``base_url_ws``, used verbatim).
    """

    http: str | None = None
    ws_stream: str | None = None
    ws_api: str | None = None


class StateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    The Redis store backing the node's cache, so a restarted node still knows every order it sent.

    Parameters
    ----------
    redis_host : str
        Redis host.
    redis_port : int
        Redis port.
    fresh_on_start : bool
        Delete this node's keys (and only them) before starting. Right for the emulator, whose venue state
        starts empty each run; never for a real venue.
    """

    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    fresh_on_start: bool = False


class ReconciliationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    Startup reconciliation of the node's cache against the venue.

    Parameters
    ----------
    enabled : bool
        Reconcile orders, fills and positions with the venue at start.
    lookback_mins : int, optional
        How far back to ask the venue; null asks for all the history it keeps.
    startup_delay_secs : float
        Wait before continuous reconciliation checks begin.
    """

    enabled: bool = True
    lookback_mins: int | None = None
    startup_delay_secs: float = 10.0


class TimeoutsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    Node timeouts, in seconds.

    Parameters
    ----------
    connection : float
        Wait for the clients to connect at start.
    reconciliation : float
        Wait for startup reconciliation.
    portfolio : float
        Wait for the portfolio to initialize.
    disconnection : float
        Wait for the clients to disconnect at stop.
    post_stop : float
        Wait after stopping the strategies, before the clients stop: the time close-on-stop orders get.
    watchdog : float
        Fail the run when, this long after start, a client is not connected or a strategy is not RUNNING.
    """

    connection: float = 20.0
    reconciliation: float = 10.0
    portfolio: float = 5.0
    disconnection: float = 5.0
    post_stop: float = 3.0
    watchdog: float = 30.0


class EmulatorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    The loopback Binance spot emulator a ``emulator`` environment starts for each session.

    Parameters
    ----------
    catalog : str, optional
        Catalog the emulator replays; null uses ``$KEEL_HOME/catalog``. Relative paths are relative to the
        environment file.
    host : str
        Loopback address the emulator binds.
    port : int
        Port to bind; 0 picks a free one.
    speed : float
        Replay speed (1.0 = real time).
    start : str, optional
        ISO-8601 start of the replayed data window; null starts at the first record.
    end : str, optional
        ISO-8601 end of the replayed data window; null replays to the last record.
    slippage_bps : float
        Fault knob: market fills are worse by this many basis points.
    drop_fill_every : int
        Fault knob: every N-th order that would fill expires unfilled instead (0 = never).
    order_latency_ms : float
        Fault knob: delay before the emulator acts on an order request.
    extra_fee_bps : float
        Fault knob: every fill is charged this many basis points of its notional on top of the listed
        maker/taker rate (a fee mismatch with the backtest's venue model).
    require_ed25519_logon : bool
        Reject non-Ed25519 WS-API logons, as the real venue documents.
    """

    catalog: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    speed: float = 1.0
    start: str | None = None
    end: str | None = None
    slippage_bps: float = 0.0
    drop_fill_every: int = 0
    order_latency_ms: float = 0.0
    extra_fee_bps: float = 0.0
    require_ed25519_logon: bool = False

    def __post_init__(self) -> None:
        # Imported here: the emulator package (aiohttp server) is only needed once an emulator is configured.
        from keel.live.emulator.config import check_fault_values

        # A bad knob is refused when the file is loaded (or an override applied), before a session folder exists.
        check_fault_values(self.slippage_bps, self.drop_fill_every, self.order_latency_ms, self.extra_fee_bps, where="emulator")

    @property
    def start_ns(self) -> int | None:
        """Return ``start`` as ns since epoch (UTC), or None."""
        return None if self.start is None else utc_nanos(self.start)

    @property
    def end_ns(self) -> int | None:
        """Return ``end`` as ns since epoch (UTC), or None."""
        return None if self.end is None else utc_nanos(self.end)


class LiveEnvironment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    One live environment.

    Parameters
    ----------
    name : str
        Short name (used in the node's trader id and the session folder name).
    kind : {"emulator", "live"}
        ``emulator`` runs against the loopback emulator (every URL is loopback); ``live`` against a venue.
    venue : str
        Venue adapter; only ``binance_spot`` exists.
    environment : {"LIVE", "TESTNET", "DEMO"}
        Binance environment, which selects the adapter's default URLs for a ``live`` environment.
    credentials : CredentialsConfig
        Where the API key and secret come from.
    endpoints : EndpointsConfig
        Venue URLs (``live`` only; the emulator environment takes them from the emulator it starts).
    state : StateConfig
        The Redis store of the node's cache.
    reconciliation : ReconciliationConfig
        Startup reconciliation.
    timeouts : TimeoutsConfig
        Node timeouts and the start-up watchdog.
    log_level : str
        Level of the node's log file and console.
    emulator : EmulatorSettings, optional
        Emulator settings (``emulator`` only).
    """

    name: str
    kind: Literal["emulator", "live"]
    venue: Literal["binance_spot"] = "binance_spot"
    environment: Literal["LIVE", "TESTNET", "DEMO"] = "LIVE"
    credentials: CredentialsConfig
    endpoints: EndpointsConfig | None = None
    state: StateConfig = StateConfig()
    reconciliation: ReconciliationConfig = ReconciliationConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    emulator: EmulatorSettings | None = None

    def to_primitives(self) -> dict:
        """Return the environment as plain data (it holds no secret: only variable names)."""
        return msgspec.to_builtins(self)



def resolve_environment_path(name_or_path: str | Path) -> Path:
    """Return the file for ``--env``: ``emulator`` is ``configs/env/emulator.yaml``, anything else a path."""
    if str(name_or_path) == EMULATOR_ENV_NAME:
        return CONFIGS_DIR / "env" / "emulator.yaml"
    return Path(name_or_path)


def is_loopback_host(host: str) -> bool:
    """Return True if ``host`` is ``localhost`` or a loopback IP address."""
    if host.lower() in LOOPBACK_HOST_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str:
    """Return the host part of a URL (``ws://127.0.0.1:9/x`` -> ``127.0.0.1``)."""
    return urlsplit(url).hostname or ""


def load_environment(path: str | Path) -> LiveEnvironment:
    """
    Load and validate an environment file.

    Raises
    ------
    EnvironmentFileError
        If the file is missing or not YAML, a field is missing, unknown or of the wrong type, a field
        contradicts ``kind``, or an ``emulator`` environment names a non-loopback host. The message names
        the file and the field.
    """
    path = resolve_environment_path(path)
    environment = load_struct(path, LiveEnvironment, EnvironmentFileError, "environment")
    _check_consistency(environment, path)
    if environment.emulator is not None and environment.emulator.catalog is not None:
        catalog = Path(environment.emulator.catalog).expanduser()
        if not catalog.is_absolute():
            catalog = (path.parent / catalog).resolve()
        settings = msgspec.structs.replace(environment.emulator, catalog=str(catalog))
        environment = msgspec.structs.replace(environment, emulator=settings)
    return environment


def _check_consistency(environment: LiveEnvironment, path: Path) -> None:
    if environment.kind == "emulator":
        _check_emulator(environment, path)
    else:
        _check_live(environment, path)
    if environment.credentials.source == "env":
        for field in ("api_key_env", "api_secret_env"):
            if not getattr(environment.credentials, field):
                raise EnvironmentFileError(
                    f"{path}: credentials.{field} is required when credentials.source is 'env' "
                    "(the name of the environment variable holding it)",
                )
    if environment.timeouts.watchdog <= environment.timeouts.connection:
        raise EnvironmentFileError(
            f"{path}: timeouts.watchdog ({environment.timeouts.watchdog}) must exceed timeouts.connection "
            f"({environment.timeouts.connection}): the node only starts strategies once clients connect",
        )


def _check_emulator(environment: LiveEnvironment, path: Path) -> None:
    endpoints = environment.endpoints
    if endpoints is not None:
        for field in ("http", "ws_stream", "ws_api"):
            url = getattr(endpoints, field)
            if url is not None and not is_loopback_host(url_host(url)):
                raise EnvironmentFileError(
                    f"{path}: endpoints.{field} = {url!r} is not a loopback address; refused for kind "
                    "'emulator' (an emulator environment never reaches another host)",
                )
        raise EnvironmentFileError(
            f"{path}: endpoints is not used for kind 'emulator' (the URLs come from the emulator the "
            "session starts on emulator.host); remove it",
        )
    if environment.emulator is None:
        raise EnvironmentFileError(f"{path}: emulator is required when kind is 'emulator'")
    if not is_loopback_host(environment.emulator.host):
        raise EnvironmentFileError(
            f"{path}: emulator.host = {environment.emulator.host!r} is not a loopback address; refused "
            "for kind 'emulator'",
        )
    if not is_loopback_host(environment.state.redis_host):
        raise EnvironmentFileError(
            f"{path}: state.redis_host = {environment.state.redis_host!r} is not a loopback address; "
            "refused for kind 'emulator'",
        )
    if environment.credentials.source != "generated":
        raise EnvironmentFileError(
            f"{path}: credentials.source must be 'generated' for kind 'emulator' (never send real keys "
            "to the emulator)",
        )
    if environment.environment != "LIVE":
        raise EnvironmentFileError(
            f"{path}: environment must be 'LIVE' for kind 'emulator' (the emulator speaks the live API)",
        )
    for field in ("start", "end"):
        value = getattr(environment.emulator, field)
        if value is not None:
            try:
                utc_nanos(value)
            except (ValueError, TypeError) as error:
                raise EnvironmentFileError(
                    f"{path}: emulator.{field} = {value!r} is not an ISO-8601 time: {error}",
                ) from error
    if environment.emulator.speed <= 0:
        raise EnvironmentFileError(f"{path}: emulator.speed must be > 0, got {environment.emulator.speed}")


def _check_live(environment: LiveEnvironment, path: Path) -> None:
    if environment.emulator is not None:
        raise EnvironmentFileError(f"{path}: emulator is only allowed when kind is 'emulator'")
    if environment.credentials.source != "env":
        raise EnvironmentFileError(
            f"{path}: credentials.source must be 'env' for kind 'live' (a generated key means nothing to a "
            "real venue)",
        )
    if environment.state.fresh_on_start:
        raise EnvironmentFileError(
            f"{path}: state.fresh_on_start must be false for kind 'live': it would make the node forget "
            "orders it sent to a real venue",
        )
