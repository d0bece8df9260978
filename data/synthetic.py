"""
Synthetic trade and quote ticks for scale tests, where the real sample (six minutes) is too small.

Synthetic data is never to be mistaken for real data: it is generated only for an instrument whose symbol ends
in ``-SYNTH`` (:func:`synthetic_instrument` copies a real instrument and changes only its id, e.g.
``BTCUSDT-SYNTH.BINANCE``), so it lands in its own catalog folders and no backtest of the real id reads it.

The trade model, per trade (all draws vectorised with numpy, deterministic for a seed):

- Orders and fills. A taker order fills against one or more resting orders; its fills share the exchange time
  and the aggressor side. With probability ``same_order_probability`` a trade is another fill of the previous
  trade's order, otherwise it starts a new order whose side is BUYER with probability ``buyer_probability``.
- Time. The receive time (``ts_init``) advances by a gamma-distributed gap whose mean and standard deviation
  are those measured for fills of the same order (microseconds) or for a new order (about 0.1 s). The gamma
  law matches the first two moments of the real, heavy-tailed gaps, not their exact shape. ``ts_event`` is the
  ``ts_init`` of the order's first fill (one exchange time per order, as Binance's ``T``).
- Price. A latent log price takes a step of zero with probability ``zero_return_probability`` and otherwise a
  normal step of standard deviation ``move_volatility``; the traded price is the latent price rounded to the
  tick (at least one tick). The model has no bid-ask bounce and no volatility clustering, and where the tick is
  coarse relative to ``move_volatility`` the rounding adds zero returns.
- Size. Log-normal with ``size_log_mean`` / ``size_log_std`` (base units), rounded to the step, at least one.

Calibration (:func:`calibrate`) measures exactly those quantities on real trades: fills of the same order are
consecutive trades with equal ``ts_event`` and side; returns are differences of log prices; gaps are
differences of ``ts_init``. :data:`DEFAULT_MODEL` holds the result on the shipped sample, BTCUSDT.BINANCE spot
trades 2024-08-08 23:54:14-23:59:59.998 UTC (9,757 trades, ``data/sample/binance_spot/btcusdt_20240808.gz``).

Quotes (:func:`synthetic_quotes`) are one per trade, at the trade's time, touching it: the ask is the price of
a buy, the bid that of a sell, the other side a spread away. The spread is one tick with probability
``one_tick_probability``, otherwise one tick plus a log-normal number of ticks; sizes are log-normal.
:data:`DEFAULT_QUOTE_MODEL` is :func:`calibrate_quotes` on the same sample's BTCUSDT bookTicker quotes.
"""

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl
import pyarrow as pa
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument

from keel.data.fixed_point import FIXED_SCALE

SYNTHETIC_SUFFIX = "-SYNTH"
BUYER = 1
SELLER = 2


@dataclass(frozen=True)
class SyntheticModel:
    """
    Parameters of the synthetic trade model (see the module docstring).

    Parameters
    ----------
    start_price : float
        The first trade's price (quote currency).
    zero_return_probability : float
        Probability that a trade's log return is exactly zero.
    move_volatility : float
        Standard deviation of the non-zero log returns.
    same_order_probability : float
        Probability that a trade is another fill of the previous trade's taker order.
    same_order_gap_mean_ns : float
        Mean ``ts_init`` gap before a fill of the same order (ns).
    same_order_gap_std_ns : float
        Standard deviation of that gap (ns).
    new_order_gap_mean_ns : float
        Mean ``ts_init`` gap before the first fill of a new order (ns).
    new_order_gap_std_ns : float
        Standard deviation of that gap (ns).
    buyer_probability : float
        Probability that a new order buys.
    size_log_mean : float
        Mean of the natural log of trade sizes (base units).
    size_log_std : float
        Standard deviation of the natural log of trade sizes.

    """

    start_price: float
    zero_return_probability: float
    move_volatility: float
    same_order_probability: float
    same_order_gap_mean_ns: float
    same_order_gap_std_ns: float
    new_order_gap_mean_ns: float
    new_order_gap_std_ns: float
    buyer_probability: float
    size_log_mean: float
    size_log_std: float


@dataclass(frozen=True)
class QuoteModel:
    """
    Parameters of the synthetic quotes (see the module docstring).

    Parameters
    ----------
    one_tick_probability : float
        Probability that the spread is exactly one tick.
    wide_extra_ticks_log_mean : float
        For wider spreads, mean of the natural log of the ticks beyond the first.
    wide_extra_ticks_log_std : float
        Standard deviation of that log.
    size_log_mean : float
        Mean of the natural log of bid and ask sizes (base units).
    size_log_std : float
        Standard deviation of that log.

    """

    one_tick_probability: float
    wide_extra_ticks_log_mean: float
    wide_extra_ticks_log_std: float
    size_log_mean: float
    size_log_std: float


