"""The tape fill model: the merge rule on hand-built books, taker fills against the sample's quotes, resting fills against its prints."""

from pathlib import Path

import msgspec
import polars as pl
import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from keel.backtests.fill_audit import audit_fills
from keel.backtests.runner import run_backtest
from keel.backtests.tape_fills import MAX_LEVELS
from keel.backtests.tape_fills import depth_levels
from keel.backtests.tape_fills import merged_levels
from keel.backtests.venues import VenueModel
from keel.backtests.venues import venue_model_for
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.catalog_layout import catalog_files
from keel.data.inventory import read_columns
from keel.variant import Variant
from probes import probe_variant

ASKS = [(100, 5), (101, 2), (102, 3)]
BIDS = [(99, 4), (98, 1), (97, 6)]


def test_no_quote_and_no_print_leaves_the_depth() -> None:
    assert merged_levels(ASKS, None, [], taker_buys=True) == ASKS


def test_quote_above_the_depth_top_removes_the_levels_it_replaced() -> None:
    # The depth still shows 100 and 101, but the venue's latest bookTicker says the best ask is 101 x 1.
    assert merged_levels(ASKS, (101, 1), [], taker_buys=True) == [(101, 1), (102, 3)]


def test_quote_inside_the_depth_adds_its_level() -> None:
    assert merged_levels(ASKS, (99, 7), [], taker_buys=True) == [(99, 7), *ASKS]


def test_quote_of_size_zero_is_ignored() -> None:
    assert merged_levels(ASKS, (101, 0), [], taker_buys=True) == ASKS


def test_print_through_levels_removes_them_and_reduces_its_own_level() -> None:
    assert merged_levels(ASKS, None, [(101, 0.5)], taker_buys=True) == [(101, 1.5), (102, 3)]


def test_prints_use_up_a_level_in_order() -> None:
    assert merged_levels(ASKS, (100, 2), [(100, 1), (100, 1)], taker_buys=True) == [(101, 2), (102, 3)]


def test_print_beyond_the_visible_depth_leaves_nothing() -> None:
    assert merged_levels(ASKS, None, [(103, 1)], taker_buys=True) == []


def test_bid_side_mirrors_the_ask_side() -> None:
    assert merged_levels(BIDS, (98, 2), [], taker_buys=False) == [(98, 2), (97, 6)]
    assert merged_levels(BIDS, None, [(98, 0.25)], taker_buys=False) == [(98, 0.75), (97, 6)]


# Minimum-notional-sized orders: Binance spot asks 5 USDT; the sample trades BTC near 61k and ETH near 2.7k.
PROBE_SIZES = {"BTCUSDT.BINANCE": "0.0002", "ETHUSDT.BINANCE": "0.005"}


def _probe(instrument_id: str) -> Variant:
    return probe_variant("TapeProbe", {"instrument_id": instrument_id, "trade_size": PROBE_SIZES[instrument_id], "every_n_trades": 40})


def _venue(model: str) -> VenueModel:
    venue = venue_model_for("binance_spot")
    return msgspec.structs.replace(venue, fills=msgspec.structs.replace(venue.fills, model=model))


@pytest.mark.parametrize("instrument_id", sorted(PROBE_SIZES))
def test_tape_model_fills_takers_no_better_than_the_quote(instrument_id: str, sample_catalog: Path, tmp_path: Path) -> None:
    outcome = run_backtest(_probe(instrument_id), sample_catalog, run_dir=tmp_path / "tape", venues=[_venue("tape")], log_to_mlflow=False, tearsheet=False)

    audit = audit_fills(outcome.fills, sample_catalog)

    assert audit.fills.height >= 50, "the probe must have taken liquidity often enough to judge the model"
    assert audit.unquoted_fills == 0
    assert audit.share_better is not None and audit.share_better <= 0.02
    assert outcome.summary.fill_audit["better_than_quote"] == audit.better_than_quote


@pytest.mark.parametrize("instrument_id", sorted(PROBE_SIZES))
def test_nautilus_book_alone_fills_better_than_the_quote(instrument_id: str, sample_catalog: Path, tmp_path: Path) -> None:
    # The flaw the tape model removes, measured by the same audit: the depth-only book is up to 100 ms stale.
    outcome = run_backtest(_probe(instrument_id), sample_catalog, run_dir=tmp_path / "book", venues=[_venue("book")], log_to_mlflow=False, tearsheet=False)

    audit = audit_fills(outcome.fills, sample_catalog)

    assert audit.fills.height >= 50
    assert audit.share_better is not None and audit.share_better > 0.02


def _passive_probe(queue_model: str, sample_catalog: Path, run_dir: Path) -> pl.DataFrame:
    variant = probe_variant("PassiveProbe", {"instrument_id": "BTCUSDT.BINANCE", "trade_size": "0.0002"})
    venue = venue_model_for("binance_spot")
    venue = msgspec.structs.replace(venue, fills=msgspec.structs.replace(venue.fills, queue_model=queue_model))
    return run_backtest(variant, sample_catalog, run_dir=run_dir, venues=[venue], log_to_mlflow=False, tearsheet=False).fills


