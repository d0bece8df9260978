"""The emulator's configuration: what it replays, the account it starts with, and its fault knobs."""

import ipaddress
import math
import socket

import msgspec


class EmulatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """
    Configuration of the loopback Binance spot venue emulator.

    Parameters
    ----------
    catalog_path : str
        Path of the nautilus Python ``ParquetDataCatalog`` whose trade ticks, quote ticks, order book deltas
        and instruments are replayed as the venue's market.
    instrument_ids : list[str]
        Instruments the venue lists and replays, e.g. ``["BTCUSDT.BINANCE"]``. Each must be in the catalog.
    api_key : str
        The only API key the venue accepts (``X-MBX-APIKEY`` header, WS-API ``session.logon``).
    api_secret : str
        Secret of that key: an HMAC secret, or an Ed25519 private key (base64 PKCS#8, PEM or not) whose
        public half verifies Ed25519 signatures. Never logged or stored in the request log.
    host : str
        Address to bind. Only loopback addresses (``127.0.0.0/8``, ``::1``, ``localhost``) are accepted.
    port : int
        Port to bind; 0 picks a free port (read it back from ``BinanceSpotEmulator.http_url``).
    speed : float
        Replay speed as a multiple of real time (2.0 replays a minute of data in 30 s). Must be > 0.
    start_ns : int, optional
        Replay only data with ``ts_init >= start_ns`` (ns since epoch). The book is still built from the
        catalog's earlier deltas so it is complete at the window's start.
    end_ns : int, optional
        Replay only data with ``ts_init <= end_ns`` (ns since epoch).
    starting_balances : dict[str, str]
        Free balance per asset at start, e.g. ``{"USDT": "10000", "BTC": "0.5"}``.
    slippage_bps : float
        Fault: every fill price is made worse for the order by this many basis points (rounded to the tick,
        away from the order's favour).
    drop_fill_every : int
        Fault: every N-th order that would fill is EXPIRED unfilled instead (the venue "missed" it); 0 = off.
    order_latency_ms : float
        Fault: delay before the venue processes an order request (new order, cancel); the REST reply waits
        for the processing like on the real venue.
    extra_fee_bps : float
        Fault: every fill is charged this many basis points of its notional on top of the listed maker/taker
        rate, in the asset received (a fee mismatch: the venue's real fee differs from the backtest's).
    require_ed25519_logon : bool
        Reject WS-API ``session.logon`` unless the key is Ed25519, as the real venue documents (HMAC and RSA
        keys must use ``userDataStream.subscribe.signature``, which nautilus 1.231 does not). Off by default
        because nautilus signs the logon with whatever key it has.
    replay_on_first_subscription : bool
        Hold the replay until a client subscribes to a market stream, so a node that is slow to come up (a
        child process starting on a loaded machine) still meets the whole window; otherwise the replay starts
        with the venue.
    """

    catalog_path: str
    instrument_ids: list[str]
    api_key: str
    api_secret: str
    host: str = "127.0.0.1"
    port: int = 0
    speed: float = 1.0
    start_ns: int | None = None
    end_ns: int | None = None
    starting_balances: dict[str, str]
    slippage_bps: float = 0.0
    drop_fill_every: int = 0
    order_latency_ms: float = 0.0
    extra_fee_bps: float = 0.0
    require_ed25519_logon: bool = False
    replay_on_first_subscription: bool = False

    def __post_init__(self) -> None:
        if not is_loopback_host(self.host):
            raise ValueError(f"EmulatorConfig.host: expected a loopback address (127.0.0.1, ::1, localhost), got {self.host!r}")
        if not self.instrument_ids:
            raise ValueError("EmulatorConfig.instrument_ids: expected at least one instrument id, got none")
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError(f"EmulatorConfig.speed: expected a finite number > 0, got {self.speed!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"EmulatorConfig.port: expected 0..65535, got {self.port!r}")
        if self.start_ns is not None and self.end_ns is not None and self.start_ns > self.end_ns:
            raise ValueError(f"EmulatorConfig.start_ns: {self.start_ns} is after end_ns {self.end_ns}")
        if not self.api_key or not self.api_secret:
            raise ValueError("EmulatorConfig.api_key/api_secret: expected non-empty strings")
        check_fault_values(
            self.slippage_bps,
            self.drop_fill_every,
            self.order_latency_ms,
            self.extra_fee_bps,
            where="EmulatorConfig",
        )


def check_fault_values(slippage_bps: float, drop_fill_every: int, order_latency_ms: float, extra_fee_bps: float, *, where: str) -> None:
    """Raise ``ValueError`` naming the field when a fault knob is out of range."""
    if not (slippage_bps >= 0 and math.isfinite(slippage_bps)):
        raise ValueError(f"{where}.slippage_bps: expected a finite number >= 0, got {slippage_bps!r}")
    if isinstance(drop_fill_every, bool) or not isinstance(drop_fill_every, int) or drop_fill_every < 0:
        raise ValueError(f"{where}.drop_fill_every: expected an integer >= 0, got {drop_fill_every!r}")
    if not (order_latency_ms >= 0 and math.isfinite(order_latency_ms)):
        raise ValueError(f"{where}.order_latency_ms: expected a finite number >= 0, got {order_latency_ms!r}")
    if not (extra_fee_bps >= 0 and math.isfinite(extra_fee_bps)):
        raise ValueError(f"{where}.extra_fee_bps: expected a finite number >= 0, got {extra_fee_bps!r}")


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names only loopback addresses (resolving ``localhost``-style names locally)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host != "localhost":
        # Resolving arbitrary names could leave the machine (DNS); only the well-known local name is allowed.
        return False
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    return bool(addresses) and all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)
