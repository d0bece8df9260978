"""Client WebSocket connections of the venue: each owns a send queue so frames leave in the order queued."""

import asyncio
import contextlib

from aiohttp import web


class ClientSocket:
    """
    One connected client. ``send`` never blocks the caller: frames go through a queue drained by one
    writer task, so frames queued from different coroutines keep their order (NEW before TRADE).
    """

    def __init__(self, websocket: web.WebSocketResponse) -> None:
        self.websocket = websocket
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write())

    def send(self, text: str) -> None:
        """Queue ``text`` as one text frame."""
        self._queue.put_nowait(text)

    async def close(self) -> None:
        """Send what is queued, then close the connection."""
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        await self.websocket.close()

    async def _write(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None or self.websocket.closed:
                return
            try:
                await self.websocket.send_str(text)
            except ConnectionError:
                return


class MarketSocket(ClientSocket):
    """A ``/stream`` connection and the market streams it is subscribed to (lowercase names)."""

    def __init__(self, websocket: web.WebSocketResponse, streams: set[str]) -> None:
        super().__init__(websocket)
        self.streams = streams


class UserSocket(ClientSocket):
    """A ``/ws-api/v3`` connection: logged on or not, and its user-data subscription ids."""

    def __init__(self, websocket: web.WebSocketResponse) -> None:
        super().__init__(websocket)
        self.logged_on = False
        self.subscription_ids: set[int] = set()
        self.next_subscription_id = 0
