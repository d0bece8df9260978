"""The probe strategy without its close-out: it keeps its position after stop, so the session ends not flat."""

from probe_strategy import ProbeStrategy


class HoldingStrategy(ProbeStrategy):
    """Buy like ``ProbeStrategy``, and on stop leave the position open."""

    def on_stop(self) -> None:
        self.unsubscribe_trade_ticks(self.config.instrument_id)
