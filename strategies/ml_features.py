"""The ML family's features of a trade tape, computed by the same definitions in research and in the strategy.

Two forms of one definition:

- :class:`TapeFeatures`, the incremental form the strategy updates on every trade print, O(1) per print and
  without allocation;
- :func:`batch_features`, the vectorized form research uses on a whole tape (numpy), proven equal to the
  incremental one row by row by ``tests/strategies/test_ml.py``.

Every feature at print ``i`` reads prints ``0..i`` only (no lookahead), and every window counts prints, never
wall-clock time. Prices and sizes enter as integer counts of their increments (ticks and size steps), so every
rolling sum is an exact integer in both forms and each feature ends in the same one or two IEEE operations:
the two forms agree bit for bit, not just to a tolerance, and so do a model's predictions on them.
"""

from dataclasses import asdict
from dataclasses import dataclass
from math import sqrt

import numpy as np

# nautilus aggressor sides as stored in the catalog (AggressorSide enum values).
BUYER = 1
SELLER = 2
NANOSECONDS_PER_SECOND = 1e9


@dataclass(frozen=True)
class FeatureSpec:
    """
    Which features of the tape a model reads; stored with the model so the strategy rebuilds exactly them.

    Parameters
    ----------
    return_horizons : tuple[int, ...], default (5, 20, 100)
        Returns ``(p[i] - p[i-h]) / p[i-h]`` of the trade price over these many prints, one feature each.
    flow_windows : tuple[int, ...], default (20, 100)
        Order-flow imbalance over these many prints, one feature each: buyer-initiated minus seller-initiated
        volume over total volume, in [-1, 1].
    volatility_window : int, default 100
        Root mean square of the print-to-print price changes over this many prints, relative to the price.
    duration_window : int, default 100
        Seconds (exchange time) the last this-many prints took: the tape's speed.
    """

    return_horizons: tuple[int, ...] = (5, 20, 100)
    flow_windows: tuple[int, ...] = (20, 100)
    volatility_window: int = 100
    duration_window: int = 100

    def __post_init__(self) -> None:
        windows = {"return_horizons": self.return_horizons, "flow_windows": self.flow_windows}
        for name, values in windows.items():
            if not values or any(int(value) != value or value < 1 for value in values):
                raise ValueError(f"FeatureSpec.{name} ({values}) must be a non-empty tuple of positive integers")
        for name in ("volatility_window", "duration_window"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"FeatureSpec.{name} ({value}) must be a positive integer")

    @property
    def names(self) -> list[str]:
        """Return the feature (column) names, in the order of every feature row."""
        return [
            *(f"return_{horizon}" for horizon in self.return_horizons),
            *(f"flow_{window}" for window in self.flow_windows),
            f"volatility_{self.volatility_window}",
            f"duration_{self.duration_window}",
        ]

    @property
    def warmup(self) -> int:
        """Return the number of prints before the first feature row: the longest window plus one."""
        return max(*self.return_horizons, *self.flow_windows, self.volatility_window, self.duration_window) + 1

    def to_dict(self) -> dict[str, list[int] | int]:
        """Return the spec as plain values (the model's metadata)."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "FeatureSpec":
        """Return the spec stored by :meth:`to_dict` (lists back to tuples)."""
        return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


class TapeFeatures:
    """
    The features of :class:`FeatureSpec`, updated one trade print at a time (the strategy's form).

    ``push`` takes the print's price in ticks, size in size steps, aggressor side and exchange time; once
    :attr:`is_ready`, ``row`` (a preallocated float64 array, overwritten by every push) holds the features of the
    last print. A ring of ``warmup`` slots per series keeps the values the windows drop.
    """

    __slots__ = (
        "spec", "row", "count", "capacity", "prices", "signed_volumes", "volumes", "squared_changes", "times",
        "flow_sums", "volume_sums", "squared_change_sum", "return_horizons", "flow_windows", "volatility_window",
        "duration_window", "flow_offset", "volatility_index", "duration_index",
    )

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.capacity = spec.warmup
        self.return_horizons = spec.return_horizons
        self.flow_windows = spec.flow_windows
        self.volatility_window = spec.volatility_window
        self.duration_window = spec.duration_window
        self.flow_offset = len(spec.return_horizons)
        self.volatility_index = self.flow_offset + len(spec.flow_windows)
        self.duration_index = self.volatility_index + 1
        self.row = np.zeros(len(spec.names), dtype=np.float64)
        self.prices = [0] * self.capacity
        self.signed_volumes = [0] * self.capacity
        self.volumes = [0] * self.capacity
        self.squared_changes = [0] * self.capacity
        self.times = [0] * self.capacity
        self.flow_sums = [0] * len(spec.flow_windows)
        self.volume_sums = [0] * len(spec.flow_windows)
        self.squared_change_sum = 0
        self.count = 0

    @property
    def is_ready(self) -> bool:
        """Return True once every window is full (``row`` holds features)."""
        return self.count >= self.capacity

    def push(self, price_ticks: int, size_steps: int, aggressor_side: int, ts_event: int) -> bool:
        """Add one print; return True when ``row`` now holds its features (every window full)."""
        capacity = self.capacity
        index = self.count
        slot = index % capacity
        signed = size_steps if aggressor_side == BUYER else -size_steps if aggressor_side == SELLER else 0
        change = price_ticks - self.prices[(index - 1) % capacity] if index else 0
        squared_change = change * change
        self.prices[slot] = price_ticks
        self.signed_volumes[slot] = signed
        self.volumes[slot] = size_steps
        self.squared_changes[slot] = squared_change
        self.times[slot] = ts_event
        self.count = index + 1
        # Rolling sums: add the new print, drop the one leaving each window (its slot still holds it: every
        # window is shorter than the ring).
        for position, window in enumerate(self.flow_windows):
            self.flow_sums[position] += signed
            self.volume_sums[position] += size_steps
            if index >= window:
                leaving = (index - window) % capacity
                self.flow_sums[position] -= self.signed_volumes[leaving]
                self.volume_sums[position] -= self.volumes[leaving]
        self.squared_change_sum += squared_change
        if index >= self.volatility_window:
            self.squared_change_sum -= self.squared_changes[(index - self.volatility_window) % capacity]
        if index + 1 < capacity:
            return False
        row = self.row
        for position, horizon in enumerate(self.return_horizons):
            before = self.prices[(index - horizon) % capacity]
            row[position] = (price_ticks - before) / before
        offset = self.flow_offset
        for position in range(len(self.flow_windows)):
            volume = self.volume_sums[position]
            row[offset + position] = self.flow_sums[position] / volume if volume else 0.0
        row[self.volatility_index] = sqrt(self.squared_change_sum / self.volatility_window) / price_ticks
        row[self.duration_index] = (ts_event - self.times[(index - self.duration_window) % capacity]) / NANOSECONDS_PER_SECOND
        return True

    def reset(self) -> None:
        """Forget every print."""
        self.__init__(self.spec)


def batch_features(spec: FeatureSpec, price_ticks: np.ndarray, size_steps: np.ndarray, aggressor_sides: np.ndarray, ts_events: np.ndarray) -> np.ndarray:
    """
    Return the features of every print of a tape at once (research's form of :class:`TapeFeatures`).

    Parameters
    ----------
    spec : FeatureSpec
        The features to compute.
    price_ticks, size_steps, aggressor_sides, ts_events : np.ndarray
        One entry per print, in the order the strategy receives them: price in ticks and size in size steps
        (integers), nautilus aggressor side (1 buyer, 2 seller, 0 none), exchange time in ns.

    Returns
    -------
    np.ndarray
        float64, shape ``(prints, len(spec.names))``; rows before ``spec.warmup - 1`` are NaN (windows not full).
    """
    prices = np.asarray(price_ticks, dtype=np.int64)
    sizes = np.asarray(size_steps, dtype=np.int64)
    sides = np.asarray(aggressor_sides)
    times = np.asarray(ts_events, dtype=np.int64)
    count = prices.size
    if not (sizes.size == sides.size == times.size == count):
        raise ValueError(f"batch_features: price_ticks, size_steps, aggressor_sides and ts_events differ in length ({count}, {sizes.size}, {sides.size}, {times.size})")
    features = np.full((count, len(spec.names)), np.nan)
    first = spec.warmup - 1
    if count <= first:
        return features
    rows = np.arange(first, count)
    signed = np.where(sides == BUYER, sizes, np.where(sides == SELLER, -sizes, 0))
    changes = np.zeros(count, dtype=np.int64)
    changes[1:] = np.diff(prices)

    def window_sums(values: np.ndarray, window: int) -> np.ndarray:
        # Exact integer sums of values[i - window + 1 .. i] for every feature row.
        cumulative = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
        return cumulative[rows + 1] - cumulative[rows + 1 - window]

    column = 0
    for horizon in spec.return_horizons:
        before = prices[rows - horizon]
        features[first:, column] = (prices[rows] - before) / before
        column += 1
    for window in spec.flow_windows:
        volume = window_sums(sizes, window)
        flow = window_sums(signed, window)
        features[first:, column] = np.divide(flow, volume, out=np.zeros(rows.size), where=volume != 0)
        column += 1
    features[first:, column] = np.sqrt(window_sums(changes * changes, spec.volatility_window) / spec.volatility_window) / prices[rows]
    features[first:, column + 1] = (times[rows] - times[rows - spec.duration_window]) / NANOSECONDS_PER_SECOND
    return features


def decision_rows(count: int, spec: FeatureSpec, every: int) -> np.ndarray:
    """
    Return the indices of the prints a strategy predicting every ``every`` prints predicts on.

    The strategy predicts on the ``n``-th print (counting from 1) when ``n`` is a multiple of ``every`` and the
    features are ready; research predicts on the same rows.
    """
    numbers = np.arange(1, count + 1)
    return np.flatnonzero((numbers % every == 0) & (numbers >= spec.warmup))
