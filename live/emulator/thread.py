"""``EmulatorThread``: the emulator on its own event loop in a daemon thread, so a TradingNode owns the main loop."""

import asyncio
import threading
from types import TracebackType

from keel.live.emulator.config import EmulatorConfig
from keel.live.emulator.server import BinanceSpotEmulator

_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0


class EmulatorThread:
    """
    Context manager running a ``BinanceSpotEmulator`` in a daemon thread.

    ``with EmulatorThread(config) as emulator:`` returns the started emulator (its URLs are valid) or raises
    what ``start()`` raised (bad catalog, port in use); leaving the block stops it and joins the thread.

    Parameters
    ----------
    config : EmulatorConfig
        The emulator's configuration.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._emulator: BinanceSpotEmulator | None = None
        self._thread = threading.Thread(target=self._run, name="keel-binance-emulator", daemon=True)
        self._started = threading.Event()
        self._feed_finished = threading.Event()
        self._start_error: BaseException | None = None

    def __enter__(self) -> BinanceSpotEmulator:
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S):
            raise TimeoutError(f"EmulatorThread: the emulator did not start within {_START_TIMEOUT_S:.0f} s")
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        assert self._emulator is not None
        return self._emulator

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None) -> None:
        if self._emulator is not None and self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._emulator.stop(), self._loop)
            try:
                future.result(_STOP_TIMEOUT_S)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(_STOP_TIMEOUT_S)

    def wait_feed_finished(self, timeout: float | None) -> bool:
        """Block until the replay has sent its last event; return False if ``timeout`` (s) passed first."""
        return self._feed_finished.wait(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as error:  # handed to __enter__, which re-raises it in the caller's thread
            self._start_error = error
            self._started.set()
            self._loop.close()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _start(self) -> None:
        emulator = BinanceSpotEmulator(self.config)
        await emulator.start()
        self._emulator = emulator
        asyncio.get_running_loop().create_task(self._signal_feed_finished(emulator))

    async def _signal_feed_finished(self, emulator: BinanceSpotEmulator) -> None:
        await emulator.feed_finished.wait()
        self._feed_finished.set()
