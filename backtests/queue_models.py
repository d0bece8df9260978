"""
Where a resting limit order stands in its price level's queue: one small interface, several assumptions.

A venue fills a resting order only after the orders ahead of it at its price have gone, by trades or cancels.
Market data shows the level's total size, not who is ahead, so a backtest has to assume how the size ahead of
the order evolves. As in hftbacktest, a queue model answers one question: the visible size at the order's price
changed from ``previous`` to ``new`` for reasons other than the trades already counted; how much is still ahead?
Trades are the same under every model: a print at the order's price takes from the front of the queue first.

- :class:`RiskAverseQueue` (hftbacktest's ``RiskAverseQueueModel``): only trades move the order forward; a level
  that shrinks below the size ahead caps it (those cancels must have been ahead), nothing more.
- :class:`PowerProbQueue` (hftbacktest's ``PowerProbQueueModel``): a decrease not explained by trades is a cancel,
  from behind the order with probability ``f(back) / (f(front) + f(back))``, ``f(x) = x ** power``: the more size
  is behind the order, the likelier a cancel came from there; what the back cannot absorb came from the front.
- :class:`NoQueue`: the order is first in line, filled by the first trade at its price (an optimistic bound).
"""

from typing import Protocol


class QueueModel(Protocol):
    """How cancels and additions at an order's price move it in the queue."""

    def ahead_after_change(self, ahead: float, previous: float, new: float) -> float:
        """
        Return the size ahead of the order after the level changed from ``previous`` to ``new``.

        Parameters
        ----------
        ahead : float
            Size ahead of the order before the change.
        previous : float
            Visible size of the level before the change, trades already counted taken out.
        new : float
            Visible size of the level after the change.

        """
        ...

    def ahead_at_arrival(self, visible: float) -> float:
        """Return the size ahead of an order that joins a level showing ``visible``."""
        ...


class RiskAverseQueue:
    """Only trades move the order up; a shrinking level caps the size ahead at its new size."""

    def ahead_at_arrival(self, visible: float) -> float:
        """The whole visible level is ahead."""
        return visible

    def ahead_after_change(self, ahead: float, previous: float, new: float) -> float:
        """Cap at the new level size."""
        return min(ahead, new)


class PowerProbQueue:
    """
    A cancel is behind the order with probability ``f(back) / (f(front) + f(back))``, ``f(x) = x ** power``.

    Parameters
    ----------
    power : float
        The exponent ``n`` of ``f(x) = x ** n``; larger means cancels are more often from the back.

    """

    def __init__(self, power: float) -> None:
        if power <= 0:
            raise ValueError(f"queue power must be > 0, got {power}")
        self.power = power

    def ahead_at_arrival(self, visible: float) -> float:
        """The whole visible level is ahead."""
        return visible

    def ahead_after_change(self, ahead: float, previous: float, new: float) -> float:
        """Split a decrease between front and back by the probability of each; additions join the back."""
        decrease = previous - new
        if decrease <= 0:
            return min(ahead, new)
        front = max(ahead, 0.0)
        back = max(previous - front, 0.0)
        weight_front, weight_back = front**self.power, back**self.power
        from_back = weight_back / (weight_front + weight_back) if weight_front + weight_back > 0 else 1.0
        # hftbacktest: front - (1 - p) * chg + min(back - p * chg, 0): what the back cannot absorb came from the front.
        estimate = front - (1 - from_back) * decrease + min(back - from_back * decrease, 0.0)
        return min(max(estimate, 0.0), new)


class NoQueue:
    """Nothing is ahead: the first trade at the order's price fills it."""

    def ahead_at_arrival(self, visible: float) -> float:
        """Nothing ahead."""
        return 0.0

    def ahead_after_change(self, ahead: float, previous: float, new: float) -> float:
        """Nothing ahead."""
        return 0.0


def queue_model_for(name: str, power: float) -> QueueModel:
    """Return the queue model of a venue model's ``fills.queue_model`` (``power`` for ``power_prob``)."""
    if name == "risk_averse":
        return RiskAverseQueue()
    if name == "power_prob":
        return PowerProbQueue(power)
    if name == "none":
        return NoQueue()
    raise ValueError(f"fills.queue_model: expected 'risk_averse', 'power_prob' or 'none', got {name!r}")
