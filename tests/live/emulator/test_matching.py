"""The venue's matching engine on the real BTCUSDT book of the sample (2024-08-08 23:54:14 UTC snapshot)."""

from decimal import Decimal
from pathlib import Path

import pytest

from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL
from keel.live.emulator.book import L2Book
from keel.live.emulator.faults import Faults
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.feed import load_market_feed
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.matching import BalanceEvent
from keel.live.emulator.matching import BookLevelEvent
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import MatchingEngine
from keel.live.emulator.matching import NewOrder
from keel.live.emulator.matching import VenueRejection
from keel.live.emulator.symbols import symbol_spec

NOW = 1_795_000_000_000
# The sample snapshot's top of book (BTCUSDT, lastUpdateId 50093239218).
BEST_BID = Decimal("61837.63")
BEST_BID_QTY = Decimal("3.78826")
BEST_ASK = Decimal("61837.64")


@pytest.fixture(scope="module")
def sample_btc_book(sample_catalog: Path) -> tuple:
    feed = load_market_feed(str(sample_catalog), ["BTCUSDT.BINANCE"], None, None)
    spec = symbol_spec(feed.instruments[0])
    book = L2Book()
    MarketStreams({spec.symbol: spec}, {spec.symbol: book}).apply(feed.warmup[0])
    return spec, book


def make_engine(sample_btc_book: tuple, faults: Faults | None = None, **balances: str) -> MatchingEngine:
    spec, book = sample_btc_book
    copy = L2Book()
    copy.bids, copy.asks = dict(book.bids), dict(book.asks)
    starting = {asset: Decimal(amount) for asset, amount in (balances or {"USDT": "1000000"}).items()}
    return MatchingEngine({spec.symbol: spec}, {spec.symbol: copy}, SpotBalances(starting), faults or Faults())


def executions(events: list) -> list[ExecutionEvent]:
    return [event for event in events if isinstance(event, ExecutionEvent)]


def order(side: str, order_type: str, quantity: str, price: str | None = None, tif: str | None = None, client_id: str = "c1") -> NewOrder:
    return NewOrder(
        symbol="BTCUSDT",
        side=side,
        order_type=order_type,
        client_order_id=client_id,
        quantity=Decimal(quantity),
        price=Decimal(price) if price is not None else None,
        time_in_force=tif,
    )


def test_sample_book_top_is_the_recorded_snapshot(sample_btc_book: tuple) -> None:
    _, book = sample_btc_book
    assert book.best_bid() == (BEST_BID, BEST_BID_QTY)
    assert book.best_ask()[0] == BEST_ASK


