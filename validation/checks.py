"""The gate's checks: everything that was traded, live against the backtest over the same session.

Orders are matched per instrument (``keel.validation.gate``). Per matched order: side, strategy, order type,
liquidity, number of fills and time, over all instruments; quantity (fills summed, in the instrument's size
steps) and average price (signed and absolute deviation) per instrument, since a size step and a price move
are an instrument's own. Unmatched orders on either side. P&L by component (gross, fees, rebates, funding,
net, slippage vs the backtest), in total and, for a variant of several instruments, per instrument (an
instrument's gain cannot hide another's loss), each difference in bps of the *backtest's* total traded
notional, which the live side cannot inflate. The live session on its own: fills of the variant's
instruments only, inside the session window, flat at the end per instrument (dust below its size step
aside), no order left working, no more venue refusals than the backtest had.

A value that cannot be measured (no matched order, a backtest that did not trade) fails its check.
"""

from dataclasses import dataclass

import polars as pl
from nautilus_trader.model.instruments import Instrument

from keel.pnl import TOTAL
from keel.pnl import InstrumentTerms
from keel.pnl import PortfolioPnl
from keel.pnl import fill_cash_flows
from keel.validation.latency import median_round_trip_ms
from keel.validation.matching import Matching
from keel.validation.recorded_session import RecordedSession
from keel.validation.recorded_session import open_orders_at_end
from keel.validation.thresholds import GateThresholds

# Quantities in size steps are rounded to this many decimals (float arithmetic on decimal steps).
STEP_DECIMALS = 9
# P&L components compared, in the order they are reported; ``notional`` is the denominator, not compared.
PNL_COMPONENTS = ("gross", "fees", "rebates", "funding", "net", "slippage")


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


def per_instrument(name: str, instrument_id: str) -> str:
    """Return the name of a check of one instrument (``name [BTCUSDT.BINANCE]``)."""
    return f"{name} [{instrument_id}]"


def pnl_by_component(pnl: PortfolioPnl, slippage: dict[str, float]) -> dict[str, dict[str, float]]:
    """
    Return one side's P&L components and its traded ``notional``, in total (key ``TOTAL``) and per instrument.

    ``slippage`` is the P&L effect of the live prices against the backtest's on matched orders, per instrument
    (empty for the backtest itself), part of ``gross``; its total is the sum over instruments.
    """
    components = {TOTAL: pnl.total, **pnl.by_instrument}
    return {
        name: {
            "gross": part.gross,
            "fees": part.fees,
            "rebates": part.rebates,
            "funding": part.funding,
            "net": part.net,
            "slippage": float(sum(slippage.values())) if name == TOTAL else slippage.get(name, 0.0),
            "notional": part.notional,
        }
        for name, part in components.items()
    }


def live_slippage(pairs: pl.DataFrame) -> dict[str, float]:
    """Return per instrument the P&L effect of live prices vs the backtest's on matched orders: - sum(sign x (live - backtest) x live quantity)."""
    sign = pl.when(pl.col("side") == "BUY").then(1.0).otherwise(-1.0)
    effect = pairs.group_by("backtest_instrument").agg((-(sign * (pl.col("live_px") - pl.col("backtest_px")) * pl.col("live_qty")).sum()).alias("slippage"))
    # + 0.0: prices equal on every pair make no slippage, not -0.
    return {instrument_id: slippage + 0.0 for instrument_id, slippage in zip(effect["backtest_instrument"], effect["slippage"], strict=True)}


def position_at_end(fills: pl.DataFrame, terms: InstrumentTerms) -> float:
    """Return the base position the fills leave (a base-asset commission reduces it)."""
    if fills.height == 0:
        return 0.0
    flows = fill_cash_flows(fills, terms)
    return float((flows["base_gross"] - flows["fee_base"]).sum())


def build_checks(
    thresholds: GateThresholds,
    matching: Matching,
    pnl: dict[str, dict[str, dict[str, float]]],
    mismatch: str | None,
    refused: dict[str, int],
    session: RecordedSession,
    instrument_ids: list[str],
) -> list[Check]:
    """
    Return every check of the gate, in report order.

    ``pnl`` is ``{"backtest": ..., "live": ...}`` of :func:`pnl_by_component`; ``instrument_ids`` are the variant's.
    """
    return [
        Check("same variant as the session", 0.0 if mismatch else 1.0, "== 1", mismatch is None),
        *_order_checks(thresholds, matching),
        *[check for instrument_id in instrument_ids for check in _instrument_order_checks(thresholds, matching, session.instruments[instrument_id])],
        *_pnl_checks(thresholds, pnl, instrument_ids),
        *_session_checks(thresholds, session, instrument_ids, refused),
    ]


