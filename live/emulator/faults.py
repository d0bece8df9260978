"""Fault injection knobs the gate's tests turn on: slippage, missed fills, order latency and a fee mismatch."""

from dataclasses import dataclass
from dataclasses import fields
from typing import Any

from keel.live.emulator.config import check_fault_values

# Knobs that take any real number (the range is checked by ``check_fault_values``); drop_fill_every is an int.
_NUMBER_KNOBS = ("slippage_bps", "order_latency_ms", "extra_fee_bps")


@dataclass
class Faults:
    """
    The venue's current faults (mutable: the admin endpoint changes them while the venue runs).

    Parameters
    ----------
    slippage_bps : float
        Every fill price is made worse by this many basis points, rounded to the tick against the order.
    drop_fill_every : int
        Every N-th order that would fill is EXPIRED unfilled instead; 0 = off.
    order_latency_ms : float
        Delay before an order request (new, cancel) is processed.
    extra_fee_bps : float
        Every fill is charged this many basis points of its notional on top of the listed maker/taker rate
        (a fee mismatch between the venue and the backtest's venue model); 0 = off.
    """

    slippage_bps: float = 0.0
    drop_fill_every: int = 0
    order_latency_ms: float = 0.0
    extra_fee_bps: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        """
        Apply ``changes`` (a subset of the fields); raise ``ValueError`` naming the field when one is unknown
        or out of range, leaving every knob unchanged.
        """
        names = [field.name for field in fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"faults: unknown field(s) {unknown}; expected {', '.join(names)}")
        knobs = self.as_dict() | changes
        for name in _NUMBER_KNOBS:
            if not isinstance(knobs[name], int | float) or isinstance(knobs[name], bool):
                raise ValueError(f"faults.{name}: expected a number, got {knobs[name]!r}")
            knobs[name] = float(knobs[name])
        check_fault_values(
            knobs["slippage_bps"],
            knobs["drop_fill_every"],
            knobs["order_latency_ms"],
            knobs["extra_fee_bps"],
            where="faults",
        )
        for name in names:
            setattr(self, name, knobs[name])

    def as_dict(self) -> dict[str, Any]:
        """Return the knobs as a JSON-ready dict."""
        return {field.name: getattr(self, field.name) for field in fields(self)}
