"""P&L by component from a fills table: every commission counted, in whichever currency of the pair it was charged;
perpetual funding settled on the position held; instruments summed into one total."""

import polars as pl
import pytest

from keel.fills import FILLS_SCHEMA
from keel.pnl import TOTAL
from keel.pnl import FeeCurrencyError
from keel.pnl import InstrumentTerms
from keel.pnl import PnlInputError
from keel.pnl import equity_curve
from keel.pnl import funding_payments
from keel.pnl import pnl_components
from keel.pnl import portfolio_pnl
from keel.pnl import round_trips
from keel.pnl import total_equity

BTCUSDT = InstrumentTerms(instrument_id="BTCUSDT.BINANCE", base_currency="BTC", quote_currency="USDT", perpetual=False)
FDUSD_PAIR = InstrumentTerms(instrument_id="BTCUSDT.BINANCE", base_currency="BTC", quote_currency="FDUSD", perpetual=False)
PERP = InstrumentTerms(instrument_id="BTCUSDT-PERP.BINANCE", base_currency="BTC", quote_currency="USDT", perpetual=True)


def _fills(*rows: tuple[str, float, float, float, str], instrument_id: str = "BTCUSDT.BINANCE", spacing_ns: int = 1_000_000_000) -> pl.DataFrame:
    """A fills table from (side, quantity, price, commission, commission currency) rows, ``spacing_ns`` apart."""
    return pl.DataFrame(
        [
            {
                "ts_event": index * spacing_ns,
                "ts_init": index * spacing_ns,
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

    pnl = pnl_components(fills, BTCUSDT, mark_price=60_800.0)

    held = 0.002 - 0.000002 - 0.001 - 0.0009  # the buy's fee coins never reached the account
    net = -0.002 * 60_000.0 + 0.001 * 61_000.0 - 0.061 + 0.0009 * 60_500.0 + 0.01089 + held * 60_800.0
    fees = 0.000002 * 60_000.0 + 0.061
    gross = net + fees - 0.01089
    assert pnl.currency == "USDT" and pnl.fills == 3 and pnl.mark_price == 60_800.0
    assert pnl.gross == pytest.approx(gross, abs=1e-9)
    assert pnl.fees == pytest.approx(fees, abs=1e-12)
    assert pnl.rebates == pytest.approx(0.01089, abs=1e-12)
    assert pnl.net == pytest.approx(net, abs=1e-9)
    assert pnl.notional == pytest.approx(120.0 + 61.0 + 54.45, abs=1e-9)


def test_a_fee_in_a_third_currency_names_the_fill() -> None:
    fills = _fills(("BUY", 0.002, 60_000.0, 0.0002, "USDT"), ("SELL", 0.002, 60_100.0, 0.00041, "BNB"))

    with pytest.raises(FeeCurrencyError, match=r"fill T-1 of order O-1 .*commission 0\.00041 BNB is in neither BTC nor USDT"):
        pnl_components(fills, BTCUSDT, mark_price=60_100.0)


def test_fills_of_another_quote_currency_are_refused() -> None:
    fills = _fills(("BUY", 0.002, 60_000.0, 0.12, "USDT"))

    with pytest.raises(PnlInputError, match=r"fills priced in \['USDT'\], expected FDUSD only"):
        pnl_components(fills, FDUSD_PAIR, mark_price=60_000.0)


def test_no_fills_is_zero_and_needs_no_mark() -> None:
    pnl = pnl_components(_fills(), BTCUSDT, mark_price=None)

    assert (pnl.gross, pnl.fees, pnl.rebates, pnl.net, pnl.notional, pnl.fills) == (0.0, 0.0, 0.0, 0.0, 0.0, 0)


def test_fills_without_a_mark_price_are_refused() -> None:
    with pytest.raises(PnlInputError, match="a mark price is needed"):
        pnl_components(_fills(("BUY", 0.002, 60_000.0, 0.000002, "BTC")), BTCUSDT, mark_price=None)


HOUR_NS = 3_600_000_000_000


def test_funding_is_paid_on_the_position_held_at_each_settlement() -> None:
    # Long 0.01 from 00:00, adds 0.01 at 08:00 exactly (after that settlement), short 0.005 net from 16:00 exactly.
    fills = _fills(
        ("BUY", 0.01, 60_000.0, 0.24, "USDT"),
        ("BUY", 0.01, 61_000.0, 0.244, "USDT"),
        ("SELL", 0.025, 62_000.0, 0.62, "USDT"),
        instrument_id=PERP.instrument_id,
        spacing_ns=8 * HOUR_NS,
    )
    rates = pl.DataFrame({"ts": [8 * HOUR_NS, 16 * HOUR_NS, 24 * HOUR_NS], "rate": [0.0001, -0.0002, 0.0003]})
    prices = pl.DataFrame({"ts": [7 * HOUR_NS, 15 * HOUR_NS, 23 * HOUR_NS], "price": [60_500.0, 61_500.0, 61_800.0]})

    payments = funding_payments(fills, rates, prices, PERP)

    # Written out by hand: the position just before each settlement, the last print before it, the rate.
    expected = [-0.01 * 60_500.0 * 0.0001, -0.02 * 61_500.0 * -0.0002, -(-0.005) * 61_800.0 * 0.0003]
    assert payments.height == 3
    assert payments["position"].to_list() == pytest.approx([0.01, 0.02, -0.005])
    assert payments["payment"].to_list() == pytest.approx(expected)
    pnl = pnl_components(fills, PERP, mark_price=61_800.0, funding=payments)
    assert pnl.funding == pytest.approx(sum(expected))
    assert pnl.net == pytest.approx(pnl.gross - pnl.fees + pnl.rebates + sum(expected))


def test_spot_pays_no_funding_and_a_flat_perpetual_pays_none() -> None:
    rates = pl.DataFrame({"ts": [8 * HOUR_NS], "rate": [0.0001]})
    prices = pl.DataFrame({"ts": [HOUR_NS], "price": [60_000.0]})
    spot = _fills(("BUY", 0.01, 60_000.0, 0.00001, "BTC"))
    round_trip = _fills(("BUY", 0.01, 60_000.0, 0.24, "USDT"), ("SELL", 0.01, 60_100.0, 0.24, "USDT"), instrument_id=PERP.instrument_id)

    assert funding_payments(spot, rates, prices, BTCUSDT).height == 0
    assert funding_payments(round_trip, rates, prices, PERP)["payment"].to_list() == [0.0]


def test_equity_curve_ends_at_the_net_pnl_and_the_total_adds_instruments() -> None:
    spot = _fills(("BUY", 0.002, 60_000.0, 0.000002, "BTC"), ("SELL", 0.001, 60_300.0, 0.0603, "USDT"))
    perp = _fills(("SELL", 0.01, 60_100.0, 0.2404, "USDT"), instrument_id=PERP.instrument_id, spacing_ns=HOUR_NS)
    spot_prices = pl.DataFrame({"ts": [0, 2_000_000_000, 10 * HOUR_NS], "price": [60_000.0, 60_300.0, 60_200.0]})
    perp_prices = pl.DataFrame({"ts": [0, 9 * HOUR_NS], "price": [60_100.0, 60_400.0]})
    funding = funding_payments(perp, pl.DataFrame({"ts": [8 * HOUR_NS], "rate": [0.0001]}), perp_prices, PERP)

    curves = [equity_curve(spot, spot_prices, BTCUSDT), equity_curve(perp, perp_prices, PERP, funding)]
    total = total_equity(curves)
    pnl = portfolio_pnl(pl.concat([spot, perp]), {BTCUSDT.instrument_id: BTCUSDT, PERP.instrument_id: PERP}, {BTCUSDT.instrument_id: 60_200.0, PERP.instrument_id: 60_400.0}, funding)

    assert curves[0]["pnl"][-1] == pytest.approx(pnl.by_instrument[BTCUSDT.instrument_id].net)
    assert curves[1]["pnl"][-1] == pytest.approx(pnl.by_instrument[PERP.instrument_id].net)
    assert pnl.by_instrument[PERP.instrument_id].funding == pytest.approx(0.01 * 60_100.0 * 0.0001)  # the short received
    assert total["instrument_id"].unique().to_list() == [TOTAL]
    assert total.height == 4  # the union of both instruments' print times
    assert total["pnl"][-1] == pytest.approx(pnl.total.net)
    assert pnl.total.net == pytest.approx(sum(part.net for part in pnl.by_instrument.values()))


def test_instruments_in_different_currencies_do_not_add_up() -> None:
    fills = _fills(("BUY", 0.002, 60_000.0, 0.12, "FDUSD"))
    fills = fills.with_columns(pl.lit("FDUSD").alias("quote_currency"))
    terms = {BTCUSDT.instrument_id: FDUSD_PAIR, PERP.instrument_id: PERP}

    with pytest.raises(PnlInputError, match=r"P&L in \['USDT'\] cannot be added to P&L in FDUSD"):
        portfolio_pnl(fills, terms, {BTCUSDT.instrument_id: 60_000.0}, funding_payments(fills, pl.DataFrame(), pl.DataFrame(), BTCUSDT))


def test_a_reversal_ends_one_round_trip_and_starts_the_next() -> None:
    # Long 0.01, then sell 0.03 (close 0.01 and go short 0.02), then buy 0.02 back.
    fills = _fills(
        ("BUY", 0.01, 60_000.0, 0.3, "USDT"),
        ("SELL", 0.03, 60_100.0, 0.9015, "USDT"),
        ("BUY", 0.02, 59_900.0, 0.599, "USDT"),
        instrument_id=PERP.instrument_id,
    )

    trips = round_trips(fills, PERP)

    long_trip = -0.01 * 60_000.0 - 0.3 + (0.03 * 60_100.0 - 0.9015) / 3
    short_trip = (0.03 * 60_100.0 - 0.9015) * 2 / 3 - 0.02 * 59_900.0 - 0.599
    assert trips == pytest.approx([long_trip, short_trip])
    assert sum(trips) == pytest.approx(pnl_components(fills, PERP, mark_price=59_900.0).net)
