"""Minimum-size sizing and the dust rule against the real Binance filters of the shipped sample."""

from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.instruments import binance_usdm_instruments
from keel.settings import SAMPLE_DIR
from keel.sizing import closable_quantity
from keel.sizing import minimum_order_quantity

PRICE = 61_845.32  # first BTCUSDT trade of the sample


@pytest.fixture
def btcusdt(sample_catalog: Path) -> Instrument:
    return ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=["BTCUSDT.BINANCE"])[0]


def _kept_after_fee(quantity: Decimal, instrument: Instrument) -> Decimal:
    step = instrument.size_increment.as_decimal()
    return (quantity * (1 - instrument.taker_fee) / step).to_integral_value(rounding="ROUND_FLOOR") * step


def test_spot_minimum_meets_min_quantity_and_min_notional_after_commission(btcusdt: Instrument) -> None:
    quantity = minimum_order_quantity(btcusdt, PRICE)

    step = btcusdt.size_increment.as_decimal()
    assert quantity.as_decimal() % step == 0
    assert quantity >= btcusdt.min_quantity
    # What is left after Binance takes the commission in BTC is still a valid sell order.
    assert _kept_after_fee(quantity.as_decimal(), btcusdt) * Decimal(str(PRICE)) >= btcusdt.min_notional.as_decimal()
    # And it is the smallest such size: one step less would fail.
    smaller = quantity.as_decimal() - step
    assert _kept_after_fee(smaller, btcusdt) * Decimal(str(PRICE)) < btcusdt.min_notional.as_decimal() * Decimal("1.01")


def test_the_ramp_multiplies_the_minimum_notional(btcusdt: Instrument) -> None:
    triple = minimum_order_quantity(btcusdt, PRICE, multiplier=3.0).as_decimal()

    # Three minimum notionals (with the 1% buffer) are still held after the buy's commission, and not a step more.
    needed = 3 * btcusdt.min_notional.as_decimal() * Decimal("1.01")
    assert _kept_after_fee(triple, btcusdt) * Decimal(str(PRICE)) >= needed
    assert _kept_after_fee(triple - btcusdt.size_increment.as_decimal(), btcusdt) * Decimal(str(PRICE)) < needed
    assert triple > 2 * minimum_order_quantity(btcusdt, PRICE).as_decimal()


def test_perpetual_minimum_is_the_notional_floor_on_the_step() -> None:
    perpetual = binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"]

    quantity = minimum_order_quantity(perpetual, 60_000.0)

    # min notional 5 USDT (+1%) at 60k is 0.0000842 BTC: the 0.001 minimum quantity decides.
    assert quantity.as_decimal() == Decimal("0.001")
    assert minimum_order_quantity(perpetual, 1_000.0).as_decimal() == Decimal("0.006")  # 5.05 / 1000 rounded up


def test_dust_is_what_no_order_can_close(btcusdt: Instrument) -> None:
    step = btcusdt.size_increment.as_decimal()

    assert closable_quantity(btcusdt, step / 2) is None
    assert closable_quantity(btcusdt, Decimal("0.00018") - Decimal("0.00000018")).as_decimal() == Decimal("0.00017")
    # Above the step but below the minimum notional at the price: dust when the price is known.
    assert closable_quantity(btcusdt, Decimal("0.00001"), price=PRICE) is None
    assert closable_quantity(btcusdt, Decimal("0.0002"), price=PRICE).as_decimal() == Decimal("0.0002")


def test_a_position_on_the_step_is_closed_whole(sample_catalog: Path) -> None:
    ethusdt = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=["ETHUSDT.BINANCE"])[0]

    # Through a float, round-down took a step off these (0.0039 -> 0.0038), leaving one step nobody could sell.
    for text in ("0.0039", "0.0041", "0.0057", "0.0123"):
        assert closable_quantity(ethusdt, Decimal(text)).as_decimal() == Decimal(text)
