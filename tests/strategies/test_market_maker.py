"""MarketMaker: every shipped variant backtested on the shipped L2 data, its quoting rules, no lookahead, close-on-stop."""

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.events import OrderRejected
from nautilus_trader.model.identifiers import AccountId
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import StrategyId
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.result import RunResult
from keel.backtests.runner import run_backtest
from keel.backtests.sweep import load_space
from keel.backtests.sweep import space_path_for
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.binance_usdm_ingest import sample_usdm_recordings
from keel.live.session import run_live_session
from keel.live.session_layout import ORDERS_PARQUET
from keel.live.session_layout import SESSION_JSON
from keel.settings import CONFIGS_DIR
from keel.strategies.market_maker import MarketMaker
from keel.strategies.market_maker import MarketMakerConfig
from keel.variant import load_variant

VARIANTS = CONFIGS_DIR / "variants"
SPOT_VARIANTS = ("market_maker_btc_binance_spot", "market_maker_eth_binance_spot")
PERPETUAL_VARIANT = "market_maker_btc_binance_usdm"
# (fills, fingerprint) of each shipped variant on its shipped data; update deliberately, saying why in the commit.
PINNED = {
    "market_maker_btc_binance_spot": (65, "b079873eb19bdb1d"),
    "market_maker_eth_binance_spot": (77, "de5d6a52883ce277"),
    "market_maker_btc_binance_usdm": (16, "2f0511c90f58cb92"),
}


