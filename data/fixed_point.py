"""Venue decimal strings to nautilus fixed-point values, checked against an instrument's precision.

Nautilus 1.231 is built with 16 fixed decimals: a price or size is an i128 ``value * 10^16``, stored in
Parquet as 16 little-endian bytes. A polars ``Decimal(38, 16)`` holds exactly that integer, so a decimal
column converts to the catalog's ``fixed_size_binary[16]`` without copying or float rounding.
"""

import polars as pl
import pyarrow as pa

FIXED_SCALE = 16
FIXED_DTYPE = pl.Decimal(38, FIXED_SCALE)


def not_decimal_mask(text: pl.Series) -> pl.Series:
    """
    Return True where ``text`` is not a plain non-negative decimal string (nulls included).

    Parameters
    ----------
    text : pl.Series
        Decimal strings.

    Returns
    -------
    pl.Series

    """
    return ~text.str.contains(r"^\d{1,22}(\.\d*)?$").fill_null(False)


def off_grid_mask(text: pl.Series, precision: int) -> pl.Series:
    """
    Return True where a decimal string has non-zero digits beyond ``precision`` places.

    Trailing zeros beyond the precision are fine ("61837.63000000" fits precision 2).

    Parameters
    ----------
    text : pl.Series
        Decimal strings already checked with :func:`not_decimal_mask`.
    precision : int
        The instrument's price or size precision.

    Returns
    -------
    pl.Series

    """
    return ~text.str.contains(rf"^\d+(\.\d{{0,{precision}}}0*)?$").fill_null(False)


def to_fixed(text: pl.Series) -> pl.Series:
    """
    Convert plain decimal strings (see :func:`not_decimal_mask`) to ``Decimal(38, 16)``.

    Parameters
    ----------
    text : pl.Series
        Decimal strings.

    Returns
    -------
    pl.Series

    """
    return text.cast(FIXED_DTYPE, strict=True)


def fixed_to_arrow(column: pl.Series) -> pa.Array:
    """
    Reinterpret a ``Decimal(38, 16)`` column as nautilus' ``fixed_size_binary[16]`` (zero copy).

    Parameters
    ----------
    column : pl.Series
        A non-null ``Decimal(38, 16)`` series.

    Returns
    -------
    pa.Array

    """
    decimal_array = column.to_arrow()
    if isinstance(decimal_array, pa.ChunkedArray):
        decimal_array = decimal_array.combine_chunks()
    # Buffer 0 is the validity bitmap (absent: no nulls), buffer 1 the i128 values.
    return pa.Array.from_buffers(pa.binary(16), len(decimal_array), [None, decimal_array.buffers()[1]], offset=decimal_array.offset)
