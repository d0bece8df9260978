"""Nautilus instruments built from a saved Binance ``exchangeInfo`` response: spot pairs and USDT-M perpetuals.

The catalog stores the instrument next to its data, so a backtest sees exactly the filters (tick, step,
min/max quantity, min notional) the venue enforced. Binance writes every decimal with eight places
("0.01000000"); nautilus takes a value's precision from its string, so each filter value is normalised
first ("0.01000000" -> "0.01", precision 2).

Spot (``GET /api/v3/exchangeInfo``) gives ``<SYMBOL>.BINANCE`` ``CurrencyPair`` s; USDT-M futures
(``GET /fapi/v1/exchangeInfo``) give ``<SYMBOL>-PERP.BINANCE`` ``CryptoPerpetual`` s, the symbology of
nautilus' Binance adapter. Both read the same PRICE_FILTER and LOT_SIZE filters; they differ in the
min-notional filter's name and key, in fees, and in margins.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Symbol
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.instruments import CryptoPerpetual
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

# Neither has the futures exchangeInfo (fees: GET /fapi/v1/commissionRate, per account). Keel models the
# public USDT-M VIP0 schedule, 0.02% maker and 0.05% taker, without the BNB discount.
BINANCE_USDM_VIP0_MAKER_FEE = Decimal("0.0002")
BINANCE_USDM_VIP0_TAKER_FEE = Decimal("0.0005")

# Used when a symbol entry lacks requiredMarginPercent / maintMarginPercent: the values the 2021-07
# exchangeInfo gives BTCUSDT and ETHUSDT (5% initial, i.e. 20x, and 2.5% maintenance). The account's real
# margin follows its chosen leverage and Binance's notional brackets, which exchangeInfo does not carry.
BINANCE_USDM_DEFAULT_MARGIN_INIT = Decimal("0.05")
BINANCE_USDM_DEFAULT_MARGIN_MAINT = Decimal("0.025")
PERPETUAL_SUFFIX = "-PERP"


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
    Read a Binance ``exchangeInfo`` response (spot ``/api/v3`` or USDT-M ``/fapi/v1``) saved as JSON.

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
    Build ``<SYMBOL>.BINANCE`` currency pairs from a saved spot exchangeInfo response.

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
    entries = select_symbol_entries(document, path, symbols, lambda entry: True, "an entry per traded symbol")
    ts_init = server_time_ns(document)
    return {symbol: currency_pair_from_binance_symbol(entry, path, ts_init) for symbol, entry in entries.items()}


def binance_usdm_instruments(path: Path, symbols: set[str] | None = None) -> dict[str, CryptoPerpetual]:
    """
    Build ``<SYMBOL>-PERP.BINANCE`` perpetuals from a saved USDT-M futures exchangeInfo response.

    Only ``contractType`` PERPETUAL entries count: quarterly contracts (``BTCUSDT_210924``) are other
    instruments. Fees are the public VIP0 rates (:data:`BINANCE_USDM_VIP0_MAKER_FEE`,
    :data:`BINANCE_USDM_VIP0_TAKER_FEE`), which exchangeInfo does not carry.

    Parameters
    ----------
    path : Path
        The ``GET /fapi/v1/exchangeInfo`` JSON file.
    symbols : set[str], optional
        Only these Binance symbols (e.g. ``{"BTCUSDT"}``); every one must be a perpetual in the file. All
        perpetuals when None.

    Returns
    -------
    dict[str, CryptoPerpetual]
        Keyed by Binance symbol (``BTCUSDT``), valid from the response's ``serverTime``.

    Raises
    ------
    DataInputError
        If a requested symbol is missing or not a perpetual, or one of its fields or filters is missing or
        malformed.

    """
    document = load_exchange_info(path)
    entries = select_symbol_entries(document, path, symbols, is_perpetual, "a PERPETUAL contract entry")
    ts_init = server_time_ns(document)
    return {symbol: crypto_perpetual_from_binance_symbol(entry, path, ts_init) for symbol, entry in entries.items()}


def currency_pair_from_binance_symbol(entry: dict[str, Any], source: Path, ts_init: int) -> CurrencyPair:
    """
    Build one ``CurrencyPair`` from a spot exchangeInfo symbol entry.

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
    # Binance spot replaced MIN_NOTIONAL with NOTIONAL in 2023; both carry 'minNotional'.
    filters = _TradingFilters.from_entry(entry, source, ("NOTIONAL", "MIN_NOTIONAL"), "minNotional")
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(filters.symbol), BINANCE_VENUE),
        raw_symbol=Symbol(filters.symbol),
        base_currency=filters.base_currency,
        quote_currency=filters.quote_currency,
        ts_event=ts_init,
        ts_init=ts_init,
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=BINANCE_SPOT_VIP0_MAKER_FEE,
        taker_fee=BINANCE_SPOT_VIP0_TAKER_FEE,
        info=entry,
        **filters.instrument_fields(),
    )


