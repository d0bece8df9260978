"""A session's P&L record from its folder: per instrument and in total, the currencies from the recorded instruments."""

from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.fills import FILLS_SCHEMA
from keel.live.session import session_pnl
from keel.live.session_layout import CATALOG_DIR

BTCUSDT = "BTCUSDT.BINANCE"
ETHUSDT = "ETHUSDT.BINANCE"


@pytest.fixture
def session_folder(sample_catalog: Path, tmp_path: Path) -> Path:
    """A session folder whose catalog holds the sample's BTCUSDT and ETHUSDT instruments, as the recorder writes them on start."""
    instruments = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=[BTCUSDT, ETHUSDT])
    ParquetDataCatalog(str(tmp_path / CATALOG_DIR)).write_data(instruments)
    return tmp_path


def _fill(index: int, side: str, quantity: float, price: float, commission: float, currency: str, instrument_id: str = BTCUSDT) -> dict:
    return {
        "ts_event": index,
        "ts_init": index,
        "strategy_id": "S-001",
        "instrument_id": instrument_id,
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

    pnl = session_pnl(session_folder, [BTCUSDT], fills, last_trade_prices={})

    assert pnl["marks"] == {BTCUSDT: {"price": 61_000.0, "source": "last_fill"}}
    assert (pnl["total"]["mark_price"], pnl["total"]["currency"]) == (None, "USDT")
    assert pnl["by_instrument"][BTCUSDT]["mark_price"] == 61_000.0
    assert pnl["total"]["fees"] == pytest.approx(0.0000002 * 61_000.0, abs=1e-12)
    assert pnl["total"]["net"] == pytest.approx(-0.0000002 * 61_000.0, abs=1e-9)


def test_two_instruments_add_up_each_at_its_own_mark(session_folder: Path) -> None:
    fills = pl.DataFrame(
        [
            _fill(1, "BUY", 0.0002, 61_000.0, 0.0000002, "BTC"),
            _fill(2, "BUY", 0.005, 2_600.0, 0.000005, "ETH", ETHUSDT),
            _fill(3, "SELL", 0.00019, 61_100.0, 0.0116, "USDT"),
            _fill(4, "SELL", 0.0049, 2_590.0, 0.0127, "USDT", ETHUSDT),
        ],
        schema=FILLS_SCHEMA,
    )

    pnl = session_pnl(session_folder, [BTCUSDT, ETHUSDT], fills, last_trade_prices={BTCUSDT: "61050.00", ETHUSDT: "2595.50"})

    # Written out: cash after the USDT fees, plus what is held (the base-asset fee's coins gone) at the last trade.
    btc_net = -0.0002 * 61_000.0 + 0.00019 * 61_100.0 - 0.0116 + (0.0002 - 0.0000002 - 0.00019) * 61_050.0
    eth_net = -0.005 * 2_600.0 + 0.0049 * 2_590.0 - 0.0127 + (0.005 - 0.000005 - 0.0049) * 2_595.5
    by_instrument = pnl["by_instrument"]
    assert by_instrument[BTCUSDT]["net"] == pytest.approx(btc_net, abs=1e-9)
    assert by_instrument[ETHUSDT]["net"] == pytest.approx(eth_net, abs=1e-9)
    assert pnl["total"]["net"] == pytest.approx(btc_net + eth_net, abs=1e-9)
    assert pnl["total"]["fills"] == 4
    assert pnl["marks"] == {BTCUSDT: {"price": 61_050.0, "source": "last_trade"}, ETHUSDT: {"price": 2_595.5, "source": "last_trade"}}


def test_an_instrument_that_never_traded_has_no_mark_and_no_pnl(session_folder: Path) -> None:
    fills = pl.DataFrame([_fill(1, "BUY", 0.0002, 61_000.0, 0.0000002, "BTC")], schema=FILLS_SCHEMA)

    pnl = session_pnl(session_folder, [BTCUSDT, ETHUSDT], fills, last_trade_prices={BTCUSDT: "61000.00"})

    assert list(pnl["marks"]) == [BTCUSDT]
    assert (pnl["by_instrument"][ETHUSDT]["net"], pnl["by_instrument"][ETHUSDT]["fills"]) == (0.0, 0)
    assert pnl["total"]["net"] == pnl["by_instrument"][BTCUSDT]["net"]


def test_a_bnb_commission_is_recorded_as_an_error_naming_the_fill(session_folder: Path) -> None:
    fills = pl.DataFrame(
        [_fill(1, "BUY", 0.0002, 61_000.0, 0.0000002, "BTC"), _fill(2, "SELL", 0.00019, 61_010.0, 0.00002, "BNB")],
        schema=FILLS_SCHEMA,
    )

    pnl = session_pnl(session_folder, [BTCUSDT], fills, last_trade_prices={BTCUSDT: "61010.00"})

    assert list(pnl) == ["error"]
    assert "fills.parquet: fill T-2 of order O-2" in pnl["error"] and "2e-05 BNB is in neither BTC nor USDT" in pnl["error"]


def test_fills_of_an_instrument_the_session_did_not_trade_are_an_error(session_folder: Path) -> None:
    fills = pl.DataFrame([_fill(1, "BUY", 0.005, 2_600.0, 0.000005, "ETH", ETHUSDT)], schema=FILLS_SCHEMA)

    pnl = session_pnl(session_folder, [BTCUSDT], fills, last_trade_prices={})

    assert list(pnl) == ["error"] and f"fills of ['{ETHUSDT}']" in pnl["error"]


def test_a_session_whose_instrument_was_never_recorded_says_so(tmp_path: Path) -> None:
    pnl = session_pnl(tmp_path, [BTCUSDT], None, last_trade_prices={})

    assert pnl == {"error": f"{tmp_path / CATALOG_DIR}: instrument {BTCUSDT} was never recorded, so its currencies are unknown"}
