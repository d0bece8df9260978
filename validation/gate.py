"""The promotion gate: replay a backtest over a recorded live session and compare it with the live fills.

A session folder (written by ``keel live``) holds the variant that ran, the market data the node received
(as a catalog), the window, the live fills and order events, sealed by a manifest. The gate first checks the
folder (``keel.validation.recorded_session``: refused, exit 2, unless complete, unchanged since recording,
completed and self-consistent), then backtests the same variant file over exactly that data and window,
matches orders (``keel.validation.matching``), runs every check of ``keel.validation.checks`` against the
thresholds of ``configs/gate.yaml``, writes ``gate_report.json``, ``gate_report.md`` and ``gate_report.html``,
and appends the decision to the log (``keel.validation.decisions``), refusals included. A variant of several
instruments is gated on every one of them: orders match within an instrument, P&L is compared in total and
per instrument, and the reports have a section per instrument.
"""

import json
import shutil
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from keel.backtests.runner import BacktestInputError
from keel.backtests.runner import run_backtest
from keel.backtests.venues import VenueModel
from keel.backtests.venues import venue_models_for
from keel.live.session_layout import GATE_DIR
from keel.live.session_layout import MANIFEST_JSON
from keel.live.session_layout import SESSION_JSON
from keel.live.session_layout import VARIANT_YAML
from keel.backtests.result import RunResult
from keel.pnl import TOTAL
from keel.pnl import portfolio_pnl
from keel.validation.backtest_cache import backtest_key
from keel.validation.backtest_cache import cached_backtest
from keel.validation.checks import Check
from keel.validation.checks import PNL_COMPONENTS
from keel.validation.checks import build_checks
from keel.validation.checks import live_slippage
from keel.validation.checks import pnl_by_component
from keel.validation.decisions import Decision
from keel.validation.decisions import GATE
from keel.validation.decisions import append_decision
from keel.validation.decisions import operator_name
from keel.validation.errors import GateInputError
from keel.validation.html_report import write_html_report
from keel.validation.latency import order_round_trips_ms
from keel.validation.matching import Matching
from keel.validation.matching import match_orders_by_instrument
from keel.validation.recorded_session import RecordedSession
from keel.validation.recorded_session import file_sha256
from keel.validation.recorded_session import load_recorded_session
from keel.validation.thresholds import GateThresholds
from keel.validation.thresholds import load_thresholds
from keel.validation.thresholds import resolve_thresholds_path
from keel.variant import Variant
from keel.variant import VariantError
from keel.variant import load_variant

__all__ = ["Check", "GateInputError", "GateReport", "GateThresholds", "load_thresholds", "run_gate"]


@dataclass(frozen=True)
class GateReport:
    """
    The gate's verdict.

    Parameters
    ----------
    promoted : bool
        True when every check passed.
    reasons : list[str]
        One line per failed check (empty when promoted).
    checks : list[Check]
        Every check, passed or not.
    pnl : dict[str, dict[str, float]]
        Total P&L components (``gross``, ``fees``, ``rebates``, ``funding``, ``net``, ``slippage``) and
        ``notional`` of ``backtest`` and ``live``, in the P&L currency.
    pnl_by_instrument : dict[str, dict[str, dict[str, float]]]
        The same per instrument of the variant: ``{instrument_id: {"backtest": ..., "live": ...}}``.
    currency : str
        The P&L currency.
    matching : Matching
        Matched pairs and unmatched orders.
    report_dir : Path
        Folder with ``gate_report.json``, ``gate_report.md``, ``gate_report.html``, ``pairs.parquet`` and the
        backtest run.
    backtest_latency_ms : float
        The one-way latency the backtest over the session ran with (of the variant's first venue when the
        venue models differ).
    latency_source : str
        ``measured`` (the session's median order round trip) or ``venue_model``.
    round_trips_ms : pl.Series
        The session's order round trips (``OrderSubmitted`` to the venue's first answer), ms.
    decision : Decision
        The line appended to the decision log.

    """

    promoted: bool
    reasons: list[str]
    checks: list[Check]
    pnl: dict[str, dict[str, float]]
    pnl_by_instrument: dict[str, dict[str, dict[str, float]]]
    currency: str
    matching: Matching
    report_dir: Path
    backtest_latency_ms: float
    latency_source: str
    round_trips_ms: pl.Series
    decision: Decision


