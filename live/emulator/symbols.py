"""What the venue lists: one ``SymbolSpec`` per instrument (assets, filters, fees) and its exchangeInfo entry."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nautilus_trader.model.instruments import CurrencyPair

# exchangeInfo symbol fields nautilus requires (msgspec struct fields without defaults) that a recorded
# entry may predate; filled with the venue's current values when missing.
_REQUIRED_DEFAULTS: dict[str, Any] = {
    "status": "TRADING",
    "baseAssetPrecision": 8,
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": False,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": False,
    "permissions": ["SPOT"],
}


@dataclass(frozen=True)
class SymbolSpec:
    """
    Trading rules of one spot symbol as the venue enforces them.

    Parameters
    ----------
    symbol : str
        Venue symbol, e.g. ``BTCUSDT``.
    instrument_id : str
        Nautilus instrument id, e.g. ``BTCUSDT.BINANCE``.
    base_asset, quote_asset : str
        Assets traded and priced in.
    tick_size, min_price, max_price : Decimal
        PRICE_FILTER (``max_price`` 0 = no maximum).
    step_size, min_qty, max_qty : Decimal
        LOT_SIZE.
    market_max_qty : Decimal
        MARKET_LOT_SIZE maximum for market orders (0 = no extra limit).
    min_notional : Decimal
        MIN_NOTIONAL / NOTIONAL minimum (0 = none).
    notional_filter : str
        Name of the filter the minimum came from, used in the rejection message.
    max_num_orders : int
        MAX_NUM_ORDERS (0 = unlimited).
    maker_fee, taker_fee : Decimal
        Commission rates (fractions).
    price_precision, size_precision : int
        Decimals prices and quantities are written with: the quote and base asset precisions (8 on Binance
        spot, which writes ``"61837.63000000"`` whatever the tick).
    exchange_info : dict
        The symbol's ``/api/v3/exchangeInfo`` entry.
    """

    symbol: str
    instrument_id: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    notional_filter: str
    max_num_orders: int
    maker_fee: Decimal
    taker_fee: Decimal
    price_precision: int
    size_precision: int
    exchange_info: dict[str, Any]

    def format_price(self, price: Decimal) -> str:
        """Return ``price`` as a string with the symbol's price decimals."""
        return f"{price:.{self.price_precision}f}"

    def format_qty(self, quantity: Decimal) -> str:
        """Return ``quantity`` as a string with the symbol's size decimals."""
        return f"{quantity:.{self.size_precision}f}"


def symbol_spec(instrument: CurrencyPair) -> SymbolSpec:
    """
    Build the venue rules of ``instrument``.

    The instrument's ``info`` (the recorded exchangeInfo entry the ingest stores) is served as is, with any
    field nautilus requires and an old recording lacks added; without ``info`` an entry is synthesised from
    the instrument's increments and limits.
    """
    info = dict(instrument.info or {}) or _synthesised_info(instrument)
    for key, value in _REQUIRED_DEFAULTS.items():
        info.setdefault(key, value)
    info.setdefault("symbol", instrument.raw_symbol.value)
    info.setdefault("baseAsset", instrument.base_currency.code)
    info.setdefault("quoteAsset", instrument.quote_currency.code)
    filters = {entry["filterType"]: entry for entry in info.get("filters", [])}
    price_filter = filters.get("PRICE_FILTER", {})
    lot_size = filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})
    notional_name = "NOTIONAL" if "NOTIONAL" in filters else "MIN_NOTIONAL"
    notional = filters.get(notional_name, {})
    return SymbolSpec(
        symbol=info["symbol"],
        instrument_id=instrument.id.value,
        base_asset=info["baseAsset"],
        quote_asset=info["quoteAsset"],
        tick_size=instrument.price_increment.as_decimal(),
        min_price=Decimal(price_filter.get("minPrice", "0")),
        max_price=Decimal(price_filter.get("maxPrice", "0")),
        step_size=instrument.size_increment.as_decimal(),
        min_qty=Decimal(lot_size.get("minQty", "0")),
        max_qty=Decimal(lot_size.get("maxQty", "0")),
        market_max_qty=Decimal(market_lot.get("maxQty", "0")),
        min_notional=Decimal(notional.get("minNotional", "0")),
        notional_filter=notional_name,
        max_num_orders=int(filters.get("MAX_NUM_ORDERS", {}).get("maxNumOrders", 0)),
        maker_fee=Decimal(instrument.maker_fee),
        taker_fee=Decimal(instrument.taker_fee),
        price_precision=int(info["quotePrecision"]),
        size_precision=int(info["baseAssetPrecision"]),
        exchange_info=info,
    )


def _synthesised_info(instrument: CurrencyPair) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": str(instrument.min_price or instrument.price_increment),
            "maxPrice": str(instrument.max_price or "1000000"),
            "tickSize": str(instrument.price_increment),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": str(instrument.min_quantity or instrument.size_increment),
            "maxQty": str(instrument.max_quantity or "9000"),
            "stepSize": str(instrument.size_increment),
        },
    ]
    if instrument.min_notional is not None:
        filters.append({"filterType": "NOTIONAL", "minNotional": str(instrument.min_notional.as_decimal()), "applyMinToMarket": True})
    return {"filters": filters}
