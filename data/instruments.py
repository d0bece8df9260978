"""Nautilus ``CurrencyPair`` instruments built from a Binance spot ``exchangeInfo`` response.

The catalog stores the instrument next to its data, so a backtest sees exactly the filters (tick, step,
min/max quantity, min notional) the venue enforced. Binance writes every decimal with eight places
("0.01000000"); nautilus takes a value's precision from its string, so each filter value is normalised
first ("0.01000000" -> "0.01", precision 2).
"""

import json
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Symbol
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Money
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from keel.data.errors import DataInputError

BINANCE_VENUE = Venue("BINANCE")

# exchangeInfo carries no fees: they are per account (GET /sapi/v1/asset/tradeFee). Keel models the
# public VIP0 spot schedule, 0.1% maker and taker, without the BNB discount.
BINANCE_SPOT_VIP0_MAKER_FEE = Decimal("0.001")
BINANCE_SPOT_VIP0_TAKER_FEE = Decimal("0.001")


def normalize_decimal_string(value: str) -> str:
    """
    Return ``value`` without trailing fractional zeros ("0.01000000" -> "0.01", "9000.00" -> "9000").

    Parameters
    ----------
    value : str
        A plain decimal string as Binance sends it.

    Returns
    -------
    str

    """
    if "." not in value:
        return value
    return value.rstrip("0").rstrip(".")


