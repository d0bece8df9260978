"""EMACross: order sizing against real Binance filters, and close-on-stop in a real backtest."""

from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.runner import run_backtest
from keel.strategies.ema_cross import EMACross
from keel.strategies.ema_cross import EMACrossConfig
from keel.settings import CONFIGS_DIR
from keel.variant import load_variant

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")


@pytest.fixture
def strategy(sample_catalog: Path) -> EMACross:
    strategy = EMACross(EMACrossConfig(instrument_id=BTCUSDT))
    strategy.instrument = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=[BTCUSDT.value])[0]
    return strategy


def test_min_size_meets_min_quantity_and_min_notional_after_commission(strategy: EMACross) -> None:
    instrument = strategy.instrument
    price = 61_845.32  # first BTCUSDT trade of the sample
    quantity = strategy.order_quantity(price)

    step = instrument.size_increment.as_decimal()
    kept = (quantity.as_decimal() * (1 - instrument.taker_fee) / step).to_integral_value(rounding="ROUND_FLOOR") * step
    assert quantity.as_decimal() % step == 0
    assert quantity >= instrument.min_quantity
    # What is left after Binance takes the commission in BTC is still a valid sell order.
    assert kept * Decimal(str(price)) >= instrument.min_notional.as_decimal()
    # And it is the smallest such size: one step less would fail.
    smaller = quantity.as_decimal() - step
    kept_smaller = (smaller * (1 - instrument.taker_fee) / step).to_integral_value(rounding="ROUND_FLOOR") * step
    assert kept_smaller * Decimal(str(price)) < instrument.min_notional.as_decimal() * Decimal("1.01")


def test_trade_size_overrides_minimum_when_larger(sample_catalog: Path) -> None:
    strategy = EMACross(EMACrossConfig(instrument_id=BTCUSDT, trade_size=Decimal("0.01")))
    strategy.instrument = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=[BTCUSDT.value])[0]

    assert strategy.order_quantity(61_845.32).as_decimal() >= Decimal("0.01")


def test_config_rejects_fast_period_not_below_slow() -> None:
    with pytest.raises(ValueError, match="fast_period"):
        EMACrossConfig(instrument_id=BTCUSDT, fast_period=200, slow_period=200)


def test_backtest_ends_flat_with_no_working_order(sample_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml")

    outcome = run_backtest(variant, sample_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)

    assert outcome.summary.round_trips > 0
    assert outcome.summary.open_orders_at_end == 0
    assert outcome.summary.open_positions_at_end == 0
    buys = outcome.fills.filter(outcome.fills["order_side"] == "BUY")["last_qty"].sum()
    sells = outcome.fills.filter(outcome.fills["order_side"] == "SELL")["last_qty"].sum()
    assert buys == pytest.approx(sells)
