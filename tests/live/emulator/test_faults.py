"""The emulator's fault knobs: the fee-mismatch knob on real sample fills, and every knob's validation."""

from decimal import ROUND_HALF_UP
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL
from keel.live.emulator.book import L2Book
from keel.live.emulator.config import EmulatorConfig
from keel.live.emulator.faults import Faults
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.feed import load_market_feed
from keel.live.emulator.market import MarketStreams
from keel.live.emulator.matching import ExecutionEvent
from keel.live.emulator.matching import Fill
from keel.live.emulator.matching import MatchingEngine
from keel.live.emulator.matching import NewOrder
from keel.live.emulator.symbols import symbol_spec

NOW = 1_795_000_000_000
EXTRA_FEE_BPS = 10.0
EIGHT_DECIMALS = Decimal("0.00000001")


@pytest.fixture(scope="module")
def listed_fees(sample_catalog: Path) -> dict[str, Decimal]:
    """The BTCUSDT maker and taker rates as the catalog lists them (read apart from the emulator's own spec)."""
    (instrument,) = ParquetDataCatalog(str(sample_catalog)).instruments(instrument_ids=["BTCUSDT.BINANCE"])
    return {"maker": Decimal(str(instrument.maker_fee)), "taker": Decimal(str(instrument.taker_fee))}


@pytest.fixture
def engine_with_fees(sample_catalog: Path) -> MatchingEngine:
    """An engine on the sample's first BTCUSDT book, charging ``EXTRA_FEE_BPS`` on top of the listed rates."""
    feed = load_market_feed(str(sample_catalog), ["BTCUSDT.BINANCE"], None, None)
    spec = symbol_spec(feed.instruments[0])
    book = L2Book()
    MarketStreams({spec.symbol: spec}, {spec.symbol: book}).apply(feed.warmup[0])
    balances = SpotBalances({"USDT": Decimal("100000"), "BTC": Decimal("1")})
    return MatchingEngine({spec.symbol: spec}, {spec.symbol: book}, balances, Faults(extra_fee_bps=EXTRA_FEE_BPS))


def _fills(events: list) -> list[Fill]:
    return [event.fill for event in events if isinstance(event, ExecutionEvent) and event.fill is not None]


def _expected_commission(amount: Decimal, listed_rate: Decimal) -> Decimal:
    """``amount`` (what the fill pays in: base for a buy, quote for a sell) times the listed rate plus 10 bp."""
    return (amount * (listed_rate + Decimal("0.0010"))).quantize(EIGHT_DECIMALS, ROUND_HALF_UP)


def test_taker_fills_pay_the_listed_rate_plus_the_extra_in_the_asset_received(
    engine_with_fees: MatchingEngine, listed_fees: dict[str, Decimal]
) -> None:
    engine = engine_with_fees
    buy = NewOrder(symbol="BTCUSDT", side=BUY, order_type="MARKET", client_order_id="b", quantity=Decimal("0.01000"))
    sell = NewOrder(symbol="BTCUSDT", side=SELL, order_type="MARKET", client_order_id="s", quantity=Decimal("0.01000"))

    buy_fills = _fills(engine.submit(buy, NOW)[1])
    sell_fills = _fills(engine.submit(sell, NOW)[1])

    assert len(buy_fills) >= 1 and len(sell_fills) >= 1
    for fill in buy_fills:
        assert (fill.commission_asset, fill.is_maker) == ("BTC", False)
        assert fill.commission == _expected_commission(fill.quantity, listed_fees["taker"])
    for fill in sell_fills:
        assert (fill.commission_asset, fill.is_maker) == ("USDT", False)
        assert fill.commission == _expected_commission(fill.price * fill.quantity, listed_fees["taker"])
    # The account is credited what it received less that commission.
    bought = sum(fill.quantity - fill.commission for fill in buy_fills)
    sold = sum(fill.quantity for fill in sell_fills)
    assert engine.balances.free("BTC") == Decimal("1") + bought - sold
    received = sum(fill.price * fill.quantity - fill.commission for fill in sell_fills)
    paid = sum(fill.price * fill.quantity for fill in buy_fills)
    assert engine.balances.free("USDT") == Decimal("100000") - paid + received


