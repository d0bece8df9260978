"""Nautilus instruments built from a saved OKX v5 ``GET /api/v5/public/instruments`` response.

The instruments are modelled as nautilus' own OKX adapter models them (``crates/adapters/okx`` parser):

- ``SPOT`` -> ``CurrencyPair`` ``BTC-USDT.OKX``: price increment ``tickSz``, size increment and lot ``lotSz``,
  minimum quantity ``minSz``, quantities in the base currency.
- ``SWAP`` -> ``CryptoPerpetual`` ``BTC-USDT-SWAP.OKX``: quantities in **contracts**, size increment and lot
  ``lotSz``, minimum quantity ``minSz``, multiplier ``ctVal * ctMult`` (0.01 BTC per BTC-USDT-SWAP contract),
  base/quote from ``uly``, settlement ``settleCcy``, inverse when ``ctType`` is ``inverse``.

Two choices differ from, or add to, the adapter. The maximum quantity of a swap is ``maxMktSz`` (contracts), as
in the adapter; for spot OKX quotes ``maxMktSz`` in USDT, so the spot maximum is ``maxLmtSz``, the base-currency
bound. The response carries no fees (they are per account, ``GET /api/v5/account/trade-fee``): Keel models OKX's
public regular-user (VIP0) schedule, spot 0.08% maker / 0.10% taker and USDT-margined swaps 0.02% maker /
0.05% taker. Margins are left at 0, as the adapter leaves them: OKX publishes them per position tier, not here.

The file is either one plain response ``{"code": "0", "data": [...]}`` or the shipped extract
``{"responses": [{"url", "received", "response"}, ...]}``, which keeps each recorded response with its local
receive time (``<seconds>.<fraction>``); that time becomes the instruments' ``ts_event``/``ts_init`` (0 for a
plain response, which records none).
"""

import json
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
from nautilus_trader.model.objects import QUANTITY_MAX
from nautilus_trader.model.objects import Currency
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from keel.data.errors import DataInputError
from keel.data.instruments import normalize_decimal_string
from keel.data.instruments import required_field
from keel.settings import SAMPLE_DIR

OKX_VENUE = Venue("OKX")
SAMPLE_OKX_DIR = SAMPLE_DIR / "okx"
DEFAULT_OKX_INSTRUMENTS = SAMPLE_OKX_DIR / "instruments.json"

# OKX public fee schedule, regular users (VIP0), without OKB discounts.
OKX_SPOT_VIP0_MAKER_FEE = Decimal("0.0008")
OKX_SPOT_VIP0_TAKER_FEE = Decimal("0.001")
OKX_SWAP_VIP0_MAKER_FEE = Decimal("0.0002")
OKX_SWAP_VIP0_TAKER_FEE = Decimal("0.0005")

SUPPORTED_INSTRUMENT_TYPES = ("SPOT", "SWAP")
_NANOS_PER_SECOND = 1_000_000_000
_LARGEST_QUANTITY = Decimal(int(QUANTITY_MAX))


@dataclass(frozen=True)
class OKXInstrumentDefinition:
    """
    One OKX instrument definition as found in the file, not yet checked.

    Parameters
    ----------
    fields : dict[str, Any]
        One element of a response's ``data`` list, exactly as OKX sent it.
    where : str
        Its place in the file, named in errors (e.g. ``responses[1].response.data[BTC-USDT-SWAP]``).
    ts_init : int
        The response's local receive time (ns), 0 when the file records none.

    """

    fields: dict[str, Any]
    where: str
    ts_init: int

    @property
    def instrument_type(self) -> str:
        """Return OKX's ``instType`` (``SPOT``, ``SWAP``, ``FUTURES``, ...)."""
        return str(self.fields.get("instType", ""))


