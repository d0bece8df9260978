"""
A loopback Binance spot venue for live sessions without a real exchange.

``BinanceSpotEmulator`` speaks what nautilus 1.231's Binance spot adapter uses (REST, market streams,
WS-API user data) on one 127.0.0.1 port, replays a ParquetDataCatalog as the market, and matches the
account's orders against the freshest book its replayed depth, bookTicker and trades reveal (``VenueView``). ``EmulatorThread`` runs it beside a ``TradingNode``.
"""

from keel.live.emulator.config import EmulatorConfig
from keel.live.emulator.server import ADMIN_FAULTS_PATH
from keel.live.emulator.server import BinanceSpotEmulator
from keel.live.emulator.server import RequestRecord
from keel.live.emulator.thread import EmulatorThread

__all__ = ["ADMIN_FAULTS_PATH", "BinanceSpotEmulator", "EmulatorConfig", "EmulatorThread", "RequestRecord"]