@pytest.fixture(scope="module")
def raw_tape(sample_catalog: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sample's BTCUSDT prints (ts_init, price, aggressor: 1 buyer, 2 seller) and quotes, straight from the catalog's Parquet."""
    files = catalog_files(sample_catalog)
    trades = read_columns([item for item in files if item.data_type == "trade_tick" and item.identifier == "BTCUSDT.BINANCE"], ["ts_init", "price", "aggressor_side"])
    quotes = read_columns([item for item in files if item.data_type == "quote_tick" and item.identifier == "BTCUSDT.BINANCE"], ["ts_init", "bid_price", "ask_price"])
    return (
        trades.select(pl.col("ts_init").cast(pl.Int64), pl.col("price").cast(pl.Float64), pl.col("aggressor_side").cast(pl.Int64)),
        quotes.select(pl.col("ts_init").cast(pl.Int64), pl.col("bid_price").cast(pl.Float64), pl.col("ask_price").cast(pl.Float64)).sort("ts_init"),
    )


def test_resting_orders_fill_only_when_the_tape_reaches_them(sample_catalog: Path, raw_tape: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path) -> None:
    trades, quotes = raw_tape
    fills = _passive_probe("risk_averse", sample_catalog, tmp_path / "run")
    maker = fills.filter(pl.col("liquidity_side") == "MAKER")

    assert maker.height >= 20
    assert fills.height == maker.height  # post-only orders never take
    by_print = 0
    for fill in maker.iter_rows(named=True):
        # Half a tick (0.01) of slack: fills carry nautilus's float of the price, the catalog its decimal.
        buy = fill["order_side"] == "BUY"
        prints = trades.filter(pl.col("ts_init") == fill["ts_event"])
        reaching = prints.filter((pl.col("aggressor_side") == 2) & (pl.col("price") <= fill["last_px"] + 0.005)) if buy else prints.filter((pl.col("aggressor_side") == 1) & (pl.col("price") >= fill["last_px"] - 0.005))
        if reaching.height:
            by_print += 1
            continue
        # Otherwise the venue's other side came to the order: the latest quote at or through the fill price.
        quote = quotes.filter(pl.col("ts_init") <= fill["ts_event"]).tail(1)
        assert quote.height == 1
        crossed = quote["ask_price"][0] <= fill["last_px"] + 0.005 if buy else quote["bid_price"][0] >= fill["last_px"] - 0.005
        assert crossed, f"maker fill {fill['trade_id']} at {fill['ts_event']}: no print reaching {fill['last_px']} and the quote {quote.row(0)} does not cross it"
    assert by_print >= maker.height // 2


def test_waiting_in_the_queue_fills_less_than_being_first_in_line(sample_catalog: Path, tmp_path: Path) -> None:
    first_in_line = _passive_probe("none", sample_catalog, tmp_path / "none")
    risk_averse = _passive_probe("risk_averse", sample_catalog, tmp_path / "risk_averse")

    assert risk_averse.height > 0
    assert first_in_line["last_qty"].sum() > risk_averse["last_qty"].sum()


@pytest.mark.requires_shared
def test_tape_model_on_the_whole_usdm_recording(shared_data_dir: Path, tmp_path: Path) -> None:
    # The shared six-minute USDT-M recording (depth@0ms, 66k bookTickers); the repo ships its first 40 s only.
    catalog = tmp_path / "catalog"
    ingest_binance_usdm([shared_data_dir / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"], catalog)
    venue = venue_model_for("binance_spot")
    venue = msgspec.structs.replace(venue, account_type="MARGIN", starting_balances=["10000 USDT"])
    variant = probe_variant("TapeProbe", {"instrument_id": "BTCUSDT-PERP.BINANCE", "trade_size": "0.002", "every_n_trades": 40})

    outcome = run_backtest(variant, catalog, run_dir=tmp_path / "run", venues=[venue], log_to_mlflow=False, tearsheet=False)
    audit = audit_fills(outcome.fills, catalog)

    assert audit.fills.height >= 400
    assert audit.share_better is not None and audit.share_better <= 0.02


def test_depth_behind_the_quote_is_reached_past_hundreds_of_stale_levels() -> None:
    # In a fast fall the depth still held hundreds of one-cent bids above the quoted bid; the levels a sell walks
    # after the quote's small size are the ones below it (a run in CI filled 0.00011 of 0.00018 and stopped).
    instrument = TestInstrumentProvider.btcusdt_binance()
    book = OrderBook(instrument.id, BookType.L2_MBP)
    for cents in range(6_200_000, 6_190_000, -1):  # 62000.00 down to 61900.01
        book.add(BookOrder(OrderSide.BUY, Price(cents / 100, 2), Quantity(0.001, 6), 0), 0)
    quote_bid = Price(61_960.50, 2).raw

    levels = depth_levels(book, taker_buys=False, top=(quote_bid, 11))

    assert len(levels) == MAX_LEVELS
    assert levels[0][0] == Price(61_960.50, 2).raw
    assert all(price <= quote_bid for price, _ in levels)
