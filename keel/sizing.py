"""Order sizes, in one place: the smallest order a venue accepts, and the dust rule.

Until a variant's edge is proven the desk trades the minimum size: the smallest quantity that meets the
instrument's size step, minimum quantity and minimum notional at the current price. A ramp multiplier scales it
(the risk core caps the multiplier). The dust rule says when a position is too small for any order to close it:
strategies use it to decide what they can still sell, live nodes to tell dust from an open position.
"""

from decimal import ROUND_CEILING
from decimal import ROUND_FLOOR
from decimal import Decimal

from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity


def minimum_order_quantity(instrument: Instrument, price: float, notional_buffer: float = 0.01, multiplier: float = 1.0) -> Quantity:
    """
    Return the smallest quantity the venue accepts at ``price``, times ``multiplier``, on the size step.

    Parameters
    ----------
    instrument : Instrument
        The instrument (size step, minimum quantity, minimum notional, taker fee).
    price : float
        The price the order is expected to fill at.
    notional_buffer : float, default 0.01
        Fraction added on top of the minimum notional, so that the price moving between decision and fill cannot
        push a minimum-size order below the venue's minimum notional.
    multiplier : float, default 1.0
        The ramp: how many minimum sizes to trade (rounded up to the step).

    Notes
    -----
    On a spot pair Binance takes a buy's commission in the bought asset, so the quantity is raised until what is
    held after the buy, rounded down to the step, still meets both minimums: the position stays sellable.
    """
    step = instrument.size_increment.as_decimal()
    needed = instrument.min_quantity.as_decimal() if instrument.min_quantity is not None else step
    if instrument.min_notional is not None:
        notional = instrument.min_notional.as_decimal() * Decimal(str(1 + notional_buffer))
        needed = max(needed, notional / (Decimal(str(price)) * instrument.multiplier.as_decimal()))
    needed *= Decimal(str(multiplier))
    steps = (needed / step).to_integral_value(rounding=ROUND_CEILING)
    if isinstance(instrument, CurrencyPair):
        kept = Decimal(1) - instrument.taker_fee
        while ((steps * step * kept) / step).to_integral_value(rounding=ROUND_FLOOR) * step < needed:
            steps += 1
    return instrument.make_qty(steps * step)


def closable_quantity(instrument: Instrument, quantity: Decimal, price: float | None = None) -> Quantity | None:
    """
    Return the part of a position of ``quantity`` (absolute) an order can close, or None if it is dust.

    The quantity is rounded down to the size step (Binance spot takes a buy's commission in the bought asset, so
    a position is off the step); what is left must meet the minimum quantity and, when ``price`` is given, the
    minimum notional. Below that no order can close it: the venue would refuse it.
    """
    step = instrument.size_increment.as_decimal()
    if quantity < step:
        return None
    # In Decimal: nautilus's make_qty(round_down=True) goes through a float and takes a whole step off a quantity
    # already on the step (0.0039 ETH became 0.0038, leaving an unsellable step behind).
    closable = instrument.make_qty((quantity / step).to_integral_value(rounding=ROUND_FLOOR) * step)
    if closable.as_decimal() == 0 or (instrument.min_quantity is not None and closable < instrument.min_quantity):
        return None
    if price is not None and instrument.min_notional is not None:
        if instrument.notional_value(closable, instrument.make_price(price)) < instrument.min_notional:
            return None
    return closable
