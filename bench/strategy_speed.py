"""
Strategy speed: each shipped variant's engine throughput against a no-op strategy on the same data, same engine.

For every variant file of ``configs/variants/`` (sweep spaces and variants on data no shipped sample holds are left
out, and listed as such), the bench backtests the variant and :class:`NoOpStrategy` over the same catalog (the
shipped sample of its venue), alternating the two, and reports the best engine time of each and their ratio (no-op
time / variant time = the variant's events/s relative to the no-op's). The no-op subscribes to what the family
reads: trades (and bars) for signal strategies, and quotes and L2 deltas too for market makers (the issue's "L2
no-op"). Targets (issue 8): signal strategies at least 0.8x, market makers at least 0.5x.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import OrderBookDeltas
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from keel.backtests.runner import run_backtest
from keel.data.bars import ingest_ohlcv_bars
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.catalog_layout import catalog_files
from keel.data.funding import ingest_funding_rates
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.data.instruments import binance_usdm_instruments
from keel.settings import CONFIGS_DIR
from keel.settings import SAMPLE_DIR
from keel.variant import Variant
from keel.variant import load_variant

MARKET_MAKER_TARGET = 0.5
SIGNAL_TARGET = 0.8


class NoOpStrategyConfig(StrategyConfig, frozen=True, kw_only=True):
    """
    Configuration of the no-op strategy.

    Parameters
    ----------
    instrument_ids : list[InstrumentId]
        Instruments whose data it subscribes to.
    bar_types : list[str]
        Bar types it subscribes to.
    book : bool
        Subscribe to quote ticks and L2 order book deltas too.
    """

    instrument_ids: list[InstrumentId]
    bar_types: list[str] = []
    book: bool = False


class NoOpStrategy(Strategy):
    """Subscribes to the data a variant uses and does nothing with it: the engine's cost of delivering it."""

    def on_start(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.subscribe_trade_ticks(instrument_id)
            if self.config.book:
                self.subscribe_quote_ticks(instrument_id)
                self.subscribe_order_book_deltas(instrument_id, BookType.L2_MBP)
        for bar_type in self.config.bar_types:
            self.subscribe_bars(BarType.from_str(bar_type))

    def on_trade_tick(self, tick: TradeTick) -> None:
        pass

    def on_quote_tick(self, tick: QuoteTick) -> None:
        pass

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        pass

    def on_bar(self, bar: Bar) -> None:
        pass


@dataclass(frozen=True)
class SpeedResult:
    """One variant against the no-op on the same data: best engine seconds of each, fills, and the target."""

    variant: str
    events: int
    variant_secs: float
    noop_secs: float
    fills: int
    target: float

    @property
    def ratio(self) -> float:
        """The variant's events/s over the no-op's."""
        return self.noop_secs / self.variant_secs

    @property
    def target_met(self) -> bool:
        """True if the ratio reaches the family's target."""
        return self.ratio >= self.target


def run(repeats: int = 3, variants_dir: Path = CONFIGS_DIR / "variants") -> tuple[list[SpeedResult], list[str]]:
    """Measure every shipped variant whose venue has a shipped sample; return the results and the variants skipped."""
    results, skipped = [], []
    with tempfile.TemporaryDirectory() as folder:
        catalogs = _Catalogs(Path(folder))
        for path in sorted(variants_dir.glob("*.yaml")):
            if path.name.endswith(".sweep.yaml"):
                continue
            variant = load_variant(path)
            catalog = catalogs.for_variant(variant)
            if catalog is None:
                skipped.append(f"{variant.name}: no shipped sample for venues {variant.venues}")
                continue
            try:
                results.append(_measure(variant, catalog, Path(folder) / variant.name, repeats))
            except Exception as error:  # e.g. an ML variant whose model is not registered in this KEEL_HOME
                skipped.append(f"{variant.name}: cannot run here: {str(error).splitlines()[0]}")
    return results, skipped


def _measure(variant: Variant, catalog: Path, folder: Path, repeats: int) -> SpeedResult:
    files = [item for item in catalog_files(catalog) if any(item.identifier.startswith(instrument_id) for instrument_id in variant.instrument_ids)]
    market_maker = "market_maker" in variant.strategy.strategy_path
    bar_types = sorted({item.identifier for item in files if item.data_type == "bar"})
    events = sum(_rows(item.path) for item in files if item.data_type in ("trade_tick", "quote_tick", "order_book_deltas", "bar"))
    noop = variant.with_config(f"{variant.name}-noop", {})
    noop = msgspec.structs.replace(
        noop,
        strategy=msgspec.convert(
            {
                "strategy_path": f"{__name__}:NoOpStrategy",
                "config_path": f"{__name__}:NoOpStrategyConfig",
                "config": {"instrument_ids": variant.instrument_ids, "bar_types": bar_types, "book": market_maker},
            },
            type(variant.strategy),
        ),
    )
    variant_secs, noop_secs, fills = [], [], 0
    for attempt in range(repeats):
        for candidate, times in ((variant, variant_secs), (noop, noop_secs)):
            run = run_backtest(candidate, catalog, run_dir=folder / f"{candidate.name}-{attempt}", log_to_mlflow=False, tearsheet=False)
            times.append(run.summary.elapsed_secs)
            if candidate is variant:
                fills = run.summary.fills
    return SpeedResult(variant.name, events, min(variant_secs), min(noop_secs), fills, MARKET_MAKER_TARGET if market_maker else SIGNAL_TARGET)


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


class _Catalogs:
    """The shipped samples, ingested on first use, one catalog per venue."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._made: dict[str, Path] = {}

    def for_variant(self, variant: Variant) -> Path | None:
        makers = {"binance_spot": self._spot, "binance_usdm": self._usdm, "binance_usdm_bars": self._bars}
        if len(variant.venues) != 1 or variant.venues[0] not in makers:
            return None
        venue = variant.venues[0]
        if venue not in self._made:
            self._made[venue] = makers[venue](self._root / f"catalog-{venue}")
        catalog = self._made[venue]
        held = {item.identifier.split("-1-")[0] if item.data_type == "bar" else item.identifier for item in catalog_files(catalog)}
        return catalog if set(variant.instrument_ids) <= held else None

    @staticmethod
    def _spot(path: Path) -> Path:
        ingest_binance_spot(sample_recordings(), path)
        return path

    @staticmethod
    def _usdm(path: Path) -> Path:
        ingest_binance_usdm(sorted((SAMPLE_DIR / "binance_usdm").glob("*.gz")), path)
        return path

    @staticmethod
    def _bars(path: Path) -> Path:
        instrument = binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"]
        ingest_ohlcv_bars([SAMPLE_DIR / "bars" / "BTC_USDT_USDT-1m-futures.feather"], path, instrument)
        ingest_funding_rates([SAMPLE_DIR / "bars" / "BTC_USDT_USDT-8h-funding_rate.feather"], path, instrument)
        return path


def report(results: list[SpeedResult], skipped: list[str]) -> str:
    """Return the side-by-side table."""
    lines = ["", "Strategy speed: engine time of each variant and of a no-op on the same data (best of the repeats)"]
    lines.append(f"  {'variant':<36} {'events':>9} {'fills':>6} {'variant s':>10} {'no-op s':>8} {'ratio':>6} {'target':>7}")
    for result in results:
        verdict = "ok" if result.target_met else "MISSED"
        lines.append(
            f"  {result.variant:<36} {result.events:>9,} {result.fills:>6} {result.variant_secs:>10.2f} {result.noop_secs:>8.2f} "
            f"{result.ratio:>5.2f}x {result.target:>5.1f}x {verdict}",
        )
    lines.extend(f"  skipped: {reason}" for reason in skipped)
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(*run()))
