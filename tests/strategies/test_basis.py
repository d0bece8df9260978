"""Basis: config validation, the z-score against numpy, and the family checks on real data.

No real dataset holds a spot and a perpetual that one Keel node can trade together at the same time: the shipped
OKX sample has no swap, and Binance spot and Binance USDT-M are one nautilus venue (``BINANCE``), which a node
holds once. The substitute is real Binance data renamed onto the OKX venue: the shipped BTCUSDT perpetual ticks
(the first 40 s of the USDT-M recording, 2024-08-08 23:54:15-23:54:55) become ``BTC-USDT-SWAP.OKX`` beside the
shipped Binance spot ticks of the same seconds (and, for the one-account OKX variant, the spot ticks become
``BTC-USDT.OKX`` too). Prices, sizes, books and the instruments' specs stay Binance's; only the venue changes.
The longer window does the same with 1-minute bars from ../shared/data/real (Binance spot and USDT-M, May 2025).
"""

import math
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest
from family_checks import assert_closed_out
from family_checks import assert_no_lookahead
from family_checks import fills_fingerprint
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.result import RunResult
from keel.backtests.runner import run_backtest
from keel.backtests.venues import VenueModel
from keel.backtests.venues import load_venue_model
from keel.data.bars import ingest_ohlcv_bars
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.funding import ingest_funding_rates
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.data.instruments import binance_spot_instruments
from keel.data.instruments import binance_usdm_instruments
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR
from keel.strategies.basis import BasisConfig
from keel.strategies.basis import RollingMoments
from keel.timestamps import utc_nanos
from keel.variant import load_variant

SPOT = "BTCUSDT.BINANCE"
OKX_SPOT = "BTC-USDT.OKX"
OKX_SWAP = "BTC-USDT-SWAP.OKX"
CROSS_VARIANT = CONFIGS_DIR / "variants" / "basis_btc_binance_spot_okx.yaml"
OKX_VARIANT = CONFIGS_DIR / "variants" / "basis_btc_okx.yaml"
# The perpetual's ticks end at 23:54:55.0; the strategies stop 1 s before the end given here, while both legs trade.
PERP_END = "2024-08-08T23:54:54.5Z"


def _renamed_instrument(instrument: Instrument, new_id: str) -> Instrument:
    kind = type(instrument)
    fields = kind.to_dict(instrument)
    fields["id"] = new_id
    fields["raw_symbol"] = new_id.split(".")[0]
    return kind.from_dict(fields)


def _copy_renamed(source: ParquetDataCatalog, instrument_id: str, target: ParquetDataCatalog, new_id: str, end_ns: int) -> None:
    """Write ``instrument_id``'s instrument, trades, quotes and L2 deltas up to ``end_ns`` into ``target`` as ``new_id``."""
    target.write_data([_renamed_instrument(source.instruments(instrument_ids=[instrument_id])[0], new_id)])
    for kind, items in (
        (TradeTick, source.trade_ticks([instrument_id], end=end_ns)),
        (QuoteTick, source.quote_ticks([instrument_id], end=end_ns)),
        (OrderBookDelta, source.order_book_deltas([instrument_id], end=end_ns)),
    ):
        renamed = []
        for item in items:
            fields = kind.to_dict(item)
            fields["instrument_id"] = new_id
            renamed.append(kind.from_dict(fields))
        target.write_data(renamed)


@pytest.fixture(scope="module")
def basis_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped Binance spot sample, the shipped perpetual's 40 s as BTC-USDT-SWAP.OKX, and that spot as BTC-USDT.OKX."""
    root = tmp_path_factory.mktemp("basis")
    ingest_binance_usdm([SAMPLE_DIR / "binance_usdm" / "btcusdt_20240808_first40s.gz"], root / "usdm")
    ingest_binance_spot(sample_recordings(), root / "catalog")
    target = ParquetDataCatalog(str(root / "catalog"))
    end_ns = utc_nanos("2024-08-08T23:55:00Z")
    _copy_renamed(ParquetDataCatalog(str(root / "usdm")), "BTCUSDT-PERP.BINANCE", target, OKX_SWAP, end_ns)
    _copy_renamed(target, SPOT, target, OKX_SPOT, end_ns)
    return root / "catalog"