def run_gate(
    variant_path: str | Path,
    session_dir: str | Path,
    thresholds_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    log_to_mlflow: bool = True,
    backtest_cache: str | Path | None = None,
    operator: str | None = None,
) -> GateReport:
    """
    Replay the variant over the session, compare with the live fills, write the verdict and put it on record.

    Parameters
    ----------
    variant_path : str | Path
        The variant file the session ran.
    session_dir : str | Path
        The session folder.
    thresholds_path : str | Path, optional
        Thresholds file; default ``configs/gate.yaml``.
    out_dir : str | Path, optional
        Report folder; default ``<session>/gate/<UTC time>/`` (a new one per run, outside the manifest).
    log_to_mlflow : bool, default True
        Record the gate's backtest in MLflow.
    backtest_cache : str | Path, optional
        Folder of backtests over sessions to reuse (``keel.validation.backtest_cache``); none by default.
    operator : str, optional
        Who runs the gate, for the decision log; default ``$KEEL_OPERATOR`` or the login name.

    Raises
    ------
    GateInputError
        For a session folder, variant or thresholds file the gate refuses (recorded as a ``refuse`` decision).

    """
    record = _decision_inputs(Path(variant_path), Path(session_dir), thresholds_path, operator)
    try:
        return _gate(Path(variant_path), Path(session_dir), thresholds_path, out_dir, log_to_mlflow, backtest_cache, record)
    except (GateInputError, VariantError, BacktestInputError) as error:
        append_decision(record | {"verdict": "refuse", "reasons": [str(error)], "report_dir": None})
        raise GateInputError(str(error)) from error


