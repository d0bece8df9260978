"""
Market fills of the emulator's feed + matching engine on the real BTCUSDT sample, checked against the raw
recording itself: the latest bookTicker (``b``/``a``) at each order's arrival, parsed here from the gz lines.
"""

import bisect
import gzip
import json
from dataclasses import dataclass
from decimal import ROUND_CEILING
from decimal import Decimal
from pathlib import Path

import pytest

from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.book import L2Book
from keel.live.emulator.faults import Faults
from keel.live.emulator.feed import DepthChange
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.feed import load_market_feed
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import Fill
from keel.live.emulator.matching import MatchingEngine
from keel.live.emulator.matching import NewOrder
from keel.live.emulator.symbols import SymbolSpec
from keel.live.emulator.symbols import symbol_spec
from keel.settings import REPO_ROOT

RECORDING = REPO_ROOT / "data" / "sample" / "binance_spot" / "btcusdt_20240808.gz"
ORDER_EVERY_NS = 2_000_000_000
TOLERANCE = Decimal("0.00005")  # 0.5 bp
NOW_MS = 1_795_000_000_000


@dataclass(frozen=True)
class RecordedTop:
    """The recording's bookTicker lines, as parsed from the raw file: local receive ns, bid and ask."""

    ts_ns: list[int]
    bids: list[Decimal]
    asks: list[Decimal]

    def at(self, ts_ns: int) -> tuple[Decimal, Decimal]:
        index = bisect.bisect_right(self.ts_ns, ts_ns) - 1
        assert index >= 0, f"no bookTicker at or before {ts_ns}"
        return self.bids[index], self.asks[index]


def read_recorded_tops(path: Path) -> RecordedTop:
    ts_ns: list[int] = []
    bids: list[Decimal] = []
    asks: list[Decimal] = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            ts_text, payload = line.split(" ", 1)
            message = json.loads(payload)
            if message.get("stream", "").endswith("@bookTicker"):
                ts_ns.append(int(ts_text))
                bids.append(Decimal(message["data"]["b"]))
                asks.append(Decimal(message["data"]["a"]))
    return RecordedTop(ts_ns, bids, asks)


@pytest.fixture(scope="module")
def market_fills(sample_catalog: Path) -> list[tuple[int, Fill]]:
    """
    Replay the BTCUSDT sample through feed, streams and engine; a minimum market BUY and SELL arrive every
    2 s and again right after the first trade print that follows (when the depth book is stalest: the
    print has not reached the next diff yet). Returns (arrival ns, fill).
    """
    feed = load_market_feed(str(sample_catalog), ["BTCUSDT.BINANCE"], None, None)
    spec = symbol_spec(feed.instruments[0])
    book = L2Book()
    market = MarketStreams({spec.symbol: spec}, {spec.symbol: book})
    balances = SpotBalances({"USDT": Decimal("1000000"), "BTC": Decimal("100")})
    engine = MatchingEngine({spec.symbol: spec}, {spec.symbol: book}, balances, Faults())
    for change in feed.warmup:
        market.apply(change)
        engine.on_depth_changed(change.symbol, change.ts_init, NOW_MS)
    fills: list[tuple[int, Fill]] = []
    next_order_ns = feed.events[0].ts_init + ORDER_EVERY_NS
    after_next_trade = False
    for event in feed.events:
        if event.ts_init > next_order_ns:
            # Every event up to next_order_ns has been played: the order arrives now.
            fills.extend((next_order_ns, fill) for fill in _submit_round_trip(engine, spec, next_order_ns))
            next_order_ns += ORDER_EVERY_NS
            after_next_trade = True
        if isinstance(event, TradePrint):
            engine.on_trade(event, NOW_MS)
            if after_next_trade:
                fills.extend((event.ts_init, fill) for fill in _submit_round_trip(engine, spec, event.ts_init))
                after_next_trade = False
        elif isinstance(event, QuotePrint):
            engine.on_quote(event, NOW_MS)
        elif isinstance(event, DepthChange):
            market.apply(event)
            engine.on_depth_changed(event.symbol, event.ts_init, NOW_MS)
    return fills


def _submit_round_trip(engine: MatchingEngine, spec: SymbolSpec, arrival_ns: int) -> list[Fill]:
    fills: list[Fill] = []
    for side in ("BUY", "SELL"):
        reference = engine.views[spec.symbol].best("SELL" if side == "BUY" else "BUY")
        assert reference is not None
        # The minimum quantity the venue accepts: LOT_SIZE minimum, or what reaches the minimum notional.
        quantity = max(spec.min_qty, (spec.min_notional * Decimal("1.01") / reference[0] / spec.step_size).to_integral_value(ROUND_CEILING) * spec.step_size)
        request = NewOrder(symbol=spec.symbol, side=side, order_type="MARKET", client_order_id=f"{side}-{arrival_ns}", quantity=quantity)
        _, events = engine.submit(request, NOW_MS)
        fills.extend(event.fill for event in events if isinstance(event, ExecutionEvent) and event.fill is not None)
    return fills


def test_no_market_fill_is_better_than_the_recorded_book_ticker_at_arrival(market_fills: list[tuple[int, Fill]]) -> None:
    tops = read_recorded_tops(RECORDING)
    better = []
    at_ticker = 0
    for arrival_ns, fill in market_fills:
        bid, ask = tops.at(arrival_ns)
        if fill.side == "BUY" and fill.price < ask * (1 - TOLERANCE) or fill.side == "SELL" and fill.price > bid * (1 + TOLERANCE):
            better.append((arrival_ns, fill.side, fill.price, bid, ask))
        at_ticker += fill.price == (ask if fill.side == "BUY" else bid)

    # About 340 arrivals in the six minutes (every 2 s and right after the next print), a BUY and a SELL each.
    assert len(market_fills) >= 600
    assert better == []
    # Nor is the view pessimistic: a minimum order almost always fills at the ticker's own price (the rest
    # walked past a ticker level smaller than the order, or a newer print had gone through it).
    assert at_ticker >= 0.9 * len(market_fills)
