"""The emulator's wire protocol, checked with a plain aiohttp client and nautilus's own Binance schemas."""

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nautilus_trader.adapters.binance.common.enums import BinanceErrorCode
from nautilus_trader.adapters.binance.spot.schemas.market import BinanceSpotExchangeInfo
from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotAccountUpdateMsg
from nautilus_trader.adapters.binance.spot.schemas.user import BinanceSpotOrderUpdateData

from keel.live.emulator import ADMIN_FAULTS_PATH
from keel.live.emulator import BinanceSpotEmulator
from keel.live.emulator import EmulatorConfig
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import load_market_feed

# The sample's first BTCUSDT book snapshot (recorder receive time).
FIRST_SNAPSHOT_NS = 1_723_161_254_206_652_067
API_KEY = "test-key-" + secrets.token_hex(8)
HMAC_SECRET = secrets.token_hex(32)


def config(catalog: Path, **overrides: Any) -> EmulatorConfig:
    fields: dict[str, Any] = {
        "catalog_path": str(catalog),
        "instrument_ids": ["BTCUSDT.BINANCE"],
        "api_key": API_KEY,
        "api_secret": HMAC_SECRET,
        "speed": 20.0,
        "starting_balances": {"USDT": "10000", "BTC": "0.1"},
    }
    fields.update(overrides)
    return EmulatorConfig(**fields)