def load_okx_instrument_definitions(path: Path) -> dict[str, OKXInstrumentDefinition]:
    """
    Read every instrument definition of a saved instruments response (or of the shipped extract).

    Parameters
    ----------
    path : Path
        The JSON file.

    Returns
    -------
    dict[str, OKXInstrumentDefinition]
        Keyed by OKX ``instId``, every instrument type included.

    Raises
    ------
    DataInputError
        If the file is missing or not JSON, a response is an OKX error (``code`` not ``"0"``), a field of the
        layout is missing, or an ``instId`` appears twice.

    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a saved OKX /api/v5/public/instruments response") from None
    except json.JSONDecodeError as error:
        raise DataInputError(path, f"not valid JSON ({error.msg}): expected an OKX instruments response", error.lineno) from None
    if isinstance(document, dict) and "responses" in document:
        responses = document["responses"]
        if not isinstance(responses, list):
            raise DataInputError(path, "field 'responses': expected a list of {url, received, response}")
        located = []
        for index, item in enumerate(responses):
            where = f"responses[{index}]"
            if not isinstance(item, dict):
                raise DataInputError(path, f"field '{where}': expected an object {{url, received, response}}")
            received = required_field(item, "received", path, where)
            located.append((required_field(item, "response", path, where), f"{where}.response", _seconds_to_nanos(received, path, f"{where}.received")))
    else:
        located = [(document, "", 0)]
    definitions: dict[str, OKXInstrumentDefinition] = {}
    for response, where, ts_init in located:
        for inst_id, definition in _response_definitions(response, where, ts_init, path).items():
            if inst_id in definitions:
                raise DataInputError(
                    path, f"instId '{inst_id}' defined twice ({definitions[inst_id].where} and {definition.where}): expected one definition per instrument"
                )
            definitions[inst_id] = definition
    return definitions


def okx_instruments(path: Path, inst_ids: set[str] | None = None) -> dict[str, CurrencyPair | CryptoPerpetual]:
    """
    Build ``<instId>.OKX`` instruments from a saved instruments response.

    Parameters
    ----------
    path : Path
        The JSON file: a plain response or the shipped extract (see the module notes).
    inst_ids : set[str], optional
        Only these OKX instrument ids (e.g. ``{"BTC-USDT", "BTC-USDT-SWAP"}``); every one must be present and
        be a ``SPOT`` or ``SWAP`` instrument. When None, every ``SPOT`` and ``SWAP`` instrument of the file.

    Returns
    -------
    dict[str, CurrencyPair | CryptoPerpetual]
        Keyed by OKX ``instId``, sorted.

    Raises
    ------
    DataInputError
        If a requested instrument is missing or of another type, or one of its fields is missing or malformed.

    """
    path = Path(path)
    definitions = load_okx_instrument_definitions(path)
    if inst_ids is None:
        wanted = sorted(inst_id for inst_id, item in definitions.items() if item.instrument_type in SUPPORTED_INSTRUMENT_TYPES)
    else:
        wanted = sorted(inst_ids)
        missing = [inst_id for inst_id in wanted if inst_id not in definitions]
        if missing:
            raise DataInputError(path, f"instIds {missing} not found in field 'data': expected a definition per requested instrument")
    return {inst_id: instrument_from_okx_definition(definitions[inst_id], path) for inst_id in wanted}


def instrument_from_okx_definition(definition: OKXInstrumentDefinition, source: Path) -> CurrencyPair | CryptoPerpetual:
    """
    Build one instrument from an OKX instrument definition.

    Parameters
    ----------
    definition : OKXInstrumentDefinition
        A ``SPOT`` or ``SWAP`` definition.
    source : Path
        The file the definition came from, named in errors.

    Returns
    -------
    CurrencyPair | CryptoPerpetual
        A ``CurrencyPair`` for ``SPOT``, a ``CryptoPerpetual`` for ``SWAP``.

    Raises
    ------
    DataInputError
        If the type is not ``SPOT``/``SWAP``, or a field is missing or malformed.

    """
    fields, where = definition.fields, definition.where
    inst_id = _required_text(fields, "instId", source, where)
    instrument_type = _required_text(fields, "instType", source, where)
    price_increment = Price.from_str(_positive_decimal_text(fields, "tickSz", source, where))
    size_increment = Quantity.from_str(_positive_decimal_text(fields, "lotSz", source, where))
    size_precision = size_increment.precision
    common = {
        "instrument_id": InstrumentId(Symbol(inst_id), OKX_VENUE),
        "raw_symbol": Symbol(inst_id),
        "price_precision": price_increment.precision,
        "size_precision": size_precision,
        "price_increment": price_increment,
        "size_increment": size_increment,
        "lot_size": size_increment,
        "min_quantity": _quantity_on_grid(fields, "minSz", size_precision, source, where),
        "ts_event": definition.ts_init,
        "ts_init": definition.ts_init,
        "margin_init": Decimal(0),
        "margin_maint": Decimal(0),
        "info": fields,
    }
    if instrument_type == "SPOT":
        return CurrencyPair(
            base_currency=Currency.from_str(_required_text(fields, "baseCcy", source, where)),
            quote_currency=Currency.from_str(_required_text(fields, "quoteCcy", source, where)),
            max_quantity=_maximum_quantity(fields, "maxLmtSz", size_precision, source, where),
            maker_fee=OKX_SPOT_VIP0_MAKER_FEE,
            taker_fee=OKX_SPOT_VIP0_TAKER_FEE,
            **common,
        )
    if instrument_type == "SWAP":
        underlying = _required_text(fields, "uly", source, where)
        base, separator, quote = underlying.partition("-")
        if not separator or not base or not quote:
            raise DataInputError(source, f"field '{where}.uly': expected 'BASE-QUOTE', got {underlying!r}")
        contract_type = _required_text(fields, "ctType", source, where)
        if contract_type not in ("linear", "inverse"):
            raise DataInputError(source, f"field '{where}.ctType': expected 'linear' or 'inverse', got {contract_type!r}")
        contract_value = Decimal(_positive_decimal_text(fields, "ctVal", source, where))
        contract_multiplier = Decimal(_positive_decimal_text(fields, "ctMult", source, where))
        return CryptoPerpetual(
            base_currency=Currency.from_str(base),
            quote_currency=Currency.from_str(quote),
            settlement_currency=Currency.from_str(_required_text(fields, "settleCcy", source, where)),
            is_inverse=contract_type == "inverse",
            multiplier=Quantity.from_str(format((contract_value * contract_multiplier).normalize(), "f")),
            max_quantity=_maximum_quantity(fields, "maxMktSz", size_precision, source, where),
            maker_fee=OKX_SWAP_VIP0_MAKER_FEE,
            taker_fee=OKX_SWAP_VIP0_TAKER_FEE,
            **common,
        )
    raise DataInputError(
        source, f"field '{where}.instType' is {instrument_type!r}: expected one of {list(SUPPORTED_INSTRUMENT_TYPES)} (Keel models spot and swaps only)"
    )


def _response_definitions(response: Any, where: str, ts_init: int, source: Path) -> dict[str, OKXInstrumentDefinition]:
    prefix = f"{where}." if where else ""
    if not isinstance(response, dict):
        raise DataInputError(source, f"field '{where or '<root>'}': expected an OKX response object {{code, msg, data}}")
    code = required_field(response, "code", source, where or "<root>")
    if code != "0":
        raise DataInputError(source, f"field '{prefix}code' is {code!r} ({response.get('msg', '')!r}): expected '0', a successful response")
    data = required_field(response, "data", source, where or "<root>")
    if not isinstance(data, list):
        raise DataInputError(source, f"field '{prefix}data': expected a list of instrument definitions")
    definitions = {}
    for index, fields in enumerate(data):
        if not isinstance(fields, dict):
            raise DataInputError(source, f"field '{prefix}data[{index}]': expected an instrument definition object")
        inst_id = _required_text(fields, "instId", source, f"{prefix}data[{index}]")
        definitions[inst_id] = OKXInstrumentDefinition(fields, f"{prefix}data[{inst_id}]", ts_init)
    return definitions


def _seconds_to_nanos(text: Any, source: Path, where: str) -> int:
    # The recorder wrote Python's shortest float repr; its digits are the recorded value, so convert them exactly.
    seconds, _, fraction = str(text).partition(".")
    if not seconds.isdigit() or not (fraction.isdigit() or fraction == "") or len(fraction) > 9:
        raise DataInputError(source, f"field '{where}': expected seconds since the epoch like '1652459223.3386436', got {text!r}")
    return int(seconds) * _NANOS_PER_SECOND + int(fraction.ljust(9, "0"))


def _required_text(mapping: dict[str, Any], key: str, source: Path, where: str) -> str:
    value = required_field(mapping, key, source, where)
    # OKX sends "" for a field that does not apply to the instrument type: as good as missing where it is needed.
    if not isinstance(value, str) or not value:
        raise DataInputError(source, f"field '{where}.{key}': expected a non-empty string, got {value!r}")
    return value


def _positive_decimal_text(mapping: dict[str, Any], key: str, source: Path, where: str) -> str:
    raw = _required_text(mapping, key, source, where)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise DataInputError(source, f"field '{where}.{key}': expected a decimal string, got {raw!r}") from None
    if not value.is_finite() or value <= 0 or "e" in raw.lower():
        raise DataInputError(source, f"field '{where}.{key}': expected a positive plain decimal, got {raw!r}")
    # Nautilus takes a value's precision from its string: "0.0100" would give precision 4, not 2.
    return normalize_decimal_string(raw)


def _quantity_on_grid(mapping: dict[str, Any], key: str, precision: int, source: Path, where: str) -> Quantity:
    value = Decimal(_positive_decimal_text(mapping, key, source, where))
    text = f"{value:.{precision}f}"
    # Quantity rounds silently; a bound off the lot grid is a broken file, not a rounding job.
    if Decimal(text) != value:
        raise DataInputError(source, f"field '{where}.{key}': expected a multiple of the lot size 10^-{precision}, got {value}")
    return Quantity.from_str(text)


def _maximum_quantity(mapping: dict[str, Any], key: str, precision: int, source: Path, where: str) -> Quantity | None:
    # OKX writes "no limit" as a run of nines (spot maxLmtSz "99999999999999"), beyond what a nautilus Quantity
    # holds: such a bound is no bound.
    if Decimal(_positive_decimal_text(mapping, key, source, where)) > _LARGEST_QUANTITY:
        return None
    return _quantity_on_grid(mapping, key, precision, source, where)