def _gate(
    variant_path: Path,
    session_dir: Path,
    thresholds_file: str | Path | None,
    out_dir: str | Path | None,
    log_to_mlflow: bool,
    backtest_cache: str | Path | None,
    record: dict[str, Any],
) -> GateReport:
    thresholds = load_thresholds(thresholds_file)
    variant = load_variant(variant_path)
    session = load_recorded_session(session_dir, variant.instrument_ids)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    report_dir = Path(out_dir) if out_dir else session.session_dir / GATE_DIR / stamp
    staging = report_dir.with_name(report_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        report = _judge(variant, variant_path, session, thresholds, staging, report_dir, log_to_mlflow, backtest_cache, record)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(report_dir, ignore_errors=True)
    staging.rename(report_dir)
    return report


def _judge(
    variant: Variant,
    variant_path: Path,
    session: RecordedSession,
    thresholds: GateThresholds,
    staging: Path,
    report_dir: Path,
    log_to_mlflow: bool,
    backtest_cache: str | Path | None,
    record: dict[str, Any],
) -> GateReport:
    """Backtest over the session, compare, put the verdict on record and write the reports into ``staging``."""
    _check_venues(variant, session)
    mismatch = _variant_mismatch(variant, session)
    round_trips = order_round_trips_ms(session.orders)
    venues, latency_source = _backtest_venues(variant, session, thresholds)
    key = backtest_key(variant, venues, session.start_ns, session.end_ns, session.catalog_digests)
    backtest = cached_backtest(
        Path(backtest_cache) if backtest_cache else None,
        key,
        staging / "backtest",
        lambda run_dir: run_backtest(
            variant,
            session.session_dir / "catalog",
            run_dir=run_dir,
            start=session.start_ns,
            end=session.end_ns,
            venues=list(venues.values()),
            log_to_mlflow=log_to_mlflow,
            experiment="gate",
            tags={"keel.gate.session": session.session_id},
            tearsheet=True,
        ),
    )
    terms = {instrument_id: session.terms[instrument_id] for instrument_id in variant.instrument_ids}
    matching = match_orders_by_instrument(backtest.fills, session.fills, terms, thresholds.match_tolerance_ms)
    matching = _with_order_types(matching, backtest.orders, session.orders)
    # Both sides marked at the backtest's last price of each instrument, so marking adds no difference.
    marks = _backtest_marks(backtest, session)
    pnl = {
        "backtest": pnl_by_component(portfolio_pnl(backtest.fills, terms, marks, backtest.funding), {}),
        "live": pnl_by_component(
            # Fills of another instrument fail their own check; they have no place in the variant's P&L.
            portfolio_pnl(session.fills.filter(pl.col("instrument_id").is_in(variant.instrument_ids)), terms, marks, session.funding),
            live_slippage(matching.pairs),
        ),
    }
    refused = {
        "backtest": _refused_orders(backtest.orders, "status", _REFUSAL_STATUSES),
        "live": _refused_orders(session.orders, "event_type", _REFUSAL_EVENTS),
    }
    checks = build_checks(thresholds, matching, pnl, mismatch, refused, session, variant.instrument_ids)
    reasons = [f"{check.name} = {_fmt(check.value)}, expected {check.limit}" for check in checks if not check.passed]
    if mismatch:
        reasons.insert(0, mismatch)
    verdict = "promote" if not reasons else "reject"
    decision = append_decision(record | {"verdict": verdict, "reasons": reasons, "report_dir": str(report_dir)})
    first_venue = venues[variant.instrument_ids[0].rsplit(".", 1)[1]]
    report = GateReport(
        promoted=not reasons,
        reasons=reasons,
        checks=checks,
        pnl={side: components[TOTAL] for side, components in pnl.items()},
        pnl_by_instrument={instrument_id: {side: components[instrument_id] for side, components in pnl.items()} for instrument_id in variant.instrument_ids},
        currency=session.terms[variant.instrument_ids[0]].quote_currency,
        matching=matching,
        report_dir=report_dir,
        backtest_latency_ms=first_venue.latency.base_ms + first_venue.latency.insert_ms,
        latency_source=latency_source,
        round_trips_ms=round_trips,
        decision=decision,
    )
    _write_reports(staging, report, session, variant_path, thresholds, venues, backtest)
    return report


def _backtest_marks(backtest: RunResult, session: RecordedSession) -> dict[str, float]:
    """Return each instrument's last price in the backtest (the session's recorded mark for one the backtest saw no print of)."""
    last = backtest.equity.filter(pl.col("instrument_id") != TOTAL).group_by("instrument_id").agg(pl.col("price").sort_by("ts").last())
    marks = {mark_id: mark["price"] for mark_id, mark in session.document["pnl"]["marks"].items()}
    return marks | dict(zip(last["instrument_id"].to_list(), last["price"].to_list(), strict=True))


def _decision_inputs(variant_path: Path, session_dir: Path, thresholds_file: str | Path | None, operator: str | None) -> dict[str, Any]:
    """Return what a decision record says about its inputs; a missing file has no hash (the run is then refused)."""
    thresholds = resolve_thresholds_path(thresholds_file)
    manifest = session_dir / MANIFEST_JSON
    return {
        "kind": GATE,
        "operator": operator_name(operator),
        "variant_path": str(variant_path.resolve()),
        "variant_sha256": file_sha256(variant_path) if variant_path.is_file() else None,
        "session_id": session_dir.resolve().name,
        "session_dir": str(session_dir.resolve()),
        "session_sha256": file_sha256(manifest) if manifest.is_file() else None,
        "thresholds_path": str(thresholds.resolve()),
        "thresholds_sha256": file_sha256(thresholds) if thresholds.is_file() else None,
    }


def _backtest_venues(variant: Variant, session: RecordedSession, thresholds: GateThresholds) -> tuple[dict[str, VenueModel], str]:
    """
    Return the venue models of the variant by nautilus venue, each with the session's measured round trip at that
    venue as latency when asked, and which latency they have.
    """
    venues = venue_models_for(variant)
    if thresholds.backtest_latency != "measured":
        return venues, "venue_model"
    measured: dict[str, VenueModel] = {}
    for name, venue in venues.items():
        round_trips = order_round_trips_ms(session.orders.filter(pl.col("instrument_id").str.ends_with(f".{name}")))
        if round_trips.len() == 0:
            # No order was answered: nothing to measure; the session then fails "live orders" anyway.
            return venues, f"venue_model (the session has no answered order at {name} to measure)"
        # nautilus' backtest hands the venue's answer back to the strategy at once, live it takes the return leg:
        # the whole round trip on the way in makes the strategy learn of its fills when it did live (its next
        # decision waits on that), at the cost of matching against the book half a round trip late.
        latency = msgspec.structs.replace(venue.latency, base_ms=float(round_trips.median()), insert_ms=0.0)
        measured[name] = msgspec.structs.replace(venue, latency=latency)
    return measured, "measured"


def _check_venues(variant: Variant, session: RecordedSession) -> None:
    """Refuse a variant whose venue models are not the session's: a backtest at other venues replays nothing the session lived."""
    for where, ran in (
        (session.session_dir / SESSION_JSON, session.document["variant"].get("venues")),
        (session.session_dir / VARIANT_YAML, session.recorded_variant.venues),
    ):
        if ran != variant.venues:
            raise GateInputError(f"{where}: the session ran at venues {ran}, the variant given trades at {variant.venues}")


def _variant_mismatch(variant: Variant, session: RecordedSession) -> str | None:
    """Compare what decides the trading (strategy and its config), not the name or description; venues are refused before."""
    given = msgspec.to_builtins(variant.strategy)
    for where, ran in (
        ("session.json", session.document["variant"].get("strategy", {})),
        ("variant.yaml", msgspec.to_builtins(session.recorded_variant.strategy)),
    ):
        if ran != given:
            return f"the variant given is not the one the session ran ({where}): session ran {ran}, given {given}"
    return None


def _with_order_types(matching: Matching, backtest_orders: pl.DataFrame, live_orders: pl.DataFrame) -> Matching:
    """Add each matched order's type (MARKET, LIMIT, ...) from the backtest's orders report and the live order log."""
    backtest_types = backtest_orders.select(pl.col("client_order_id").alias("backtest_order"), pl.col("type").alias("backtest_type"))
    live_types = live_orders.group_by("client_order_id").agg(pl.col("order_type").drop_nulls().first().alias("live_type"))
    pairs = matching.pairs.join(backtest_types, on="backtest_order", how="left").join(
        live_types.rename({"client_order_id": "live_order"}), on="live_order", how="left"
    )
    return Matching(pairs=pairs, unmatched_backtest=matching.unmatched_backtest, unmatched_live=matching.unmatched_live)


def _refused_orders(orders: pl.DataFrame, column: str, refusals: list[str]) -> int:
    """Return how many orders of an orders table have a ``column`` value in ``refusals``."""
    if orders.height == 0:
        return 0
    return orders.filter(pl.col(column).is_in(refusals))["client_order_id"].n_unique()


# What the venue decides against an order (a cancel the strategy asked for is its own decision, not one): as
# events in a session's order log, as final statuses in a backtest's orders report.
_REFUSAL_EVENTS = ["OrderExpired", "OrderRejected"]
_REFUSAL_STATUSES = ["EXPIRED", "REJECTED"]


def order_table(matching: Matching) -> pl.DataFrame:
    """Return every order of both sides, one row each: matched pairs first, then backtest-only and live-only orders."""
    pairs = matching.pairs.select(
        pl.lit("matched").alias("outcome"),
        "backtest_order",
        "live_order",
        pl.col("side").alias("backtest_side"),
        "live_side",
        "backtest_instrument",
        "live_instrument",
        "backtest_strategy",
        "live_strategy",
        "backtest_type",
        "live_type",
        "backtest_liquidity",
        "live_liquidity",
        "backtest_qty",
        "live_qty",
        "backtest_fills",
        "live_fills",
        "backtest_px",
        "live_px",
        "price_dev_bps",
        "lag_ms",
    )
    unmatched = [
        frame.select(
            pl.lit(outcome).alias("outcome"),
            *[
                (pl.col(source) if mine == side else pl.lit(None, dtype)).alias(f"{side}_{name}")
                for side in ("backtest", "live")
                for name, source, dtype in (
                    ("order", "client_order_id", pl.String),
                    ("side", "order_side", pl.String),
                    ("instrument", "instrument_id", pl.String),
                    ("strategy", "strategy_id", pl.String),
                    ("liquidity", "liquidity_side", pl.String),
                    ("qty", "quantity", pl.Float64),
                    ("fills", "fills", pl.UInt32),
                    ("px", "avg_px", pl.Float64),
                )
            ],
        )
        for frame, outcome, mine in (
            (matching.unmatched_backtest, "backtest only", "backtest"),
            (matching.unmatched_live, "live only", "live"),
        )
    ]
    return pl.concat([pairs, *unmatched], how="diagonal")


def _cell(text: str) -> str:
    """Escape a markdown table cell (check names use |x| for absolute values)."""
    return text.replace("|", "\\|")


def _fmt(value: float | None) -> str:
    """Format a measurement for the reports; n/a when it could not be measured."""
    return "n/a" if value is None else f"{value:.4g}"


def _exact(value: float | None) -> str:
    """Format a price or quantity with all its digits (an average price falls between ticks)."""
    return "n/a" if value is None else f"{value:.10g}"


def _pnl_rows(pnl: dict[str, dict[str, float]], backtest_notional: float) -> list[str]:
    """Return the markdown rows of one P&L table (total or one instrument), differences in bps of the backtest's total notional."""
    rows = []
    for component in (*PNL_COMPONENTS, "notional"):
        difference = pnl["live"][component] - pnl["backtest"][component]
        in_bps = f"{difference / backtest_notional * 10_000:+.3f}" if backtest_notional else "n/a"
        rows.append(f"| {component} | {pnl['backtest'][component]:.6f} | {pnl['live'][component]:.6f} | {difference:+.6f} | {in_bps} |")
    return rows


def _write_reports(
    folder: Path,
    report: GateReport,
    session: RecordedSession,
    variant_path: Path,
    thresholds: GateThresholds,
    venues: dict[str, VenueModel],
    backtest: RunResult,
) -> None:
    report.matching.pairs.write_parquet(folder / "pairs.parquet")
    orders = order_table(report.matching)
    backtest_notional = report.pnl["backtest"]["notional"]
    document = {
        "verdict": "promote" if report.promoted else "reject",
        "reasons": report.reasons,
        "session": str(session.session_dir),
        "session_sha256": session.sha256,
        "variant": str(variant_path),
        "thresholds": msgspec.to_builtins(thresholds),
        "checks": [{"name": c.name, "value": c.value, "limit": c.limit, "passed": c.passed} for c in report.checks],
        "pnl": report.pnl,
        "pnl_by_instrument": report.pnl_by_instrument,
        "currency": report.currency,
        "backtest_latency_ms": report.backtest_latency_ms,
        "latency_source": report.latency_source,
        "round_trips_ms": report.round_trips_ms.to_list(),
        "venue_models": {name: venue.to_primitives() for name, venue in venues.items()},
        "matched": report.matching.pairs.height,
        "orders": orders.to_dicts(),
        "unmatched_backtest": report.matching.unmatched_backtest.to_dicts(),
        "unmatched_live": report.matching.unmatched_live.to_dicts(),
        "decision_sha256": report.decision.sha256,
    }
    (folder / "gate_report.json").write_text(json.dumps(document, indent=2, default=str))
    pnl_header = [
        f"| P&L component ({report.currency}) | backtest | live | live - backtest | bps of backtest notional (total) |",
        "|---|---|---|---|---|",
    ]
    lines = [
        f"# Gate: {'PROMOTE' if report.promoted else 'REJECT'}",
        "",
        f"- session: `{session.session_dir}` (manifest sha256 `{session.sha256}`)",
        f"- variant: `{variant_path}`",
        f"- backtest over the session: `{folder.name.removesuffix('.partial')}/backtest/` (tearsheet.html)",
        f"- backtest latency: {report.backtest_latency_ms:.3f} ms ("
        + ("the session's median order round trip" if report.latency_source == "measured" else f"{report.latency_source}")
        + ")",
        f"- decision on record: `{report.decision.sha256}` by {report.decision.record['operator']}",
        "- full report with charts: `gate_report.html`",
        "",
        "| check | value | threshold | result |",
        "|---|---|---|---|",
        *[f"| {_cell(c.name)} | {_fmt(c.value)} | {c.limit} | {'pass' if c.passed else 'FAIL'} |" for c in report.checks],
        "",
        "## Total",
        "",
        *pnl_header,
        *_pnl_rows(report.pnl, backtest_notional),
        "",
    ]
    for instrument_id, pnl in report.pnl_by_instrument.items():
        own = orders.filter(pl.coalesce("backtest_instrument", "live_instrument") == instrument_id)
        lines += [
            f"## {instrument_id}",
            "",
            *pnl_header,
            *_pnl_rows(pnl, backtest_notional),
            "",
            "| outcome | backtest order | live order | side (bt / live) | quantity (bt / live) | fills (bt / live) | avg price (bt / live) | deviation (bps) | lag (ms) |",
            "|---|---|---|---|---|---|---|---|---|",
            *[
                f"| {row['outcome']} | {row['backtest_order'] or ''} | {row['live_order'] or ''} | {row['backtest_side'] or ''} / {row['live_side'] or ''} | "
                f"{_exact(row['backtest_qty'])} / {_exact(row['live_qty'])} | "
                f"{_fmt(row['backtest_fills'])} / {_fmt(row['live_fills'])} | "
                f"{_exact(row['backtest_px'])} / {_exact(row['live_px'])} | {_fmt(row['price_dev_bps'])} | {_fmt(row['lag_ms'])} |"
                for row in own.iter_rows(named=True)
            ],
            "",
        ]
    if report.reasons:
        lines += ["## Reasons", "", *[f"- {reason}" for reason in report.reasons], ""]
    (folder / "gate_report.md").write_text("\n".join(lines))
    write_html_report(folder / "gate_report.html", report, session, orders, venues, backtest.equity, backtest.fills)
