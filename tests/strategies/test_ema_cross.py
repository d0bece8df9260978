"""EMACross: config validation, close-on-stop and order tags in a real backtest (sizing: tests/keel/test_sizing.py)."""

from pathlib import Path

import pytest
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from nautilus_trader.model.identifiers import InstrumentId

from keel.backtests.runner import run_backtest
from keel.strategies.ema_cross import EMACrossConfig
from keel.settings import CONFIGS_DIR
from keel.variant import load_variant

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")


def test_config_rejects_fast_period_not_below_slow() -> None:
    with pytest.raises(ValueError, match="fast_period"):
        EMACrossConfig(instrument_id=BTCUSDT, fast_period=200, slow_period=200)


def test_backtest_ends_flat_tags_every_order_and_is_pinned(sample_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml")

    run = run_backtest(variant, sample_catalog, run_dir=tmp_path / "run", log_to_mlflow=False, tearsheet=False)

    assert_closed_out(run)
    assert run.summary.round_trips > 0
    buys = run.fills.filter(run.fills["order_side"] == "BUY")["last_qty"].sum()
    sells = run.fills.filter(run.fills["order_side"] == "SELL")["last_qty"].sum()
    assert buys == pytest.approx(sells)
    # Every order carries its variant (keel.assembly fills variant_id in from the variant name).
    assert run.orders.height > 0
    assert set(run.orders["tags"]) == {f"['variant={variant.name}']"}
    assert run.fills.height == 14
    assert fills_fingerprint(run.fills) == "990ec19ab063b8c3"


def test_no_decision_uses_later_data(sample_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(CONFIGS_DIR / "variants" / "ema_cross_btcusdt.yaml")

    assert_no_lookahead(variant, sample_catalog, "2024-08-08T23:57:00Z", tmp_path, end="2024-08-08T23:58:00Z")