def test_config_rejects_exit_not_below_entry() -> None:
    with pytest.raises(ValueError, match="exit_z"):
        BasisConfig(spot_instrument_id=InstrumentId.from_str(SPOT), perp_instrument_id=InstrumentId.from_str(OKX_SWAP), entry_z=1.0, exit_z=1.0)


def _first_entry(catalog: Path, spot_id: str, config: dict) -> int:
    """Return the ts_init of the event at which the basis first meets the entry rule, recomputed with numpy."""
    ticks = ParquetDataCatalog(str(catalog)).trade_ticks([spot_id, OKX_SWAP])
    prints = pl.DataFrame(
        {
            "ts_init": [tick.ts_init for tick in ticks],
            "ts_event": [tick.ts_event for tick in ticks],
            "is_spot": [str(tick.instrument_id) == spot_id for tick in ticks],
            "price": [float(tick.price) for tick in ticks],
        },
    ).sort("ts_init", maintain_order=True)
    interval_ns = config["sample_interval_ms"] * 1_000_000
    times, basis = [], []
    bucket, spot, perp = -1, math.nan, math.nan
    for ts_init, ts_event, is_spot, price in prints.iter_rows():
        if ts_event // interval_ns > bucket:
            if bucket >= 0 and not (math.isnan(spot) or math.isnan(perp)):
                times.append(ts_init)
                basis.append((math.log(perp) - math.log(spot)) * 10_000)
            bucket = ts_event // interval_ns
        spot, perp = (price, perp) if is_spot else (spot, price)
    window = config["window"]
    for index in range(window - 1, len(basis)):
        values = np.array(basis[index + 1 - window : index + 1])
        if values.std() > 0 and (values[-1] - values.mean()) / values.std() >= config["entry_z"] and values[-1] - values.mean() >= config["min_edge_bps"]:
            return times[index]
    raise AssertionError("the basis never met the entry rule")


def test_rolling_moments_equal_numpy() -> None:
    values = np.cumsum(np.random.default_rng(7).normal(size=500))
    moments = RollingMoments(40)
    for index, value in enumerate(values):
        moments.update(value)
        window = values[max(0, index - 39) : index + 1]
        assert (moments.mean, moments.std) == pytest.approx((window.mean(), window.std()), rel=1e-9)


@pytest.fixture(scope="module")
def basis_runs(basis_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, RunResult]:
    """Each tick variant backtested over the seconds both legs trade."""
    root = tmp_path_factory.mktemp("basis_runs")
    return {
        path: run_backtest(load_variant(path), basis_catalog, run_dir=root / path.stem, end=PERP_END, log_to_mlflow=False, tearsheet=False)
        for path in (CROSS_VARIANT, OKX_VARIANT)
    }


@pytest.mark.parametrize(("path", "spot_id"), [(CROSS_VARIANT, SPOT), (OKX_VARIANT, OKX_SPOT)])
def test_first_pair_is_entered_at_the_first_rich_basis(basis_catalog: Path, basis_runs: dict[Path, RunResult], path: Path, spot_id: str) -> None:
    variant = load_variant(path)

    first = basis_runs[path].orders.sort("ts_init", maintain_order=True).head(2)
    assert int(first["ts_init"][0]) == _first_entry(basis_catalog, spot_id, variant.strategy.config)
    assert sorted(first.select("instrument_id", "side").rows()) == sorted([(spot_id, "BUY"), (OKX_SWAP, "SELL")])


