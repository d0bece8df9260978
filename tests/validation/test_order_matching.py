"""Order matching on the fills of real backtests over the sample, of one instrument and of two."""

from pathlib import Path

import polars as pl
import pytest

from gate_basket import write_basket_variant

from keel.backtests.runner import run_backtest
from keel.pnl import InstrumentTerms
from keel.settings import CONFIGS_DIR
from keel.validation.matching import match_orders
from keel.validation.matching import match_orders_by_instrument
from keel.validation.matching import orders_from_fills
from keel.variant import load_variant

BTC_TERMS = InstrumentTerms(instrument_id="BTCUSDT.BINANCE", base_currency="BTC", quote_currency="USDT", perpetual=False)
ETH_TERMS = InstrumentTerms(instrument_id="ETHUSDT.BINANCE", base_currency="ETH", quote_currency="USDT", perpetual=False)
TERMS = {terms.instrument_id: terms for terms in (BTC_TERMS, ETH_TERMS)}


@pytest.fixture(scope="module")
def fills(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    variant = load_variant(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml")
    run_dir = tmp_path_factory.mktemp("matching") / "run"
    outcome = run_backtest(variant, sample_catalog, run_dir=run_dir, log_to_mlflow=False, tearsheet=False)
    assert outcome.fills.height >= 6
    return outcome.fills


@pytest.fixture(scope="module")
def basket_fills(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    folder = tmp_path_factory.mktemp("matching_basket")
    variant = load_variant(write_basket_variant(folder / "gate_basket.yaml"))
    outcome = run_backtest(variant, sample_catalog, run_dir=folder / "run", log_to_mlflow=False, tearsheet=False)
    assert set(outcome.fills["instrument_id"]) == set(TERMS)
    return outcome.fills


def test_identical_fills_match_one_to_one_with_no_deviation(fills: pl.DataFrame) -> None:
    orders = orders_from_fills(fills, BTC_TERMS)

    matching = match_orders(orders, orders, tolerance_ms=5000)

    assert matching.pairs.height == orders.height
    assert matching.unmatched_backtest.height == matching.unmatched_live.height == 0
    assert (matching.pairs["backtest_order"] == matching.pairs["live_order"]).all()
    assert matching.pairs["price_dev_bps"].abs().max() == 0
    assert matching.pairs["lag_ms"].abs().max() == 0


def test_worse_live_prices_show_as_positive_deviation_of_the_exact_size(fills: pl.DataFrame) -> None:
    # 3 bp worse on every fill: buys pay more, sells receive less.
    worse = fills.with_columns(
        pl.when(pl.col("order_side") == "BUY")
        .then(pl.col("last_px") * 1.0003)
        .otherwise(pl.col("last_px") * 0.9997)
        .alias("last_px"),
        (pl.col("ts_event") + 7_000_000).alias("ts_event"),
    )

    matching = match_orders(orders_from_fills(fills, BTC_TERMS), orders_from_fills(worse, BTC_TERMS), tolerance_ms=5000)

    assert matching.pairs.height == orders_from_fills(fills, BTC_TERMS).height
    assert matching.pairs["price_dev_bps"].to_list() == pytest.approx([3.0] * matching.pairs.height)
    assert matching.pairs["lag_ms"].to_list() == pytest.approx([7.0] * matching.pairs.height)


def test_a_fill_missing_in_the_middle_leaves_exactly_one_order_unmatched(fills: pl.DataFrame) -> None:
    orders = orders_from_fills(fills, BTC_TERMS)
    dropped = orders["client_order_id"][orders.height // 2]

    matching = match_orders(orders, orders.filter(pl.col("client_order_id") != dropped), tolerance_ms=5000)

    assert matching.unmatched_backtest["client_order_id"].to_list() == [dropped]
    assert matching.unmatched_live.height == 0
    assert matching.pairs.height == orders.height - 1
    assert (matching.pairs["backtest_order"] == matching.pairs["live_order"]).all()


def test_orders_outside_the_tolerance_do_not_match(fills: pl.DataFrame) -> None:
    orders = orders_from_fills(fills, BTC_TERMS)
    late = orders.with_columns((pl.col("ts_event") + 10_000_000_000).alias("ts_event"))

    late_pairs = match_orders(orders, late, tolerance_ms=5000).pairs

    # Its own twin is 10 s away: out of reach. Other orders within 5 s may still pair.
    assert (late_pairs["backtest_order"] != late_pairs["live_order"]).all()
    assert (late_pairs["lag_ms"].abs() <= 5000).all()


def test_an_order_of_the_other_side_pairs_with_its_twin_so_the_side_is_named(fills: pl.DataFrame) -> None:
    orders = orders_from_fills(fills, BTC_TERMS)
    flipped_id = orders["client_order_id"][orders.height // 2]
    flipped = orders.with_columns(
        pl.when(pl.col("client_order_id") != flipped_id)
        .then(pl.col("order_side"))
        .when(pl.col("order_side") == "BUY")
        .then(pl.lit("SELL"))
        .otherwise(pl.lit("BUY"))
        .alias("order_side"),
    )

    pairs = match_orders(orders, flipped, tolerance_ms=5000).pairs

    assert pairs.height == orders.height
    assert (pairs["backtest_order"] == pairs["live_order"]).all()
    differing = pairs.filter(pl.col("side") != pl.col("live_side"))
    assert differing["live_order"].to_list() == [flipped_id]


def test_fills_of_one_order_that_disagree_show_as_mixed(fills: pl.DataFrame) -> None:
    first = fills.head(1)
    two_instruments = pl.concat([first, first.with_columns(pl.lit("ETHUSDT.BINANCE").alias("instrument_id"), pl.lit("T-2").alias("trade_id"))])

    order = orders_from_fills(two_instruments, BTC_TERMS).row(0, named=True)

    assert order["instrument_id"] == "MIXED"
    assert order["strategy_id"] == first["strategy_id"][0]
    assert order["fills"] == 2


def test_partial_fills_are_aggregated_per_order_at_their_average_price(fills: pl.DataFrame) -> None:
    first = fills.head(1)
    halves = pl.concat([first.with_columns(pl.col("last_qty") / 2, pl.lit(price).alias("last_px")) for price in (100.0, 102.0)])

    order = orders_from_fills(halves, BTC_TERMS).row(0, named=True)

    assert order["quantity"] == pytest.approx(first["last_qty"][0])
    assert order["avg_px"] == pytest.approx(101.0)
    assert order["fills"] == 2


def test_orders_of_two_instruments_match_within_their_instrument(basket_fills: pl.DataFrame) -> None:
    matching = match_orders_by_instrument(basket_fills, basket_fills, TERMS, tolerance_ms=5000)

    orders = basket_fills["client_order_id"].n_unique()
    assert matching.pairs.height == orders
    assert (matching.pairs["backtest_order"] == matching.pairs["live_order"]).all()
    assert (matching.pairs["backtest_instrument"] == matching.pairs["live_instrument"]).all()
    assert matching.pairs["backtest_ts_event"].is_sorted()


def test_an_order_never_matches_an_order_of_another_instrument_at_the_same_time(basket_fills: pl.DataFrame) -> None:
    btc = orders_from_fills(basket_fills.filter(pl.col("instrument_id") == BTC_TERMS.instrument_id), BTC_TERMS)
    eth_fills = basket_fills.filter(pl.col("instrument_id") == ETH_TERMS.instrument_id)
    eth = orders_from_fills(eth_fills, ETH_TERMS)
    # Each ETHUSDT order moved to the time of a BTCUSDT order: same times, same sides in turn, other instrument.
    pairs = min(btc.height, eth.height)
    moved_to = dict(zip(eth["client_order_id"][:pairs].to_list(), btc["ts_event"][:pairs].to_list(), strict=True))
    live = eth_fills.filter(pl.col("client_order_id").is_in(list(moved_to))).with_columns(
        pl.col("client_order_id").replace_strict(moved_to, return_dtype=pl.Int64).alias("ts_event"),
    )
    backtest = basket_fills.filter(pl.col("instrument_id") == BTC_TERMS.instrument_id)

    by_instrument = match_orders_by_instrument(backtest, live, TERMS, tolerance_ms=5000)

    # Matching on time alone would pair them all; per instrument none pairs.
    assert match_orders(btc, orders_from_fills(live, ETH_TERMS), tolerance_ms=5000).pairs.height == pairs
    assert by_instrument.pairs.height == 0
    assert by_instrument.unmatched_backtest.height == btc.height
    assert by_instrument.unmatched_live.height == pairs
