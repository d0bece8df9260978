"""Funding settled on perpetual positions from a catalog's rates: one function for backtest runs and live sessions.

nautilus 1.231 never settles funding (``../shared/docs/nautilus-api.md`` §9 C). A backtest run reads the rates
from the catalog it ran over, a live session from the catalog its recorder wrote; both settle them here, with
:func:`keel.pnl.funding_payments`, so a backtest and a session over the same window pay the same funding.
"""

from pathlib import Path

import polars as pl

from keel.data.series import funding_rates
from keel.data.series import mark_prices
from keel.pnl import FUNDING_PAYMENTS_SCHEMA
from keel.pnl import InstrumentTerms
from keel.pnl import funding_payments


def catalog_funding(
    catalog: Path,
    fills: pl.DataFrame,
    terms: dict[str, InstrumentTerms],
    start_ns: int | None = None,
    end_ns: int | None = None,
    prices: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """
    Return the funding the perpetuals among ``terms`` paid or received on ``fills`` (``FUNDING_PAYMENTS_SCHEMA``).

    Parameters
    ----------
    catalog : Path
        The catalog holding the funding rates (and the trade prints used as marks).
    fills : pl.DataFrame
        Fills of any of the instruments.
    terms : dict[str, InstrumentTerms]
        The instruments; spot pairs pay no funding.
    start_ns, end_ns : int, optional
        The window: settlements outside it are not paid.
    prices : pl.DataFrame, optional
        Marks already read (``keel.data.series.PRICES_SCHEMA``); read from the catalog when None.
    """
    perpetuals = [instrument_id for instrument_id, item in terms.items() if item.perpetual]
    if not perpetuals or fills.height == 0:
        return pl.DataFrame(schema=FUNDING_PAYMENTS_SCHEMA)
    rates = funding_rates(catalog, perpetuals, start_ns, end_ns)
    prices = prices if prices is not None else mark_prices(catalog, perpetuals, start_ns, end_ns)
    return pl.concat(
        [
            funding_payments(
                fills.filter(pl.col("instrument_id") == instrument_id),
                rates.filter(pl.col("instrument_id") == instrument_id),
                prices.filter(pl.col("instrument_id") == instrument_id),
                terms[instrument_id],
            )
            for instrument_id in perpetuals
        ],
    )