def test_maker_fill_pays_the_listed_maker_rate_plus_the_extra(engine_with_fees: MatchingEngine, listed_fees: dict[str, Decimal]) -> None:
    engine = engine_with_fees
    best_bid = engine.views["BTCUSDT"].best(BUY)[0]
    rest = NewOrder(symbol="BTCUSDT", side=BUY, order_type="LIMIT", client_order_id="m", quantity=Decimal("0.01000"), price=best_bid, time_in_force="GTC")
    engine.submit(rest, NOW)

    # A seller print below the resting buy goes through it: it fills as maker at its own price.
    (fill,) = _fills(engine.on_trade(TradePrint(1, "BTCUSDT", 1, best_bid - Decimal("0.01"), Decimal("0.00100"), buyer_is_maker=True), NOW + 1))

    assert (fill.is_maker, fill.price, fill.commission_asset) == (True, best_bid, "BTC")
    assert fill.commission == _expected_commission(Decimal("0.01000"), listed_fees["maker"])


def test_extra_fee_can_be_changed_while_the_venue_runs_and_zero_charges_the_listed_rate(
    engine_with_fees: MatchingEngine, listed_fees: dict[str, Decimal]
) -> None:
    engine = engine_with_fees
    engine.faults.update({"extra_fee_bps": 0})
    buy = NewOrder(symbol="BTCUSDT", side=BUY, order_type="MARKET", client_order_id="b", quantity=Decimal("0.01000"))

    fills = _fills(engine.submit(buy, NOW)[1])

    assert len(fills) >= 1 and engine.faults.extra_fee_bps == 0.0
    for fill in fills:
        assert fill.commission == (fill.quantity * listed_fees["taker"]).quantize(EIGHT_DECIMALS, ROUND_HALF_UP)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"extra_fee_bps": -1.0}, "extra_fee_bps"),
        ({"extra_fee_bps": float("inf")}, "extra_fee_bps"),
        ({"extra_fee_bps": "10"}, "extra_fee_bps"),
        ({"extra_fee_bps": True}, "extra_fee_bps"),
        ({"slippage_bps": -0.5}, "slippage_bps"),
        ({"order_latency_ms": float("nan")}, "order_latency_ms"),
        ({"drop_fill_every": 1.5}, "drop_fill_every"),
        ({"extra_fee": 10.0}, r"unknown field\(s\) \['extra_fee'\]"),
    ],
)
def test_faults_update_names_the_bad_field_and_changes_nothing(changes: dict, field: str) -> None:
    faults = Faults(slippage_bps=1.0, drop_fill_every=2, order_latency_ms=3.0, extra_fee_bps=4.0)

    with pytest.raises(ValueError, match=field):
        faults.update({"slippage_bps": 9.0, **changes})

    assert faults.as_dict() == {"slippage_bps": 1.0, "drop_fill_every": 2, "order_latency_ms": 3.0, "extra_fee_bps": 4.0}


def test_faults_update_takes_integers_as_basis_points() -> None:
    faults = Faults()

    faults.update({"extra_fee_bps": 7, "slippage_bps": 2})

    assert faults.as_dict() == {"slippage_bps": 2.0, "drop_fill_every": 0, "order_latency_ms": 0.0, "extra_fee_bps": 7.0}
    assert isinstance(faults.extra_fee_bps, float)


@pytest.mark.parametrize("value", [-0.01, float("inf"), float("nan")])
def test_emulator_config_refuses_a_bad_extra_fee(sample_catalog: Path, value: float) -> None:
    with pytest.raises(ValueError, match=r"EmulatorConfig\.extra_fee_bps: expected a finite number >= 0"):
        EmulatorConfig(catalog_path=str(sample_catalog), instrument_ids=["BTCUSDT.BINANCE"], api_key="k", api_secret="s", starting_balances={"USDT": "10000"}, extra_fee_bps=value)