def _order_checks(thresholds: GateThresholds, matching: Matching) -> list[Check]:
    pairs = matching.pairs
    live_orders = pairs.height + matching.unmatched_live.height
    backtest_orders = pairs.height + matching.unmatched_backtest.height
    busier = max(live_orders, backtest_orders)
    ratio = pairs.height / busier if busier else None
    matched = pairs.height > 0
    fill_count = (pairs["live_fills"].cast(pl.Int64) - pairs["backtest_fills"].cast(pl.Int64)).abs().max() if matched else None
    median_lag = pairs["lag_ms"].median() if matched else None
    return [
        Check("live orders", float(live_orders), f">= {thresholds.min_live_orders}", live_orders >= thresholds.min_live_orders),
        Check("match ratio", ratio, f">= {thresholds.min_match_ratio}", ratio is not None and ratio >= thresholds.min_match_ratio),
        _at_most("unmatched backtest orders", float(matching.unmatched_backtest.height), thresholds.max_unmatched_backtest),
        _at_most("unmatched live orders", float(matching.unmatched_live.height), thresholds.max_unmatched_live),
        *[
            _at_most(f"matched orders of another {what}", _differing(pairs, backtest, live), 0)
            for what, backtest, live in (
                ("side", "side", "live_side"),
                ("strategy", "backtest_strategy", "live_strategy"),
                ("order type", "backtest_type", "live_type"),
                ("liquidity side", "backtest_liquidity", "live_liquidity"),
            )
        ],
        _at_most("largest |fill count difference| of a matched order", _float(fill_count), thresholds.max_fill_count_diff),
        _at_most("|median lag| (ms)", abs(median_lag) if median_lag is not None else None, thresholds.max_abs_median_lag_ms),
    ]


def _instrument_order_checks(thresholds: GateThresholds, matching: Matching, instrument: Instrument) -> list[Check]:
    """Quantity in the instrument's size steps and price deviation, over the matched orders of one instrument."""
    instrument_id = instrument.id.value
    pairs = matching.pairs.filter(pl.col("backtest_instrument") == instrument_id)
    matched = pairs.height > 0
    # Rounded: quantities are floats of decimal steps, and 0.0040 - 0.0039 is 1.0000000000000027 steps of 0.0001.
    quantity_steps = ((pairs["live_qty"] - pairs["backtest_qty"]).abs() / float(instrument.size_increment)).round(STEP_DECIMALS).max() if matched else None
    deviation = pairs["price_dev_bps"]
    return [
        _at_most(
            per_instrument("largest |quantity difference| of a matched order (size steps)", instrument_id),
            _float(quantity_steps),
            thresholds.max_quantity_diff_steps,
        ),
        _at_most(
            per_instrument("median price deviation (bps, + = live worse)", instrument_id),
            deviation.median() if matched else None,
            thresholds.max_median_price_dev_bps,
        ),
        _at_most(
            per_instrument("p95 |price deviation| (bps)", instrument_id),
            deviation.abs().quantile(0.95) if matched else None,
            thresholds.max_p95_abs_price_dev_bps,
        ),
    ]


def _pnl_checks(thresholds: GateThresholds, pnl: dict[str, dict[str, dict[str, float]]], instrument_ids: list[str]) -> list[Check]:
    """Every component in total, and per instrument when there are several, in bps of the backtest's total notional."""
    notional = pnl["backtest"][TOTAL]["notional"]
    checks = []
    for name in [TOTAL, *(instrument_ids if len(instrument_ids) > 1 else [])]:
        for component in PNL_COMPONENTS:
            difference = pnl["live"][name][component] - pnl["backtest"][name][component]
            in_bps = abs(difference) / notional * 10_000 if notional else None
            check_name = f"|{component} P&L difference| (bps of backtest notional)"
            checks.append(
                _at_most(check_name if name == TOTAL else per_instrument(check_name, name), in_bps, thresholds.max_pnl_diff_bps_of_backtest_notional),
            )
    return checks


def _session_checks(thresholds: GateThresholds, session: RecordedSession, instrument_ids: list[str], refused: dict[str, int]) -> list[Check]:
    fills, orders = session.fills, session.orders
    other_instrument = fills.filter(~pl.col("instrument_id").is_in(instrument_ids)).height + orders.filter(~pl.col("instrument_id").is_in(instrument_ids)).height
    outside = sum(
        frame.filter(~pl.col(column).is_between(session.start_ns, session.end_ns)).height
        for frame in (fills, orders)
        for column in ("ts_event", "ts_init")
    )
    flat = session.document["after_stop"]["flat"]
    return [
        _at_most(f"live fills and order events of other instruments than {', '.join(instrument_ids)}", float(other_instrument), 0),
        _at_most("live fill and order event times outside the session window", float(outside), 0),
        Check("flat after stop (session.json after_stop.flat)", 1.0 if flat else 0.0, "== 1", flat),
        *[_flat_at_end(fills, session.instruments[instrument_id], session.terms[instrument_id]) for instrument_id in instrument_ids],
        _at_most("live orders left working at the end (order log)", float(len(open_orders_at_end(orders))), 0),
        _at_most("median order round trip (ms)", median_round_trip_ms(orders), thresholds.max_median_round_trip_ms),
        _at_most(
            "live orders the venue expired or rejected, beyond the backtest's",
            float(refused["live"] - refused["backtest"]),
            thresholds.max_extra_refused_live,
        ),
    ]


def _flat_at_end(fills: pl.DataFrame, instrument: Instrument, terms: InstrumentTerms) -> Check:
    """The position one instrument's live fills leave, in its size steps: below 1 is dust (a base-asset fee's remainder)."""
    own = fills.filter(pl.col("instrument_id") == terms.instrument_id)
    steps = abs(position_at_end(own, terms)) / float(instrument.size_increment)
    return Check(per_instrument("|position at the end| from the live fills (size steps, below 1 is dust)", terms.instrument_id), steps, "< 1", steps < 1.0)


def _differing(pairs: pl.DataFrame, backtest: str, live: str) -> float | None:
    """Count matched pairs whose two columns differ (None without a matched pair)."""
    return float(pairs.filter(pl.col(backtest).ne_missing(pl.col(live))).height) if pairs.height else None


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _at_most(name: str, value: float | None, limit: float) -> Check:
    return Check(name, value, f"<= {limit}", value is not None and value <= limit)
