"""P&L from fills, by instrument and component, the one P&L Keel reports for backtest runs and live sessions.

Everything is computed from the fills table (``keel.fills`` layout), trade prices and funding rates
(``keel.data.series`` layouts), so a backtest run and a recorded live session are measured by the same code.
P&L is the strategy's own: cash spent and received on its fills, plus its position marked at the last trade
price, plus the funding its perpetual positions paid or received, starting from zero.

- Every commission counts, in whichever of the pair's currencies it was charged: one in the base asset (Binance
  spot takes a buy's commission in the bought asset) is valued at its fill price, which nautilus's realized P&L
  leaves out.
- Perpetual funding: nautilus 1.231's backtest never settles it (``../shared/docs/nautilus-api.md`` §9 C), so Keel
  settles it here, from the funding rates, identically for a backtest and a live session: at each settlement
  the position held just before it pays ``position x mark x rate`` (a long pays a positive rate). The mark is the
  last trade price before the settlement (the catalog keeps no mark-price series; on BTC and ETH the two
  differ by a few bp, so funding, itself a few bp of notional, is off by a few bp of itself).
- Linear contracts only (USDT-margined, multiplier 1 or as the instrument says): an inverse contract's P&L is in
  its base asset and is refused.
"""

import math
from collections.abc import Mapping
from collections.abc import Sequence

import msgspec
import polars as pl
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import Instrument

# Position sizes below this are treated as flat (float arithmetic on 1e-5 steps).
FLAT_EPSILON = 1e-12
TOTAL = "TOTAL"  # the instrument_id of the equity curve's total rows

EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "instrument_id": pl.String(),
    "price": pl.Float64(),
    "position": pl.Float64(),
    "pnl": pl.Float64(),
}
FUNDING_PAYMENTS_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "instrument_id": pl.String(),
    "position": pl.Float64(),
    "mark": pl.Float64(),
    "rate": pl.Float64(),
    "payment": pl.Float64(),
}


class FeeCurrencyError(ValueError):
    """A fill's commission is in neither currency of the traded pair, so it cannot be valued at the fill price."""


class PnlInputError(ValueError):
    """Fills, prices or instruments that no P&L can be computed from (a missing instrument, mixed currencies)."""


class InstrumentTerms(msgspec.Struct, frozen=True, kw_only=True):
    """
    What P&L needs to know of an instrument.

    Parameters
    ----------
    instrument_id : str
        The instrument.
    base_currency : str
        The traded asset (spot: the bought currency, in which Binance takes a buy's commission).
    quote_currency : str
        The currency prices and P&L are in (a perpetual's settlement currency).
    perpetual : bool
        True for a perpetual swap: funding is settled on its position.
    multiplier : float
        Contract multiplier: a fill of ``q`` at ``p`` is worth ``q * p * multiplier`` quote.
    """

    instrument_id: str
    base_currency: str
    quote_currency: str
    perpetual: bool
    multiplier: float = 1.0

    @classmethod
    def of(cls, instrument: Instrument) -> "InstrumentTerms":
        """
        Return the terms of a nautilus instrument.

        Raises
        ------
        PnlInputError
            For an inverse contract (settled in its base asset).
        """
        if instrument.is_inverse:
            raise PnlInputError(f"{instrument.id}: inverse contracts settle in {instrument.base_currency}; Keel's P&L is linear only")
        perpetual = isinstance(instrument, CryptoPerpetual)
        return cls(
            instrument_id=instrument.id.value,
            base_currency=instrument.base_currency.code,
            quote_currency=(instrument.settlement_currency if perpetual else instrument.quote_currency).code,
            perpetual=perpetual,
            multiplier=float(instrument.multiplier),
        )


class PnlComponents(msgspec.Struct, frozen=True, kw_only=True):
    """
    The P&L of a set of fills, by component, in one currency.

    Parameters
    ----------
    currency : str
        The currency every component is in.
    gross : float
        Cash received minus cash spent on the fills, plus the open position marked at ``mark_price``
        (``net + fees - rebates - funding``: a base-asset fee's coins are valued at the mark).
    fees : float
        Every positive commission, a base-asset one valued at its fill price.
    rebates : float
        Every negative commission (maker rebates), as a positive amount, valued like fees.
    funding : float
        Perpetual funding received (positive) or paid (negative).
    net : float
        ``gross - fees + rebates + funding``.
    notional : float
        Traded notional: the sum of quantity times price (times multiplier) over the fills.
    mark_price : float, optional
        The price the open position is marked at; None when there are no fills or for a total over instruments.
    fills : int
        Number of fills.
    """

    currency: str
    gross: float
    fees: float
    rebates: float
    funding: float = 0.0
    net: float
    notional: float
    mark_price: float | None
    fills: int

    @classmethod
    def total(cls, parts: Sequence["PnlComponents"], currency: str) -> "PnlComponents":
        """
        Return the sum of per-instrument components, all in ``currency``.

        Raises
        ------
        PnlInputError
            If a part is in another currency (a USDT and a USDC pair do not add up without a conversion).
        """
        foreign = sorted({part.currency for part in parts} - {currency})
        if foreign:
            raise PnlInputError(f"P&L in {foreign} cannot be added to P&L in {currency}: one run, one P&L currency")
        return cls(
            currency=currency,
            gross=sum(part.gross for part in parts),
            fees=sum(part.fees for part in parts),
            rebates=sum(part.rebates for part in parts),
            funding=sum(part.funding for part in parts),
            net=sum(part.net for part in parts),
            notional=sum(part.notional for part in parts),
            mark_price=None,
            fills=sum(part.fills for part in parts),
        )


