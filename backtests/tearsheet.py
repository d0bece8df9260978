"""The run's tearsheet: one small HTML file with inline SVG charts, readable offline, without JavaScript.

Per instrument, its price with the strategy's fills; then the P&L of each instrument and of the total, and the
drawdown of the total. Charts are drawn here as SVG: a line keeps, per pixel column, the lowest and highest
value it passed through, so a spike stays visible and a file stays small (tens of kB for a day of ticks)
whatever the number of rows. A fill marker tells its time, side, quantity and price on hover (SVG ``<title>``).

The chart pieces (:class:`Line`, :class:`Markers`, :func:`time_panel`, :class:`Frame`) are shared with the gate
report (``keel.validation.html_report``).
"""

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

# Price and equity are drawn at most this many points: enough for the eye, small enough for a browser.
MAX_POINTS = 5_000
# The instrument_id of the equity rows holding the total P&L (keel.pnl.TOTAL).
TOTAL = "TOTAL"
# Chart geometry, in SVG user units (the SVG scales to the page width).
WIDTH = 1000
MARGIN_LEFT = 72
MARGIN_RIGHT = 12
MARGIN_TOP = 8
MARGIN_BOTTOM = 22
# Fill markers carry a hover text up to this many per series; beyond, the text would outweigh the chart.
MAX_MARKER_TITLES = 300
INSTRUMENT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
BUY_COLOUR = "#1a9850"
SELL_COLOUR = "#d73027"
# Candidate spacings of time ticks, seconds: the first giving at most ~8 ticks is used.
TIME_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000)
STYLE = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1100px}"
    "figure{margin:0 0 1.2em 0}figcaption{font-weight:bold;margin-bottom:2px}"
    "svg{width:100%;height:auto;display:block}svg text{font-size:11px;fill:#444}"
    ".legend span{margin-right:1.2em;font-size:90%}.legend i{display:inline-block;width:14px;height:3px;margin-right:4px;vertical-align:middle}"
    "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%;text-align:right}"
)


@dataclass(frozen=True)
class Line:
    """
    A series drawn against time.

    Parameters
    ----------
    label : str
        Legend text.
    ts : pl.Series
        Times, ns since epoch.
    values : pl.Series
        Values (nulls are skipped).
    colour : str
        CSS colour.
    step : bool, default False
        Hold each value until the next one (a position), instead of joining them.
    area : bool, default False
        Fill between the line and zero (a drawdown).
    width : float, default 1.2
        Stroke width.

    """

    label: str
    ts: pl.Series
    values: pl.Series
    colour: str
    step: bool = False
    area: bool = False
    width: float = 1.2


@dataclass(frozen=True)
class Markers:
    """
    Points drawn as triangles against time (fills).

    Parameters
    ----------
    label : str
        Legend text.
    ts : pl.Series
        Times, ns since epoch.
    values : pl.Series
        Values.
    colour : str
        CSS colour.
    up : bool
        Triangle pointing up (a buy) or down (a sell).
    hollow : bool, default False
        Outline only (to tell two sources of fills apart).
    size : float, default 5.0
        Half the triangle's width.
    titles : list[str], optional
        Hover text per point.

    """

    label: str
    ts: pl.Series
    values: pl.Series
    colour: str
    up: bool
    hollow: bool = False
    size: float = 5.0
    titles: list[str] | None = None


