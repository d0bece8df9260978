"""
Trade-tick ingest throughput: Keel's Arrow route against nautilus's own wrangler route, on the same input.

Input: the real BTCUSDT trades of the shipped sample (``data/sample/binance_spot/btcusdt_20240808.gz``),
repeated until the requested row count is reached. Each repetition keeps the real prices, sizes, aggressor
sides and trade order, and shifts every timestamp by a whole number of recording spans (plus 1 ms) and every
trade id by a whole number of id ranges, so timestamps keep increasing and ids stay contiguous.

Both routes start from the same in-memory columns (venue decimal strings, as a recording holds them) and end
with a Parquet file in a ``ParquetDataCatalog``:

- Keel: the ``keel.data`` writer: check the strings are decimals on the instrument's grid, convert them to
  ``Decimal(38, 16)`` (``keel.data.fixed_point``), build the nautilus Arrow table
  (``keel.data.catalog_layout.arrow_table``) and write it with ``pyarrow.parquet``.
- Wrangler: strings to floats, a pandas frame, ``TradeTickDataWrangler.process`` (one Cython ``TradeTick`` per
  row) and ``ParquetDataCatalog.write_data``.

``ts_init`` is set to ``ts_event`` (the exchange trade time) in both routes, because the wrangler can only
derive ``ts_init`` from ``ts_event`` by a constant offset; the read-back check then requires both catalogs to
return equal ``TradeTick`` lists from ``ParquetDataCatalog.trade_ticks``.

The targets come from issue 3 (at least 10x the wrangler route, and at least 2M rows/s) and are judged on
Keel's route with the data checks, because every ``keel data ingest`` runs them; the unchecked route is
reported beside it to show what the checks cost.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import read_recording
from keel.data.catalog_layout import AGGRESSOR_BUYER
from keel.data.catalog_layout import AGGRESSOR_SELLER
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import arrow_table
from keel.data.catalog_layout import relative_path
from keel.data.catalog_layout import write_catalog_file
from keel.data.fixed_point import checked_fixed_columns
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.ingest import SAMPLE_BINANCE_SPOT_DIR
from keel.data.instruments import binance_spot_instruments
from keel.data.quality import check_table
from keel.data.quality import load_check_policies

SAMPLE_RECORDING = SAMPLE_BINANCE_SPOT_DIR / "btcusdt_20240808.gz"
SYMBOL = "BTCUSDT"
DEFAULT_ROWS = 1_000_000
TARGET_RATIO = 10.0
TARGET_ROWS_PER_SECOND = 2_000_000.0
_MS = 1_000_000


@dataclass(frozen=True)
class RouteTiming:
    """
    The best of several timed runs of one route.

    Parameters
    ----------
    name : str
        ``keel`` or ``wrangler``.
    rows : int
        Rows written per run.
    seconds : float
        The fastest run's wall time.

    """

    name: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Return the throughput of the fastest run."""
        return self.rows / self.seconds


@dataclass(frozen=True)
class BenchResult:
    """
    One benchmark run: both routes on the same input, and whether they read back identical.

    Parameters
    ----------
    keel : RouteTiming
        Keel's Arrow route.
    wrangler : RouteTiming
        nautilus's ``TradeTickDataWrangler`` + ``write_data`` route.
    checked : RouteTiming
        Keel's route with the data checks every ingest runs: what ``keel data ingest`` does, so the targets
        are judged on it.
    identical : bool
        True if both catalogs return equal ``TradeTick`` lists.
    read_back_rows : int
        Ticks read back from each catalog.

    """

    keel: RouteTiming
    wrangler: RouteTiming
    checked: RouteTiming
    identical: bool
    read_back_rows: int

    @property
    def targets(self) -> "TargetCheck":
        """Return Keel's checked route judged against the wrangler's."""
        return TargetCheck(self.checked, self.wrangler)


@dataclass(frozen=True)
class TargetCheck:
    """
    One Keel route against nautilus's wrangler route, judged on the targets of issue 3.

    Parameters
    ----------
    judged : RouteTiming
        The Keel route the targets apply to.
    wrangler : RouteTiming
        The wrangler route, timed in the same run on the same input.

    """

    judged: RouteTiming
    wrangler: RouteTiming

    @property
    def ratio(self) -> float:
        """Return the judged route's throughput over the wrangler's."""
        return self.judged.rows_per_second / self.wrangler.rows_per_second

    @property
    def ratio_target_met(self) -> bool:
        """Return True if the judged route is at least ``TARGET_RATIO`` times the wrangler's."""
        return self.ratio >= TARGET_RATIO

    @property
    def throughput_target_met(self) -> bool:
        """Return True if the judged route writes at least ``TARGET_ROWS_PER_SECOND``."""
        return self.judged.rows_per_second >= TARGET_ROWS_PER_SECOND

    def report_lines(self) -> list[str]:
        """Return the ratio and target lines of a report."""
        name = self.judged.name
        return [
            f"  ratio       {self.ratio:8.1f}x ({name} / wrangler)",
            f"  target {name} >= {TARGET_RATIO:.0f}x the wrangler route: {'PASS' if self.ratio_target_met else 'FAIL'}",
            f"  target {name} >= {TARGET_ROWS_PER_SECOND:,.0f} rows/s: {'PASS' if self.throughput_target_met else 'FAIL'}",
        ]

    def result_dict(self) -> dict[str, object]:
        """Return the ratio and verdicts as plain JSON-ready values."""
        return {
            "ratio": self.ratio,
            "ratio_target": {"target": TARGET_RATIO, "passed": self.ratio_target_met},
            "throughput_target": {"target": TARGET_ROWS_PER_SECOND, "passed": self.throughput_target_met},
        }