def fill_cash_flows(fills: pl.DataFrame, terms: InstrumentTerms) -> pl.DataFrame:
    """
    Return per fill of one instrument: signed quantity, gross quote cash flow and fee in the quote currency.

    A fee charged in the base asset is converted at the fill price (``fee_quote``) and also reduces the base
    position (``fee_base``). A rebate is a negative fee.

    Raises
    ------
    FeeCurrencyError
        Naming the first fill whose commission is in neither the base nor the quote currency (a fee in BNB, say),
        which no fill price values.
    """
    foreign = fills.filter(
        (pl.col("commission") != 0)
        & (pl.col("commission_currency") != terms.base_currency)
        & (pl.col("commission_currency") != terms.quote_currency),
    )
    if foreign.height:
        fill = foreign.row(0, named=True)
        raise FeeCurrencyError(
            f"fill {fill['trade_id']} of order {fill['client_order_id']} ({fill['instrument_id']}, ts_event "
            f"{fill['ts_event']}): commission {fill['commission']} {fill['commission_currency']} is in neither "
            f"{terms.base_currency} nor {terms.quote_currency}, so it cannot be valued at the fill price",
        )
    sign = pl.when(pl.col("order_side") == "BUY").then(1.0).otherwise(-1.0)
    fee_in_base = pl.col("commission_currency") == terms.base_currency
    return fills.select(
        "ts_event",
        "order_side",
        "last_qty",
        "last_px",
        (sign * pl.col("last_qty")).alias("base_gross"),
        (-sign * pl.col("last_qty") * pl.col("last_px") * terms.multiplier).alias("quote_gross"),
        pl.when(fee_in_base).then(pl.col("commission") * pl.col("last_px") * terms.multiplier).otherwise(pl.col("commission")).alias("fee_quote"),
        pl.when(fee_in_base).then(pl.col("commission")).otherwise(0.0).alias("fee_base"),
    )


def funding_payments(fills: pl.DataFrame, rates: pl.DataFrame, prices: pl.DataFrame, terms: InstrumentTerms) -> pl.DataFrame:
    """
    Return the funding one perpetual's fills paid or received, one row per settlement in ``rates``.

    Parameters
    ----------
    fills : pl.DataFrame
        The instrument's fills (``keel.fills`` layout).
    rates : pl.DataFrame
        Its funding settlements (``ts``, ``rate``), only those inside the run's window.
    prices : pl.DataFrame
        Its trade prints (``ts``, ``price``), the marks.
    terms : InstrumentTerms
        The instrument.

    Returns
    -------
    pl.DataFrame
        ``ts, instrument_id, position, mark, rate, payment`` (``FUNDING_PAYMENTS_SCHEMA``); ``payment`` is
        ``-position * mark * rate * multiplier``: what the account received. Settlements while flat pay 0.
    """
    if not terms.perpetual or rates.height == 0 or fills.height == 0:
        return pl.DataFrame(schema=FUNDING_PAYMENTS_SCHEMA)
    flows = fill_cash_flows(fills, terms).sort("ts_event")
    positions = flows.select(pl.col("ts_event").alias("ts"), (pl.col("base_gross") - pl.col("fee_base")).cum_sum().alias("position"))
    # The mark: the last print before the settlement, or a fill's price when it is later than every print.
    marks = pl.concat(
        [
            prices.select(pl.col("ts"), pl.col("price").alias("mark")),
            flows.select(pl.col("ts_event").alias("ts"), pl.col("last_px").alias("mark")),
        ],
    ).sort("ts", maintain_order=True)
    return (
        rates.select("ts", "rate")
        .sort("ts")
        # A fill or print at the settlement instant is after it: the venue settles the positions held, at the
        # prices seen, when the clock strikes.
        .join_asof(positions, on="ts", strategy="backward", allow_exact_matches=False)
        .join_asof(marks, on="ts", strategy="backward", allow_exact_matches=False)
        .select(
            "ts",
            pl.lit(terms.instrument_id).alias("instrument_id"),
            pl.col("position").fill_null(0.0),
            "mark",
            "rate",
        )
        .with_columns((-pl.col("position") * pl.col("mark").fill_null(0.0) * pl.col("rate") * terms.multiplier).alias("payment"))
        .cast(FUNDING_PAYMENTS_SCHEMA)
    )