def run_with_emulator(emulator_config: EmulatorConfig, body: Callable[[BinanceSpotEmulator, aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        emulator = BinanceSpotEmulator(emulator_config)
        await emulator.start()
        try:
            async with aiohttp.ClientSession() as session:
                await body(emulator, session)
        finally:
            await emulator.stop()

    asyncio.run(main())


def hmac_signed(params: dict[str, Any], secret: str = HMAC_SECRET) -> str:
    query = urllib.parse.urlencode(params)
    return f"{query}&signature={hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()}"


def timestamped(**params: Any) -> dict[str, Any]:
    return {**params, "timestamp": time.time_ns() // 1_000_000}


async def rest(session: aiohttp.ClientSession, method: str, url: str, query: str, api_key: str = API_KEY) -> tuple[int, Any]:
    async with session.request(method, f"{url}?{query}", headers={"X-MBX-APIKEY": api_key}) as response:
        return response.status, await response.json()


async def logon(websocket: aiohttp.ClientWebSocketResponse, signature: str, timestamp: int) -> dict[str, Any]:
    await websocket.send_json({"id": "0", "method": "session.logon", "params": {"apiKey": API_KEY, "timestamp": timestamp, "signature": signature}})
    return await websocket.receive_json()


def test_exchange_info_decodes_with_nautilus_schema(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{emulator.http_url}/api/v3/exchangeInfo", params={"symbols": '["BTCUSDT"]'}) as response:
            info = msgspec.json.decode(await response.read(), type=BinanceSpotExchangeInfo)
        assert [symbol.symbol for symbol in info.symbols] == ["BTCUSDT"]
        status, error = await rest(session, "GET", f"{emulator.http_url}/api/v3/exchangeInfo", "symbol=DOGEUSDT")
        assert (status, error["code"]) == (400, BinanceErrorCode.BAD_SYMBOL.value)

    run_with_emulator(config(sample_catalog), body)


def test_signed_rest_rejects_bad_signature_key_and_stale_timestamp(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        url = f"{emulator.http_url}/api/v3/account"
        ok_status, account = await rest(session, "GET", url, hmac_signed(timestamped(recvWindow=5000)))
        bad_status, bad = await rest(session, "GET", url, hmac_signed(timestamped(), secret="not-the-secret"))
        key_status, wrong_key = await rest(session, "GET", url, hmac_signed(timestamped()), api_key="someone-else")
        old_status, stale = await rest(session, "GET", url, hmac_signed({"timestamp": time.time_ns() // 1_000_000 - 60_000}))
        unsigned_status, unsigned = await rest(session, "GET", url, urllib.parse.urlencode(timestamped()))

        assert ok_status == 200 and {b["asset"]: b["free"] for b in account["balances"]} == {"BTC": "0.10000000", "USDT": "10000.00000000"}
        assert (bad_status, BinanceErrorCode(bad["code"])) == (400, BinanceErrorCode.INVALID_SIGNATURE)
        assert (key_status, BinanceErrorCode(wrong_key["code"])) == (401, BinanceErrorCode.REJECTED_MBX_KEY)
        assert (old_status, BinanceErrorCode(stale["code"])) == (400, BinanceErrorCode.INVALID_TIMESTAMP)
        assert unsigned_status == 400 and BinanceErrorCode(unsigned["code"]) == BinanceErrorCode.MANDATORY_PARAM_EMPTY_OR_MALFORMED

    run_with_emulator(config(sample_catalog), body)


def test_request_log_never_holds_signatures_or_secrets(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        query = hmac_signed(timestamped(recvWindow=5000))
        await rest(session, "GET", f"{emulator.http_url}/api/v3/account", query)
        signature = query.rpartition("=")[2]
        logged = repr(emulator.request_log)
        assert "/api/v3/account" in logged
        assert signature not in logged and HMAC_SECRET not in logged and "signature" not in logged

    run_with_emulator(config(sample_catalog), body)


def test_depth_ids_are_continuous_and_bridge_the_rest_snapshot(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        streams = "btcusdt@depth@100ms/btcusdt@bookTicker"
        async with session.ws_connect(f"{emulator.ws_stream_url}/stream?streams={streams}") as websocket:
            async with session.get(f"{emulator.http_url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "1000"}) as response:
                snapshot = await response.json()
            diffs, tickers = [], []
            while len(diffs) < 30:
                frame = await asyncio.wait_for(websocket.receive_json(), 10)
                (diffs if frame["stream"].endswith("@depth@100ms") else tickers).append(frame["data"])
        after = [d for d in diffs if d["u"] > snapshot["lastUpdateId"]]
        assert after[0]["U"] <= snapshot["lastUpdateId"] + 1 <= after[0]["u"]
        assert all(later["U"] == earlier["u"] + 1 for earlier, later in zip(diffs, diffs[1:], strict=False))
        ticker_ids = [t["u"] for t in tickers]
        assert ticker_ids == sorted(set(ticker_ids))
        diff_ids = {i for d in diffs for i in range(d["U"], d["u"] + 1)}
        assert {i for i in ticker_ids if diffs[0]["U"] <= i <= diffs[-1]["u"]} <= diff_ids

    run_with_emulator(config(sample_catalog), body)


def test_user_data_reports_decode_with_nautilus_schemas_in_venue_order(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(emulator.ws_api_url) as websocket:
            timestamp = time.time_ns() // 1_000_000
            payload = f"apiKey={API_KEY}&timestamp={timestamp}"
            assert (await logon(websocket, hmac.new(HMAC_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest(), timestamp))["status"] == 200
            await websocket.send_json({"id": "1", "method": "userDataStream.subscribe", "params": {}})
            subscribed = await websocket.receive_json()
            order_query = hmac_signed(timestamped(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.00100", newClientOrderId="probe-1"))
            status, placed = await rest(session, "POST", f"{emulator.http_url}/api/v3/order", order_query)
            frames = [await asyncio.wait_for(websocket.receive_json(), 5) for _ in range(4)]

        assert subscribed["result"]["subscriptionId"] == 0 and status == 200 and placed["status"] == "FILLED"
        assert {frame["subscriptionId"] for frame in frames} == {0}
        events = [frame["event"] for frame in frames]
        assert [e["e"] for e in events] == ["executionReport", "outboundAccountPosition", "executionReport", "outboundAccountPosition"]
        new, trade = (msgspec.json.decode(json.dumps(events[i]), type=BinanceSpotOrderUpdateData) for i in (0, 2))
        assert (new.x.value, trade.x.value, trade.X.value) == ("NEW", "TRADE", "FILLED")
        assert trade.c == "probe-1" and trade.N == "BTC" and trade.t > 0
        balances = msgspec.json.decode(json.dumps(events[3]), type=BinanceSpotAccountUpdateMsg)
        assert {b.a for b in balances.B} == {"USDT", "BTC"}

    run_with_emulator(config(sample_catalog), body)


def test_post_only_rejection_and_unknown_order_use_binance_codes(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        url = f"{emulator.http_url}/api/v3/order"
        best_ask = emulator.engine.views["BTCUSDT"].best("SELL")[0]
        status, error = await rest(session, "POST", url, hmac_signed(timestamped(symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.00100", price=str(best_ask))))
        cancel_status, cancel = await rest(session, "DELETE", url, hmac_signed(timestamped(symbol="BTCUSDT", orderId=42)))
        query_status, query = await rest(session, "GET", url, hmac_signed(timestamped(symbol="BTCUSDT", orderId=42)))

        assert (status, BinanceErrorCode(error["code"]), error["msg"]) == (400, BinanceErrorCode.NEW_ORDER_REJECTED, "Order would immediately match and take.")
        assert (cancel_status, BinanceErrorCode(cancel["code"])) == (400, BinanceErrorCode.CANCEL_REJECTED)
        assert (query_status, BinanceErrorCode(query["code"])) == (400, BinanceErrorCode.NO_SUCH_ORDER)

    run_with_emulator(config(sample_catalog), body)


def test_ed25519_keys_sign_rest_and_logon_and_the_switch_refuses_hmac_logon(sample_catalog: Path) -> None:
    private_key = Ed25519PrivateKey.generate()
    pkcs8 = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ed25519_secret = base64.b64encode(pkcs8).decode()

    def ed25519_sign(payload: str) -> str:
        return base64.b64encode(private_key.sign(payload.encode())).decode()

    async def ed25519_body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        query = urllib.parse.urlencode(timestamped())
        status, _ = await rest(session, "GET", f"{emulator.http_url}/api/v3/account", f"{query}&signature={urllib.parse.quote(ed25519_sign(query))}")
        assert status == 200
        async with session.ws_connect(emulator.ws_api_url) as websocket:
            timestamp = time.time_ns() // 1_000_000
            assert (await logon(websocket, ed25519_sign(f"apiKey={API_KEY}&timestamp={timestamp}"), timestamp))["status"] == 200

    async def hmac_body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(emulator.ws_api_url) as websocket:
            timestamp = time.time_ns() // 1_000_000
            payload = f"apiKey={API_KEY}&timestamp={timestamp}"
            reply = await logon(websocket, hmac.new(HMAC_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest(), timestamp)
            assert "error" in reply and "result" not in reply

    run_with_emulator(config(sample_catalog, api_secret=ed25519_secret, require_ed25519_logon=True), ed25519_body)
    run_with_emulator(config(sample_catalog, require_ed25519_logon=True), hmac_body)


def test_faults_admin_endpoint_changes_knobs_at_runtime(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        url = f"{emulator.http_url}{ADMIN_FAULTS_PATH}"
        async with session.post(url, json={"slippage_bps": 5, "drop_fill_every": 3, "extra_fee_bps": 10}) as response:
            assert response.status == 200
        async with session.post(url, json={"drop_fill_every": -1}) as response:
            assert response.status == 400 and "drop_fill_every" in (await response.json())["error"]
        async with session.post(url, json={"extra_fee_bps": -1}) as response:
            assert response.status == 400 and "extra_fee_bps" in (await response.json())["error"]
        async with session.get(url) as response:
            assert await response.json() == {"slippage_bps": 5.0, "drop_fill_every": 3, "order_latency_ms": 0.0, "extra_fee_bps": 10.0}
        assert emulator.engine is not None and emulator.engine.faults.extra_fee_bps == 10.0

    run_with_emulator(config(sample_catalog), body)


def test_feed_finishes_and_the_venue_keeps_matching_on_the_last_book(sample_catalog: Path) -> None:
    end_ns = FIRST_SNAPSHOT_NS + 2_000_000_000
    last_quote = [e for e in load_market_feed(str(sample_catalog), ["BTCUSDT.BINANCE"], None, end_ns).events if isinstance(e, QuotePrint)][-1]

    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        await asyncio.wait_for(emulator.feed_finished.wait(), 30)
        # The replay hands every bookTicker to the matching view, not only to the stream.
        assert emulator.engine is not None and emulator.engine.views["BTCUSDT"].quote == last_quote
        best_bid = emulator.engine.views["BTCUSDT"].best("BUY")[0]
        order_query = hmac_signed(timestamped(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.00100"))
        status, placed = await rest(session, "POST", f"{emulator.http_url}/api/v3/order", order_query)
        assert status == 200 and placed["status"] == "FILLED"
        assert placed["fills"][0]["price"] == f"{best_bid:.8f}"

    run_with_emulator(config(sample_catalog, end_ns=end_ns), body)


def test_a_replay_held_for_the_first_subscription_starts_with_it(sample_catalog: Path) -> None:
    end_ns = FIRST_SNAPSHOT_NS + 2_000_000_000

    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(f"{emulator.ws_stream_url}/stream") as websocket:
            # Twice the window's replay time (0.1 s at speed 20) passes without a subscription: nothing is replayed.
            await asyncio.sleep(1.0)
            assert not emulator.feed_finished.is_set()
            await websocket.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1})
            assert (await asyncio.wait_for(websocket.receive_json(), 10)) == {"result": None, "id": 1}
            first = await asyncio.wait_for(websocket.receive_json(), 10)
            await asyncio.wait_for(emulator.feed_finished.wait(), 30)
        assert first["stream"] == "btcusdt@trade"

    run_with_emulator(config(sample_catalog, end_ns=end_ns, replay_on_first_subscription=True), body)


def test_config_refuses_non_loopback_hosts(sample_catalog: Path) -> None:
    with pytest.raises(ValueError, match="host"):
        config(sample_catalog, host="0.0.0.0")
    with pytest.raises(ValueError, match="host"):
        config(sample_catalog, host="example.com")


def test_order_latency_delays_processing_of_orders(sample_catalog: Path) -> None:
    latency_ms = 300

    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        order_query = hmac_signed(timestamped(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.00100"))
        status, placed = await rest(session, "POST", f"{emulator.http_url}/api/v3/order", order_query)
        (received,) = [record for record in emulator.request_log if record.path == "/api/v3/order"]
        assert status == 200
        # The venue stamps the order when it processes it, at least the injected latency after receipt.
        assert placed["transactTime"] - received.time_ns // 1_000_000 >= latency_ms

    run_with_emulator(config(sample_catalog, order_latency_ms=float(latency_ms)), body)


def test_cancel_all_open_orders_releases_every_lock(sample_catalog: Path) -> None:
    async def body(emulator: BinanceSpotEmulator, session: aiohttp.ClientSession) -> None:
        url = f"{emulator.http_url}/api/v3"
        for client_id, price in (("rest-1", "50000.00"), ("rest-2", "50001.00")):
            query = hmac_signed(timestamped(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.00100", price=price, newClientOrderId=client_id))
            assert (await rest(session, "POST", f"{url}/order", query))[0] == 200
        _, open_before = await rest(session, "GET", f"{url}/openOrders", hmac_signed(timestamped()))
        status, canceled = await rest(session, "DELETE", f"{url}/openOrders", hmac_signed(timestamped(symbol="BTCUSDT")))
        _, open_after = await rest(session, "GET", f"{url}/openOrders", hmac_signed(timestamped()))
        _, history = await rest(session, "GET", f"{url}/allOrders", hmac_signed(timestamped(symbol="BTCUSDT", limit=1000)))
        _, account = await rest(session, "GET", f"{url}/account", hmac_signed(timestamped()))

        assert [o["clientOrderId"] for o in open_before] == ["rest-1", "rest-2"]
        assert status == 200 and [o["origClientOrderId"] for o in canceled] == ["rest-1", "rest-2"]
        assert open_after == [] and [o["status"] for o in history] == ["CANCELED", "CANCELED"]
        assert {b["asset"]: b["locked"] for b in account["balances"]} == {"BTC": "0.00000000", "USDT": "0.00000000"}

    run_with_emulator(config(sample_catalog), body)
