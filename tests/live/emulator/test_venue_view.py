"""The merged venue view on hand-built events: which of depth, bookTicker and trades is the freshest book."""

from decimal import Decimal

from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL
from keel.live.emulator.book import L2Book
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.venue_view import QueuePosition
from keel.live.emulator.venue_view import VenueView

D = Decimal


def depth_view(ts_init: int = 10) -> VenueView:
    """Bids 99.98 (1), 99.97 (2), 99.96 (3); asks 100.00 (1), 100.01 (2), 100.02 (3), as of ``ts_init``."""
    book = L2Book()
    for price, quantity in (("99.98", "1"), ("99.97", "2"), ("99.96", "3")):
        book.set_level(BUY, D(price), D(quantity))
    for price, quantity in (("100.00", "1"), ("100.01", "2"), ("100.02", "3")):
        book.set_level(SELL, D(price), D(quantity))
    view = VenueView(book)
    view.on_depth(ts_init)
    return view


def quote(ts_init: int, bid: str, bid_size: str, ask: str, ask_size: str) -> QuotePrint:
    return QuotePrint(ts_init, "BTCUSDT", D(bid), D(bid_size), D(ask), D(ask_size))


def trade(ts_init: int, price: str, quantity: str, *, seller_aggressor: bool) -> TradePrint:
    return TradePrint(ts_init, "BTCUSDT", ts_init, D(price), D(quantity), buyer_is_maker=seller_aggressor)


def levels(view: VenueView, side: str) -> list[tuple[str, str]]:
    return [(str(price), str(quantity)) for price, quantity in view.levels(side)]


def test_depth_alone_is_the_book() -> None:
    view = depth_view()

    assert levels(view, SELL) == [("100.00", "1"), ("100.01", "2"), ("100.02", "3")]
    assert levels(view, BUY) == [("99.98", "1"), ("99.97", "2"), ("99.96", "3")]


def test_a_quote_newer_than_depth_is_the_true_top_with_its_own_size() -> None:
    view = depth_view(ts_init=10)

    view.on_quote(quote(11, "99.97", "0.5", "100.01", "0.7"))

    # Levels better than the ticker are gone; the ticker's size replaces depth's at its price.
    assert levels(view, SELL) == [("100.01", "0.7"), ("100.02", "3")]
    assert levels(view, BUY) == [("99.97", "0.5"), ("99.96", "3")]
    assert view.size_at(SELL, D("100.00")) == 0 and view.size_at(BUY, D("99.97")) == D("0.5")


def test_a_quote_at_a_price_depth_does_not_show_is_inserted_as_the_top() -> None:
    view = depth_view(ts_init=10)

    view.on_quote(quote(11, "99.99", "0.4", "100.005", "0.2"))

    assert levels(view, SELL)[:2] == [("100.005", "0.2"), ("100.01", "2")]
    assert levels(view, BUY)[:2] == [("99.99", "0.4"), ("99.98", "1")]


def test_a_depth_diff_after_the_ticker_does_not_replace_its_top() -> None:
    # A depth@100ms diff reports the end of its batch and can arrive after a newer bookTicker: behind the
    # ticker's top it is the book, the top stays the ticker's.
    view = depth_view(ts_init=10)
    view.on_quote(quote(11, "99.97", "0.5", "100.01", "0.7"))

    view.depth.set_level(SELL, D("100.00"), D("4"))
    view.depth.set_level(SELL, D("100.03"), D("5"))
    view.on_depth(12)

    assert levels(view, SELL) == [("100.01", "0.7"), ("100.02", "3"), ("100.03", "5")]
    assert levels(view, BUY)[0] == ("99.97", "0.5")


def test_an_older_ticker_than_the_last_ticker_is_ignored() -> None:
    view = depth_view(ts_init=10)
    view.on_quote(quote(12, "99.97", "0.5", "100.01", "0.7"))

    view.on_quote(quote(11, "99.96", "0.5", "100.00", "0.2"))

    assert levels(view, SELL)[0] == ("100.01", "0.7")


def test_a_buyer_trade_removes_the_asks_it_went_through_and_the_bids_at_or_above_it() -> None:
    view = depth_view(ts_init=10)
    view.depth.set_level(BUY, D("100.01"), D("9"))  # a stale crossed bid the print proves gone

    view.on_trade(trade(11, "100.01", "0.5", seller_aggressor=False))

    assert levels(view, SELL) == [("100.01", "1.5"), ("100.02", "3")]
    assert levels(view, BUY)[0] == ("99.98", "1")


def test_a_seller_trade_reduces_its_level_never_below_zero() -> None:
    view = depth_view(ts_init=10)

    view.on_trade(trade(11, "99.97", "1.5", seller_aggressor=True))
    view.on_trade(trade(12, "99.97", "1.5", seller_aggressor=True))

    assert levels(view, BUY) == [("99.96", "3")]
    assert levels(view, SELL)[0] == ("100.00", "1")


def test_trades_cut_the_quote_top_and_a_newer_quote_supersedes_them() -> None:
    view = depth_view(ts_init=10)
    view.on_quote(quote(11, "99.98", "1", "100.01", "0.7"))

    view.on_trade(trade(12, "100.01", "0.3", seller_aggressor=False))
    assert levels(view, SELL)[0] == ("100.01", "0.4")
    view.on_trade(trade(13, "100.02", "0.3", seller_aggressor=False))
    assert levels(view, SELL) == [("100.02", "2.7")]

    view.on_quote(quote(14, "99.98", "1", "100.01", "0.9"))
    assert levels(view, SELL) == [("100.01", "0.9"), ("100.02", "3")]


def test_a_trade_not_newer_than_the_book_is_already_in_it() -> None:
    view = depth_view(ts_init=10)
    view.on_quote(quote(11, "99.98", "1", "100.00", "1"))

    view.on_trade(trade(11, "100.01", "1", seller_aggressor=False))

    assert levels(view, SELL)[0] == ("100.00", "1")


def test_taker_levels_stop_at_the_limit() -> None:
    view = depth_view()

    assert list(view.levels_for_taker(BUY, D("100.01"))) == [(D("100.00"), D("1")), (D("100.01"), D("2"))]
    assert list(view.levels_for_taker(SELL, D("99.98"))) == [(D("99.98"), D("1"))]


def test_own_taking_reduces_the_ticker_size_and_the_depth_level_it_streams() -> None:
    view = depth_view(ts_init=10)
    view.on_quote(quote(11, "99.98", "1", "100.01", "0.7"))

    streamed = view.take(SELL, D("100.01"), D("0.5"))

    assert streamed == D("1.5")  # depth 2 - 0.5: what the venue streams as the level's new size
    assert levels(view, SELL)[0] == ("100.01", "0.2")
    # A level only the ticker shows has nothing to stream.
    view.on_quote(quote(12, "99.99", "0.4", "100.01", "0.7"))
    assert view.take(BUY, D("99.99"), D("0.4")) is None
    assert levels(view, BUY)[0] == ("99.98", "1")


def test_queue_position_is_consumed_by_prints_and_capped_by_a_shrinking_level() -> None:
    queue = QueuePosition(ahead=D("2"))

    assert queue.on_trade_at_price(D("0.5")) == 0
    queue.on_level_size(D("1"))  # 1.5 ahead, but the level shows only 1: cancellations were ahead
    assert queue.ahead == D("1")
    queue.on_level_size(D("5"))
    assert queue.ahead == D("1")
    assert queue.on_trade_at_price(D("1.25")) == D("0.25")
    assert queue.ahead == 0
