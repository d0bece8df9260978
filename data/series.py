"""Price and funding series of a catalog, read straight from its Parquet files for P&L and charts.

The P&L of a backtest run and of a recorded live session marks positions at trade prints and settles perpetual
funding from the catalog's funding rates; both read them here, as polars frames, without building nautilus objects
(a few hundred thousand ``TradeTick`` objects cost seconds; the columns cost milliseconds).
"""

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from keel.data.catalog_layout import BAR
from keel.data.catalog_layout import FUNDING_RATE_UPDATE
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import catalog_files
from keel.data.inventory import read_columns

PRICES_SCHEMA: dict[str, pl.DataType] = {"ts": pl.Int64(), "instrument_id": pl.String(), "price": pl.Float64()}
FUNDING_SCHEMA: dict[str, pl.DataType] = {"ts": pl.Int64(), "instrument_id": pl.String(), "rate": pl.Float64()}
MARK_STEP_NS = 1_000_000_000


def trade_prices(catalog: Path, instrument_ids: Sequence[str], start_ns: int | None = None, end_ns: int | None = None) -> pl.DataFrame:
    """
    Return the trade prints of ``instrument_ids`` in ``[start_ns, end_ns]``: ``ts`` (``ts_init``), ``instrument_id``, ``price``.

    Sorted by ``ts`` (stable, so prints of one instant keep their catalog order).
    """
    frames = []
    files = catalog_files(Path(catalog))
    for instrument_id in instrument_ids:
        selected = [item for item in files if item.data_type == TRADE_TICK and item.identifier == instrument_id]
        columns = read_columns(selected, ["ts_init", "price"], start_ns=start_ns, end_ns=end_ns)
        if columns.height:
            frames.append(
                columns.select(
                    pl.col("ts_init").cast(pl.Int64).alias("ts"),
                    pl.lit(instrument_id).alias("instrument_id"),
                    pl.col("price").cast(pl.Float64),
                ),
            )
    if not frames:
        return pl.DataFrame(schema=PRICES_SCHEMA)
    return pl.concat(frames).sort("ts", maintain_order=True).cast(PRICES_SCHEMA)


def funding_rates(catalog: Path, instrument_ids: Sequence[str], start_ns: int | None = None, end_ns: int | None = None) -> pl.DataFrame:
    """
    Return the funding settlements of ``instrument_ids`` in ``[start_ns, end_ns]``: ``ts``, ``instrument_id``, ``rate``.

    Instruments without funding data (spot pairs) contribute nothing.
    """
    frames = []
    files = catalog_files(Path(catalog))
    for instrument_id in instrument_ids:
        selected = [item for item in files if item.data_type == FUNDING_RATE_UPDATE and item.identifier == instrument_id]
        columns = read_columns(selected, ["ts_event", "rate"], start_ns=start_ns, end_ns=end_ns)
        if columns.height:
            # nautilus stores the rate as a JSON-quoted decimal string ('"0.0001"').
            frames.append(
                columns.select(
                    pl.col("ts_event").cast(pl.Int64).alias("ts"),
                    pl.lit(instrument_id).alias("instrument_id"),
                    pl.col("rate").cast(pl.String).str.strip_chars('"').cast(pl.Float64).alias("rate"),
                ),
            )
    if not frames:
        return pl.DataFrame(schema=FUNDING_SCHEMA)
    return pl.concat(frames).sort("ts", maintain_order=True).cast(FUNDING_SCHEMA)


def bar_closes(catalog: Path, instrument_ids: Sequence[str], start_ns: int | None = None, end_ns: int | None = None) -> pl.DataFrame:
    """
    Return bar closes as prices (``PRICES_SCHEMA``), at each bar's ``ts_init`` (its close time).

    For instruments whose catalog holds bars but no trade prints; with several bar types of one instrument the
    finest (most bars) is used.
    """
    frames = []
    files = catalog_files(Path(catalog))
    for instrument_id in instrument_ids:
        by_type: dict[str, list] = {}
        for item in files:
            if item.data_type == BAR and item.identifier.startswith(f"{instrument_id}-"):
                by_type.setdefault(item.identifier, []).append(item)
        closes = [read_columns(selected, ["ts_init", "close"], start_ns=start_ns, end_ns=end_ns) for selected in by_type.values()]
        closes = [frame for frame in closes if frame.height]
        if closes:
            finest = max(closes, key=lambda frame: frame.height)
            frames.append(
                finest.select(
                    pl.col("ts_init").cast(pl.Int64).alias("ts"),
                    pl.lit(instrument_id).alias("instrument_id"),
                    pl.col("close").cast(pl.Float64).alias("price"),
                ),
            )
    if not frames:
        return pl.DataFrame(schema=PRICES_SCHEMA)
    return pl.concat(frames).sort("ts", maintain_order=True).cast(PRICES_SCHEMA)


def mark_prices(
    catalog: Path,
    instrument_ids: Sequence[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    step_ns: int = MARK_STEP_NS,
) -> pl.DataFrame:
    """
    Return the prices positions are marked at (``PRICES_SCHEMA``): the last trade print of every ``step_ns``
    (default one second) with the print's own time, or bar closes for instruments without prints.

    One print per second is what P&L curves, drawdowns and funding marks need, and it keeps a day of a busy symbol
    (millions of prints) at 86,400 rows an instrument. Files are read one at a time, so memory holds one file's
    prints, not the window's. The window's last print is always kept: positions are marked at it.
    """
    frames = []
    files = catalog_files(Path(catalog))
    without = []
    for instrument_id in instrument_ids:
        selected = [item for item in files if item.data_type == TRADE_TICK and item.identifier == instrument_id]
        per_file = [_last_per_step(read_columns([item], ["ts_init", "price"], start_ns=start_ns, end_ns=end_ns), step_ns) for item in selected]
        per_file = [frame for frame in per_file if frame.height]
        if not per_file:
            without.append(instrument_id)
            continue
        # A step cut by a file boundary appears in both files: keep its later print.
        merged = _last_per_step(pl.concat(per_file), step_ns)
        frames.append(merged.select("ts", pl.lit(instrument_id).alias("instrument_id"), "price"))
    if without:
        frames.append(bar_closes(catalog, without, start_ns, end_ns))
    if not frames:
        return pl.DataFrame(schema=PRICES_SCHEMA)
    return pl.concat([frame.cast(PRICES_SCHEMA) for frame in frames]).sort("ts", maintain_order=True)


def _last_per_step(prints: pl.DataFrame, step_ns: int) -> pl.DataFrame:
    if prints.height == 0:
        return pl.DataFrame(schema={"ts": pl.Int64(), "price": pl.Float64()})
    if "ts_init" in prints.columns:
        prints = prints.select(pl.col("ts_init").cast(pl.Int64).alias("ts"), pl.col("price").cast(pl.Float64))
    return (
        prints.with_columns((pl.col("ts") // step_ns).alias("step"))
        .group_by("step", maintain_order=True)
        .agg(pl.col("ts").last(), pl.col("price").last())
        .select("ts", "price")
    )
