"""P&L by component from a fills table: every commission counted, in whichever currency of the pair it was charged."""

import polars as pl
import pytest

from keel.backtests.performance import FeeCurrencyError
from keel.backtests.performance import pnl_components
from keel.fills import FILLS_SCHEMA


def _fills(*rows: tuple[str, float, float, float, str]) -> pl.DataFrame:
    """A BTCUSDT fills table from (side, quantity, price, commission, commission currency) rows, one second apart."""
    return pl.DataFrame(
        [
            {
                "ts_event": index * 1_000_000_000,
                "ts_init": index * 1_000_000_000,
                "strategy_id": "S-001",
                "instrument_id": "BTCUSDT.BINANCE",
                "client_order_id": f"O-{index}",
                "venue_order_id": f"V-{index}",
                "trade_id": f"T-{index}",
                "order_side": side,
                "last_qty": quantity,
                "last_px": price,
                "quote_currency": "USDT",
                "commission": commission,
                "commission_currency": currency,
                "liquidity_side": "TAKER" if commission >= 0 else "MAKER",
            }
            for index, (side, quantity, price, commission, currency) in enumerate(rows)
        ],
        schema=FILLS_SCHEMA,
    )


def test_base_fee_is_valued_at_its_fill_price_and_rebates_are_their_own_component() -> None:
    fills = _fills(
        ("BUY", 0.002, 60_000.0, 0.000002, "BTC"),  # Binance: the buy's 0.1% in the bought asset
        ("SELL", 0.001, 61_000.0, 0.061, "USDT"),
        ("SELL", 0.0009, 60_500.0, -0.01089, "USDT"),  # a maker rebate
    )

    pnl = pnl_components(fills, "BTC", "USDT", mark_price=60_800.0)

    position = 0.002 - 0.001 - 0.0009
    gross = -0.002 * 60_000.0 + 0.001 * 61_000.0 + 0.0009 * 60_500.0 + position * 60_800.0
    fees = 0.000002 * 60_000.0 + 0.061
    assert pnl.currency == "USDT" and pnl.fills == 3 and pnl.mark_price == 60_800.0
    assert pnl.gross == pytest.approx(gross, abs=1e-9)
    assert pnl.fees == pytest.approx(fees, abs=1e-12)
    assert pnl.rebates == pytest.approx(0.01089, abs=1e-12)
    assert pnl.net == pytest.approx(gross - fees + 0.01089, abs=1e-9)
    assert pnl.notional == pytest.approx(120.0 + 61.0 + 54.45, abs=1e-9)


def test_a_fee_in_a_third_currency_names_the_fill() -> None:
    fills = _fills(("BUY", 0.002, 60_000.0, 0.0002, "USDT"), ("SELL", 0.002, 60_100.0, 0.00041, "BNB"))

    with pytest.raises(FeeCurrencyError, match=r"fill T-1 of order O-1 .*commission 0\.00041 BNB is in neither BTC nor USDT"):
        pnl_components(fills, "BTC", "USDT", mark_price=60_100.0)


def test_fills_of_another_quote_currency_are_refused() -> None:
    fills = _fills(("BUY", 0.002, 60_000.0, 0.12, "USDT"))

    with pytest.raises(ValueError, match=r"fills priced in \['USDT'\], expected FDUSD only"):
        pnl_components(fills, "BTC", "FDUSD", mark_price=60_000.0)


def test_no_fills_is_zero_and_needs_no_mark() -> None:
    pnl = pnl_components(_fills(), "BTC", "USDT", mark_price=None)

    assert (pnl.gross, pnl.fees, pnl.rebates, pnl.net, pnl.notional, pnl.fills) == (0.0, 0.0, 0.0, 0.0, 0.0, 0)


def test_fills_without_a_mark_price_are_refused() -> None:
    with pytest.raises(ValueError, match="a mark price is needed"):
        pnl_components(_fills(("BUY", 0.002, 60_000.0, 0.000002, "BTC")), "BTC", "USDT", mark_price=None)