@pytest.mark.parametrize(
    ("path", "spot_id", "fills", "fingerprint"), [(CROSS_VARIANT, SPOT, 8, "d38e21e90605db14"), (OKX_VARIANT, OKX_SPOT, 8, "d8be089b64e34b79")],
)
def test_variants_trade_both_legs_and_are_pinned(basis_runs: dict[Path, RunResult], path: Path, spot_id: str, fills: int, fingerprint: str) -> None:
    run = basis_runs[path]

    assert_closed_out(run)
    # Cash-and-carry only: spot is bought to open and sold to close, the perpetual the other way round.
    decisions = run.orders.group_by("ts_init", maintain_order=True).agg(pl.struct("instrument_id", "side")).sort("ts_init")
    legs = [sorted((leg["instrument_id"], leg["side"]) for leg in row) for row in decisions["instrument_id"]]
    enter, unwind = sorted([(spot_id, "BUY"), (OKX_SWAP, "SELL")]), sorted([(spot_id, "SELL"), (OKX_SWAP, "BUY")])
    assert legs == [enter, unwind] * (len(legs) // 2)
    assert run.fills.height == fills
    assert fills_fingerprint(run.fills) == fingerprint


def test_cross_venue_variant_decides_nothing_from_later_data(basis_catalog: Path, tmp_path: Path) -> None:
    assert_no_lookahead(load_variant(CROSS_VARIANT), basis_catalog, "2024-08-08T23:54:47Z", tmp_path, end=PERP_END)


def test_a_spot_pair_as_the_perpetual_leg_stops_the_strategy_before_any_order(basis_catalog: Path, tmp_path: Path) -> None:
    # ETH spot beside BTC spot: a ratio that moves, so the entry rule is met, but the short leg could never be sent.
    shipped = load_variant(CROSS_VARIANT)
    config = {**shipped.strategy.config, "perp_instrument_id": "ETHUSDT.BINANCE"}
    variant = msgspec.structs.replace(shipped, venues=["binance_spot"], strategy=msgspec.structs.replace(shipped.strategy, config=config))

    run = run_backtest(variant, basis_catalog, run_dir=tmp_path / "run", end=PERP_END, log_to_mlflow=False, tearsheet=False)

    assert run.orders.height == 0


def _bar_model(model: VenueModel, bars: VenueModel) -> VenueModel:
    """Return ``model`` on an L1 book moved by bars, with the bar model's fills and close-out lead."""
    return msgspec.structs.replace(model, book_type=bars.book_type, fills=bars.fills, close_out_before_end_ms=bars.close_out_before_end_ms)


def _on_finer_grid(spot: CurrencyPair) -> CurrencyPair:
    """
    Return ``spot`` with 6-decimal sizes: the 2025 bars' volumes have more decimals than the shipped 2021 filters'
    step (0.00001) and fit 0.000001. The minimum quantity and notional stay the shipped ones.
    """
    fields = CurrencyPair.to_dict(spot)
    fields.update(size_precision=6, size_increment="0.000001", min_quantity="0.000010", max_quantity=None)
    return CurrencyPair.from_dict(fields)


@pytest.fixture(scope="module")
def basis_bars_catalog(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real 1-minute bars of Binance spot BTCUSDT and of the BTCUSDT perpetual (as BTC-USDT-SWAP.OKX), with funding."""
    path = tmp_path_factory.mktemp("basis_bars") / "catalog"
    spot = _on_finer_grid(binance_spot_instruments(SAMPLE_DIR / "binance_spot" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"])
    perp = _renamed_instrument(binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"], OKX_SWAP)
    assert isinstance(spot, CurrencyPair) and isinstance(perp, CryptoPerpetual)
    ingest_ohlcv_bars([shared_data_dir / "ft_filimonov/user_data/data/binance/BTC_USDT-1m.feather"], path, spot)
    futures = shared_data_dir / "ft_typhonun/user_data/data/binance/futures"
    ingest_ohlcv_bars([futures / "BTC_USDT_USDT-1m-futures.feather"], path, perp)
    ingest_funding_rates([futures / "BTC_USDT_USDT-8h-funding_rate.feather"], path, perp)
    return path


@pytest.mark.requires_shared
def test_cross_venue_variant_on_a_week_of_bars_collects_funding(basis_bars_catalog: Path, tmp_path: Path) -> None:
    shipped = load_variant(CROSS_VARIANT)
    config = {**shipped.strategy.config, "bar_spec": "1-MINUTE-LAST-EXTERNAL", "sample_interval_ms": 60_000, "window": 240}
    variant = msgspec.structs.replace(shipped, strategy=msgspec.structs.replace(shipped.strategy, config=config))
    bars = load_venue_model(CONFIGS_DIR / "venues" / "binance_usdm_bars.yaml")
    venues = [_bar_model(load_venue_model(CONFIGS_DIR / "venues" / f"{name}.yaml"), bars) for name in ("binance_spot", "okx")]

    run = run_backtest(
        variant, basis_bars_catalog, run_dir=tmp_path / "run", start="2025-05-20T00:00:00Z", end="2025-05-27T00:00:00Z",
        venues=venues, log_to_mlflow=False, tearsheet=False,
    )

    assert_closed_out(run)
    assert run.fills.height == 512
    assert run.summary.funding != 0.0  # pairs held through settlements
    assert fills_fingerprint(run.fills) == "9f42d675763043c3"
