"""Fault injection knobs the gate's tests turn on: slippage, missed fills and order latency."""

from dataclasses import dataclass
from typing import Any

from keel.live.emulator.config import check_fault_values


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
    """

    slippage_bps: float = 0.0
    drop_fill_every: int = 0
    order_latency_ms: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        """
        Apply ``changes`` (a subset of the fields); raise ``ValueError`` naming the field when one is unknown
        or out of range, leaving every knob unchanged.
        """
        unknown = sorted(set(changes) - {"slippage_bps", "drop_fill_every", "order_latency_ms"})
        if unknown:
            raise ValueError(f"faults: unknown field(s) {unknown}; expected slippage_bps, drop_fill_every, order_latency_ms")
        slippage_bps = changes.get("slippage_bps", self.slippage_bps)
        drop_fill_every = changes.get("drop_fill_every", self.drop_fill_every)
        order_latency_ms = changes.get("order_latency_ms", self.order_latency_ms)
        if not isinstance(slippage_bps, int | float) or isinstance(slippage_bps, bool):
            raise ValueError(f"faults.slippage_bps: expected a number, got {slippage_bps!r}")
        if not isinstance(order_latency_ms, int | float) or isinstance(order_latency_ms, bool):
            raise ValueError(f"faults.order_latency_ms: expected a number, got {order_latency_ms!r}")
        check_fault_values(float(slippage_bps), drop_fill_every, float(order_latency_ms), where="faults")
        self.slippage_bps = float(slippage_bps)
        self.drop_fill_every = drop_fill_every
        self.order_latency_ms = float(order_latency_ms)

    def as_dict(self) -> dict[str, Any]:
        """Return the knobs as a JSON-ready dict."""
        return {"slippage_bps": self.slippage_bps, "drop_fill_every": self.drop_fill_every, "order_latency_ms": self.order_latency_ms}