# calibrate() and calibrate_quotes() on the shipped sample's BTCUSDT.BINANCE trades and quotes (module docstring).
DEFAULT_MODEL = SyntheticModel(
    start_price=61837.63,  # the sample's first BTCUSDT trade
    zero_return_probability=0.5880,
    move_volatility=2.485e-05,
    same_order_probability=0.6679,
    same_order_gap_mean_ns=97_550.0,
    same_order_gap_std_ns=452_800.0,
    new_order_gap_mean_ns=106_600_000.0,
    new_order_gap_std_ns=179_800_000.0,
    buyer_probability=0.5159,
    size_log_mean=-6.635,  # median size 0.0013 BTC
    size_log_std=2.576,
)
DEFAULT_QUOTE_MODEL = QuoteModel(
    one_tick_probability=0.8815,
    wide_extra_ticks_log_mean=4.397,  # a wide BTCUSDT spread is typically ~80 ticks (0.8 USDT)
    wide_extra_ticks_log_std=1.792,
    size_log_mean=-0.8296,
    size_log_std=2.742,
)


def synthetic_instrument(instrument: Instrument) -> Instrument:
    """
    Return a copy of a real instrument whose only change is the id: ``<symbol>-SYNTH.<venue>``.

    Parameters
    ----------
    instrument : Instrument
        The real instrument (tick, step, fees and limits are kept).

    Returns
    -------
    Instrument

    """
    fields = type(instrument).to_dict(instrument)
    fields["id"] = f"{instrument.id.symbol.value}{SYNTHETIC_SUFFIX}.{instrument.id.venue.value}"
    return type(instrument).from_dict(fields)


def is_synthetic(instrument_id: InstrumentId | str) -> bool:
    """
    Return True if an instrument id is a synthetic one (its symbol ends in ``-SYNTH``).

    Parameters
    ----------
    instrument_id : InstrumentId or str
        E.g. ``BTCUSDT-SYNTH.BINANCE``.

    Returns
    -------
    bool

    """
    return InstrumentId.from_str(str(instrument_id)).symbol.value.endswith(SYNTHETIC_SUFFIX)


def calibrate(trades: pl.DataFrame) -> SyntheticModel:
    """
    Measure the trade model's parameters on real trades.

    Parameters
    ----------
    trades : pl.DataFrame
        One instrument's trades in the ``trade_tick`` schema (``price`` and ``size`` as ``Decimal(38, 16)``,
        ``aggressor_side``, ``ts_event``, ``ts_init``), in time order, at least three rows.

    Returns
    -------
    SyntheticModel

    """
    prices = trades["price"].cast(pl.Float64).to_numpy()
    returns = np.diff(np.log(prices))
    moves = returns[returns != 0]
    sides = trades["aggressor_side"].to_numpy()
    exchange_times = trades["ts_event"].to_numpy()
    gaps = np.diff(trades["ts_init"].to_numpy().astype(np.int64)).astype(np.float64)
    same_order = (np.diff(exchange_times) == 0) & (sides[1:] == sides[:-1])
    # A new order's side: the first trade's, and every trade that does not continue the previous order.
    new_order_sides = np.concatenate([sides[:1], sides[1:][~same_order]])
    sizes = np.log(trades["size"].cast(pl.Float64).to_numpy())
    return SyntheticModel(
        start_price=float(prices[0]),
        zero_return_probability=float(np.mean(returns == 0)),
        move_volatility=float(moves.std()),
        same_order_probability=float(same_order.mean()),
        same_order_gap_mean_ns=float(gaps[same_order].mean()),
        same_order_gap_std_ns=float(gaps[same_order].std()),
        new_order_gap_mean_ns=float(gaps[~same_order].mean()),
        new_order_gap_std_ns=float(gaps[~same_order].std()),
        buyer_probability=float(np.mean(new_order_sides == BUYER)),
        size_log_mean=float(sizes.mean()),
        size_log_std=float(sizes.std()),
    )