def sample_trades(recording: Path = SAMPLE_RECORDING, symbol: str = SYMBOL) -> tuple[pl.DataFrame, Instrument]:
    """
    Read a recording's real trades as venue strings, with the instrument from the shipped exchangeInfo.

    Returns
    -------
    tuple[pl.DataFrame, Instrument]
        Columns ``price``, ``quantity`` (decimal strings), ``buyer_maker`` (bool), ``trade_id`` (Int64),
        ``ts_event`` (UInt64 ns, exchange time); and the ``CurrencyPair``.

    """
    recorded = read_recording(recording).columns[symbol].trades
    trades = recorded.select(
        "price",
        pl.col("size").alias("quantity"),
        (pl.col("aggressor_side") == AGGRESSOR_SELLER).alias("buyer_maker"),
        pl.col("trade_id").cast(pl.Int64),
        pl.col("ts_event").cast(pl.UInt64),
    )
    # Binance's trade time has millisecond resolution and can step back across trades matched in one
    # engine batch; the catalog needs ts_init (= ts_event here) sorted, and a stable sort keeps id order.
    trades = trades.sort("ts_event", maintain_order=True)
    instrument = binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {symbol})[symbol]
    return trades, instrument


def repeat_trades(trades: pl.DataFrame, rows: int) -> pl.DataFrame:
    """
    Repeat ``trades`` until it has ``rows`` rows (then cut), shifting time and ids per repetition.

    Repetition ``k`` adds ``k * (span + 1 ms)`` to every timestamp and ``k * (id range)`` to every trade id,
    so the result is sorted by time, its ids are unique, and prices/sizes/sides are the real ones.
    """
    span = int(trades["ts_event"].max()) - int(trades["ts_event"].min()) + _MS
    id_range = int(trades["trade_id"].max()) - int(trades["trade_id"].min()) + 1
    copies = -(-rows // trades.height)
    repeated = pl.concat(
        [
            trades.with_columns(
                pl.col("ts_event") + pl.lit(copy * span, dtype=pl.UInt64),
                pl.col("trade_id") + copy * id_range,
            )
            for copy in range(copies)
        ]
    )
    return repeated.head(rows)


def keel_frame(trades: pl.DataFrame, instrument: Instrument) -> pl.DataFrame:
    """
    Check and convert the venue strings into the trade-tick catalog frame, as the ingest sources do.

    The same function the sources use for decimal columns: ``fixed_point.checked_fixed_columns`` (one
    parallel pass over both columns, refusing values that are not decimals on the instrument's grid).
    """
    rows = pl.int_range(1, trades.height + 1, eager=True)
    fixed = checked_fixed_columns(trades, {"price": instrument.price_precision, "quantity": instrument.size_precision}, rows, SAMPLE_RECORDING)
    return pl.DataFrame(
        {
            "price": fixed["price"],
            "size": fixed["quantity"],
            "aggressor_side": trades.select(
                pl.when(pl.col("buyer_maker")).then(AGGRESSOR_SELLER).otherwise(AGGRESSOR_BUYER).cast(pl.UInt8)
            ).to_series(),
            "trade_id": trades["trade_id"].cast(pl.String),
            "ts_event": trades["ts_event"],
            "ts_init": trades["ts_event"],
        }
    )


def write_frame(frame: pl.DataFrame, instrument: Instrument, catalog: Path) -> Path:
    """Write a trade-tick frame into the catalog, staged then renamed (``arrow_table`` + ``write_catalog_file``)."""
    first_ts, last_ts = int(frame["ts_init"][0]), int(frame["ts_init"][-1])
    target = catalog / relative_path(TRADE_TICK, instrument.id.value, first_ts, last_ts)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.tmp")
    write_catalog_file(arrow_table(TRADE_TICK, frame, instrument), staged)
    os.replace(staged, target)
    return target


def write_keel(trades: pl.DataFrame, instrument: Instrument, catalog: Path) -> Path:
    """Keel's route: check and convert the decimal strings (:func:`keel_frame`), then write (:func:`write_frame`)."""
    return write_frame(keel_frame(trades, instrument), instrument, catalog)


def write_keel_checked(trades: pl.DataFrame, instrument: Instrument, catalog: Path) -> Path:
    """Keel's route plus the data checks every ingest runs (``configs/data_checks.yaml`` policies) before writing."""
    frame = keel_frame(trades, instrument)
    result = check_table(TRADE_TICK, frame, load_check_policies(), instrument.id.value, SAMPLE_RECORDING)
    return write_frame(result.frame, instrument, catalog)


def write_wrangler(trades: pl.DataFrame, instrument: Instrument, catalog: Path) -> None:
    """nautilus's route: floats in a pandas frame, ``TradeTickDataWrangler.process``, ``write_data``."""
    import warnings

    import pandas as pd
    from nautilus_trader.persistence.wranglers import TradeTickDataWrangler

    frame = trades.select(
        pl.col("price").cast(pl.Float64),
        pl.col("quantity").cast(pl.Float64),
        pl.col("buyer_maker"),
        pl.col("trade_id").cast(pl.String),
    ).to_pandas()
    frame.index = pd.to_datetime(trades["ts_event"].to_numpy().astype("int64"), unit="ns", utc=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the v1 wrangler is the documented route still
        ticks = TradeTickDataWrangler(instrument).process(frame)
    ParquetDataCatalog(str(catalog)).write_data(ticks)


def time_route(name: str, rows: int, write: Callable[[Path], object], work_dir: Path, repeats: int) -> tuple[RouteTiming, Path]:
    """
    Run ``write(catalog)`` ``repeats`` times, each into a fresh catalog ``work_dir / name``, and keep the fastest.

    Returns
    -------
    tuple[RouteTiming, Path]
        The timing of ``rows`` rows and the catalog of the last run (kept for the read-back check).

    """
    best = float("inf")
    catalog = work_dir / name
    for _ in range(repeats):
        shutil.rmtree(catalog, ignore_errors=True)
        started = time.perf_counter()
        write(catalog)
        best = min(best, time.perf_counter() - started)
    return RouteTiming(name, rows, best), catalog


@contextmanager
def bench_folder(work_dir: Path | None, prefix: str) -> Iterator[Path]:
    """Yield ``work_dir``, or a temporary folder removed afterwards when it is None."""
    if work_dir is not None:
        yield Path(work_dir)
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_back(catalog_a: Path, catalog_b: Path, instrument: Instrument) -> tuple[bool, int]:
    """Return whether both catalogs hold equal trade ticks for ``instrument``, and how many each holds."""
    ticks_a = ParquetDataCatalog(str(catalog_a)).trade_ticks(instrument_ids=[instrument.id.value])
    ticks_b = ParquetDataCatalog(str(catalog_b)).trade_ticks(instrument_ids=[instrument.id.value])
    return ticks_a == ticks_b and len(ticks_a) > 0, len(ticks_a)


def run(rows: int = DEFAULT_ROWS, repeats: int = 3, work_dir: Path | None = None) -> BenchResult:
    """
    Measure both routes on ``rows`` trades built from the sample, then compare what they wrote.

    Parameters
    ----------
    rows : int
        Input rows (the sample's trades repeated, see :func:`repeat_trades`).
    repeats : int
        Timed runs per route; the fastest counts.
    work_dir : Path, optional
        Where the two catalogs go; a temporary folder (removed afterwards) when None.

    Returns
    -------
    BenchResult

    """
    trades, instrument = sample_trades()
    trades = repeat_trades(trades, rows)
    with bench_folder(work_dir, "keel-bench-") as folder:
        keel, keel_catalog = time_route("keel", rows, lambda catalog: write_keel(trades, instrument, catalog), folder, repeats)
        wrangler, wrangler_catalog = time_route("wrangler", rows, lambda catalog: write_wrangler(trades, instrument, catalog), folder, repeats)
        checked, checked_catalog = time_route("keel+checks", rows, lambda catalog: write_keel_checked(trades, instrument, catalog), folder, repeats)
        identical, read_back_rows = read_back(keel_catalog, wrangler_catalog, instrument)
        identical = identical and read_back(checked_catalog, wrangler_catalog, instrument)[0]
    return BenchResult(keel, wrangler, checked, identical, read_back_rows)


def report(result: BenchResult) -> str:
    """Return the human-readable report of a run."""
    lines = [f"trade-tick ingest, {result.keel.rows:,} rows (sample BTCUSDT trades repeated), best of the runs:"]
    for timing in (result.keel, result.wrangler, result.checked):
        lines.append(f"  {timing.name:<11} {timing.seconds:8.3f} s  {timing.rows_per_second:>14,.0f} rows/s")
    lines.append(
        f"  read-back: {result.read_back_rows:,} ticks per catalog (all three), "
        + ("identical" if result.identical else "DIFFERENT")
    )
    lines.extend(result.targets.report_lines())
    return "\n".join(lines)


def result_dict(result: BenchResult) -> dict[str, object]:
    """Return a run's numbers and verdicts as plain JSON-ready values."""
    routes = {
        timing.name: {"rows": timing.rows, "seconds": timing.seconds, "rows_per_second": timing.rows_per_second}
        for timing in (result.keel, result.wrangler, result.checked)
    }
    return {"routes": routes, "read_back_identical": result.identical, "read_back_rows": result.read_back_rows, **result.targets.result_dict()}
