"""
One self-contained HTML page showing what a catalog holds: coverage, trade prices and quoted spreads.

The page has a coverage timeline (one line per instrument and data type, broken where the data has a gap; the
gaps themselves drawn in red so that short ones stay visible), then per instrument the trade price and the
quoted spread in basis points over time. Columns are read straight from Parquet (:func:`read_columns`) and
downsampled per series to at most ``max_points`` points by keeping each time bucket's minimum and maximum, so a
one-trade spike survives any zoom level. Plotly's JavaScript is embedded: the file opens offline.
"""

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import catalog_files
from keel.data.inventory import INSTRUMENT_DATA_TYPES
from keel.data.inventory import Gap
from keel.data.inventory import catalog_gaps
from keel.data.inventory import folder_instrument_id
from keel.data.inventory import gap_threshold_ns
from keel.data.inventory import read_columns

DEFAULT_MAX_POINTS = 5000
BASIS_POINTS = 10_000
COVERAGE_TITLE = "coverage"
GAPS_TRACE = "gaps"
_COVERAGE_ROW_HEIGHT = 40  # pixels per coverage line
_SERIES_ROW_HEIGHT = 280
_ROW_SPACING = 90  # pixels between rows: two lines of date labels and the next row's title
_MARGIN_TOP = 100
_MARGIN_BOTTOM = 60


