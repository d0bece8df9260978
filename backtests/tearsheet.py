"""The run's tearsheet: one HTML file with price and fills, P&L and drawdown, readable offline."""

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

# Price and equity are drawn at most this many points: enough for the eye, small enough for a browser.
MAX_POINTS = 5_000


def write_tearsheet(
    path: Path,
    title: str,
    summary: dict[str, Any],
    trades: pl.DataFrame,
    fills: pl.DataFrame,
    equity: pl.DataFrame,
) -> Path:
    """Write the tearsheet to ``path`` (plotly.js embedded, no network needed to open it)."""
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.5, 0.3, 0.2],
        vertical_spacing=0.04,
        subplot_titles=("Price and fills", f"P&L ({summary['currency']}, net of fees)", "Drawdown"),
    )
    prices = thin_rows(trades)
    figure.add_trace(go.Scattergl(x=as_times(prices["ts"]), y=prices["price"], name="last trade", line={"width": 1}), row=1, col=1)
    for side, colour, symbol in (("BUY", "green", "triangle-up"), ("SELL", "red", "triangle-down")):
        side_fills = fills.filter(pl.col("order_side") == side)
        figure.add_trace(
            go.Scatter(
                x=as_times(side_fills["ts_event"]),
                y=side_fills["last_px"],
                mode="markers",
                name=side.lower(),
                marker={"color": colour, "symbol": symbol, "size": 9},
            ),
            row=1,
            col=1,
        )
    curve = thin_rows(equity)
    figure.add_trace(go.Scattergl(x=as_times(curve["ts"]), y=curve["pnl"], name="P&L", line={"color": "navy"}), row=2, col=1)
    drawdown = curve["pnl"] - curve["pnl"].cum_max()
    figure.add_trace(
        go.Scattergl(x=as_times(curve["ts"]), y=drawdown, name="drawdown", fill="tozeroy", line={"color": "firebrick"}),
        row=3,
        col=1,
    )
    headline = (
        f"net {summary['pnl_net']:.4f} = gross {summary['pnl_gross']:.4f} - fees {summary['fees']:.4f} {summary['currency']}"
        f" | fills {summary['fills']} | round trips {summary['round_trips']} | max drawdown {summary['max_drawdown']:.4f}"
    )
    figure.update_layout(title={"text": f"{title}<br><sub>{headline}</sub>"}, height=900, showlegend=True)
    figure.write_html(path, include_plotlyjs=True, full_html=True)
    return path


def thin_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Return every n-th row of ``frame`` so that a chart gets at most about ``MAX_POINTS`` of them."""
    step = max(1, frame.height // MAX_POINTS)
    return frame.gather_every(step) if step > 1 else frame


def as_times(ts_ns: pl.Series) -> pl.Series:
    """Return ns-since-epoch timestamps as UTC datetimes for a chart axis."""
    return ts_ns.cast(pl.Datetime("ns", "UTC"))
