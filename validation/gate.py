"""The promotion gate: replay a backtest over a recorded live session and compare it with the live fills.

A session folder (written by ``keel live``) holds the variant that ran, the market data the node received
(as a catalog), the window and the live fills. The gate backtests the same variant file over exactly that
data and window, matches orders (``keel.validation.matching``), compares P&L by component (gross, fees, net,
as hftbacktest#67 taught: totals can agree while components do not), applies the thresholds of
``configs/gate.yaml`` and writes ``gate_report.json`` and ``gate_report.md``.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal

import msgspec
import polars as pl
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.backtests.performance import fill_cash_flows
from keel.backtests.runner import run_backtest
from keel.backtests.venues import VenueModel
from keel.backtests.venues import venue_model_for
from keel.config_files import load_struct
from keel.fills import read_fills
from keel.live.session_layout import ORDERS_PARQUET
from keel.settings import CONFIGS_DIR
from keel.validation.latency import median_round_trip_ms
from keel.validation.matching import Matching
from keel.validation.matching import match_orders
from keel.validation.matching import orders_from_fills
from keel.variant import Variant
from keel.variant import load_variant

DEFAULT_THRESHOLDS = CONFIGS_DIR / "gate.yaml"


class GateInputError(ValueError):
    """The session folder, variant or thresholds file is missing or malformed."""


class GateThresholds(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    What a session must meet to be promoted.

    Parameters
    ----------
    match_tolerance_ms : float
        Largest time lag at which a live order can be the twin of a backtest order.
    min_live_orders : int
        Fewest filled live orders; a session that never traded validates nothing.
    min_match_ratio : float
        Matched orders over the order count of the busier side.
    max_unmatched_backtest : int
        Most backtest orders without a live twin.
    max_unmatched_live : int
        Most live orders without a backtest twin.
    max_median_price_dev_bps : float
        Largest median signed price deviation (positive = live worse), bps: systematic slippage. The median,
        not the mean, so one fill delayed by a busy node in a fast market fails the p95 check, not this one.
    max_p95_abs_price_dev_bps : float
        Largest 95th percentile of absolute price deviation, bps.
    max_abs_median_lag_ms : float
        Largest absolute median time lag (live - backtest), ms.
    max_pnl_diff_bps_of_notional : float
        Largest difference of each P&L component (gross, fees, net), in bps of the live traded notional.
    max_extra_refused_live : int
        Most live orders the venue expired or rejected beyond those the backtest's venue did. Matching sees
        only filled orders, and a strategy that sends an order again when one expires can heal the fill
        sequence; this check sees the venue that kept refusing it.
    backtest_latency : str
        ``measured``: the backtest over the session uses the session's median order round trip as its latency
        (``keel.validation.latency``); ``venue_model``: the venue model's latency as configured.

    """

    match_tolerance_ms: float = 5000.0
    min_live_orders: int = 1
    min_match_ratio: float = 0.9
    max_unmatched_backtest: int = 1
    max_unmatched_live: int = 1
    max_median_price_dev_bps: float = 1.0
    max_p95_abs_price_dev_bps: float = 5.0
    max_abs_median_lag_ms: float = 1000.0
    max_pnl_diff_bps_of_notional: float = 2.0
    max_extra_refused_live: int = 0
    backtest_latency: Literal["measured", "venue_model"] = "measured"