def plot_catalog(
    catalog: Path,
    output: Path,
    instrument_ids: Sequence[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    gap_thresholds: Mapping[str, int] | None = None,
) -> Path:
    """
    Write the catalog's coverage, trade prices and quoted spreads to one self-contained HTML file.

    Parameters
    ----------
    catalog : Path
        The ``ParquetDataCatalog`` root.
    output : Path
        The HTML file to write; its folder is created if missing.
    instrument_ids : Sequence[str], optional
        Only these instruments; all when None.
    start_ns : int, optional
        Only data with ``ts_init >= start_ns``.
    end_ns : int, optional
        Only data with ``ts_init <= end_ns``.
    max_points : int, default 5000
        Points per price or spread series at most (at least 2).
    gap_thresholds : Mapping[str, int], optional
        Gap threshold in nanoseconds per data type, as for :func:`keel.data.inventory.catalog_gaps`.

    Returns
    -------
    Path
        ``output``.

    """
    figure = catalog_figure(catalog, instrument_ids, start_ns, end_ns, max_points, gap_thresholds)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(output, include_plotlyjs=True, full_html=True)
    return output


def catalog_figure(
    catalog: Path,
    instrument_ids: Sequence[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    gap_thresholds: Mapping[str, int] | None = None,
) -> go.Figure:
    """
    Build the figure :func:`plot_catalog` writes.

    Parameters
    ----------
    catalog : Path
        The ``ParquetDataCatalog`` root.
    instrument_ids : Sequence[str], optional
        Only these instruments; all when None.
    start_ns : int, optional
        Only data with ``ts_init >= start_ns``.
    end_ns : int, optional
        Only data with ``ts_init <= end_ns``.
    max_points : int, default 5000
        Points per price or spread series at most (at least 2).
    gap_thresholds : Mapping[str, int], optional
        Gap threshold in nanoseconds per data type.

    Returns
    -------
    go.Figure
        Traces named ``<folder> <data type>`` (coverage), ``gaps``, ``<instrument> trade price`` and
        ``<instrument> spread bps``.

    Raises
    ------
    ValueError
        If ``max_points`` is below 2.

    """
    if max_points < 2:
        raise ValueError(f"max_points {max_points}: expected at least 2 (a bucket keeps its minimum and maximum)")
    catalog = Path(catalog)
    files_by_folder: dict[tuple[str, str], list[CatalogFile]] = {}
    for item in catalog_files(catalog):
        if item.data_type in INSTRUMENT_DATA_TYPES:
            continue
        if instrument_ids is None or folder_instrument_id(item.data_type, item.identifier) in instrument_ids:
            files_by_folder.setdefault((item.identifier, item.data_type), []).append(item)
    series = []  # (title, trace name, timestamps, values)
    instruments = sorted({identifier for identifier, data_type in files_by_folder if data_type in (TRADE_TICK, QUOTE_TICK)})
    for instrument_id in instruments:
        trades = read_columns(files_by_folder.get((instrument_id, TRADE_TICK), []), ["ts_init", "price"], start_ns, end_ns)
        if trades.height:
            prices = trades.select(pl.col("ts_init").cast(pl.Int64), pl.col("price").cast(pl.Float64).alias("value"))
            threshold = gap_threshold_ns(TRADE_TICK, instrument_id, gap_thresholds)
            series.append((f"{instrument_id} trade price", f"{instrument_id} trade price", *_line(prices, max_points, threshold)))
        quotes = read_columns(
            files_by_folder.get((instrument_id, QUOTE_TICK), []), ["ts_init", "bid_price", "ask_price"], start_ns, end_ns
        )
        if quotes.height:
            bid, ask = pl.col("bid_price").cast(pl.Float64), pl.col("ask_price").cast(pl.Float64)
            spreads = quotes.select(pl.col("ts_init").cast(pl.Int64), ((ask - bid) / ((ask + bid) / 2) * BASIS_POINTS).alias("value"))
            threshold = gap_threshold_ns(QUOTE_TICK, instrument_id, gap_thresholds)
            title = f"{instrument_id} quoted spread (bps)"
            series.append((title, f"{instrument_id} spread bps", *_line(spreads, max_points, threshold)))
    gaps = catalog_gaps(catalog, gap_thresholds, instrument_ids)
    return _figure(catalog, _coverage(files_by_folder, gaps, start_ns, end_ns), series)


def min_max_downsample(frame: pl.DataFrame, max_points: int) -> pl.DataFrame:
    """
    Keep at most ``max_points`` rows of a time series: each time bucket's minimum and maximum value.

    Parameters
    ----------
    frame : pl.DataFrame
        Columns ``ts_init`` (Int64 ns, sorted) and ``value`` (Float64).
    max_points : int
        At least 2; ``max_points // 2`` equal time buckets are used.

    Returns
    -------
    pl.DataFrame
        The kept rows in time order: the series' overall minimum and maximum are always among them.

    """
    if frame.height <= max_points:
        return frame
    buckets = max_points // 2
    first, last = frame["ts_init"][0], frame["ts_init"][-1]
    span = max(last - first, 1)
    # Float position: (ts - first) * buckets would overflow int64 for spans of years in nanoseconds.
    bucket = ((pl.col("ts_init") - first).cast(pl.Float64) / span * buckets).floor().cast(pl.Int64).clip(0, buckets - 1)
    indexed = frame.with_row_index("row").with_columns(bucket.alias("bucket"))
    extremes = indexed.group_by("bucket").agg(
        pl.col("row").get(pl.col("value").arg_min()).alias("lowest"),
        pl.col("row").get(pl.col("value").arg_max()).alias("highest"),
    )
    keep = pl.concat([extremes["lowest"], extremes["highest"]]).unique().sort()
    return frame[keep.to_list()]


def _line(frame: pl.DataFrame, max_points: int, gap_threshold: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Downsample a series and break its line (a NaN point) wherever the data has a gap."""
    kept = min_max_downsample(frame, max_points)
    timestamps = kept["ts_init"].to_numpy()
    values = kept["value"].to_numpy()
    if gap_threshold is not None and len(timestamps) > 1:
        # Without the break, plotly draws a straight line across a missing day as if it held data.
        breaks = np.flatnonzero(np.diff(timestamps) > gap_threshold) + 1
        timestamps = np.insert(timestamps, breaks, timestamps[breaks - 1] + 1)
        values = np.insert(values, breaks, np.nan)
    return timestamps.astype("datetime64[ns]"), values


def _coverage(
    files_by_folder: dict[tuple[str, str], list[CatalogFile]],
    gaps: list[Gap],
    start_ns: int | None,
    end_ns: int | None,
) -> list[tuple[str, list[tuple[int, int]], list[tuple[int, int]]]]:
    """Return per folder its label, covered intervals and gaps, clipped to ``[start_ns, end_ns]``."""
    lower = start_ns if start_ns is not None else -(2**63)
    upper = end_ns if end_ns is not None else 2**63 - 1
    gaps_by_folder: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for gap in gaps:
        gaps_by_folder.setdefault((gap.identifier, gap.data_type), []).append((gap.start_ns, gap.end_ns))
    coverage = []
    for (identifier, data_type), files in sorted(files_by_folder.items()):
        folder_gaps = gaps_by_folder.get((identifier, data_type), [])
        # The file names hold each file's first and last ts_init: the folder's extent needs no read.
        edges = [files[0].first_ts, *(edge for gap in folder_gaps for edge in gap), max(item.last_ts for item in files)]
        covered = [
            (max(begin, lower), min(end, upper)) for begin, end in zip(edges[::2], edges[1::2], strict=True) if begin <= upper and end >= lower
        ]
        shown_gaps = [(max(begin, lower), min(end, upper)) for begin, end in folder_gaps if begin <= upper and end >= lower]
        if covered or shown_gaps:
            coverage.append((f"{identifier} {data_type}", covered, shown_gaps))
    return coverage


def _segments(intervals: list[tuple[int, int]]) -> list[np.datetime64 | None]:
    """Flatten intervals into plotly's ``start, end, None`` form: one trace, one line per interval."""
    points: list[np.datetime64 | None] = []
    for begin, end in intervals:
        points.extend((np.datetime64(begin, "ns"), np.datetime64(end, "ns"), None))
    return points


def _figure(
    catalog: Path,
    coverage: list[tuple[str, list[tuple[int, int]], list[tuple[int, int]]]],
    series: list[tuple[str, str, np.ndarray, np.ndarray]],
) -> go.Figure:
    heights = [_COVERAGE_ROW_HEIGHT * max(len(coverage), 1) + 60] + [_SERIES_ROW_HEIGHT] * len(series)
    # Plotly takes the spacing as a fraction of the plot area: fixed pixels keep titles off the axis labels above.
    plot_area = sum(heights) + _ROW_SPACING * (len(heights) - 1)
    figure = make_subplots(
        rows=len(heights),
        cols=1,
        shared_xaxes=True,
        row_heights=heights,
        vertical_spacing=_ROW_SPACING / plot_area,
        subplot_titles=[COVERAGE_TITLE, *(title for title, _, _, _ in series)],
    )
    gap_x: list[np.datetime64 | None] = []
    gap_y: list[str | None] = []
    gap_text: list[str | None] = []
    for label, covered, gaps in coverage:
        x = _segments(covered)
        figure.add_trace(
            go.Scatter(
                x=x, y=[label if point is not None else None for point in x], name=label, mode="lines", line={"width": 14}, hoverinfo="x+name"
            ),
            row=1,
            col=1,
        )
        for begin, end in gaps:
            duration = f"gap {(end - begin) / 1e9:,.1f} s"
            gap_x.extend((np.datetime64(begin, "ns"), np.datetime64(end, "ns"), None))
            gap_y.extend((label, label, None))
            gap_text.extend((duration, duration, None))
    if gap_x:
        figure.add_trace(
            go.Scatter(
                x=gap_x, y=gap_y, text=gap_text, name=GAPS_TRACE, mode="lines+markers", line={"color": "red", "width": 6},
                marker={"color": "red", "size": 8, "symbol": "line-ns-open"}, hoverinfo="text+x",
            ),
            row=1,
            col=1,
        )
    for row, (title, name, timestamps, values) in enumerate(series, start=2):
        figure.add_trace(go.Scatter(x=timestamps, y=values, name=name, mode="lines", line={"width": 1}), row=row, col=1)
        figure.update_yaxes(title_text="bps" if title.endswith("(bps)") else "price", row=row, col=1)
    figure.update_yaxes(autorange="reversed", row=1, col=1)
    figure.update_xaxes(showticklabels=True)
    figure.update_layout(
        title=f"Catalog {catalog}",
        height=plot_area + _MARGIN_TOP + _MARGIN_BOTTOM,
        showlegend=False,
        hovermode="closest",
        margin={"l": 260, "t": _MARGIN_TOP, "b": _MARGIN_BOTTOM},
    )
    return figure