@pytest.fixture(scope="module")
def usdm_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped 40 s Binance USDT-M BTCUSDT recording (trades, quotes, L2 deltas) as a catalog."""
    path = tmp_path_factory.mktemp("usdm") / "catalog"
    ingest_binance_usdm(sample_usdm_recordings(), path)
    return path


@pytest.fixture(scope="module")
def runs(sample_catalog: Path, usdm_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    """Every shipped variant backtested once on the data it needs, shared by the checks below."""
    folder = tmp_path_factory.mktemp("market_maker_runs")
    catalogs = {name: sample_catalog for name in SPOT_VARIANTS} | {PERPETUAL_VARIANT: usdm_catalog}
    return {
        name: run_backtest(load_variant(VARIANTS / f"{name}.yaml"), catalog, run_dir=folder / name, log_to_mlflow=False, tearsheet=False)
        for name, catalog in catalogs.items()
    }


def _maker_inventory(run: RunResult) -> np.ndarray:
    """Return the inventory after each quote fill, from the fills alone (the close-on-stop left out)."""
    fills = run.fills.filter(pl.col("liquidity_side") == "MAKER").sort("ts_event", maintain_order=True)
    signs = np.where(fills["order_side"].to_numpy() == "BUY", 1.0, -1.0)
    return np.cumsum(signs * fills["last_qty"].to_numpy())


def _unit(run: RunResult) -> float:
    """Return the minimum size the run quoted (the largest bid: the minimum notional moves it with the price)."""
    return run.orders.filter((pl.col("type") == "LIMIT") & (pl.col("side") == "BUY"))["quantity"].cast(pl.Float64).max()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_variant_trades_as_a_maker_and_ends_flat(runs: dict[str, RunResult], name: str) -> None:
    run = runs[name]

    assert_closed_out(run)
    assert run.fills.height >= 15, f"{name}: {run.fills.height} fills are too few to say anything"
    # Every quote fill is a maker fill; only the close-on-stop market order takes.
    quotes = run.orders.filter(pl.col("type") == "LIMIT")
    assert quotes.height > 0 and set(quotes["is_post_only"]) == {"True"}
    takers = run.fills.filter(pl.col("liquidity_side") == "TAKER")
    assert set(takers["client_order_id"]) <= set(run.orders.filter(pl.col("type") == "MARKET")["client_order_id"])
    assert run.fills.height - takers.height >= 15
    assert (run.fills.height, fills_fingerprint(run.fills)) == PINNED[name]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_one_order_per_side_at_a_time(runs: dict[str, RunResult], name: str) -> None:
    run = runs[name]
    # When the strategy learnt an order was closed: its last fill's arrival, or its cancel (ts_last; a fill's
    # ts_last is the venue's fill time, which can be later than the fill's arrival).
    filled_at = run.fills.group_by("client_order_id").agg(pl.col("ts_init").cast(pl.Int64).max().alias("filled_at"))
    quotes = (
        run.orders.filter(pl.col("type") == "LIMIT")
        .join(filled_at, on="client_order_id", how="left")
        .with_columns(
            pl.col("ts_init").cast(pl.Int64),
            pl.when(pl.col("status") == "FILLED").then(pl.col("filled_at")).otherwise(pl.col("ts_last").cast(pl.Int64)).alias("closed_at"),
        )
        .sort("ts_init")
    )

    assert set(quotes["status"]) <= {"FILLED", "CANCELED"}
    for side in ("BUY", "SELL"):
        orders = quotes.filter(pl.col("side") == side)
        opened = orders["ts_init"].to_list()
        closed = orders["closed_at"].to_list()
        # The next quote of a side is created only once the previous one is closed (cancel, then replace).
        assert all(later >= earlier for earlier, later in zip(closed[:-1], opened[1:], strict=True)), f"{name} {side}"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_inventory_stays_within_its_limit(runs: dict[str, RunResult], name: str) -> None:
    run = runs[name]
    config = run.variant.strategy.config
    inventory = _maker_inventory(run)

    assert inventory.size > 0
    assert np.abs(inventory).max() <= config["max_inventory"] * _unit(run) + 1e-12
    if name in SPOT_VARIANTS:
        # Spot from zero base inventory: it only ever sells what it bought.
        assert inventory.min() >= -1e-12


def test_first_quotes_equal_an_independent_computation(runs: dict[str, RunResult], usdm_catalog: Path) -> None:
    run = runs[PERPETUAL_VARIANT]
    config = run.variant.strategy.config
    ticks = ParquetDataCatalog(str(usdm_catalog)).quote_ticks()
    count = config["volatility_events"]
    bid = np.array([tick.bid_price.as_double() for tick in ticks[:count]])
    ask = np.array([tick.ask_price.as_double() for tick in ticks[:count]])
    bid_size = np.array([tick.bid_size.as_double() for tick in ticks[:count]])
    ask_size = np.array([tick.ask_size.as_double() for tick in ticks[:count]])
    microprice = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
    changes_bps = np.diff(microprice) / microprice[:-1] * 10_000
    weight = 2.0 / (count + 1)
    variance = 0.0
    for change in changes_bps:
        variance += weight * (change * change - variance)
    half_spread = max(config["min_half_spread_bps"], config["vol_multiplier"] * math.sqrt(variance)) / 10_000
    tick_size = 0.1
    expected_bid = min(math.floor(microprice[-1] * (1 - half_spread) / tick_size + 1e-9), round(ask[-1] / tick_size) - 1) * tick_size
    expected_ask = max(math.ceil(microprice[-1] * (1 + half_spread) / tick_size - 1e-9), round(bid[-1] / tick_size) + 1) * tick_size

    first = run.orders.sort("ts_init").head(2)
    # Both quotes go out on the quote tick that completes the warm-up, flat, so without skew.
    assert first["ts_init"].cast(pl.Int64).to_list() == [ticks[count - 1].ts_init] * 2
    prices = dict(zip(first["side"], first["price"].cast(pl.Float64), strict=True))
    assert prices == pytest.approx({"BUY": expected_bid, "SELL": expected_ask}, abs=1e-9)


def test_no_decision_uses_later_data(usdm_catalog: Path, tmp_path: Path) -> None:
    variant = load_variant(VARIANTS / f"{PERPETUAL_VARIANT}.yaml")

    assert_no_lookahead(variant, usdm_catalog, "2024-08-08T23:54:40Z", tmp_path)


def _rejection(client_order_id: str, due_post_only: bool) -> OrderRejected:
    return OrderRejected(
        TraderId("TESTER-001"),
        StrategyId("MarketMaker-001"),
        InstrumentId.from_str("BTCUSDT.BINANCE"),
        ClientOrderId(client_order_id),
        AccountId("BINANCE-001"),
        "POST_ONLY would take" if due_post_only else "insufficient balance",
        UUID4(),
        0,
        0,
        due_post_only=due_post_only,
    )


def test_post_only_rejections_do_not_count_toward_the_self_stop() -> None:
    strategy = MarketMaker(MarketMakerConfig(instrument_id=InstrumentId.from_str("BTCUSDT.BINANCE"), max_consecutive_rejections=3))

    for number in range(5):
        strategy.on_order_rejected(_rejection(f"O-{number}", due_post_only=True))
    assert strategy.consecutive_rejections == 0
    strategy.on_order_rejected(_rejection("O-5", due_post_only=False))
    assert strategy.consecutive_rejections == 1


@pytest.mark.slow
@pytest.mark.requires_redis
def test_emulator_session_quotes_then_leaves_nothing_behind(redis_service: None, sample_catalog: Path, tmp_path: Path) -> None:
    document = yaml.safe_load((CONFIGS_DIR / "env" / "emulator.yaml").read_text())
    document["emulator"] |= {"catalog": str(sample_catalog), "start": "2024-08-08T23:54:15Z", "end": "2024-08-08T23:55:15Z", "speed": 10.0}
    env_path = tmp_path / "emulator.yaml"
    env_path.write_text(yaml.safe_dump(document))
    variant_path = VARIANTS / f"{SPOT_VARIANTS[0]}.yaml"

    run_live_session(variant_path, env_path, session_dir=tmp_path / "session")

    session = json.loads((tmp_path / "session" / SESSION_JSON).read_text())
    assert session["status"] == "completed"
    orders = pl.read_parquet(tmp_path / "session" / ORDERS_PARQUET)
    assert orders.filter(pl.col("event_type") == "OrderAccepted").height >= 2, "the session never quoted"
    assert session["after_stop"]["flat"] is True
    after_stop = session["after_stop"]["by_instrument"]["BTCUSDT.BINANCE"]
    assert after_stop["open_orders"] == [] and after_stop["open_positions"] == []


@pytest.mark.parametrize("name", sorted(PINNED))
def test_sweep_space_fits_the_variant(name: str) -> None:
    path = VARIANTS / f"{name}.yaml"

    space = load_space(space_path_for(path), load_variant(path))

    assert {"min_half_spread_bps", "skew_bps", "max_inventory"} <= set(space.parameters)


@pytest.mark.requires_shared
def test_longer_usdm_window_trades_and_ends_flat(shared_data_dir: Path, tmp_path: Path) -> None:
    recording = shared_data_dir / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"
    if not recording.is_file():
        pytest.skip(f"{recording} not found")
    catalog = tmp_path / "catalog"
    ingest_binance_usdm([recording], catalog)
    variant = load_variant(VARIANTS / f"{PERPETUAL_VARIANT}.yaml")

    # Two minutes, three times the shipped slice: the whole six minutes would take a minute of test time.
    run = run_backtest(variant, catalog, run_dir=tmp_path / "run", end="2024-08-08T23:56:15Z", log_to_mlflow=False, tearsheet=False)

    assert_closed_out(run)
    assert run.fills.filter(pl.col("liquidity_side") == "MAKER").height >= 40
    assert np.abs(_maker_inventory(run)).max() <= variant.strategy.config["max_inventory"] * _unit(run) + 1e-12
    assert (run.fills.height, fills_fingerprint(run.fills)) == (52, "f586b1d35de136f6")