def load_exchange_info(path: Path) -> dict[str, Any]:
    """
    Read a Binance spot ``GET /api/v3/exchangeInfo`` response saved as JSON.

    Parameters
    ----------
    path : Path
        The JSON file.

    Returns
    -------
    dict[str, Any]

    Raises
    ------
    DataInputError
        If the file is missing, is not JSON, or has no ``symbols`` list.

    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a Binance exchangeInfo JSON file") from None
    except json.JSONDecodeError as error:
        raise DataInputError(path, f"not valid JSON ({error.msg}): expected an exchangeInfo response", error.lineno) from None
    if not isinstance(document, dict) or not isinstance(document.get("symbols"), list):
        raise DataInputError(path, "field 'symbols': expected a list of symbol entries (an exchangeInfo response)")
    return document


def binance_spot_instruments(path: Path, symbols: set[str] | None = None) -> dict[str, CurrencyPair]:
    """
    Build ``<SYMBOL>.BINANCE`` currency pairs from a saved exchangeInfo response.

    Parameters
    ----------
    path : Path
        The exchangeInfo JSON file.
    symbols : set[str], optional
        Only these Binance symbols (e.g. ``{"BTCUSDT"}``); every one must be present. All when None.

    Returns
    -------
    dict[str, CurrencyPair]
        Keyed by Binance symbol.

    Raises
    ------
    DataInputError
        If a requested symbol or one of its filters is missing or malformed.

    """
    document = load_exchange_info(path)
    # serverTime says when the filters were read; it becomes the instrument's timestamps.
    ts_init = int(document.get("serverTime", 0)) * 1_000_000
    entries = {entry.get("symbol"): entry for entry in document["symbols"] if isinstance(entry, dict)}
    wanted = set(entries) if symbols is None else set(symbols)
    missing = sorted(wanted - set(entries))
    if missing:
        raise DataInputError(path, f"symbols {missing} not found in field 'symbols': expected an entry per traded symbol")
    return {symbol: currency_pair_from_binance_symbol(entries[symbol], path, ts_init) for symbol in sorted(wanted)}


def currency_pair_from_binance_symbol(entry: dict[str, Any], source: Path, ts_init: int) -> CurrencyPair:
    """
    Build one ``CurrencyPair`` from an exchangeInfo symbol entry.

    Parameters
    ----------
    entry : dict[str, Any]
        One element of the response's ``symbols`` list.
    source : Path
        The file the entry came from, named in errors.
    ts_init : int
        Timestamp (ns) for the instrument's ``ts_event`` and ``ts_init``.

    Returns
    -------
    CurrencyPair

    Raises
    ------
    DataInputError
        If a required field or filter is missing or malformed.

    """
    symbol = _required(entry, "symbol", source, "symbols[]")
    where = f"symbols[{symbol}]"
    filters = {item.get("filterType"): item for item in entry.get("filters", []) if isinstance(item, dict)}
    price_filter = _required(filters, "PRICE_FILTER", source, f"{where}.filters")
    lot_size = _required(filters, "LOT_SIZE", source, f"{where}.filters")
    # Binance replaced MIN_NOTIONAL with NOTIONAL in 2023; both carry 'minNotional'.
    notional_filter = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL")
    if notional_filter is None:
        raise DataInputError(source, f"field '{where}.filters': expected a MIN_NOTIONAL or NOTIONAL filter")

    tick = _decimal(price_filter, "tickSize", source, f"{where}.PRICE_FILTER")
    step = _decimal(lot_size, "stepSize", source, f"{where}.LOT_SIZE")
    if tick <= 0 or step <= 0:
        raise DataInputError(source, f"field '{where}' tickSize/stepSize: expected positive increments, got {tick}/{step}")
    price_increment = Price.from_str(normalize_decimal_string(price_filter["tickSize"]))
    size_increment = Quantity.from_str(normalize_decimal_string(lot_size["stepSize"]))
    price_precision = price_increment.precision
    size_precision = size_increment.precision
    quote_currency = Currency.from_str(_required(entry, "quoteAsset", source, where))
    min_notional = _decimal(notional_filter, "minNotional", source, f"{where}.{notional_filter['filterType']}")

    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(symbol), BINANCE_VENUE),
        raw_symbol=Symbol(symbol),
        base_currency=Currency.from_str(_required(entry, "baseAsset", source, where)),
        quote_currency=quote_currency,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=price_increment,
        size_increment=size_increment,
        ts_event=ts_init,
        ts_init=ts_init,
        max_quantity=_quantity_or_none(lot_size, "maxQty", size_precision, source, f"{where}.LOT_SIZE"),
        min_quantity=_quantity_or_none(lot_size, "minQty", size_precision, source, f"{where}.LOT_SIZE"),
        min_notional=Money(min_notional, quote_currency) if min_notional > 0 else None,
        max_price=_price_or_none(price_filter, "maxPrice", price_precision, source, f"{where}.PRICE_FILTER"),
        min_price=_price_or_none(price_filter, "minPrice", price_precision, source, f"{where}.PRICE_FILTER"),
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=BINANCE_SPOT_VIP0_MAKER_FEE,
        taker_fee=BINANCE_SPOT_VIP0_TAKER_FEE,
        info=entry,
    )


def _required(mapping: dict[str, Any], key: str, source: Path, where: str) -> Any:
    if key not in mapping:
        raise DataInputError(source, f"field '{where}.{key}' is missing")
    return mapping[key]


def _decimal(mapping: dict[str, Any], key: str, source: Path, where: str) -> Decimal:
    raw = _required(mapping, key, source, where)
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise DataInputError(source, f"field '{where}.{key}': expected a decimal string, got {raw!r}") from None


def _exact(value: Decimal, precision: int, source: Path, where: str) -> str:
    # Price/Quantity round silently; a filter bound off the tick grid is a broken file, not a rounding job.
    text = f"{value:.{precision}f}"
    if Decimal(text) != value:
        raise DataInputError(source, f"field '{where}': expected a multiple of 10^-{precision}, got {value}")
    return text


def _price_or_none(mapping: dict[str, Any], key: str, precision: int, source: Path, where: str) -> Price | None:
    value = _decimal(mapping, key, source, where)
    # Binance sends 0 for a disabled bound.
    return Price.from_str(_exact(value, precision, source, f"{where}.{key}")) if value > 0 else None


def _quantity_or_none(mapping: dict[str, Any], key: str, precision: int, source: Path, where: str) -> Quantity | None:
    value = _decimal(mapping, key, source, where)
    return Quantity.from_str(_exact(value, precision, source, f"{where}.{key}")) if value > 0 else None
