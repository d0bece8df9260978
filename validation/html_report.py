"""The gate report as one self-contained HTML file, readable offline, without JavaScript.

The charts are inline SVG drawn with the tearsheet's pieces (``keel.backtests.tearsheet``; the machine running
the gate may be offline, and a plotting library embedded in every report weighed 4 MB): the total P&L of live
against backtest, then one section per instrument (price with both sides' fills, P&L, position, its P&L by
component and its orders), and the calibration (the measured order round trips, the whole distribution, and
the latency the backtest used). Tables: the checks, P&L by component in total, every order of both sides,
and the venue-model settings the backtest ran with.
"""

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import polars as pl

from keel.backtests.tearsheet import MARGIN_LEFT
from keel.backtests.tearsheet import STYLE
from keel.backtests.tearsheet import Frame
from keel.backtests.tearsheet import Line
from keel.backtests.tearsheet import fill_markers
from keel.backtests.tearsheet import nice_ticks
from keel.backtests.tearsheet import time_panel
from keel.pnl import TOTAL
from keel.pnl import equity_curve
from keel.pnl import total_equity
from keel.validation.checks import PNL_COMPONENTS
from keel.validation.recorded_session import RecordedSession

if TYPE_CHECKING:
    from keel.backtests.venues import VenueModel
    from keel.validation.gate import GateReport

ROUND_TRIP_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
LATENCY_BINS = 40
BACKTEST_COLOUR = "orange"
LIVE_COLOUR = "navy"


def write_html_report(
    path: Path,
    report: "GateReport",
    session: RecordedSession,
    orders: pl.DataFrame,
    venues: dict[str, "VenueModel"],
    backtest_equity: pl.DataFrame,
    backtest_fills: pl.DataFrame,
) -> Path:
    """Write the HTML gate report to ``path``: the total, then a section per instrument of ``report.pnl_by_instrument``."""
    currency = report.currency
    live_curves = []
    instrument_sections = []
    for instrument_id, pnl in report.pnl_by_instrument.items():
        backtest_curve = backtest_equity.filter(pl.col("instrument_id") == instrument_id)
        trades = backtest_curve.select("ts", "price")
        live_fills = session.fills.filter(pl.col("instrument_id") == instrument_id)
        funding = session.funding.filter(pl.col("instrument_id") == instrument_id)
        live_curve = equity_curve(live_fills, trades, session.terms[instrument_id], funding)
        live_curves.append(live_curve)
        own_orders = orders.filter(pl.coalesce("backtest_instrument", "live_instrument") == instrument_id)
        instrument_sections += [
            f"<h2>{_e(instrument_id)}</h2>",
            _comparison_figure(trades, live_fills, backtest_fills.filter(pl.col("instrument_id") == instrument_id), live_curve, backtest_curve, currency),
            f"<h3>P&amp;L by component ({_e(currency)})</h3>",
            _pnl_table(pnl, report.pnl["backtest"]["notional"]),
            "<h3>Orders</h3>",
            _table(own_orders.columns, [[_fmt(value) for value in row] for row in own_orders.iter_rows()]),
        ]
    backtest_total = backtest_equity.filter(pl.col("instrument_id") == TOTAL)
    sections = [
        f"<h1>Gate: {'PROMOTE' if report.promoted else 'REJECT'}</h1>",
        _list(
            [
                f"session <code>{_e(session.session_dir)}</code>, manifest sha256 <code>{session.sha256}</code>",
                f"decision on record <code>{report.decision.sha256}</code> by {_e(report.decision.record['operator'])}",
            ],
        ),
        *(["<h2>Reasons</h2>", _list([_e(reason) for reason in report.reasons])] if report.reasons else []),
        "<h2>Total</h2>",
        _total_figure(backtest_total, total_equity(live_curves), currency),
        f"<h3>P&amp;L by component ({_e(currency)})</h3>",
        _pnl_table(report.pnl, report.pnl["backtest"]["notional"]),
        "<h2>Checks</h2>",
        _table(
            ["check", "value", "threshold", "result"],
            [[c.name, _fmt(c.value), c.limit, "pass" if c.passed else "FAIL"] for c in report.checks],
        ),
        *instrument_sections,
        "<h2>Orders</h2>",
        _table(orders.columns, [[_fmt(value) for value in row] for row in orders.iter_rows()], table_id="orders"),
        "<h2>Calibration</h2>",
        _calibration(report, venues),
    ]
    if report.round_trips_ms.len():
        sections.append(_latency_figure(report.round_trips_ms, report.backtest_latency_ms))
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Keel gate report</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )
    path.write_text(document)
    return path