@dataclass(frozen=True)
class Frame:
    """
    A chart's plot area: maps data to SVG coordinates and draws the grid with its tick labels.

    Parameters
    ----------
    x_range : tuple[float, float]
        Data range of the x axis.
    y_range : tuple[float, float]
        Data range of the y axis.
    height : int
        Height of the whole SVG.

    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    height: int

    @property
    def plot_width(self) -> int:
        """Width of the plot area."""
        return WIDTH - MARGIN_LEFT - MARGIN_RIGHT

    def x(self, value: float) -> float:
        """Return the SVG x of a data x."""
        low, high = self.x_range
        return MARGIN_LEFT + (value - low) / (high - low) * self.plot_width

    def y(self, value: float) -> float:
        """Return the SVG y of a data y."""
        low, high = self.y_range
        bottom = self.height - MARGIN_BOTTOM
        return bottom - (value - low) / (high - low) * (bottom - MARGIN_TOP)

    def grid(self, x_ticks: Sequence[tuple[float, str]]) -> str:
        """Return the axes, grid lines and tick labels, ``x_ticks`` as (data x, label) pairs."""
        bottom = self.height - MARGIN_BOTTOM
        parts = [f"<rect x='{MARGIN_LEFT}' y='{MARGIN_TOP}' width='{self.plot_width}' height='{bottom - MARGIN_TOP}' fill='none' stroke='#999'/>"]
        step, ticks = nice_ticks(*self.y_range)
        decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
        for tick in ticks:
            y = self.y(tick)
            parts.append(f"<line x1='{MARGIN_LEFT}' x2='{WIDTH - MARGIN_RIGHT}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>")
            parts.append(f"<text x='{MARGIN_LEFT - 4}' y='{y + 4:.1f}' text-anchor='end'>{tick:.{decimals}f}</text>")
        for value, label in x_ticks:
            x = self.x(value)
            parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{MARGIN_TOP}' y2='{bottom}' stroke='#e5e5e5'/>")
            parts.append(f"<text x='{x:.1f}' y='{self.height - 6}' text-anchor='middle'>{html.escape(label)}</text>")
        return "".join(parts)

    def svg(self, body: str) -> str:
        """Return a complete ``<svg>`` element around ``body``."""
        return f"<svg viewBox='0 0 {WIDTH} {self.height}' xmlns='http://www.w3.org/2000/svg'>{body}</svg>"


def write_tearsheet(
    path: Path,
    title: str,
    headline: dict[str, Any],
    prices: pl.DataFrame,
    fills: pl.DataFrame,
    equity: pl.DataFrame,
) -> Path:
    """
    Write the tearsheet to ``path``: one self-contained HTML file (no script, no network needed to open it).

    Parameters
    ----------
    path : Path
        The file to write.
    title : str
        Page title (the variant name).
    headline : dict[str, Any]
        ``currency``, ``pnl_net``, ``pnl_gross``, ``fees``, ``rebates``, ``funding`` (absent: 0),
        ``fills``, ``round_trips``, ``max_drawdown``.
    prices : pl.DataFrame
        Trade prints: ``ts`` (ns), ``instrument_id``, ``price``. Without ``instrument_id``, one instrument.
    fills : pl.DataFrame
        The fills (``keel.fills`` layout).
    equity : pl.DataFrame
        ``ts``, ``instrument_id``, ``price``, ``position``, ``pnl``: one series per instrument and the total
        (``instrument_id`` == ``"TOTAL"``). Without ``instrument_id``, the one instrument's series, also the total.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If ``equity`` holds several instruments but no total rows.

    """
    instrument = _single_instrument_name(title, prices, fills, equity)
    prices = _with_instrument(prices, instrument)
    equity = _with_total(_with_instrument(equity, instrument))
    total = equity.filter(pl.col("instrument_id") == TOTAL).sort("ts")
    per_instrument = equity.filter(pl.col("instrument_id") != TOTAL)
    instruments = sorted(set(prices["instrument_id"]) | set(fills["instrument_id"]) | set(per_instrument["instrument_id"]))
    colours = {name: INSTRUMENT_COLOURS[index % len(INSTRUMENT_COLOURS)] for index, name in enumerate(instruments)}
    span = _time_span(prices["ts"], fills["ts_event"], equity["ts"])
    currency = str(headline["currency"])
    sections = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(_headline_text(headline))}</p>", _instrument_table(instruments, fills, per_instrument, currency)]
    for name in instruments:
        own = prices.filter(pl.col("instrument_id") == name).sort("ts")
        own_fills = fills.filter(pl.col("instrument_id") == name)
        sections.append(
            time_panel(
                f"Price and fills: {name}",
                [Line("last trade", own["ts"], own["price"], colours[name], width=1.0)],
                fill_markers(own_fills),
                span,
            ),
        )
    pnl_lines = [
        Line(name, group["ts"], group["pnl"], colours[name])
        for name in instruments
        if (group := per_instrument.filter(pl.col("instrument_id") == name).sort("ts")).height
    ]
    pnl_lines.append(Line("total", total["ts"], total["pnl"], "#000", width=1.8))
    sections.append(time_panel(f"P&L ({currency}, net of fees)", pnl_lines, [], span, height=260))
    drawdown = total["pnl"] - total["pnl"].cum_max()
    sections.append(time_panel(f"Drawdown of the total ({currency})", [Line("drawdown", total["ts"], drawdown, "firebrick", area=True)], [], span, height=180))
    path.write_text(html_page(title, sections))
    return path


def html_page(title: str, sections: Sequence[str]) -> str:
    """Return a complete HTML document with the charts' style sheet."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def fill_markers(fills: pl.DataFrame, label: str = "", hollow: bool = False, size: float = 5.0) -> list[Markers]:
    """Return buy and sell markers of ``fills`` (``keel.fills`` layout), with time, side, quantity and price on hover."""
    markers = []
    for side, colour, up in (("BUY", BUY_COLOUR, True), ("SELL", SELL_COLOUR, False)):
        side_fills = fills.filter(pl.col("order_side") == side).sort("ts_event")
        if not side_fills.height:
            continue
        titles = None
        if side_fills.height <= MAX_MARKER_TITLES:
            times = as_times(side_fills["ts_event"]).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")
            titles = [
                f"{label}{' ' if label else ''}{side.lower()} {quantity:g} @ {price:g}, {time} UTC"
                for quantity, price, time in zip(side_fills["last_qty"], side_fills["last_px"], times, strict=True)
            ]
        name = f"{label} {side.lower()}" if label else side.lower()
        markers.append(Markers(name, side_fills["ts_event"], side_fills["last_px"], colour, up, hollow=hollow, size=size, titles=titles))
    return markers


