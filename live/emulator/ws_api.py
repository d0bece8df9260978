"""
The venue's WebSocket API (``/ws-api/v3``) as nautilus's spot exec client uses it: ``session.logon``,
``userDataStream.subscribe``/``unsubscribe``, and user-data events pushed on the same socket wrapped as
``{"subscriptionId": N, "event": {...}}``.
"""

import json
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType
from aiohttp import web

from keel.live.emulator.signing import SignatureChecker
from keel.live.emulator.sockets import UserSocket


class WsApiError(Exception):
    """A WS-API request the venue refuses (sent back as ``{"id", "status", "error": {"code", "msg"}}``)."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


class WsApi:
    """
    Serves ``/ws-api/v3`` connections.

    Parameters
    ----------
    api_key : str
        The account's API key.
    checker : SignatureChecker
        Verifies the logon signature over ``apiKey=<k>&timestamp=<ms>``.
    require_ed25519_logon : bool
        Refuse ``session.logon`` when the account's key is not Ed25519, like the real venue.
    now_ms : Callable[[], int]
        The venue's clock.
    log_request : Callable[[str, str, dict[str, Any]], None]
        Records (method, path, redacted params) in the venue's request log.
    """

    def __init__(
        self,
        api_key: str,
        checker: SignatureChecker,
        require_ed25519_logon: bool,
        now_ms: Callable[[], int],
        log_request: Callable[[str, str, dict[str, Any]], None],
    ) -> None:
        self._api_key = api_key
        self._checker = checker
        self._require_ed25519_logon = require_ed25519_logon
        self._now_ms = now_ms
        self._log_request = log_request
        self.sockets: set[UserSocket] = set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one WS-API connection until it closes."""
        websocket = web.WebSocketResponse(autoping=True, heartbeat=None)
        await websocket.prepare(request)
        socket = UserSocket(websocket)
        self.sockets.add(socket)
        try:
            async for message in websocket:
                if message.type != WSMsgType.TEXT:
                    continue
                socket.send(json.dumps(self._answer(socket, message.data), separators=(",", ":")))
        finally:
            self.sockets.discard(socket)
            await socket.close()
        return websocket

    def push(self, event: dict[str, Any]) -> None:
        """Send a user-data event to every subscribed socket."""
        for socket in self.sockets:
            for subscription_id in sorted(socket.subscription_ids):
                socket.send(json.dumps({"subscriptionId": subscription_id, "event": event}, separators=(",", ":")))

    def _answer(self, socket: UserSocket, text: str) -> dict[str, Any]:
        try:
            request = json.loads(text)
        except json.JSONDecodeError:
            return _error_reply(None, WsApiError(400, -1100, "Malformed request: not JSON."))
        if not isinstance(request, dict):
            return _error_reply(None, WsApiError(400, -1100, "Malformed request: expected a JSON object."))
        request_id = request.get("id")
        method = request.get("method", "")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            return _error_reply(request_id, WsApiError(400, -1100, "Malformed request: 'params' must be a JSON object."))
        self._log_request(str(method), "/ws-api/v3", {k: v for k, v in params.items() if k not in ("signature", "apiKey")})
        try:
            result = self._dispatch(socket, str(method), params)
        except WsApiError as error:
            return _error_reply(request_id, error)
        return {"id": request_id, "status": 200, "result": result, "rateLimits": []}

    def _dispatch(self, socket: UserSocket, method: str, params: dict[str, Any]) -> Any:
        if method == "session.logon":
            return self._logon(socket, params)
        if method == "session.status":
            return self._session(socket)
        if method == "session.logout":
            socket.logged_on = False
            return self._session(socket)
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self._now_ms()}
        if method == "userDataStream.subscribe":
            if not socket.logged_on:
                raise WsApiError(401, -1002, "You are not authorized to execute this request.")
            subscription_id = socket.next_subscription_id
            socket.next_subscription_id += 1
            socket.subscription_ids.add(subscription_id)
            return {"subscriptionId": subscription_id}
        if method == "userDataStream.unsubscribe":
            if "subscriptionId" in params:
                # nautilus sends the id as a string.
                try:
                    socket.subscription_ids.discard(int(params["subscriptionId"]))
                except (TypeError, ValueError):
                    raise WsApiError(400, -1100, "Illegal characters found in parameter 'subscriptionId'.") from None
            else:
                socket.subscription_ids.clear()
            return {}
        raise WsApiError(400, -1099, f"Not found: unknown method '{method}'.")

    def _logon(self, socket: UserSocket, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("apiKey") != self._api_key:
            raise WsApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if self._require_ed25519_logon and not self._checker.is_ed25519:
            raise WsApiError(401, -1002, "session.logon accepts only Ed25519 API keys; use userDataStream.subscribe.signature for HMAC or RSA keys.")
        signature = params.get("signature")
        payload = "&".join(f"{key}={params[key]}" for key in sorted(params) if key != "signature")
        if not isinstance(signature, str) or not self._checker.verify(payload, signature):
            raise WsApiError(400, -1022, "Signature for this request is not valid.")
        try:
            timestamp = int(params["timestamp"])
        except (KeyError, TypeError, ValueError):
            raise WsApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
        now = self._now_ms()
        if timestamp > now + 1000 or now - timestamp > 5000:
            raise WsApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        socket.logged_on = True
        return self._session(socket)

    def _session(self, socket: UserSocket) -> dict[str, Any]:
        now = self._now_ms()
        return {
            "apiKey": self._api_key if socket.logged_on else None,
            "authorizedSince": now if socket.logged_on else None,
            "connectedSince": now,
            "returnRateLimits": False,
            "serverTime": now,
            "userDataStream": bool(socket.subscription_ids),
        }


def _error_reply(request_id: Any, error: WsApiError) -> dict[str, Any]:
    return {"id": request_id, "status": error.status, "error": {"code": error.code, "msg": error.msg}, "rateLimits": []}