def _total_figure(backtest_total: pl.DataFrame, live_total: pl.DataFrame, currency: str) -> str:
    curves = [frame for frame in (backtest_total, live_total) if frame.height]
    span = (min(int(frame["ts"].min()) for frame in curves), max(int(frame["ts"].max()) for frame in curves)) if curves else (0, 1)
    lines = [
        Line(f"{label} P&L", curve["ts"], curve["pnl"], colour)
        for label, curve, colour in (("backtest", backtest_total, BACKTEST_COLOUR), ("live", live_total, LIVE_COLOUR))
    ]
    return time_panel(f"Total P&L ({currency}, net of fees, with funding)", lines, [], span)


def _comparison_figure(
    trades: pl.DataFrame,
    live_fills: pl.DataFrame,
    backtest_fills: pl.DataFrame,
    live_equity: pl.DataFrame,
    backtest_equity: pl.DataFrame,
    currency: str,
) -> str:
    spans = [frame[column] for frame, column in ((trades, "ts"), (live_fills, "ts_event"), (backtest_fills, "ts_event")) if frame.height]
    span = (min(int(ts.min()) for ts in spans), max(int(ts.max()) for ts in spans)) if spans else (0, 1)
    # Backtest fills hollow and larger, live fills solid inside them: a matched pair reads as one filled marker.
    markers = fill_markers(backtest_fills, "backtest", hollow=True, size=7.0) + fill_markers(live_fills, "live", size=4.0)
    curves = (("backtest", backtest_equity, BACKTEST_COLOUR), ("live", live_equity, LIVE_COLOUR))
    return "".join(
        [
            time_panel("Price and fills", [Line("last trade", trades["ts"], trades["price"], "grey", width=1.0)], markers, span, height=320),
            time_panel(f"P&L ({currency}, net of fees, with funding)", [Line(f"{label} P&L", curve["ts"], curve["pnl"], colour) for label, curve, colour in curves], [], span),
            time_panel("Position", [Line(f"{label} position", curve["ts"], curve["position"], colour, step=True) for label, curve, colour in curves], [], span),
        ],
    )


def _latency_figure(round_trips_ms: pl.Series, backtest_latency_ms: float) -> str:
    low = min(float(round_trips_ms.min()), backtest_latency_ms)
    high = max(float(round_trips_ms.max()), backtest_latency_ms)
    width = (high - low) / LATENCY_BINS or 1.0
    bins = ((round_trips_ms.cast(pl.Float64) - low) / width).floor().clip(0, LATENCY_BINS - 1).cast(pl.Int64).value_counts()
    counts = dict(zip(bins[bins.columns[0]].to_list(), bins["count"].to_list(), strict=True))
    frame = Frame((low, low + width * LATENCY_BINS), (0.0, max(counts.values()) * 1.1), 260)
    step, ticks = nice_ticks(*frame.x_range)
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    body = [frame.grid([(tick, f"{tick:.{decimals}f}") for tick in ticks])]
    for index, count in counts.items():
        left, right = frame.x(low + index * width), frame.x(low + (index + 1) * width)
        top = frame.y(count)
        body.append(
            f"<rect x='{left:.1f}' y='{top:.1f}' width='{max(right - left - 1, 1):.1f}' height='{frame.y(0) - top:.1f}' fill='steelblue'>"
            f"<title>{count} round trips in [{low + index * width:.3f}, {low + (index + 1) * width:.3f}) ms</title></rect>"
        )
    x = frame.x(backtest_latency_ms)
    body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{frame.y(frame.y_range[1]):.1f}' y2='{frame.y(0):.1f}' stroke='black' stroke-dasharray='5,4'/>")
    anchor = "end" if x > MARGIN_LEFT + frame.plot_width / 2 else "start"
    body.append(f"<text x='{x + (-4 if anchor == 'end' else 4):.1f}' y='20' text-anchor='{anchor}'>backtest latency {backtest_latency_ms:.2f} ms</text>")
    return (
        "<figure><figcaption>Measured order round trips (OrderSubmitted to the venue's first answer, node clock), ms</figcaption>"
        f"{frame.svg(''.join(body))}</figure>"
    )


def _calibration(report: "GateReport", venues: dict[str, "VenueModel"]) -> str:
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
            *[
                f"<p>Venue model the backtest over the session ran with at {_e(name)}:</p>"
                + _table(["setting", "value"], [[key, str(value)] for key, value in _flatten(venue.to_primitives())])
                for name, venue in venues.items()
            ],
        ],
    )


def _pnl_table(pnl: dict[str, dict[str, float]], notional: float) -> str:
    """P&L components of backtest and live; differences in bps of ``notional`` (the backtest's total)."""
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