def calibrate_quotes(quotes: pl.DataFrame, price_increment: Decimal) -> QuoteModel:
    """
    Measure the quote model's parameters on real quotes.

    Parameters
    ----------
    quotes : pl.DataFrame
        One instrument's quotes in the ``quote_tick`` schema (prices and sizes as ``Decimal(38, 16)``).
    price_increment : Decimal
        The instrument's tick, to count spreads in ticks.

    Returns
    -------
    QuoteModel

    """
    spread_ticks = ((quotes["ask_price"] - quotes["bid_price"]).cast(pl.Float64) / float(price_increment)).round().to_numpy()
    extra = np.log(spread_ticks[spread_ticks > 1] - 1)
    sizes = np.log(pl.concat([quotes["bid_size"], quotes["ask_size"]]).cast(pl.Float64).to_numpy())
    return QuoteModel(
        one_tick_probability=float(np.mean(spread_ticks == 1)),
        wide_extra_ticks_log_mean=float(extra.mean()),
        wide_extra_ticks_log_std=float(extra.std()),
        size_log_mean=float(sizes.mean()),
        size_log_std=float(sizes.std()),
    )


def synthetic_trades(
    instrument: Instrument,
    rows: int,
    start_ns: int,
    seed: int,
    model: SyntheticModel = DEFAULT_MODEL,
    first_trade_id: int = 1,
) -> pl.DataFrame:
    """
    Generate trades in the ``trade_tick`` schema, ready for a ``SourceTable``.

    Parameters
    ----------
    instrument : Instrument
        A synthetic instrument (from :func:`synthetic_instrument`): gives the tick and step grids.
    rows : int
        Trades to generate, at least 1.
    start_ns : int
        The first trade's ``ts_init`` (ns).
    seed : int
        The random seed: the same seed gives the same frame.
    model : SyntheticModel, default DEFAULT_MODEL
        The model's parameters.
    first_trade_id : int, default 1
        The first trade id; ids are contiguous from it.

    Returns
    -------
    pl.DataFrame
        ``price``, ``size`` (``Decimal(38, 16)``, on the grids, positive), ``aggressor_side`` (1 BUYER, 2 SELLER),
        ``trade_id`` (string), ``ts_event``, ``ts_init`` (UInt64, non-decreasing).

    Raises
    ------
    ValueError
        If the instrument is not synthetic, or ``rows`` is below 1.

    """
    _check_synthetic(instrument)
    if rows < 1:
        raise ValueError(f"rows {rows}: expected at least 1")
    generator = np.random.default_rng(seed)
    steps = rows - 1
    same_order = generator.random(steps) < model.same_order_probability
    gaps = np.empty(steps)
    gaps[same_order] = _gamma(generator, model.same_order_gap_mean_ns, model.same_order_gap_std_ns, int(same_order.sum()))
    gaps[~same_order] = _gamma(generator, model.new_order_gap_mean_ns, model.new_order_gap_std_ns, int((~same_order).sum()))
    ts_init = start_ns + np.concatenate([[0], np.cumsum(np.rint(gaps).astype(np.int64))])
    # Order number of every trade: it increases by one at each trade that starts a new order.
    order = np.concatenate([[0], np.cumsum(~same_order)])
    orders = int(order[-1]) + 1
    order_sides = np.where(generator.random(orders) < model.buyer_probability, BUYER, SELLER).astype(np.uint8)
    order_first_ts = ts_init[np.concatenate([[0], np.flatnonzero(~same_order) + 1])]
    moves = generator.random(steps) >= model.zero_return_probability
    returns = np.zeros(steps)
    returns[moves] = generator.normal(0.0, model.move_volatility, int(moves.sum()))
    latent = np.log(model.start_price) + np.concatenate([[0.0], np.cumsum(returns)])
    tick = instrument.price_increment.as_decimal()
    price_ticks = np.maximum(np.rint(np.exp(latent) / float(tick)), 1).astype(np.int64)
    step = instrument.size_increment.as_decimal()
    size_steps = np.maximum(np.rint(np.exp(generator.normal(model.size_log_mean, model.size_log_std, rows)) / float(step)), 1).astype(np.int64)
    return pl.DataFrame(
        {
            "price": _on_grid(price_ticks, tick),
            "size": _on_grid(size_steps, step),
            "aggressor_side": order_sides[order],
            "trade_id": pl.int_range(first_trade_id, first_trade_id + rows, eager=True).cast(pl.String),
            "ts_event": order_first_ts[order].astype(np.uint64),
            "ts_init": ts_init.astype(np.uint64),
        }
    )