@dataclass(frozen=True)
class Check:
    """
    One gate check.

    Parameters
    ----------
    name : str
        What is measured.
    value : float | None
        The measurement (None when it cannot be measured, e.g. no matched order).
    limit : str
        The threshold, as text (e.g. ``<= 1.0``).
    passed : bool
        Whether the value meets the threshold.

    """

    name: str
    value: float | None
    limit: str
    passed: bool


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
        P&L components (``gross``, ``fees``, ``net``, ``notional``) of ``backtest`` and ``live``.
    matching : Matching
        Matched pairs and unmatched orders.
    report_dir : Path
        Folder with ``gate_report.json``, ``gate_report.md``, ``pairs.parquet`` and the backtest run.
    backtest_latency_ms : float
        The one-way latency the backtest over the session ran with.
    latency_source : str
        ``measured`` (the session's median order round trip) or ``venue_model``.

    """

    promoted: bool
    reasons: list[str]
    checks: list[Check]
    pnl: dict[str, dict[str, float]]
    matching: Matching
    report_dir: Path
    backtest_latency_ms: float
    latency_source: str


def load_thresholds(path: str | Path | None = None) -> GateThresholds:
    """Load a thresholds file (default ``configs/gate.yaml``)."""
    return load_struct(Path(path) if path else DEFAULT_THRESHOLDS, GateThresholds, GateInputError, "gate thresholds")


def run_gate(
    variant_path: str | Path,
    session_dir: str | Path,
    thresholds_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    log_to_mlflow: bool = True,
) -> GateReport:
    """Replay the variant over the session, compare with the live fills, and write the verdict."""
    session_dir = Path(session_dir)
    thresholds = load_thresholds(thresholds_path)
    variant = load_variant(variant_path)
    session = _load_session(session_dir)
    report_dir = Path(out_dir) if out_dir else session_dir / "gate"
    staging = report_dir.with_name(report_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    mismatch = _variant_mismatch(variant, session["variant"])
    venue, latency_source = _backtest_venue(variant, session_dir, thresholds)
    backtest = run_backtest(
        variant,
        session_dir / "catalog",
        run_dir=staging / "backtest",
        start=session["start_ns"],
        end=session["end_ns"],
        venue=venue,
        log_to_mlflow=log_to_mlflow,
        experiment="gate",
        tags={"keel.gate.session": session_dir.name},
        tearsheet=True,
    )
    live_fills = read_fills(session_dir / "fills.parquet")
    instrument = ParquetDataCatalog(str(session_dir / "catalog")).instruments(instrument_ids=[variant.instrument_id])[0]
    base = instrument.base_currency.code
    mark = float(pl.read_parquet(backtest.run_dir / "equity.parquet")["price"][-1])
    matching = match_orders(
        orders_from_fills(backtest.fills, base),
        orders_from_fills(live_fills, base),
        thresholds.match_tolerance_ms,
    )
    pnl = {"backtest": _pnl(backtest.fills, base, mark), "live": _pnl(live_fills, base, mark)}
    refused = {
        "backtest": _refused_orders(backtest.run_dir / "orders.parquet", "status", _REFUSAL_STATUSES),
        "live": _refused_orders(session_dir / ORDERS_PARQUET, "event_type", _REFUSAL_EVENTS),
    }
    checks = _checks(thresholds, matching, pnl, mismatch, refused)
    reasons = [f"{check.name} = {_fmt(check.value)}, expected {check.limit}" for check in checks if not check.passed]
    if mismatch:
        reasons.insert(0, mismatch)
    report = GateReport(
        promoted=not reasons,
        reasons=reasons,
        checks=checks,
        pnl=pnl,
        matching=matching,
        report_dir=report_dir,
        backtest_latency_ms=venue.latency.base_ms + venue.latency.insert_ms,
        latency_source=latency_source,
    )
    _write_report(staging, report, session_dir, Path(variant_path), thresholds)
    shutil.rmtree(report_dir, ignore_errors=True)
    staging.rename(report_dir)
    return report


def _backtest_venue(variant: Variant, session_dir: Path, thresholds: GateThresholds) -> tuple[VenueModel, str]:
    """Return the venue model of the variant, with the session's measured round trip as latency when asked, and which latency it has."""
    venue = venue_model_for(variant.venue)
    orders_path = session_dir / ORDERS_PARQUET
    if thresholds.backtest_latency != "measured" or not orders_path.is_file():
        return venue, "venue_model"
    round_trip = median_round_trip_ms(pl.read_parquet(orders_path))
    if round_trip is None:
        return venue, "venue_model"
    # nautilus' backtest hands the venue's answer back to the strategy at once, live it takes the return leg:
    # the whole round trip on the way in makes the strategy learn of its fills when it did live (its next
    # decision waits on that), at the cost of matching against the book half a round trip late.
    latency = msgspec.structs.replace(venue.latency, base_ms=round_trip, insert_ms=0.0)
    return msgspec.structs.replace(venue, latency=latency), "measured"


def _load_session(session_dir: Path) -> dict[str, Any]:
    for name in ("session.json", "fills.parquet", "catalog"):
        if not (session_dir / name).exists():
            raise GateInputError(f"{session_dir / name}: missing; is {session_dir} a session folder written by `keel live`?")
    session = json.loads((session_dir / "session.json").read_text())
    for key in ("variant", "start_ns", "end_ns"):
        if session.get(key) is None:
            raise GateInputError(f"{session_dir / 'session.json'}: field {key!r} missing")
    return session


def _variant_mismatch(variant: Variant, recorded: dict[str, Any]) -> str | None:
    ran = recorded.get("strategy", {})
    given = msgspec.to_builtins(variant.strategy)
    if ran != given:
        return f"the variant given is not the one the session ran: session ran {ran}, given {given}"
    return None


def _pnl(fills: pl.DataFrame, base_currency: str, mark: float) -> dict[str, float]:
    flows = fill_cash_flows(fills, base_currency)
    if flows.height == 0:
        return {"gross": 0.0, "fees": 0.0, "net": 0.0, "notional": 0.0}
    gross = float(flows["quote_gross"].sum() + flows["base_gross"].sum() * mark)
    fees = float(flows["fee_quote"].sum())
    notional = float((flows["last_qty"] * flows["last_px"]).sum())
    return {"gross": gross, "fees": fees, "net": gross - fees, "notional": notional}


def _refused_orders(orders_path: Path, column: str, refusals: list[str]) -> int:
    """Return how many orders of an orders file have a ``column`` value in ``refusals``; 0 without the file."""
    if not orders_path.is_file():
        return 0
    orders = pl.read_parquet(orders_path, columns=["client_order_id", column])
    return orders.filter(pl.col(column).is_in(refusals))["client_order_id"].n_unique()


# What the venue decides against an order (a cancel the strategy asked for is its own decision, not one): as
# events in a session's order log, as final statuses in a backtest's orders report.
_REFUSAL_EVENTS = ["OrderExpired", "OrderRejected"]
_REFUSAL_STATUSES = ["EXPIRED", "REJECTED"]


def _checks(
    thresholds: GateThresholds, matching: Matching, pnl: dict[str, dict[str, float]], mismatch: str | None, refused: dict[str, int],
) -> list[Check]:
    pairs = matching.pairs
    live_orders = pairs.height + matching.unmatched_live.height
    backtest_orders = pairs.height + matching.unmatched_backtest.height
    busier = max(live_orders, backtest_orders)
    checks = [
        Check("same variant as the session", 0.0 if mismatch else 1.0, "== 1", mismatch is None),
        Check("live orders", float(live_orders), f">= {thresholds.min_live_orders}", live_orders >= thresholds.min_live_orders),
    ]
    ratio = pairs.height / busier if busier else None
    checks.append(Check("match ratio", ratio, f">= {thresholds.min_match_ratio}", ratio is not None and ratio >= thresholds.min_match_ratio))
    checks.append(_at_most("unmatched backtest orders", float(matching.unmatched_backtest.height), thresholds.max_unmatched_backtest))
    checks.append(_at_most("unmatched live orders", float(matching.unmatched_live.height), thresholds.max_unmatched_live))
    deviation = pairs["price_dev_bps"]
    checks.append(_at_most("median price deviation (bps, + = live worse)", deviation.median() if pairs.height else None, thresholds.max_median_price_dev_bps))
    checks.append(_at_most("p95 |price deviation| (bps)", deviation.abs().quantile(0.95) if pairs.height else None, thresholds.max_p95_abs_price_dev_bps))
    median_lag = pairs["lag_ms"].median() if pairs.height else None
    checks.append(_at_most("|median lag| (ms)", abs(median_lag) if median_lag is not None else None, thresholds.max_abs_median_lag_ms))
    notional = pnl["live"]["notional"]
    for component in ("gross", "fees", "net"):
        difference = pnl["live"][component] - pnl["backtest"][component]
        in_bps = abs(difference) / notional * 10_000 if notional else None
        checks.append(_at_most(f"|{component} P&L difference| (bps of notional)", in_bps, thresholds.max_pnl_diff_bps_of_notional))
    extra_refused = float(refused["live"] - refused["backtest"])
    checks.append(_at_most("live orders the venue expired or rejected, beyond the backtest's", extra_refused, thresholds.max_extra_refused_live))
    return checks


def _at_most(name: str, value: float | None, limit: float) -> Check:
    return Check(name, value, f"<= {limit}", value is not None and value <= limit)


def _cell(text: str) -> str:
    """Escape a markdown table cell (check names use |x| for absolute values)."""
    return text.replace("|", "\\|")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _write_report(folder: Path, report: GateReport, session_dir: Path, variant_path: Path, thresholds: GateThresholds) -> None:
    report.matching.pairs.write_parquet(folder / "pairs.parquet")
    document = {
        "verdict": "promote" if report.promoted else "reject",
        "reasons": report.reasons,
        "session": str(session_dir),
        "variant": str(variant_path),
        "thresholds": msgspec.to_builtins(thresholds),
        "checks": [{"name": c.name, "value": c.value, "limit": c.limit, "passed": c.passed} for c in report.checks],
        "pnl": report.pnl,
        "backtest_latency_ms": report.backtest_latency_ms,
        "latency_source": report.latency_source,
        "matched": report.matching.pairs.height,
        "unmatched_backtest": report.matching.unmatched_backtest.to_dicts(),
        "unmatched_live": report.matching.unmatched_live.to_dicts(),
    }
    (folder / "gate_report.json").write_text(json.dumps(document, indent=2))
    lines = [
        f"# Gate: {'PROMOTE' if report.promoted else 'REJECT'}",
        "",
        f"- session: `{session_dir}`",
        f"- variant: `{variant_path}`",
        f"- backtest over the session: `{folder.name.removesuffix('.partial')}/backtest/` (tearsheet.html)",
        f"- backtest latency: {report.backtest_latency_ms:.3f} ms ("
        + ("the session's median order round trip" if report.latency_source == "measured" else "the venue model's")
        + ")",
        "",
        "| check | value | threshold | result |",
        "|---|---|---|---|",
        *[f"| {_cell(c.name)} | {_fmt(c.value)} | {c.limit} | {'pass' if c.passed else 'FAIL'} |" for c in report.checks],
        "",
        "| P&L component | backtest | live | live - backtest |",
        "|---|---|---|---|",
        *[
            f"| {component} | {report.pnl['backtest'][component]:.6f} | {report.pnl['live'][component]:.6f} | "
            f"{report.pnl['live'][component] - report.pnl['backtest'][component]:+.6f} |"
            for component in ("gross", "fees", "net", "notional")
        ],
        "",
    ]
    if report.reasons:
        lines += ["## Reasons", "", *[f"- {reason}" for reason in report.reasons], ""]
    (folder / "gate_report.md").write_text("\n".join(lines))
