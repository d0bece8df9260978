"""What a session must meet to be promoted: the thresholds file (``configs/gate.yaml``)."""

from pathlib import Path
from typing import Literal

import msgspec

from keel.config_files import load_struct
from keel.settings import CONFIGS_DIR
from keel.validation.errors import GateInputError

DEFAULT_THRESHOLDS = CONFIGS_DIR / "gate.yaml"


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
    max_quantity_diff_steps : float
        Largest difference of filled quantity between a live order and its backtest twin, in the instrument's
        size steps. The backtest's venue takes a buy's commission in the quote currency, Binance in the bought
        asset, so a live sell that closes a position can be one step smaller.
    max_fill_count_diff : int
        Largest difference of the number of fills between a live order and its backtest twin (each book
        level a market order takes is one fill on both sides).
    max_median_price_dev_bps : float
        Largest median signed price deviation (positive = live worse), bps: systematic slippage. The median,
        not the mean, so one fill delayed by a busy node in a fast market fails the p95 check, not this one.
    max_p95_abs_price_dev_bps : float
        Largest 95th percentile of absolute price deviation, bps.
    max_abs_median_lag_ms : float
        Largest absolute median time lag (live - backtest), ms.
    max_pnl_diff_bps_of_backtest_notional : float
        Largest difference of each P&L component (gross, fees, rebates, funding, net, slippage), in bps of the
        *backtest's* traded notional: a denominator the live side cannot inflate.
    max_median_round_trip_ms : float
        Largest median order round trip of the session (``OrderSubmitted`` to the venue's first answer), ms.
        The backtest over the session replays the measured latency, so a slow venue or node does not show in
        the comparison of fills; but the variant was selected in research backtests with the venue model's
        latency, and a live round trip far beyond it means it trades on decisions it was not tested with.
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
    min_match_ratio: float = 0.85
    max_unmatched_backtest: int = 2
    max_unmatched_live: int = 2
    max_quantity_diff_steps: float = 1.0
    max_fill_count_diff: int = 1
    max_median_price_dev_bps: float = 1.0
    max_p95_abs_price_dev_bps: float = 8.0
    max_abs_median_lag_ms: float = 1000.0
    max_pnl_diff_bps_of_backtest_notional: float = 2.0
    max_median_round_trip_ms: float = 250.0
    max_extra_refused_live: int = 0
    backtest_latency: Literal["measured", "venue_model"] = "measured"


def resolve_thresholds_path(path: str | Path | None) -> Path:
    """Return the thresholds file to use: ``path``, or the shipped ``configs/gate.yaml``."""
    return Path(path) if path else DEFAULT_THRESHOLDS


def load_thresholds(path: str | Path | None = None) -> GateThresholds:
    """Load a thresholds file (default ``configs/gate.yaml``)."""
    return load_struct(resolve_thresholds_path(path), GateThresholds, GateInputError, "gate thresholds")
