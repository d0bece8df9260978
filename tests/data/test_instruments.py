"""Instruments built from the shipped exchangeInfo carry Binance's real filters at the right precision."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from keel.data.errors import DataInputError
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.instruments import binance_spot_instruments
from keel.data.instruments import normalize_decimal_string


def test_filters_match_the_exchange_info() -> None:
    instruments = binance_spot_instruments(DEFAULT_EXCHANGE_INFO)

    btc, eth = instruments["BTCUSDT"], instruments["ETHUSDT"]
    assert btc.id.value == "BTCUSDT.BINANCE"
    assert (btc.price_precision, str(btc.price_increment), btc.size_precision, str(btc.size_increment)) == (2, "0.01", 5, "0.00001")
    assert (eth.price_precision, str(eth.price_increment), eth.size_precision, str(eth.size_increment)) == (2, "0.01", 4, "0.0001")
    assert str(btc.min_quantity) == "0.00001"
    assert str(btc.max_quantity) == "9000.00000"
    assert str(btc.min_price) == "0.01"
    assert str(btc.max_price) == "1000000.00"
    assert btc.min_notional.as_decimal() == Decimal("10")
    assert (btc.maker_fee, btc.taker_fee) == (Decimal("0.001"), Decimal("0.001"))
    assert btc.ts_init == 1633998511098 * 1_000_000


@pytest.mark.parametrize(("text", "expected"), [("0.01000000", "0.01"), ("9000.00000000", "9000"), ("10", "10")])
def test_normalize_decimal_string(text: str, expected: str) -> None:
    assert normalize_decimal_string(text) == expected


def test_missing_symbol_names_file_and_symbol() -> None:
    with pytest.raises(DataInputError, match=r"exchange_info\.json.*\['SOLUSDT'\] not found"):
        binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {"SOLUSDT"})


def test_missing_filter_names_file_and_field(tmp_path: Path) -> None:
    document = json.loads(DEFAULT_EXCHANGE_INFO.read_text())
    for entry in document["symbols"]:
        entry["filters"] = [item for item in entry["filters"] if item["filterType"] != "LOT_SIZE"]
    broken = tmp_path / "exchange_info.json"
    broken.write_text(json.dumps(document))

    with pytest.raises(DataInputError, match=r"exchange_info\.json: field 'symbols\[BTCUSDT\]\.filters\.LOT_SIZE' is missing"):
        binance_spot_instruments(broken, {"BTCUSDT"})
