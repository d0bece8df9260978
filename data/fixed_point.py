"""Venue decimal strings to nautilus fixed-point values, checked against an instrument's precision.

Nautilus 1.231 is built with 16 fixed decimals: a price or size is an i128 ``value * 10^16``, stored in
Parquet as 16 little-endian bytes. A polars ``Decimal(38, 16)`` holds exactly that integer, so a decimal
column converts to the catalog's ``fixed_size_binary[16]`` without copying or float rounding.
"""

from collections.abc import Mapping
from pathlib import Path

import polars as pl
import pyarrow as pa

from keel.data.errors import DataInputError

FIXED_SCALE = 16
FIXED_DTYPE = pl.Decimal(38, FIXED_SCALE)
_BAD_PREFIX = "__off_grid_"


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


def checked_fixed_columns(columns: pl.DataFrame, precisions: Mapping[str, int], rows: pl.Series, source: Path) -> pl.DataFrame:
    """
    Convert several decimal-string columns to ``Decimal(38, 16)`` in one parallel pass, refusing bad values.

    One regular expression per column checks "a plain non-negative decimal with at most ``precision``
    significant decimals" and the casts run in the same polars ``select``, so the columns are checked and
    converted side by side on every core; only a file with a bad value pays for finding out what is wrong.

    Parameters
    ----------
    columns : pl.DataFrame
        Holds the string columns named in ``precisions``.
    precisions : Mapping[str, int]
        Column name -> the instrument's precision for it (price or size precision).
    rows : pl.Series
        The 1-based line (or row) number of each value, named in errors.
    source : Path
        The input file, named in errors.

    Returns
    -------
    pl.DataFrame
        The converted columns, same names.

    Raises
    ------
    DataInputError
        Naming the first bad value's line and field, and whether it is not a decimal or off the grid.

    """
    expressions = []
    for name, precision in precisions.items():
        on_grid = pl.col(name).str.contains(rf"^\d{{1,22}}(\.\d{{0,{precision}}}0*)?$").fill_null(False)
        expressions.append((~on_grid).alias(f"{_BAD_PREFIX}{name}"))
        # Not strict: the values the check refuses become null here and are reported below instead.
        expressions.append(pl.col(name).cast(FIXED_DTYPE, strict=False))
    converted = columns.select(expressions)
    for name, precision in precisions.items():
        bad = converted[f"{_BAD_PREFIX}{name}"]
        if bad.any():
            index = int(bad.arg_true()[0])
            value = columns[name][index]
            is_decimal = value is not None and not not_decimal_mask(pl.Series([value]))[0]
            expected = f"at most {precision} decimals (the instrument's grid)" if is_decimal else "a non-negative decimal string"
            raise DataInputError(source, f"field '{name}' is {value!r}: expected {expected}", int(rows[index]))
    return converted.select(list(precisions))
