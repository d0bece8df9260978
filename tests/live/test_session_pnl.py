"""A session's P&L record from its folder: the pair's currencies come from the recorded instrument."""

from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.fills import FILLS_SCHEMA
from keel.live.session import session_pnl
from keel.live.session_layout import CATALOG_DIR

BTCUSDT = "BTCUSDT.BINANCE"


@pytest.fixture
def session_folder(sample_catalog: Path, tmp_path: Path) -> Path:
    """A session folder whose catalog holds the sample's BTCUSDT instrument, as the recorder writes it on start."""
    instrument = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=[BTCUSDT])[0]
    ParquetDataCatalog(str(tmp_path / CATALOG_DIR)).write_data([instrument])
    return tmp_path


def _fill(index: int, side: str, quantity: float, price: float, commission: float, currency: str) -> dict:
    return {
        "ts_event": index,
        "ts_init": index,
        "strategy_id": "S-001",
        "instrument_id": BTCUSDT,
        "client_order_id": f"O-{index}",
        "venue_order_id": f"V-{index}",
        "trade_id": f"T-{index}",
        "order_side": side,
        "last_qty": quantity,
        "last_px": price,
        "quote_currency": "USDT",
        "commission": commission,
        "commission_currency": currency,
        "liquidity_side": "TAKER",
    }


def test_a_node_without_a_last_trade_is_marked_at_its_last_fill(session_folder: Path) -> None:
    fills = pl.DataFrame([_fill(1, "BUY", 0.0002, 61_000.0, 0.0000002, "BTC")], schema=FILLS_SCHEMA)

    pnl = session_pnl(session_folder, BTCUSDT, fills, last_trade_prices={})

    assert (pnl["mark_source"], pnl["mark_price"], pnl["currency"]) == ("last_fill", 61_000.0, "USDT")
    assert pnl["fees"] == pytest.approx(0.0000002 * 61_000.0, abs=1e-12)
    assert pnl["net"] == pytest.approx(-0.0000002 * 61_000.0, abs=1e-9)


def test_a_bnb_commission_is_recorded_as_an_error_naming_the_fill(session_folder: Path) -> None:
    fills = pl.DataFrame(
        [_fill(1, "BUY", 0.0002, 61_000.0, 0.0000002, "BTC"), _fill(2, "SELL", 0.00019, 61_010.0, 0.00002, "BNB")],
        schema=FILLS_SCHEMA,
    )

    pnl = session_pnl(session_folder, BTCUSDT, fills, last_trade_prices={BTCUSDT: "61010.00"})

    assert list(pnl) == ["error"]
    assert "fills.parquet: fill T-2 of order O-2" in pnl["error"] and "2e-05 BNB is in neither BTC nor USDT" in pnl["error"]


def test_a_session_whose_instrument_was_never_recorded_says_so(tmp_path: Path) -> None:
    pnl = session_pnl(tmp_path, BTCUSDT, None, last_trade_prices={})

    assert pnl == {"error": f"{tmp_path / CATALOG_DIR}: instrument {BTCUSDT} was never recorded, so its currencies are unknown"}
