"""
The backtest's fill model and the venue emulator, two independent implementations, on the same real tape.

The gate compares a backtest with a session against the emulator; it means something only if both take the
same market to the same fills. Here the same orders meet the same tape in both: a market order of the probe's
size after every 40th trade print, alternating BUY and SELL, on the shipped sample.

- Backtest: ``run_backtest`` with the tape probe (``tests/backtests/probes.py``) and zero latency, so each
  order is matched at the data point of the print that triggered it.
- Emulator: its feed, market streams and matching engine (``keel.live.emulator``), driven directly; the order
  is submitted right after the same print.

Every order must fill on both sides at volume-weighted prices within 0.5 bp of each other. The rules both
implement are written down in ``docs/backtest.md`` and ``keel/live/emulator/venue_view.py``: the bookTicker is
the top, prints newer than it cut what they went through (those the ticker contradicts are older), the
account's own fills take liquidity until the data changes the level. A difference is a disagreement about the
venue: find which rule differs, fix one side, and explain it here.
"""

from decimal import Decimal
from pathlib import Path

import msgspec
import polars as pl
import pytest

from keel.backtests.runner import run_backtest
from keel.backtests.venues import venue_model_for
from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.book import L2Book
from keel.live.emulator.faults import Faults
from keel.live.emulator.feed import DepthChange
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.feed import load_market_feed
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import MatchingEngine
from keel.live.emulator.matching import NewOrder
from keel.live.emulator.symbols import symbol_spec
from probes import probe_variant

EVERY_N_TRADES = 40
SIZES = {"BTCUSDT.BINANCE": "0.0002", "ETHUSDT.BINANCE": "0.005"}
TOLERANCE_BPS = 0.5
NOW_MS = 1_795_000_000_000


def _backtest_orders(instrument_id: str, catalog: Path, run_dir: Path) -> pl.DataFrame:
    """Return every probe order of a zero-latency backtest: submit time, side, status, filled quantity and average price."""
    variant = probe_variant("TapeProbe", {"instrument_id": instrument_id, "trade_size": SIZES[instrument_id], "every_n_trades": EVERY_N_TRADES})
    venue = venue_model_for("binance_spot")
    venue = msgspec.structs.replace(venue, latency=msgspec.structs.replace(venue.latency, base_ms=0.0))
    outcome = run_backtest(variant, catalog, run_dir=run_dir, venues=[venue], log_to_mlflow=False, tearsheet=False)
    prices = outcome.fills.group_by("client_order_id").agg(
        ((pl.col("last_qty") * pl.col("last_px")).sum() / pl.col("last_qty").sum()).alias("price"),
        pl.col("last_qty").sum().alias("filled"),
    )
    orders = pl.read_parquet(outcome.run_dir / "orders.parquet").select("client_order_id", "side", "status", pl.col("ts_init").cast(pl.Int64))
    return orders.join(prices, on="client_order_id", how="left").sort("ts_init")


def _emulator_orders(instrument_id: str, catalog: Path) -> list[tuple[int, str, Decimal, Decimal | None]]:
    """Return (print time, side, filled quantity, average price) of the same orders sent to the emulator's engine."""
    feed = load_market_feed(str(catalog), [instrument_id], None, None)
    spec = symbol_spec(feed.instruments[0])
    book = L2Book()
    market = MarketStreams({spec.symbol: spec}, {spec.symbol: book})
    balances = SpotBalances({"USDT": Decimal("1000000"), spec.base_asset: Decimal("1000")})
    engine = MatchingEngine({spec.symbol: spec}, {spec.symbol: book}, balances, Faults())
    for change in feed.warmup:
        market.apply(change)
        engine.on_depth_changed(change.symbol, change.ts_init, NOW_MS)
    orders = []
    trades = 0
    side = "BUY"
    for event in feed.events:
        if isinstance(event, TradePrint):
            engine.on_trade(event, NOW_MS)
            trades += 1
            if trades % EVERY_N_TRADES == 0:
                request = NewOrder(symbol=spec.symbol, side=side, order_type="MARKET", client_order_id=f"probe-{trades}", quantity=Decimal(SIZES[instrument_id]))
                _, events = engine.submit(request, NOW_MS)
                fills = [item.fill for item in events if isinstance(item, ExecutionEvent) and item.fill is not None]
                filled = sum((fill.quantity for fill in fills), Decimal(0))
                price = sum((fill.price * fill.quantity for fill in fills), Decimal(0)) / filled if filled else None
                orders.append((event.ts_init, side, filled, price))
                side = "SELL" if side == "BUY" else "BUY"
        elif isinstance(event, QuotePrint):
            engine.on_quote(event, NOW_MS)
        elif isinstance(event, DepthChange):
            market.apply(event)
            engine.on_depth_changed(event.symbol, event.ts_init, NOW_MS)
    return orders


@pytest.mark.parametrize("instrument_id", sorted(SIZES))
def test_backtest_and_emulator_fill_the_same_orders_at_the_same_prices(instrument_id: str, sample_catalog: Path, tmp_path: Path) -> None:
    backtest = _backtest_orders(instrument_id, sample_catalog, tmp_path / "run")
    emulator = _emulator_orders(instrument_id, sample_catalog)

    assert len(emulator) >= 100
    assert backtest.height == len(emulator)
    disagreements = []
    for (ts, side, filled, price), order in zip(emulator, backtest.iter_rows(named=True), strict=True):
        assert (order["ts_init"], order["side"]) == (ts, side), "both sides must send the same order after the same print"
        if order["status"] != "FILLED" or price is None or filled != Decimal(SIZES[instrument_id]):
            disagreements.append((ts, side, "filled", order["status"], str(filled)))
            continue
        difference_bps = float((Decimal(str(order["price"])) - price) / price * 10_000)
        if abs(difference_bps) > TOLERANCE_BPS:
            disagreements.append((ts, side, "price", order["price"], str(price), round(difference_bps, 2)))
    assert disagreements == []
