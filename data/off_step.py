"""Quantities finer than the size step, as venues send them: the ``off_step_quantities`` data check of the parsers.

Binance keeps the quantities of resting orders placed before a step size was coarsened (a BTCUSDT level of
25.426189 at 200000.00 in the 2024-08-08 sample, on a 0.00001 step is fine; on a coarser one it is not), and
nautilus needs every size on the instrument's precision. The catalog cannot hold such a value as sent, so the
check runs while a source converts the text: policy ``fail`` refuses the file at the first one, ``repair``
rounds each up to the next step (never down to zero) and reports it as a finding naming the raw file line.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING
from decimal import Decimal
from pathlib import Path

import polars as pl

from keel.data.errors import DataInputError
from keel.data.fixed_point import off_grid_mask
from keel.data.fixed_point import to_fixed
from keel.data.quality import FAIL
from keel.data.quality import Finding

OFF_STEP_QUANTITIES = "off_step_quantities"


@dataclass(frozen=True)
class QuantityColumn:
    """
    Where a column of venue quantities comes from, named in findings and errors.

    Parameters
    ----------
    source : Path
        The raw input file.
    instrument_id : str
        E.g. ``BTCUSDT.BINANCE``.
    data_type : str
        ``trade_tick``, ``quote_tick`` or ``order_book_deltas``.
    field : str
        The venue field, e.g. ``trade quantity 'q'``.
    policy : str
        The ``off_step_quantities`` policy: ``fail`` or ``repair``.

    """

    source: Path
    instrument_id: str
    data_type: str
    field: str
    policy: str


def quantities_on_step(text: pl.Series, precision: int, lines: pl.Series, column: QuantityColumn) -> tuple[pl.Series, list[Finding]]:
    """
    Convert decimal quantity strings (already checked as decimals; nulls kept) to ``Decimal(38, 16)`` on the step grid.

    Parameters
    ----------
    text : pl.Series
        The venue's quantity strings.
    precision : int
        The instrument's size precision (the step is ``10^-precision``).
    lines : pl.Series
        The 1-based raw file line of each value.
    column : QuantityColumn
        Named in findings and errors; carries the policy.

    Returns
    -------
    tuple[pl.Series, list[Finding]]
        The converted column, and one finding per quantity rounded up (row = its index in ``text``).

    Raises
    ------
    DataInputError
        With policy ``fail``, naming the line of the first off-step quantity.

    """
    off_step = off_grid_mask(text, precision) & text.is_not_null()
    if not off_step.any():
        return to_fixed(text), []
    step = Decimal(1).scaleb(-precision)
    indices = off_step.arg_true().to_list()
    if column.policy == FAIL:
        first = indices[0]
        raise DataInputError(
            column.source,
            f"{column.instrument_id} {column.field} {text[first]!r} is finer than the size step {step}: expected a multiple of it "
            f"(data check {OFF_STEP_QUANTITIES}, policy fail; {len(indices)} such quantities in this part of the file)",
            int(lines[first]),
        )
    findings = []
    rounded = []
    for index in indices:
        sent = text[index]
        # Up, so that a level never rounds away to zero.
        rounded.append(str(Decimal(sent).quantize(step, rounding=ROUND_CEILING)))
        findings.append(
            Finding(
                OFF_STEP_QUANTITIES, column.policy, column.instrument_id, column.data_type, column.source, index, column.field,
                f"quantity {sent} is finer than the size step {step}: rounded up to {rounded[-1]}", int(lines[index]),
            )
        )
    return to_fixed(text.scatter(indices, rounded)), findings