def synthetic_quotes(instrument: Instrument, trades: pl.DataFrame, seed: int, model: QuoteModel = DEFAULT_QUOTE_MODEL) -> pl.DataFrame:
    """
    Generate one quote per trade, at its time, consistent with it (bid < ask, the trade at the touch).

    Parameters
    ----------
    instrument : Instrument
        The synthetic instrument the trades were generated for.
    trades : pl.DataFrame
        From :func:`synthetic_trades`.
    seed : int
        The random seed.
    model : QuoteModel, default DEFAULT_QUOTE_MODEL
        The model's parameters.

    Returns
    -------
    pl.DataFrame
        The ``quote_tick`` columns: ``bid_price``, ``ask_price``, ``bid_size``, ``ask_size``
        (``Decimal(38, 16)`` on the grids), ``ts_event``, ``ts_init``.

    Raises
    ------
    ValueError
        If the instrument is not synthetic.

    """
    _check_synthetic(instrument)
    generator = np.random.default_rng(seed)
    rows = trades.height
    tick = instrument.price_increment.as_decimal()
    step = instrument.size_increment.as_decimal()
    wide = generator.random(rows) >= model.one_tick_probability
    spread = np.ones(rows, dtype=np.int64)
    extra = np.exp(generator.normal(model.wide_extra_ticks_log_mean, model.wide_extra_ticks_log_std, int(wide.sum())))
    spread[wide] += np.maximum(np.rint(extra), 1).astype(np.int64)
    trade_ticks = _grid_units(trades["price"], tick)
    buys = trades["aggressor_side"].to_numpy() == BUYER
    # A buy lifts the ask, a sell hits the bid: the trade price is that side of the quote. A wide spread under a
    # price of a few ticks would put the bid at or below zero: it stays at one tick, the ask above it.
    bid_ticks = np.maximum(np.where(buys, trade_ticks - spread, trade_ticks), 1)
    ask_ticks = np.maximum(np.where(buys, trade_ticks, trade_ticks + spread), bid_ticks + 1)
    sizes = np.maximum(np.rint(np.exp(generator.normal(model.size_log_mean, model.size_log_std, (2, rows))) / float(step)), 1).astype(np.int64)
    return pl.DataFrame(
        {
            "bid_price": _on_grid(bid_ticks, tick),
            "ask_price": _on_grid(ask_ticks, tick),
            "bid_size": _on_grid(sizes[0], step),
            "ask_size": _on_grid(sizes[1], step),
            "ts_event": trades["ts_init"],
            "ts_init": trades["ts_init"],
        }
    )


def _check_synthetic(instrument: Instrument) -> None:
    if not is_synthetic(instrument.id):
        raise ValueError(
            f"{instrument.id}: expected a synthetic instrument (symbol ending in {SYNTHETIC_SUFFIX}, from synthetic_instrument()) "
            "so that synthetic data never lands in a real instrument's folders"
        )


def _gamma(generator: np.random.Generator, mean: float, std: float, count: int) -> np.ndarray:
    """Draw ``count`` gamma variates of the given mean and standard deviation (constant when std is 0)."""
    if std == 0:
        return np.full(count, mean)
    return generator.gamma(shape=(mean / std) ** 2, scale=std**2 / mean, size=count)


def _on_grid(units: np.ndarray, increment: Decimal) -> pl.Series:
    """Return ``units * increment`` as exact ``Decimal(38, 16)``, multiplied as i128 fixed point."""
    raw_increment = int(increment.scaleb(FIXED_SCALE))
    raw = pl.DataFrame({"units": units}).select((pl.col("units").cast(pl.Int128) * pl.lit(raw_increment, dtype=pl.Int128)).cast(pl.Decimal(38, 0)))
    array = raw.to_series().to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    # Same i128 values, read with 16 decimals: the raw fixed-point integers nautilus stores.
    decimal = pa.Array.from_buffers(pa.decimal128(38, FIXED_SCALE), len(array), [None, array.buffers()[1]], offset=array.offset)
    return pl.from_arrow(decimal)


def _grid_units(column: pl.Series, increment: Decimal) -> np.ndarray:
    """Return a ``Decimal(38, 16)`` column in whole increments (exact: the values are on the grid)."""
    raw = column.to_arrow()
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    integers = pl.from_arrow(pa.Array.from_buffers(pa.decimal128(38, 0), len(raw), [None, raw.buffers()[1]], offset=raw.offset))
    raw_increment = int(increment.scaleb(FIXED_SCALE))
    return pl.DataFrame({"raw": integers}).select(pl.col("raw").cast(pl.Int128) // raw_increment).to_series().cast(pl.Int64).to_numpy()