def pnl_components(
    fills: pl.DataFrame,
    terms: InstrumentTerms,
    mark_price: float | None,
    funding: pl.DataFrame | None = None,
) -> PnlComponents:
    """
    Return the P&L of one instrument's fills by component.

    Parameters
    ----------
    fills : pl.DataFrame
        The fills, all of ``terms.instrument_id``.
    terms : InstrumentTerms
        The instrument.
    mark_price : float, optional
        Price to mark the open position at (the last price the run saw); may be None only without fills.
    funding : pl.DataFrame, optional
        The instrument's :func:`funding_payments`.

    Raises
    ------
    FeeCurrencyError
        For a commission in a third currency (see :func:`fill_cash_flows`).
    PnlInputError
        For fills of another instrument or priced in another currency, or fills without a ``mark_price``.
    """
    funding_total = float(funding["payment"].sum()) if funding is not None and funding.height else 0.0
    if fills.height == 0:
        return PnlComponents(
            currency=terms.quote_currency, gross=0.0, fees=0.0, rebates=0.0, funding=funding_total, net=funding_total,
            notional=0.0, mark_price=mark_price, fills=0,
        )
    others = sorted(set(fills["instrument_id"]) - {terms.instrument_id})
    if others:
        raise PnlInputError(f"fills of {others} given as fills of {terms.instrument_id}")
    other_quotes = sorted(set(fills["quote_currency"]) - {terms.quote_currency})
    if other_quotes:
        raise PnlInputError(f"{terms.instrument_id}: fills priced in {other_quotes}, expected {terms.quote_currency} only")
    if mark_price is None:
        raise PnlInputError(f"{terms.instrument_id}: a mark price is needed to value the position of its fills")
    flows = fill_cash_flows(fills, terms)
    fees = float(flows["fee_quote"].clip(lower_bound=0.0).sum())
    rebates = abs(float(flows["fee_quote"].clip(upper_bound=0.0).sum()))  # abs: no "-0.0" without rebates
    # Net is what the account gained: cash after fees plus what it holds (a base-asset fee already gone) at the
    # mark. Gross is the rest once fees (valued at their fill price) are put back, so it also carries the
    # mark-to-market of the fee's coins between fill and mark, and the equity curve ends exactly at net.
    position = float((flows["base_gross"] - flows["fee_base"]).sum())
    cash = float((flows["quote_gross"] - flows["fee_quote"] + flows["fee_base"] * flows["last_px"] * terms.multiplier).sum())
    net = cash + position * mark_price * terms.multiplier + funding_total
    return PnlComponents(
        currency=terms.quote_currency,
        gross=net + fees - rebates - funding_total,
        fees=fees,
        rebates=rebates,
        funding=funding_total,
        net=net,
        notional=float((flows["last_qty"] * flows["last_px"]).sum()) * terms.multiplier,
        mark_price=mark_price,
        fills=fills.height,
    )


def equity_curve(fills: pl.DataFrame, prices: pl.DataFrame, terms: InstrumentTerms, funding: pl.DataFrame | None = None) -> pl.DataFrame:
    """
    Return one instrument's mark-to-market P&L at every trade print (``EQUITY_SCHEMA``), funding included.

    ``prices`` has ``ts`` (ns) and ``price``; fills count from their ``ts_event``, funding from its settlement.
    """
    flows = (
        fill_cash_flows(fills, terms)
        .sort("ts_event")
        .select(
            pl.col("ts_event").alias("ts"),
            (pl.col("base_gross") - pl.col("fee_base")).cum_sum().alias("position"),
            (pl.col("quote_gross") - pl.col("fee_quote") + pl.col("fee_base") * pl.col("last_px") * terms.multiplier).cum_sum().alias("cash"),
        )
    )
    curve = prices.select("ts", "price").sort("ts").join_asof(flows, on="ts", strategy="backward")
    if funding is not None and funding.height:
        paid = funding.sort("ts").select("ts", pl.col("payment").cum_sum().alias("funding"))
        curve = curve.join_asof(paid, on="ts", strategy="backward")
    else:
        curve = curve.with_columns(pl.lit(0.0).alias("funding"))
    return curve.with_columns(pl.col("position").fill_null(0.0), pl.col("cash").fill_null(0.0), pl.col("funding").fill_null(0.0)).select(
        "ts",
        pl.lit(terms.instrument_id).alias("instrument_id"),
        "price",
        "position",
        (pl.col("cash") + pl.col("position") * pl.col("price") * terms.multiplier + pl.col("funding")).alias("pnl"),
    ).cast(EQUITY_SCHEMA)