def test_market_buy_walks_the_book_with_one_trade_per_level(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    asks = engine.books["BTCUSDT"].levels(SELL)
    quantity = asks[0][1] + asks[1][1] + Decimal("0.00010")

    placed, events = engine.submit(order(BUY, "MARKET", str(quantity)), NOW)

    reports = executions(events)
    trades = [r for r in reports if r.execution_type == "TRADE"]
    assert reports[0].execution_type == "NEW"
    assert [(t.fill.price, t.fill.quantity) for t in trades] == [asks[0], asks[1], (asks[2][0], Decimal("0.00010"))]
    assert len({t.fill.trade_id for t in trades}) == 3
    assert all(not t.fill.is_maker for t in trades)
    assert placed.status == "FILLED" and placed.executed_qty == quantity
    # Liquidity taken leaves the book (and is streamed as level changes).
    assert asks[0][0] not in engine.books["BTCUSDT"].asks
    assert [e.price for e in events if isinstance(e, BookLevelEvent)] == [asks[0][0], asks[1][0], asks[2][0]]
    # Commission is 0.1% of the BTC received; USDT paid is the notional.
    notional = sum(t.fill.price * t.fill.quantity for t in trades)
    assert engine.balances.free("BTC") == quantity - sum(t.fill.commission for t in trades)
    assert engine.balances.free("USDT") == Decimal("1000000") - notional
    assert engine.balances.locked("USDT") == 0


def test_market_sell_pays_commission_in_quote(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, BTC="1")

    placed, events = engine.submit(order(SELL, "MARKET", "0.01000"), NOW)

    (trade,) = [r for r in executions(events) if r.execution_type == "TRADE"]
    assert trade.fill.price == BEST_BID
    assert trade.fill.commission_asset == "USDT"
    assert trade.fill.commission == (BEST_BID * Decimal("0.01") * Decimal("0.001")).quantize(Decimal("0.00000001"))
    assert engine.balances.free("USDT") == BEST_BID * Decimal("0.01") - trade.fill.commission
    assert engine.balances.free("BTC") == Decimal("0.99")


def test_resting_limit_locks_quote_and_cancel_releases_it(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, USDT="1000")
    price = Decimal("61000.00")

    placed, events = engine.submit(order(BUY, "LIMIT", "0.01000", "61000.00", "GTC"), NOW)

    assert [r.execution_type for r in executions(events)] == ["NEW"]
    assert placed.is_open
    assert engine.balances.locked("USDT") == price * Decimal("0.01")
    assert isinstance(events[1], BalanceEvent)

    canceled, cancel_events = engine.cancel("BTCUSDT", placed.order_id, None, NOW + 1)

    assert canceled.status == "CANCELED"
    assert [r.execution_type for r in executions(cancel_events)] == ["CANCELED"]
    assert engine.balances.locked("USDT") == 0 and engine.balances.free("USDT") == Decimal("1000")
    with pytest.raises(VenueRejection) as rejection:
        engine.cancel("BTCUSDT", placed.order_id, None, NOW + 2)
    assert rejection.value.code == -2011


def trade(price: Decimal, quantity: str, seller_aggressor: bool, ts_init: int) -> TradePrint:
    return TradePrint(ts_init, "BTCUSDT", ts_init, price, Decimal(quantity), buyer_is_maker=seller_aggressor)


def test_resting_buy_fills_when_a_trade_prints_through_it_whatever_its_queue(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    placed, _ = engine.submit(order(BUY, "LIMIT", "0.01000", str(BEST_BID), "GTC"), NOW)

    assert engine.on_trade(trade(BEST_BID, "0.50000", True, 1), NOW + 1) == []
    assert placed.status == "NEW"

    events = engine.on_trade(trade(BEST_BID - Decimal("0.01"), "0.00100", True, 2), NOW + 2)

    (fill,) = executions(events)
    assert fill.execution_type == "TRADE" and fill.fill.is_maker
    assert fill.fill.price == BEST_BID and placed.status == "FILLED"


def test_resting_buy_at_a_level_fills_only_once_prints_at_its_price_used_up_the_queue_ahead(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    placed, _ = engine.submit(order(BUY, "LIMIT", "0.01000", str(BEST_BID), "GTC"), NOW)
    assert placed.queue is not None and placed.queue.ahead == BEST_BID_QTY  # 3.78826 visible ahead

    # A BUYER print (at the ask) does not touch the bid queue; SELLER prints at the price eat it first.
    assert engine.on_trade(trade(BEST_ASK, "0.50000", False, 1), NOW) == []
    assert placed.queue.ahead == BEST_BID_QTY
    assert engine.on_trade(trade(BEST_BID, "3.78000", True, 2), NOW) == []
    assert placed.queue.ahead == Decimal("0.00826")

    events = engine.on_trade(trade(BEST_BID, "0.01326", True, 3), NOW)

    (fill,) = executions(events)
    assert (fill.fill.price, fill.fill.quantity, fill.fill.is_maker) == (BEST_BID, Decimal("0.00500"), True)
    assert placed.status == "PARTIALLY_FILLED" and placed.queue.ahead == 0


def test_a_level_that_shrinks_below_the_queue_ahead_caps_the_queue(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    placed, _ = engine.submit(order(BUY, "LIMIT", "0.01000", str(BEST_BID), "GTC"), NOW)

    engine.books["BTCUSDT"].set_level(BUY, BEST_BID, Decimal("0.20000"))
    engine.on_depth_changed("BTCUSDT", 1, NOW)
    assert placed.queue is not None and placed.queue.ahead == Decimal("0.20000")
    # The level growing again does not push the order back.
    engine.books["BTCUSDT"].set_level(BUY, BEST_BID, Decimal("2.00000"))
    engine.on_depth_changed("BTCUSDT", 2, NOW)
    assert placed.queue.ahead == Decimal("0.20000")

    events = engine.on_trade(trade(BEST_BID, "0.21000", True, 3), NOW)

    assert [e.fill.quantity for e in executions(events)] == [Decimal("0.01000")]
    assert placed.status == "FILLED"


def test_market_buy_takes_the_newer_book_ticker_not_the_stale_depth_top(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    depth_asks = engine.books["BTCUSDT"].levels(SELL)
    ticker_ask = depth_asks[1][0]
    engine.on_quote(QuotePrint(1, "BTCUSDT", BEST_BID, BEST_BID_QTY, ticker_ask, Decimal("0.00100")), NOW)

    placed, events = engine.submit(order(BUY, "MARKET", str(Decimal("0.00100") + depth_asks[2][1])), NOW)

    fills = [(r.fill.price, r.fill.quantity) for r in executions(events) if r.fill]
    # The ticker's size at its price, then depth behind it; the stale depth top is gone.
    assert fills == [(ticker_ask, Decimal("0.00100")), depth_asks[2]]
    assert placed.status == "FILLED"


def test_resting_sell_fills_as_taker_when_the_book_moves_through_it(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, BTC="1")
    price = BEST_ASK + Decimal("1.00")
    placed, _ = engine.submit(order(SELL, "LIMIT", "0.05000", str(price), "GTC"), NOW)
    assert engine.on_depth_changed("BTCUSDT", 1, NOW + 1) == []

    engine.books["BTCUSDT"].set_level(BUY, price + Decimal("0.50"), Decimal("0.02000"))
    engine.books["BTCUSDT"].set_level(BUY, price, Decimal("1.00000"))
    events = engine.on_depth_changed("BTCUSDT", 2, NOW + 2)

    trades = [r for r in executions(events) if r.execution_type == "TRADE"]
    assert [(t.fill.price, t.fill.quantity, t.fill.is_maker) for t in trades] == [
        (price + Decimal("0.50"), Decimal("0.02000"), False),
        (price, Decimal("0.03000"), False),
    ]
    assert placed.status == "FILLED"


def test_marketable_gtc_limit_takes_then_rests(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    ask_price, ask_quantity = engine.books["BTCUSDT"].best_ask()
    quantity = ask_quantity + Decimal("1")

    placed, events = engine.submit(order(BUY, "LIMIT", str(quantity), str(ask_price), "GTC"), NOW)

    assert [r.execution_type for r in executions(events)] == ["NEW", "TRADE"]
    assert placed.status == "PARTIALLY_FILLED" and placed.remaining == Decimal("1")
    assert engine.balances.locked("USDT") == ask_price * Decimal("1")


def test_ioc_expires_the_rest_and_fok_fills_nothing(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)
    ask_price, ask_quantity = engine.books["BTCUSDT"].best_ask()
    too_much = str(ask_quantity + Decimal("1"))

    ioc, ioc_events = engine.submit(order(BUY, "LIMIT", too_much, str(ask_price), "IOC", "ioc"), NOW)
    fok, fok_events = engine.submit(order(BUY, "LIMIT", too_much, str(ask_price), "FOK", "fok"), NOW)

    assert [r.execution_type for r in executions(ioc_events)] == ["NEW", "TRADE", "EXPIRED"]
    assert ioc.status == "EXPIRED" and ioc.executed_qty == ask_quantity
    assert [r.execution_type for r in executions(fok_events)] == ["NEW", "EXPIRED"]
    assert fok.executed_qty == 0
    assert engine.balances.locked("USDT") == 0


def test_limit_maker_that_would_take_is_rejected_with_the_binance_message(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book)

    with pytest.raises(VenueRejection) as rejection:
        engine.submit(order(BUY, "LIMIT_MAKER", "0.01000", str(BEST_ASK)), NOW)

    assert (rejection.value.code, rejection.value.msg) == (-2010, "Order would immediately match and take.")
    placed, events = engine.submit(order(BUY, "LIMIT_MAKER", "0.01000", str(BEST_BID)), NOW)
    assert placed.is_open and [r.execution_type for r in executions(events)] == ["NEW"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (order(BUY, "LIMIT", "0.01000", "61000.005", "GTC"), "Filter failure: PRICE_FILTER"),
        (order(BUY, "LIMIT", "0.010001", "61000.00", "GTC"), "Filter failure: LOT_SIZE"),
        (order(BUY, "LIMIT", "0.00001", "61000.00", "GTC"), "Filter failure: MIN_NOTIONAL"),
        (order(BUY, "MARKET", "0.00010"), "Filter failure: MIN_NOTIONAL"),
    ],
)
def test_filters_reject_with_binance_filter_failures(sample_btc_book: tuple, request_: NewOrder, message: str) -> None:
    engine = make_engine(sample_btc_book)

    with pytest.raises(VenueRejection) as rejection:
        engine.submit(request_, NOW)

    assert (rejection.value.code, rejection.value.msg) == (-1013, message)
    assert engine.open_orders() == []


def test_insufficient_balance_is_rejected_and_changes_nothing(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, USDT="100")

    with pytest.raises(VenueRejection) as buy:
        engine.submit(order(BUY, "MARKET", "0.01000"), NOW)
    with pytest.raises(VenueRejection) as sell:
        engine.submit(order(SELL, "LIMIT", "0.01000", "70000.00", "GTC"), NOW)

    assert buy.value.code == sell.value.code == -2010
    assert buy.value.msg == "Account has insufficient balance for requested action."
    assert engine.balances.free("USDT") == Decimal("100") and engine.balances.locked("USDT") == 0


def test_slippage_makes_fills_worse_by_whole_ticks(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, faults=Faults(slippage_bps=10.0), USDT="100000", BTC="1")

    _, buy_events = engine.submit(order(BUY, "MARKET", "0.00100", client_id="b"), NOW)
    _, sell_events = engine.submit(order(SELL, "MARKET", "0.00100", client_id="s"), NOW)

    (buy,) = [r.fill for r in executions(buy_events) if r.fill]
    (sell,) = [r.fill for r in executions(sell_events) if r.fill]
    assert buy.price == Decimal("61899.48")  # 61837.64 * 1.001 = 61899.477..., up to the tick
    assert sell.price == Decimal("61775.79")  # 61837.63 * 0.999 = 61775.792..., down to the tick


def test_drop_fill_every_expires_every_nth_order_that_would_fill(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, faults=Faults(drop_fill_every=2))

    statuses = [engine.submit(order(BUY, "MARKET", "0.00100", client_id=f"m{i}"), NOW)[0].status for i in range(4)]

    assert statuses == ["FILLED", "EXPIRED", "FILLED", "EXPIRED"]
    assert len(engine.fills("BTCUSDT")) == 2
    assert engine.balances.locked("USDT") == 0


def test_quote_quantity_market_buy_spends_at_most_the_quote_amount(sample_btc_book: tuple) -> None:
    engine = make_engine(sample_btc_book, USDT="1000")
    request = NewOrder(symbol="BTCUSDT", side=BUY, order_type="MARKET", client_order_id="q", quote_order_qty=Decimal("100"))

    placed, events = engine.submit(request, NOW)

    assert placed.status == "FILLED"
    assert placed.quantity == Decimal("0.00161")  # 100 / 61837.64 = 0.0016171..., down to the 0.00001 step
    assert placed.cumulative_quote_qty <= Decimal("100")
    assert engine.balances.free("USDT") == Decimal("1000") - placed.cumulative_quote_qty
    assert engine.balances.locked("USDT") == 0
