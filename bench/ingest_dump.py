"""
End-to-end ingest of a Binance trades dump file: ``keel data ingest binance-dump`` against nautilus's route.

Where ``bench.ingest_trades`` starts both routes from columns already in memory, this one starts from a file
on disk, as a quant does: a data.binance.vision spot ``trades`` CSV (no header; id, price, qty, quote_qty,
time in ms, is_buyer_maker, is_best_match) written from the real trades of the shipped sample, repeated as in
:func:`bench.ingest_trades.repeat_trades`. Both routes end with the trades in a ``ParquetDataCatalog``:

- Keel: :func:`keel.data.binance_dumps.ingest_binance_dump`, the function behind the CLI: read and split the
  file, check every field (ids contiguous, times not backwards, decimals on the instrument's grid), run the
  data checks of ``configs/data_checks.yaml``, and commit the catalog all or nothing.
- Wrangler: ``pandas.read_csv``, ``TradeTickDataWrangler.process`` (one Cython ``TradeTick`` per row) and
  ``ParquetDataCatalog.write_data``, checking nothing.

The read-back check requires both catalogs to return equal ``TradeTick`` lists. Same targets as
``bench.ingest_trades`` (issue 3): Keel at least 10x the wrangler route and at least 2M rows/s.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from bench.ingest_trades import SYMBOL
from bench.ingest_trades import RouteTiming
from bench.ingest_trades import TargetCheck
from bench.ingest_trades import bench_folder
from bench.ingest_trades import read_back
from bench.ingest_trades import repeat_trades
from bench.ingest_trades import sample_trades
from bench.ingest_trades import time_route
from keel.data.binance_dumps import TRADES
from keel.data.binance_dumps import ingest_binance_dump

DUMP_COLUMNS = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]
_NANOS_PER_MILLI = 1_000_000


@dataclass(frozen=True)
class DumpBenchResult:
    """
    One run of both routes on the same dump file.

    Parameters
    ----------
    keel : RouteTiming
        ``ingest_binance_dump`` (parse, field checks, data checks, atomic commit).
    wrangler : RouteTiming
        ``pandas.read_csv`` + ``TradeTickDataWrangler`` + ``write_data``.
    file_bytes : int
        Size of the CSV both routes read.
    identical : bool
        True if both catalogs return equal ``TradeTick`` lists.
    read_back_rows : int
        Ticks read back from each catalog.

    """

    keel: RouteTiming
    wrangler: RouteTiming
    file_bytes: int
    identical: bool
    read_back_rows: int

    @property
    def targets(self) -> TargetCheck:
        """Return Keel's route judged against the wrangler's."""
        return TargetCheck(self.keel, self.wrangler)


def write_dump_csv(trades: pl.DataFrame, path: Path) -> Path:
    """Write trades (``sample_trades`` columns) as a data.binance.vision spot trades CSV, without header."""
    # quote_qty is price x qty as Binance prints it; neither route reads it, so a float product will do.
    dump = trades.select(
        pl.col("trade_id").alias("id"),
        pl.col("price"),
        pl.col("quantity").alias("qty"),
        (pl.col("price").cast(pl.Float64) * pl.col("quantity").cast(pl.Float64)).round(8).alias("quote_qty"),
        (pl.col("ts_event") // _NANOS_PER_MILLI).alias("time"),
        pl.when(pl.col("buyer_maker")).then(pl.lit("True")).otherwise(pl.lit("False")).alias("is_buyer_maker"),
        pl.lit("True").alias("is_best_match"),
    )
    dump.write_csv(path, include_header=False)
    return path


def ingest_keel(path: Path, instrument: Instrument, catalog: Path) -> None:
    """Keel's route: the function ``keel data ingest binance-dump trades`` runs."""
    ingest_binance_dump(TRADES, [path], catalog, {SYMBOL: instrument})


def ingest_wrangler(path: Path, instrument: Instrument, catalog: Path) -> None:
    """nautilus's route: pandas reads the CSV, the wrangler builds ticks, the catalog writes them."""
    import pandas as pd
    from nautilus_trader.persistence.wranglers import TradeTickDataWrangler

    frame = pd.read_csv(path, header=None, names=DUMP_COLUMNS, dtype={"id": str})
    frame = frame.rename(columns={"qty": "quantity", "is_buyer_maker": "buyer_maker", "id": "trade_id"})
    frame.index = pd.to_datetime(frame["time"], unit="ms", utc=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the v1 wrangler is the documented route still
        ticks = TradeTickDataWrangler(instrument).process(frame[["price", "quantity", "buyer_maker", "trade_id"]])
    ParquetDataCatalog(str(catalog)).write_data(ticks)


def run(rows: int, repeats: int = 3, work_dir: Path | None = None) -> DumpBenchResult:
    """
    Write ``rows`` sample trades as a dump CSV, ingest it by both routes, and compare what they wrote.

    Parameters
    ----------
    rows : int
        Trades in the file.
    repeats : int
        Timed runs per route; the fastest counts.
    work_dir : Path, optional
        Where the file and catalogs go; a temporary folder (removed afterwards) when None.

    Returns
    -------
    DumpBenchResult

    """
    trades, instrument = sample_trades()
    trades = repeat_trades(trades, rows)
    with bench_folder(work_dir, "keel-bench-dump-") as folder:
        path = write_dump_csv(trades, folder / f"{SYMBOL}-trades-2024-08-08.csv")
        keel, keel_catalog = time_route("keel", rows, lambda catalog: ingest_keel(path, instrument, catalog), folder, repeats)
        wrangler, wrangler_catalog = time_route("wrangler", rows, lambda catalog: ingest_wrangler(path, instrument, catalog), folder, repeats)
        identical, read_back_rows = read_back(keel_catalog, wrangler_catalog, instrument)
        file_bytes = path.stat().st_size
    return DumpBenchResult(keel, wrangler, file_bytes, identical, read_back_rows)


def report(result: DumpBenchResult) -> str:
    """Return the human-readable report of a run."""
    lines = [
        f"dump file ingest, end to end: {result.keel.rows:,} trades in a {result.file_bytes / 1e6:.1f} MB Binance trades CSV, best of the runs:"
    ]
    for timing in (result.keel, result.wrangler):
        lines.append(f"  {timing.name:<11} {timing.seconds:8.3f} s  {timing.rows_per_second:>14,.0f} rows/s")
    lines.append(f"  read-back: {result.read_back_rows:,} ticks per catalog, " + ("identical" if result.identical else "DIFFERENT"))
    lines.extend(result.targets.report_lines())
    return "\n".join(lines)


def result_dict(result: DumpBenchResult) -> dict[str, object]:
    """Return a run's numbers and verdicts as plain JSON-ready values."""
    return {
        "routes": {
            timing.name: {"rows": timing.rows, "seconds": timing.seconds, "rows_per_second": timing.rows_per_second}
            for timing in (result.keel, result.wrangler)
        },
        "file_bytes": result.file_bytes,
        "read_back_identical": result.identical,
        "read_back_rows": result.read_back_rows,
        **result.targets.result_dict(),
    }