def total_equity(curves: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """
    Return the total P&L over instruments at every instant any of them printed (``instrument_id`` = ``TOTAL``).

    Each instrument's P&L holds its last value between its own prints (zero before its first).
    """
    rows = [curve.select("ts", "instrument_id", "pnl") for curve in curves if curve.height]
    if not rows:
        return pl.DataFrame(schema=EQUITY_SCHEMA)
    wide = (
        pl.concat(rows)
        .sort("ts", maintain_order=True)
        .pivot(on="instrument_id", index="ts", values="pnl", aggregate_function="last", maintain_order=True)
        .sort("ts")
    )
    names = [name for name in wide.columns if name != "ts"]
    return wide.select(
        "ts",
        pl.lit(TOTAL).alias("instrument_id"),
        pl.lit(None, dtype=pl.Float64).alias("price"),
        pl.lit(None, dtype=pl.Float64).alias("position"),
        pl.sum_horizontal([pl.col(name).forward_fill().fill_null(0.0) for name in names]).alias("pnl"),
    ).cast(EQUITY_SCHEMA)


def round_trips(fills: pl.DataFrame, terms: InstrumentTerms) -> list[float]:
    """
    Return the net P&L of each completed round trip of one instrument: flat -> position -> flat.

    A fill that takes the position through zero (a reversal on a perpetual) ends the trip with the part of it that
    closes the position and starts the next one with the rest, its cash and fee split in proportion.
    """
    trips: list[float] = []
    position = 0.0
    cash = 0.0
    for row in fill_cash_flows(fills, terms).sort("ts_event").iter_rows(named=True):
        quantity = row["base_gross"]
        flow = row["quote_gross"] - row["fee_quote"]
        after = position + quantity
        if abs(position) > FLAT_EPSILON and abs(after) > FLAT_EPSILON and (after > 0) != (position > 0):
            closing = abs(position) / abs(quantity)
            trips.append(cash + closing * flow)
            position, cash = after, (1 - closing) * flow
            continue
        position, cash = after, cash + flow
        # The bought-asset fee leaves dust that cannot be sold: a trip ends when the gross position is flat.
        if abs(position) <= FLAT_EPSILON:
            trips.append(cash)
            position = 0.0
            cash = 0.0
    return trips


class PortfolioPnl(msgspec.Struct, frozen=True, kw_only=True):
    """
    The P&L of a run or session over all its instruments.

    Parameters
    ----------
    total : PnlComponents
        Summed over instruments.
    by_instrument : dict[str, PnlComponents]
        Per instrument.
    """

    total: PnlComponents
    by_instrument: dict[str, PnlComponents]


def portfolio_pnl(
    fills: pl.DataFrame,
    terms: Mapping[str, InstrumentTerms],
    marks: Mapping[str, float],
    funding: pl.DataFrame,
) -> PortfolioPnl:
    """
    Return the P&L of ``fills`` per instrument of ``terms`` and in total.

    Parameters
    ----------
    fills : pl.DataFrame
        Fills of any of the instruments.
    terms : Mapping[str, InstrumentTerms]
        Every instrument of the run, by id.
    marks : Mapping[str, float]
        The last price of each instrument (instruments without fills need none).
    funding : pl.DataFrame
        :func:`funding_payments` of every perpetual, concatenated.

    Raises
    ------
    PnlInputError
        For fills of an instrument not in ``terms``, or instruments whose P&L currencies differ.
    """
    unknown = sorted(set(fills["instrument_id"]) - set(terms))
    if unknown:
        raise PnlInputError(f"fills of {unknown}, which are not instruments of the run {sorted(terms)}")
    parts = {
        instrument_id: pnl_components(
            fills.filter(pl.col("instrument_id") == instrument_id),
            instrument_terms,
            marks.get(instrument_id),
            funding.filter(pl.col("instrument_id") == instrument_id),
        )
        for instrument_id, instrument_terms in terms.items()
    }
    currencies = sorted({part.currency for part in parts.values()})
    return PortfolioPnl(total=PnlComponents.total(list(parts.values()), currencies[0]), by_instrument=parts)


def max_drawdown(pnl: pl.Series) -> float:
    """Return the largest fall of a P&L series from its running peak (0 for an empty series)."""
    if pnl.len() == 0:
        return 0.0
    return float((pnl.cum_max() - pnl).max())


def t_stat(values: Sequence[float]) -> float | None:
    """Mean over standard error of per-trip P&L: how far from zero the average trip is, in noise units."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean / math.sqrt(variance / len(values)) if variance > 0 else None
