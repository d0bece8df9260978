"""The tearsheet: one small self-contained page per run, a price panel per instrument, P&L per instrument and in total."""

import re
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.tearsheet import TOTAL
from keel.backtests.tearsheet import write_tearsheet
from keel.fills import FILLS_SCHEMA

INSTRUMENTS = ("BTCUSDT.BINANCE", "ETHUSDT.BINANCE")
HEADLINE = {"currency": "USDT", "pnl_net": -0.17, "pnl_gross": -0.01, "fees": 0.16, "rebates": 0.0, "fills": 4, "round_trips": 2, "max_drawdown": 0.2}
MAX_BYTES = 300_000


@pytest.fixture(scope="module")
def prices(sample_catalog: Path) -> pl.DataFrame:
    """The sample's trade prints of both instruments (ts, instrument_id, price)."""
    ticks = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=list(INSTRUMENTS))
    return pl.DataFrame(
        {"ts": [tick.ts_init for tick in ticks], "instrument_id": [tick.instrument_id.value for tick in ticks], "price": [float(tick.price) for tick in ticks]},
        schema={"ts": pl.Int64, "instrument_id": pl.String, "price": pl.Float64},
    ).sort("ts")


@pytest.fixture(scope="module")
def fills(prices: pl.DataFrame) -> pl.DataFrame:
    """A buy and a sell of each instrument at real prints, a third and two thirds into its data."""
    rows = []
    for instrument_id in INSTRUMENTS:
        own = prices.filter(pl.col("instrument_id") == instrument_id)
        for side, index in (("BUY", own.height // 3), ("SELL", 2 * own.height // 3)):
            ts, _, price = own.row(index)
            rows.append(
                {
                    "ts_event": ts, "ts_init": ts, "strategy_id": "EMACross-001", "instrument_id": instrument_id,
                    "client_order_id": f"O-{instrument_id}-{side}", "venue_order_id": "1", "trade_id": f"T-{instrument_id}-{side}",
                    "order_side": side, "last_qty": 0.001, "last_px": price, "quote_currency": "USDT",
                    "commission": 0.01, "commission_currency": "USDT", "liquidity_side": "TAKER",
                },
            )
    return pl.DataFrame(rows, schema=FILLS_SCHEMA)


@pytest.fixture(scope="module")
def equity(prices: pl.DataFrame) -> pl.DataFrame:
    """Long format: each instrument's P&L (its move from the first print, times 0.001) and the total at every print."""
    per_instrument = prices.with_columns(
        pl.lit(0.001).alias("position"),
        ((pl.col("price") - pl.col("price").first().over("instrument_id")) * 0.001).alias("pnl"),
    ).select("ts", "instrument_id", "price", "position", "pnl")
    total = (
        per_instrument.pivot(on="instrument_id", index="ts", values="pnl", aggregate_function="last")
        .sort("ts")
        .select("ts", pl.sum_horizontal(pl.exclude("ts").forward_fill().fill_null(0.0)).alias("pnl"))
        .select("ts", pl.lit(TOTAL).alias("instrument_id"), pl.lit(None, dtype=pl.Float64).alias("price"), pl.lit(None, dtype=pl.Float64).alias("position"), "pnl")
    )
    return pl.concat([per_instrument, total])


def _captions(page: str) -> list[str]:
    return re.findall(r"<figcaption>(.*?)</figcaption>", page)


def _legends(page: str) -> list[str]:
    return [re.findall(r"</i>(.*?)</span>", legend) for legend in re.findall(r"<div class='legend'>(.*?)</div>", page)]


def test_multi_instrument_tearsheet_holds_every_series_without_plotly(
    prices: pl.DataFrame, fills: pl.DataFrame, equity: pl.DataFrame, tmp_path: Path
) -> None:
    path = write_tearsheet(tmp_path / "tearsheet.html", "spread", HEADLINE, prices, fills, equity)

    page = path.read_text()
    assert _captions(page) == ["Price and fills: BTCUSDT.BINANCE", "Price and fills: ETHUSDT.BINANCE", "P&amp;L (USDT, net of fees)", "Drawdown of the total (USDT)"]
    legends = _legends(page)
    assert legends[0] == legends[1] == ["last trade", "buy", "sell"]
    assert legends[2] == [*INSTRUMENTS, "total"]
    assert page.count("<polyline") == 5  # two prices, two instruments' P&L, the total; the drawdown is a polygon
    # Each fill tells what it was on hover, at its own price.
    for fill in fills.iter_rows(named=True):
        assert f"{fill['order_side'].lower()} 0.001 @ {fill['last_px']:g}" in page
    assert "plotly" not in page.lower() and "<script" not in page
    assert path.stat().st_size < MAX_BYTES


def test_old_single_instrument_frames_are_one_instrument(prices: pl.DataFrame, fills: pl.DataFrame, equity: pl.DataFrame, tmp_path: Path) -> None:
    btc = INSTRUMENTS[0]
    own_prices = prices.filter(pl.col("instrument_id") == btc).drop("instrument_id")
    own_equity = equity.filter(pl.col("instrument_id") == btc).drop("instrument_id")
    headline = dict(HEADLINE)  # no funding: counted as 0

    page = write_tearsheet(tmp_path / "t.html", "ema_cross_btcusdt", headline, own_prices, fills.filter(pl.col("instrument_id") == btc), own_equity).read_text()

    assert _captions(page)[0] == f"Price and fills: {btc}"
    assert _legends(page)[1] == [btc, "total"]
    assert "funding 0.0000" in page


def test_size_is_bounded_by_the_chart_not_the_rows(fills: pl.DataFrame, tmp_path: Path) -> None:
    # Two million prints with one spike: the file stays small and the spike is still drawn at the top of its panel.
    rows = 1_000_000
    ts = pl.int_range(0, rows, eager=True) * 1_000_000 + 1_723_161_254_000_000_000
    price = pl.Series([60_000.0] * rows).scatter(rows // 2, 61_000.0)
    prices = pl.concat(
        [pl.DataFrame({"ts": ts, "instrument_id": name, "price": price}) for name in INSTRUMENTS]
    )
    equity = prices.select("ts", "instrument_id", "price", pl.lit(0.0).alias("position"), pl.lit(0.0).alias("pnl"))
    equity = pl.concat([equity, equity.filter(pl.col("instrument_id") == INSTRUMENTS[0]).with_columns(pl.lit(TOTAL).alias("instrument_id"))])

    path = write_tearsheet(tmp_path / "big.html", "big", HEADLINE, prices, fills.clear(), equity)

    assert path.stat().st_size < MAX_BYTES
    first_price_line = re.search(r"<polyline points='([^']*)'", path.read_text()).group(1)
    heights = [float(point.split(",")[1]) for point in first_price_line.split()]
    assert min(heights) < 30  # the spike's top, near the plot area's top edge
    assert max(heights) > 150  # the rest, near the bottom


def test_several_instruments_without_a_total_are_refused(prices: pl.DataFrame, fills: pl.DataFrame, equity: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="equity: no rows with instrument_id == 'TOTAL'"):
        write_tearsheet(tmp_path / "t.html", "spread", HEADLINE, prices, fills, equity.filter(pl.col("instrument_id") != TOTAL))
