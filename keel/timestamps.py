"""Time conversions, in one place: ns since the Unix epoch (nautilus's unit) to and from ISO-8601 text.

A time written without a zone is UTC everywhere in Keel: recordings, variant windows and environment files
are all in UTC, and a local-time reading would shift a backtest window by hours without any error.
"""

import pandas as pd
import polars as pl


def utc_nanos(value: int | str | pd.Timestamp) -> int:
    """
    Return ``value`` as ns since epoch.

    Parameters
    ----------
    value : int | str | pd.Timestamp
        ns since epoch (returned as is), ISO-8601 text or a Timestamp; without a zone it is taken as UTC.

    Raises
    ------
    ValueError
        If the text is not a time.
    """
    if isinstance(value, int):
        return value
    timestamp = pd.Timestamp(value)
    if timestamp.tzinfo is None:
        timestamp = timestamp.tz_localize("UTC")
    return int(timestamp.value)


def optional_utc_nanos(value: int | str | pd.Timestamp | None) -> int | None:
    """Return :func:`utc_nanos` of ``value``, or None for None (an open end of a window)."""
    return None if value is None else utc_nanos(value)


def iso_utc(ts_ns: int) -> str:
    """Return ns since epoch as ISO-8601 UTC text with as many fraction digits as it needs: ``2024-08-08T23:54:00Z``,
    ``2024-08-08T23:54:00.001Z``, ``2024-08-08T23:54:14.087891268Z``."""
    return pl.Series([ts_ns]).cast(pl.Datetime("ns", "UTC")).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")[0]
