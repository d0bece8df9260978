"""The gate's HTML report: self-contained SVG charts (no plotly.js), every order named, the calibration drawn."""

import re
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.venues import venue_model_for
from keel.fills import FILLS_SCHEMA
from keel.pnl import FUNDING_PAYMENTS_SCHEMA
from keel.pnl import TOTAL
from keel.pnl import InstrumentTerms
from keel.validation.checks import PNL_COMPONENTS
from keel.validation.html_report import write_html_report

INSTRUMENT_ID = "BTCUSDT.BINANCE"
MAX_BYTES = 300_000


@pytest.fixture(scope="module")
def prices(sample_catalog: Path) -> pl.DataFrame:
    ticks = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=[INSTRUMENT_ID])
    return pl.DataFrame({"ts": [tick.ts_init for tick in ticks], "price": [float(tick.price) for tick in ticks]}, schema={"ts": pl.Int64, "price": pl.Float64})


def _fills(prices: pl.DataFrame, prefix: str, lag_ns: int) -> pl.DataFrame:
    """A round trip at two real prints: buy a third of the way in, sell two thirds of the way in."""
    rows = []
    for side, index in (("BUY", prices.height // 3), ("SELL", 2 * prices.height // 3)):
        ts, price = prices.row(index)
        rows.append(
            {
                "ts_event": ts + lag_ns, "ts_init": ts + lag_ns, "strategy_id": "EMACross-001", "instrument_id": INSTRUMENT_ID,
                "client_order_id": f"{prefix}-{side}", "venue_order_id": "1", "trade_id": f"{prefix}-T-{side}", "order_side": side,
                "last_qty": 0.001, "last_px": price, "quote_currency": "USDT", "commission": 0.00001 if side == "BUY" else 0.06,
                "commission_currency": "BTC" if side == "BUY" else "USDT", "liquidity_side": "TAKER",
            },
        )
    return pl.DataFrame(rows, schema=FILLS_SCHEMA)


def test_report_draws_svg_charts_and_names_every_order(sample_catalog: Path, prices: pl.DataFrame, tmp_path: Path) -> None:
    instrument = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=[INSTRUMENT_ID])[0]
    live_fills = _fills(prices, "O-LIVE", lag_ns=40_000_000)
    backtest_fills = _fills(prices, "O-BT", lag_ns=0)
    position = pl.when(pl.col("ts") >= backtest_fills["ts_event"][0]).then(0.001).otherwise(0.0)
    equity = prices.with_columns(pl.lit(INSTRUMENT_ID).alias("instrument_id"), position.alias("position"), pl.lit(0.0).alias("pnl"))
    total = prices.select("ts", pl.lit(TOTAL).alias("instrument_id"), pl.lit(None, pl.Float64).alias("price"), pl.lit(None, pl.Float64).alias("position"), pl.lit(0.0).alias("pnl"))
    session = SimpleNamespace(
        session_dir=tmp_path / "session",
        sha256="ab" * 32,
        fills=live_fills,
        terms={INSTRUMENT_ID: InstrumentTerms.of(instrument)},
        funding=pl.DataFrame(schema=FUNDING_PAYMENTS_SCHEMA),
    )
    components = dict.fromkeys((*PNL_COMPONENTS, "notional"), 0.0)
    report = SimpleNamespace(
        promoted=True,
        decision=SimpleNamespace(sha256="cd" * 32, record={"operator": "tester"}),
        reasons=[],
        checks=[SimpleNamespace(name="orders matched", value=1.0, limit=">= 0.85", passed=True)],
        pnl={"backtest": components, "live": components},
        pnl_by_instrument={INSTRUMENT_ID: {"backtest": components, "live": components}},
        currency="USDT",
        round_trips_ms=pl.Series([3.1, 4.2, 4.4, 5.0, 9.7]),
        backtest_latency_ms=4.4,
        latency_source="measured",
    )
    orders = pl.DataFrame(
        {
            "outcome": ["matched", "matched"],
            "backtest_order": ["O-BT-BUY", "O-BT-SELL"],
            "live_order": ["O-LIVE-BUY", "O-LIVE-SELL"],
            "backtest_instrument": [INSTRUMENT_ID] * 2,
            "live_instrument": [INSTRUMENT_ID] * 2,
        },
    )

    path = write_html_report(
        tmp_path / "gate_report.html", report, session, orders, {"BINANCE": venue_model_for("binance_spot")}, pl.concat([equity, total], how="diagonal"), backtest_fills
    )

    page = path.read_text()
    assert re.findall(r"<figcaption>(.*?)</figcaption>", page) == [
        "Total P&amp;L (USDT, net of fees, with funding)",
        "Price and fills",
        "P&amp;L (USDT, net of fees, with funding)",
        "Position",
        "Measured order round trips (OrderSubmitted to the venue's first answer, node clock), ms",
    ]
    assert all(order in page for order in ["O-BT-BUY", "O-BT-SELL", "O-LIVE-BUY", "O-LIVE-SELL"])
    assert f"<h2>{INSTRUMENT_ID}</h2>" in page and "<h2>Total</h2>" in page
    assert "live buy 0.001 @" in page and "backtest sell 0.001 @" in page  # both sides' fills, on hover
    assert "backtest latency 4.40 ms" in page and "latency.base_ms" in page
    assert page.count("<rect x=") >= 1 + 4  # the histogram's plot area and its bars
    assert "plotly" not in page.lower() and "<script" not in page
    assert path.stat().st_size < MAX_BYTES
