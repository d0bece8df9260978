"""
How many taker fills got a price the market did not offer: each fill against the quoted top at its time.

A taker buy cannot be filled below the best ask the venue showed, nor a taker sell above the best bid. For every
taker fill of a fills table (a backtest run or a live session, ``keel.fills`` layout) this module looks up the
latest quote (bookTicker) of its instrument at or before the fill's ``ts_event`` and measures the *improvement*:
how much better than that quote the fill was, in bps of the quote (positive = better than the market offered).
A small positive improvement can be real (a quote update lost between two prints); a share of fills better by
more than half a basis point is a fill model filling on a stale book.

The quotes are read straight from the catalog's Parquet files (``keel.data.inventory.read_columns``), not
through nautilus or any fill model, so the audit does not share the model it checks.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from keel.data.catalog_layout import catalog_files
from keel.data.inventory import read_columns

DEFAULT_THRESHOLD_BPS = 0.5
DEFAULT_MAX_SHARE = 0.02  # the fidelity target: at most 2% of taker fills better than the quote by > 0.5 bp
PERCENTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

AUDIT_SCHEMA: dict[str, pl.DataType] = {
    "ts_event": pl.Int64(),
    "instrument_id": pl.String(),
    "client_order_id": pl.String(),
    "order_side": pl.String(),
    "last_qty": pl.Float64(),
    "last_px": pl.Float64(),
    "quote_ts": pl.Int64(),
    "quoted_px": pl.Float64(),  # best ask for a buy, best bid for a sell
    "quote_age_ms": pl.Float64(),
    "improvement_bps": pl.Float64(),  # + = better for the taker than the quote
}


class FillAuditError(ValueError):
    """The fills or the catalog cannot be audited (no quotes for an instrument that has taker fills)."""


@dataclass(frozen=True)
class FillAudit:
    """
    The audit of a fills table's taker fills against the quoted top.

    Parameters
    ----------
    threshold_bps : float
        Improvement beyond which a fill counts as better than the market offered.
    taker_fills : int
        Taker fills in the table.
    unquoted_fills : int
        Taker fills with no quote of their instrument at or before them (not judged).
    better_than_quote : int
        Judged fills better than the quote by more than ``threshold_bps``.
    share_better : float | None
        ``better_than_quote`` over judged fills (None when none could be judged).
    improvement_percentiles_bps : dict[str, float]
        Percentiles (``p1`` ... ``p99``) of the improvement over judged fills.
    mean_improvement_of_better_bps : float | None
        Mean improvement of the fills counted as better.
    fills : pl.DataFrame
        One row per judged fill (``AUDIT_SCHEMA``).

    """

    threshold_bps: float
    taker_fills: int
    unquoted_fills: int
    better_than_quote: int
    share_better: float | None
    improvement_percentiles_bps: dict[str, float]
    mean_improvement_of_better_bps: float | None
    fills: pl.DataFrame

    def to_dict(self) -> dict[str, object]:
        """Return the headline numbers as plain data (``fill_audit.json``)."""
        return {
            "threshold_bps": self.threshold_bps,
            "taker_fills": self.taker_fills,
            "unquoted_fills": self.unquoted_fills,
            "judged_fills": self.fills.height,
            "better_than_quote": self.better_than_quote,
            "share_better": self.share_better,
            "improvement_percentiles_bps": self.improvement_percentiles_bps,
            "mean_improvement_of_better_bps": self.mean_improvement_of_better_bps,
        }


# A quote from before the window's first fill is the one in force at that fill: read from a minute earlier.
_LOOKBACK_NS = 60_000_000_000
_QUOTE_SCHEMA: dict[str, pl.DataType] = {"quote_ts": pl.Int64(), "bid_price": pl.Float64(), "ask_price": pl.Float64()}


def audit_fills(fills: pl.DataFrame, catalog: str | Path, threshold_bps: float = DEFAULT_THRESHOLD_BPS) -> FillAudit:
    """
    Audit the taker fills of ``fills`` against the quotes of ``catalog``.

    Raises
    ------
    FillAuditError
        If an instrument with taker fills has no quotes in the catalog.
    """
    takers = fills.filter(pl.col("liquidity_side") == "TAKER")
    judged = [_audit_instrument(takers.filter(pl.col("instrument_id") == instrument_id), Path(catalog), instrument_id) for instrument_id in sorted(takers["instrument_id"].unique())]
    frame = pl.concat(judged).sort("ts_event") if judged else pl.DataFrame(schema=AUDIT_SCHEMA)
    quoted = frame.filter(pl.col("quoted_px").is_not_null())
    better = quoted.filter(pl.col("improvement_bps") > threshold_bps)
    improvement = quoted["improvement_bps"]
    return FillAudit(
        threshold_bps=threshold_bps,
        taker_fills=takers.height,
        unquoted_fills=frame.height - quoted.height,
        better_than_quote=better.height,
        share_better=better.height / quoted.height if quoted.height else None,
        improvement_percentiles_bps={f"p{round(q * 100)}": float(improvement.quantile(q, interpolation="linear")) for q in PERCENTILES} if quoted.height else {},
        mean_improvement_of_better_bps=float(better["improvement_bps"].mean()) if better.height else None,
        fills=quoted,
    )


def _audit_instrument(takers: pl.DataFrame, catalog: Path, instrument_id: str) -> pl.DataFrame:
    files = [item for item in catalog_files(catalog) if item.data_type == "quote_tick" and item.identifier == instrument_id]
    if not files:
        raise FillAuditError(f"{catalog}: no quote_tick data for {instrument_id}, which has taker fills; the audit needs the venue's quotes (bookTicker)")
    remaining = takers.sort("ts_event")
    first, last = int(remaining["ts_event"].min()), int(remaining["ts_event"].max())
    # One quote file at a time, so a day of quotes is never in memory at once; each file's fills are joined with
    # its quotes and the last quote before it (the one in force when the file's first fill came).
    carried = pl.DataFrame(schema=_QUOTE_SCHEMA)
    judged = []
    for index, item in enumerate(files):
        upper = files[index + 1].first_ts if index + 1 < len(files) else None
        if item.last_ts < first - _LOOKBACK_NS and upper is not None and upper <= first:
            continue
        quotes = read_columns([item], ["ts_init", "bid_price", "ask_price"], start_ns=first - _LOOKBACK_NS, end_ns=last)
        if quotes.height:
            quotes = quotes.select(
                pl.col("ts_init").cast(pl.Int64).alias("quote_ts"),
                pl.col("bid_price").cast(pl.Float64),
                pl.col("ask_price").cast(pl.Float64),
            )
        quotes = pl.concat([carried, quotes.cast(_QUOTE_SCHEMA) if quotes.height else carried.clear()]).sort("quote_ts")
        batch = remaining if upper is None else remaining.filter(pl.col("ts_event") < upper)
        remaining = remaining if upper is None else remaining.filter(pl.col("ts_event") >= upper)
        if batch.height:
            judged.append(_judged(batch, quotes))
        carried = quotes.tail(1)
        if remaining.height == 0:
            break
    if remaining.height and upper is not None:
        judged.append(_judged(remaining, carried))
    return pl.concat(judged) if judged else pl.DataFrame(schema=AUDIT_SCHEMA)


def _judged(takers: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    buy = pl.col("order_side") == "BUY"
    return (
        takers.sort("ts_event")
        .join_asof(quotes, left_on="ts_event", right_on="quote_ts", strategy="backward")
        .with_columns(pl.when(buy).then(pl.col("ask_price")).otherwise(pl.col("bid_price")).alias("quoted_px"))
        .with_columns(
            ((pl.col("ts_event") - pl.col("quote_ts")) / 1e6).alias("quote_age_ms"),
            (pl.when(buy).then(pl.col("quoted_px") - pl.col("last_px")).otherwise(pl.col("last_px") - pl.col("quoted_px")) / pl.col("quoted_px") * 10_000).alias(
                "improvement_bps",
            ),
        )
        .select(list(AUDIT_SCHEMA))
        .cast(AUDIT_SCHEMA)
    )


def write_audit(audit: FillAudit, folder: Path) -> tuple[Path, Path]:
    """Write ``fill_audit.json`` (headline numbers) and ``fill_audit.parquet`` (per fill) into ``folder``."""
    json_path = folder / "fill_audit.json"
    parquet_path = folder / "fill_audit.parquet"
    audit.fills.write_parquet(parquet_path)
    json_path.write_text(json.dumps(audit.to_dict(), indent=2) + "\n")
    return json_path, parquet_path