def time_panel(title: str, lines: Sequence[Line], markers: Sequence[Markers], span: tuple[int, int], height: int = 240) -> str:
    """Return one chart against time over ``span`` (ns, both ends): a captioned SVG with its legend."""
    values = [line.values for line in lines] + [marker.values for marker in markers]
    y_range = _value_range(values, include_zero=any(line.area for line in lines))
    frame = Frame((float(span[0]), float(span[1])), y_range, height)
    body = [frame.grid(_time_ticks(*span))]
    body += [_draw_line(frame, line) for line in lines]
    body += [_draw_markers(frame, marker) for marker in markers]
    legend = "".join(
        f"<span><i style='background:{item.colour}'></i>{html.escape(item.label)}</span>" for item in [*lines, *markers]
    )
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{frame.svg(''.join(body))}<div class='legend'>{legend}</div></figure>"


def nice_ticks(low: float, high: float, count: int = 5) -> tuple[float, list[float]]:
    """Return a round tick spacing (1, 2 or 5 times a power of ten) and the ticks in ``[low, high]``."""
    if not high > low:
        return 0.0, [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= raw)
    first = math.ceil(low / step)
    return step, [index * step for index in range(first, math.floor(high / step) + 1)]


def thin_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Return every n-th row of ``frame`` so that a chart gets at most about ``MAX_POINTS`` of them."""
    step = max(1, frame.height // MAX_POINTS)
    return frame.gather_every(step) if step > 1 else frame


def as_times(ts_ns: pl.Series) -> pl.Series:
    """Return ns-since-epoch timestamps as UTC datetimes for a chart axis."""
    return ts_ns.cast(pl.Datetime("ns", "UTC"))


def _draw_line(frame: Frame, line: Line) -> str:
    points = _column_extremes(frame, line.ts, line.values)
    if not points:
        return ""
    if line.step:
        stepped = [points[0]]
        for x, y in points[1:]:
            stepped += [(x, stepped[-1][1]), (x, y)]
        points = stepped
    coordinates = " ".join(f"{x:.0f},{y:.1f}" for x, y in points)
    if line.area:
        zero = frame.y(0.0)
        return f"<polygon points='{points[0][0]:.0f},{zero:.1f} {coordinates} {points[-1][0]:.0f},{zero:.1f}' fill='{line.colour}' fill-opacity='0.35' stroke='{line.colour}' stroke-width='{line.width}'/>"
    return f"<polyline points='{coordinates}' fill='none' stroke='{line.colour}' stroke-width='{line.width}' stroke-linejoin='round'/>"


def _column_extremes(frame: Frame, ts: pl.Series, values: pl.Series) -> list[tuple[float, float]]:
    """Return SVG points of a series: per pixel column its lowest and highest value, in the order they came."""
    rows = pl.DataFrame({"ts": ts.cast(pl.Float64), "value": values.cast(pl.Float64)}).filter(pl.col("value").is_finite())
    if not rows.height:
        return []
    low, high = frame.x_range
    columns = (
        rows.with_columns(((pl.col("ts") - low) / (high - low) * frame.plot_width).round().cast(pl.Int64).alias("column"))
        .group_by("column", maintain_order=True)
        .agg(
            pl.col("value").min().alias("low"),
            pl.col("value").max().alias("high"),
            (pl.col("value").arg_max() < pl.col("value").arg_min()).alias("high_first"),
        )
    )
    points: list[tuple[float, float]] = []
    for column, low_value, high_value, high_first in columns.iter_rows():
        x = MARGIN_LEFT + column
        pair = [(x, frame.y(high_value)), (x, frame.y(low_value))] if high_first else [(x, frame.y(low_value)), (x, frame.y(high_value))]
        points += pair if low_value != high_value else pair[:1]
    return points


def _draw_markers(frame: Frame, markers: Markers) -> str:
    paint = f"fill='none' stroke='{markers.colour}' stroke-width='1.5'" if markers.hollow else f"fill='{markers.colour}'"
    half = markers.size
    # The apex points the way of the trade; the point's value sits inside the triangle.
    apex_offset, base_offset = (-half, half * 0.7) if markers.up else (half, -half * 0.7)
    shapes = []
    seen: set[tuple[int, int]] = set()
    for index, (ts, value) in enumerate(zip(markers.ts, markers.values, strict=True)):
        if value is None:
            continue
        x, y = frame.x(float(ts)), frame.y(float(value))
        shape = f"<path d='M{x:.1f} {y + apex_offset:.1f}L{x + half:.1f} {y + base_offset:.1f}H{x - half:.1f}Z'/>"
        if markers.titles is not None:
            shapes.append(f"<g><title>{html.escape(markers.titles[index])}</title>{shape}</g>")
        elif (key := (round(x), round(y))) not in seen:  # without hover text, one marker per pixel is all the eye sees
            seen.add(key)
            shapes.append(shape)
    return f"<g {paint}>{''.join(shapes)}</g>"


def _time_ticks(start_ns: int, end_ns: int) -> list[tuple[float, str]]:
    seconds = max((end_ns - start_ns) / 1e9, 1e-9)
    step = next((candidate for candidate in TIME_TICK_STEPS if seconds / candidate <= 8), TIME_TICK_STEPS[-1])
    first = math.ceil(start_ns / 1e9 / step) * step
    ticks = [first + index * step for index in range(int((end_ns / 1e9 - first) // step) + 1)]
    if not ticks:
        return []
    pattern = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%Y-%m-%d"
    labels = as_times(pl.Series([int(tick * 1e9) for tick in ticks], dtype=pl.Int64)).dt.strftime(pattern)
    # The first label carries the date (UTC): the others are read against it.
    day = datetime.fromtimestamp(ticks[0], UTC).strftime("%Y-%m-%d ")
    return [(tick * 1e9, (day if index == 0 and step < 86400 else "") + label) for index, (tick, label) in enumerate(zip(ticks, labels, strict=True))]


def _value_range(series: Sequence[pl.Series], include_zero: bool = False) -> tuple[float, float]:
    finite = [values.cast(pl.Float64).filter(values.cast(pl.Float64).is_finite()) for values in series]
    finite = [values for values in finite if values.len()]
    low = min((float(values.min()) for values in finite), default=0.0)
    high = max((float(values.max()) for values in finite), default=0.0)
    if include_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        pad = abs(high) * 0.01 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _time_span(*series: pl.Series) -> tuple[int, int]:
    present = [values for values in series if values.len()]
    if not present:
        return 0, 1
    start, end = min(int(values.min()) for values in present), max(int(values.max()) for values in present)
    return (start, end) if end > start else (start, start + 1)


def _single_instrument_name(title: str, prices: pl.DataFrame, fills: pl.DataFrame, equity: pl.DataFrame) -> str:
    """Name the instrument of frames without ``instrument_id``: the fills' one instrument, else the title."""
    if "instrument_id" in prices.columns and "instrument_id" in equity.columns:
        return title
    traded = fills["instrument_id"].unique().to_list()
    return traded[0] if len(traded) == 1 else title