def crypto_perpetual_from_binance_symbol(entry: dict[str, Any], source: Path, ts_init: int) -> CryptoPerpetual:
    """
    Build one linear ``CryptoPerpetual`` from a USDT-M futures exchangeInfo symbol entry.

    Parameters
    ----------
    entry : dict[str, Any]
        One element of the response's ``symbols`` list, a PERPETUAL contract.
    source : Path
        The file the entry came from, named in errors.
    ts_init : int
        Timestamp (ns) for the instrument's ``ts_event`` and ``ts_init``.

    Returns
    -------
    CryptoPerpetual

    Raises
    ------
    DataInputError
        If a required field or filter is missing or malformed, or the margin asset is not the quote asset
        (an inverse or cross-margined contract, which this builder does not model).

    """
    # Futures keep the older filter name MIN_NOTIONAL, with the key 'notional'.
    filters = _TradingFilters.from_entry(entry, source, ("MIN_NOTIONAL",), "notional")
    where = f"symbols[{filters.symbol}]"
    margin_asset = required_field(entry, "marginAsset", source, where)
    if margin_asset != filters.quote_currency.code:
        raise DataInputError(
            source,
            f"field '{where}.marginAsset' is {margin_asset!r}: expected the quote asset "
            f"{filters.quote_currency.code!r} (a linear USDT-M contract)",
        )
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(filters.symbol + PERPETUAL_SUFFIX), BINANCE_VENUE),
        raw_symbol=Symbol(filters.symbol),
        base_currency=filters.base_currency,
        quote_currency=filters.quote_currency,
        settlement_currency=filters.quote_currency,
        is_inverse=False,
        ts_event=ts_init,
        ts_init=ts_init,
        margin_init=_percent(entry, "requiredMarginPercent", BINANCE_USDM_DEFAULT_MARGIN_INIT, source, where),
        margin_maint=_percent(entry, "maintMarginPercent", BINANCE_USDM_DEFAULT_MARGIN_MAINT, source, where),
        maker_fee=BINANCE_USDM_VIP0_MAKER_FEE,
        taker_fee=BINANCE_USDM_VIP0_TAKER_FEE,
        info=entry,
        **filters.instrument_fields(),
    )


@dataclass(frozen=True)
class _TradingFilters:
    """The filters spot and futures entries share, as nautilus values at the tick's and step's precision."""

    symbol: str
    base_currency: Currency
    quote_currency: Currency
    price_increment: Price
    size_increment: Quantity
    min_price: Price | None
    max_price: Price | None
    min_quantity: Quantity | None
    max_quantity: Quantity | None
    min_notional: Money | None

    @classmethod
    def from_entry(
        cls, entry: dict[str, Any], source: Path, notional_filter_types: tuple[str, ...], notional_key: str
    ) -> "_TradingFilters":
        symbol = required_field(entry, "symbol", source, "symbols[]")
        where = f"symbols[{symbol}]"
        filters = {item.get("filterType"): item for item in entry.get("filters", []) if isinstance(item, dict)}
        price_filter = required_field(filters, "PRICE_FILTER", source, f"{where}.filters")
        lot_size = required_field(filters, "LOT_SIZE", source, f"{where}.filters")
        notional_filter = next((filters[name] for name in notional_filter_types if name in filters), None)
        if notional_filter is None:
            raise DataInputError(source, f"field '{where}.filters': expected a {' or '.join(notional_filter_types)} filter")

        tick = _decimal(price_filter, "tickSize", source, f"{where}.PRICE_FILTER")
        step = _decimal(lot_size, "stepSize", source, f"{where}.LOT_SIZE")
        if tick <= 0 or step <= 0:
            raise DataInputError(source, f"field '{where}' tickSize/stepSize: expected positive increments, got {tick}/{step}")
        price_increment = Price.from_str(normalize_decimal_string(price_filter["tickSize"]))
        size_increment = Quantity.from_str(normalize_decimal_string(lot_size["stepSize"]))
        price_precision = price_increment.precision
        size_precision = size_increment.precision
        quote_currency = Currency.from_str(required_field(entry, "quoteAsset", source, where))
        min_notional = _decimal(notional_filter, notional_key, source, f"{where}.{notional_filter['filterType']}")
        return cls(
            symbol=symbol,
            base_currency=Currency.from_str(required_field(entry, "baseAsset", source, where)),
            quote_currency=quote_currency,
            price_increment=price_increment,
            size_increment=size_increment,
            min_price=_price_or_none(price_filter, "minPrice", price_precision, source, f"{where}.PRICE_FILTER"),
            max_price=_price_or_none(price_filter, "maxPrice", price_precision, source, f"{where}.PRICE_FILTER"),
            min_quantity=_quantity_or_none(lot_size, "minQty", size_precision, source, f"{where}.LOT_SIZE"),
            max_quantity=_quantity_or_none(lot_size, "maxQty", size_precision, source, f"{where}.LOT_SIZE"),
            min_notional=Money(min_notional, quote_currency) if min_notional > 0 else None,
        )

    def instrument_fields(self) -> dict[str, Any]:
        """Return the keyword arguments every nautilus instrument constructor takes for these filters."""
        return {
            "price_precision": self.price_increment.precision,
            "size_precision": self.size_increment.precision,
            "price_increment": self.price_increment,
            "size_increment": self.size_increment,
            "min_price": self.min_price,
            "max_price": self.max_price,
            "min_quantity": self.min_quantity,
            "max_quantity": self.max_quantity,
            "min_notional": self.min_notional,
        }


