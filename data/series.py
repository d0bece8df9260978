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


def mark_prices(catalog: Path, instrument_ids: Sequence[str], start_ns: int | None = None, end_ns: int | None = None) -> pl.DataFrame:
    """Return the prices positions are marked at: trade prints, or bar closes for instruments without prints."""
    prints = trade_prices(catalog, instrument_ids, start_ns, end_ns)
    without = [instrument_id for instrument_id in instrument_ids if instrument_id not in set(prints["instrument_id"])]
    if not without:
        return prints
    return pl.concat([prints, bar_closes(catalog, without, start_ns, end_ns)]).sort("ts", maintain_order=True)