def _with_instrument(frame: pl.DataFrame, instrument: str) -> pl.DataFrame:
    if "instrument_id" in frame.columns:
        return frame
    return frame.with_columns(pl.lit(instrument).alias("instrument_id"))


def _with_total(equity: pl.DataFrame) -> pl.DataFrame:
    if equity.filter(pl.col("instrument_id") == TOTAL).height or not equity.height:
        return equity
    instruments = equity["instrument_id"].unique().to_list()
    if len(instruments) > 1:
        raise ValueError(f"equity: no rows with instrument_id == {TOTAL!r} beside {sorted(instruments)}; expected the total P&L series")
    return pl.concat([equity, equity.with_columns(pl.lit(TOTAL).alias("instrument_id"))], how="diagonal_relaxed")


def _headline_text(headline: dict[str, Any]) -> str:
    currency = headline["currency"]
    funding = headline.get("funding") or 0.0
    return (
        f"net {headline['pnl_net']:.4f} {currency} = gross {headline['pnl_gross']:.4f} - fees {headline['fees']:.4f}"
        f" + rebates {headline['rebates']:.4f} + funding {funding:.4f}"
        f" | fills {headline['fills']} | round trips {headline['round_trips']} | max drawdown {headline['max_drawdown']:.4f}"
    )


def _instrument_table(instruments: Sequence[str], fills: pl.DataFrame, equity: pl.DataFrame, currency: str) -> str:
    rows = []
    for name in instruments:
        own = fills.filter(pl.col("instrument_id") == name)
        bought = float(own.filter(pl.col("order_side") == "BUY")["last_qty"].sum())
        sold = float(own.filter(pl.col("order_side") == "SELL")["last_qty"].sum())
        curve = equity.filter(pl.col("instrument_id") == name).sort("ts")
        pnl = f"{curve['pnl'][-1]:.4f}" if curve.height else ""
        rows.append(f"<tr><td style='text-align:left'>{html.escape(name)}</td><td>{own.height}</td><td>{bought:g}</td><td>{sold:g}</td><td>{pnl}</td></tr>")
    head = f"<tr><th>instrument</th><th>fills</th><th>bought</th><th>sold</th><th>P&amp;L at end ({html.escape(currency)})</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"