def is_perpetual(entry: dict[str, Any]) -> bool:
    """
    Return True if a futures exchangeInfo symbol entry is a perpetual contract.

    Parameters
    ----------
    entry : dict[str, Any]
        One element of the response's ``symbols`` list.

    Returns
    -------
    bool

    """
    return entry.get("contractType") == "PERPETUAL"


def select_symbol_entries(
    document: dict[str, Any],
    source: Path,
    symbols: set[str] | None,
    is_wanted_kind: Callable[[dict[str, Any]], bool],
    expected: str,
) -> dict[str, dict[str, Any]]:
    """
    Return the exchangeInfo symbol entries of one kind, keyed by symbol and sorted.

    Parameters
    ----------
    document : dict[str, Any]
        From :func:`load_exchange_info`.
    source : Path
        The exchangeInfo file, named in errors.
    symbols : set[str], optional
        Only these symbols; every one must be present and of the wanted kind. All of that kind when None.
    is_wanted_kind : Callable[[dict[str, Any]], bool]
        Selects the entries that count (e.g. :func:`is_perpetual`).
    expected : str
        What a requested symbol should have been, for the error message.

    Returns
    -------
    dict[str, dict[str, Any]]

    Raises
    ------
    DataInputError
        If a requested symbol has no entry of the wanted kind.

    """
    entries = {
        entry.get("symbol"): entry for entry in document["symbols"] if isinstance(entry, dict) and is_wanted_kind(entry)
    }
    wanted = set(entries) if symbols is None else set(symbols)
    missing = sorted(wanted - set(entries))
    if missing:
        raise DataInputError(source, f"symbols {missing} not found in field 'symbols': expected {expected}")
    return {symbol: entries[symbol] for symbol in sorted(wanted)}


def server_time_ns(document: dict[str, Any]) -> int:
    """
    Return when an exchangeInfo response was served (its ``serverTime``), in ns; 0 when absent.

    The filters were in force then, so this becomes the instruments' ``ts_event`` and ``ts_init``.

    Parameters
    ----------
    document : dict[str, Any]
        From :func:`load_exchange_info`.

    Returns
    -------
    int

    """
    return int(document.get("serverTime", 0)) * 1_000_000


def _percent(entry: dict[str, Any], key: str, default: Decimal, source: Path, where: str) -> Decimal:
    if key not in entry:
        return default
    # "5.0000" percent -> 0.05; normalised so the instrument holds 0.05, not 0.050000.
    return Decimal(normalize_decimal_string(str(_decimal(entry, key, source, where) / 100)))


def required_field(mapping: dict[str, Any], key: str, source: Path, where: str) -> Any:
    """Return ``mapping[key]``, or raise a DataInputError naming ``source`` and the field ``<where>.<key>``."""
    if key not in mapping:
        raise DataInputError(source, f"field '{where}.{key}' is missing")
    return mapping[key]


def _decimal(mapping: dict[str, Any], key: str, source: Path, where: str) -> Decimal:
    raw = required_field(mapping, key, source, where)
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
