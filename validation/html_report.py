"""The gate report as one self-contained HTML file, readable offline.

plotly.js is embedded once (the machine running the gate may be offline, so no CDN), with two figures: live
against backtest over the session (price with both sides' fills, P&L, position) and the calibration (the
measured order round trips, the whole distribution, and the latency the backtest used). Tables: the checks,
P&L by component, every order of both sides, and the venue-model settings the backtest ran with.
"""

import html
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from keel.backtests.performance import equity_curve
from keel.backtests.tearsheet import as_times
from keel.backtests.tearsheet import thin_rows
from keel.validation.checks import PNL_COMPONENTS
from keel.validation.recorded_session import RecordedSession

if TYPE_CHECKING:
    from keel.backtests.venues import VenueModel
    from keel.validation.gate import GateReport

ROUND_TRIP_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def write_html_report(
    path: Path,
    report: "GateReport",
    session: RecordedSession,
    orders: pl.DataFrame,
    venue: "VenueModel",
    backtest_equity: pl.DataFrame,
    backtest_fills: pl.DataFrame,
) -> Path:
    """Write the HTML gate report to ``path``."""
    base = session.instrument.base_currency.code
    trades = backtest_equity.select("ts", "price")
    live_equity = equity_curve(session.fills, trades, base)
    currency = session.instrument.quote_currency.code
    sections = [
        f"<h1>Gate: {'PROMOTE' if report.promoted else 'REJECT'}</h1>",
        _list(
            [
                f"session <code>{_e(session.session_dir)}</code>, manifest sha256 <code>{session.sha256}</code>",
                f"decision on record <code>{report.decision.sha256}</code> by {_e(report.decision.record['operator'])}",
            ],
        ),
        *(["<h2>Reasons</h2>", _list([_e(reason) for reason in report.reasons])] if report.reasons else []),
        "<h2>Live against the backtest</h2>",
        _comparison_figure(trades, session.fills, backtest_fills, live_equity, backtest_equity, currency).to_html(
            include_plotlyjs=True, full_html=False
        ),
        "<h2>Checks</h2>",
        _table(
            ["check", "value", "threshold", "result"],
            [[c.name, _fmt(c.value), c.limit, "pass" if c.passed else "FAIL"] for c in report.checks],
        ),
        f"<h2>P&amp;L by component ({_e(currency)})</h2>",
        _pnl_table(report.pnl),
        "<h2>Orders</h2>",
        _table(orders.columns, [[_fmt(value) for value in row] for row in orders.iter_rows()], table_id="orders"),
        "<h2>Calibration</h2>",
        _calibration(report, venue),
    ]
    if report.round_trips_ms.len():
        # plotly.js is already in the page: the second figure only needs its div.
        sections.append(_latency_figure(report.round_trips_ms, report.backtest_latency_ms).to_html(include_plotlyjs=False, full_html=False))
    document = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Keel gate report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )
    path.write_text(document)
    return path


def _comparison_figure(
    trades: pl.DataFrame,
    live_fills: pl.DataFrame,
    backtest_fills: pl.DataFrame,
    live_equity: pl.DataFrame,
    backtest_equity: pl.DataFrame,
    currency: str,
) -> go.Figure:
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.5, 0.25, 0.25],
        vertical_spacing=0.05,
        subplot_titles=("Price and fills", f"P&L ({currency}, net of fees)", "Position"),
    )
    prices = thin_rows(trades)
    figure.add_trace(go.Scattergl(x=as_times(prices["ts"]), y=prices["price"], name="last trade", line={"width": 1, "color": "grey"}), row=1, col=1)
    for label, fills, symbol_suffix, size in (("backtest", backtest_fills, "-open", 12), ("live", live_fills, "", 7)):
        for side, colour, symbol in (("BUY", "green", "triangle-up"), ("SELL", "red", "triangle-down")):
            side_fills = fills.filter(pl.col("order_side") == side)
            figure.add_trace(
                go.Scatter(
                    x=as_times(side_fills["ts_event"]),
                    y=side_fills["last_px"],
                    mode="markers",
                    name=f"{label} {side.lower()}",
                    marker={"color": colour, "symbol": symbol + symbol_suffix, "size": size},
                ),
                row=1,
                col=1,
            )
    for label, curve, colour in (("backtest", backtest_equity, "orange"), ("live", live_equity, "navy")):
        thinned = thin_rows(curve)
        figure.add_trace(go.Scattergl(x=as_times(thinned["ts"]), y=thinned["pnl"], name=f"{label} P&L", line={"color": colour}), row=2, col=1)
        figure.add_trace(
            go.Scattergl(x=as_times(thinned["ts"]), y=thinned["position"], name=f"{label} position", line={"color": colour, "shape": "hv"}),
            row=3,
            col=1,
        )
    figure.update_layout(height=900, showlegend=True)
    return figure


def _latency_figure(round_trips_ms: pl.Series, backtest_latency_ms: float) -> go.Figure:
    figure = go.Figure(go.Histogram(x=round_trips_ms.to_list(), name="order round trips", nbinsx=40))
    figure.add_vline(x=backtest_latency_ms, line_dash="dash", annotation_text=f"backtest latency {backtest_latency_ms:.2f} ms")
    figure.update_layout(title="Measured order round trips (OrderSubmitted to the venue's first answer, node clock)", xaxis_title="ms", height=400)
    return figure


def _calibration(report: "GateReport", venue: "VenueModel") -> str:
    round_trips = report.round_trips_ms
    quantiles = (
        [[f"p{int(q * 100)}", _fmt(round_trips.quantile(q, interpolation="linear"))] for q in ROUND_TRIP_QUANTILES] + [["mean", _fmt(round_trips.mean())]]
        if round_trips.len()
        else []
    )
    return "\n".join(
        [
            f"<p>Backtest latency {report.backtest_latency_ms:.3f} ms, source: {_e(report.latency_source)}; "
            f"{round_trips.len()} measured order round trips (ms):</p>",
            _table(["quantile", "round trip (ms)"], quantiles),
            "<p>Venue model the backtest over the session ran with:</p>",
            _table(["setting", "value"], [[key, str(value)] for key, value in _flatten(venue.to_primitives())]),
        ],
    )


def _pnl_table(pnl: dict[str, dict[str, float]]) -> str:
    notional = pnl["backtest"]["notional"]
    rows = []
    for component in (*PNL_COMPONENTS, "notional"):
        difference = pnl["live"][component] - pnl["backtest"][component]
        rows.append(
            [
                component,
                f"{pnl['backtest'][component]:.6f}",
                f"{pnl['live'][component]:.6f}",
                f"{difference:+.6f}",
                f"{difference / notional * 10_000:+.3f}" if notional else "n/a",
            ],
        )
    return _table(["component", "backtest", "live", "live - backtest", "bps of backtest notional"], rows)


def _flatten(document: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _table(header: list[str], rows: list[list[str]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    identifier = f" id='{table_id}'" if table_id else ""
    return f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _e(value: object) -> str:
    return html.escape(str(value))

