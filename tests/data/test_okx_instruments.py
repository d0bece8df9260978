"""OKX instruments carry the real 2022 instruments response's grid, contract size and VIP0 fees."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.errors import DataInputError
from keel.data.ingest import commit_tables
from keel.data.okx_instruments import DEFAULT_OKX_INSTRUMENTS
from keel.data.okx_instruments import okx_instruments

# Local receive times of the SPOT and SWAP responses in the shipped extract.
SPOT_RECEIVED_NS = 1652459223_338643600
SWAP_RECEIVED_NS = 1652459223_597864400


def _swap_response() -> dict:
    return json.loads(DEFAULT_OKX_INSTRUMENTS.read_text())["responses"][1]["response"]


def _write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_swaps_are_contracts_with_the_okx_contract_value() -> None:
    instruments = okx_instruments(DEFAULT_OKX_INSTRUMENTS, {"BTC-USDT-SWAP", "ETH-USDT-SWAP"})

    btc, eth = instruments["BTC-USDT-SWAP"], instruments["ETH-USDT-SWAP"]
    assert isinstance(btc, CryptoPerpetual)
    assert btc.id.value == "BTC-USDT-SWAP.OKX"
    assert (str(btc.price_increment), str(btc.size_increment), str(btc.lot_size), str(btc.min_quantity), str(btc.multiplier)) == ("0.1", "1", "1", "1", "0.01")
    assert (str(eth.price_increment), str(eth.size_increment), str(eth.min_quantity), str(eth.multiplier)) == ("0.01", "1", "1", "0.1")
    assert (str(btc.max_quantity), str(eth.max_quantity)) == ("1600", "4500")
    assert (btc.base_currency.code, btc.quote_currency.code, btc.settlement_currency.code, btc.is_inverse) == ("BTC", "USDT", "USDT", False)
    assert (btc.maker_fee, btc.taker_fee) == (Decimal("0.0002"), Decimal("0.0005"))
    assert (btc.ts_event, btc.ts_init) == (SWAP_RECEIVED_NS, SWAP_RECEIVED_NS)
    # One contract at 30,000 USDT is 0.01 BTC, worth 300 USDT.
    assert btc.notional_value(Quantity.from_int(1), Price.from_str("30000.0")).as_decimal() == Decimal("300")


def test_spot_pairs_are_in_the_base_currency() -> None:
    instruments = okx_instruments(DEFAULT_OKX_INSTRUMENTS)

    assert sorted(instruments) == ["BTC-USDT", "BTC-USDT-SWAP", "ETH-USDT", "ETH-USDT-SWAP"]
    btc, eth = instruments["BTC-USDT"], instruments["ETH-USDT"]
    assert isinstance(btc, CurrencyPair)
    assert btc.id.value == "BTC-USDT.OKX"
    assert (btc.price_precision, str(btc.price_increment), btc.size_precision, str(btc.size_increment)) == (1, "0.1", 8, "0.00000001")
    assert (str(btc.min_quantity), str(btc.max_quantity), str(btc.multiplier)) == ("0.00001000", "9999999999.00000000", "1")
    assert (eth.price_precision, eth.size_precision, str(eth.min_quantity)) == (2, 6, "0.001000")
    assert (btc.maker_fee, btc.taker_fee) == (Decimal("0.0008"), Decimal("0.001"))
    assert btc.ts_init == SPOT_RECEIVED_NS


def test_plain_response_gives_the_same_instruments_at_time_zero(tmp_path: Path) -> None:
    plain = _write(tmp_path / "swap.json", _swap_response())

    instrument = okx_instruments(plain, {"BTC-USDT-SWAP"})["BTC-USDT-SWAP"]

    assert (str(instrument.size_increment), str(instrument.multiplier), instrument.ts_init) == ("1", "0.01", 0)


def test_instruments_round_trip_through_the_parquet_catalog(tmp_path: Path) -> None:
    instruments = okx_instruments(DEFAULT_OKX_INSTRUMENTS)
    commit_tables(tmp_path / "catalog", list(instruments.values()), [])

    read_back = {instrument.id.value: instrument for instrument in ParquetDataCatalog(str(tmp_path / "catalog")).instruments()}
    assert sorted(read_back) == ["BTC-USDT-SWAP.OKX", "BTC-USDT.OKX", "ETH-USDT-SWAP.OKX", "ETH-USDT.OKX"]
    for instrument in instruments.values():
        again = read_back[instrument.id.value]
        assert type(again) is type(instrument)
        assert (again.price_increment, again.size_increment, again.multiplier, again.min_quantity, again.maker_fee, again.ts_init) == (
            instrument.price_increment, instrument.size_increment, instrument.multiplier, instrument.min_quantity, instrument.maker_fee, instrument.ts_init
        )


@pytest.mark.parametrize("field", ["ctVal", "lotSz", "tickSz", "settleCcy"])
def test_missing_field_names_file_and_field(field: str, tmp_path: Path) -> None:
    document = json.loads(DEFAULT_OKX_INSTRUMENTS.read_text())
    del document["responses"][1]["response"]["data"][0][field]
    broken = _write(tmp_path / "instruments.json", document)

    with pytest.raises(DataInputError, match=rf"instruments\.json: field 'responses\[1\]\.response\.data\[BTC-USDT-SWAP\]\.{field}' is missing"):
        okx_instruments(broken, {"BTC-USDT-SWAP"})


def test_empty_field_names_file_and_field(tmp_path: Path) -> None:
    response = _swap_response()
    response["data"][0]["ctVal"] = ""
    broken = _write(tmp_path / "swap.json", response)

    with pytest.raises(DataInputError, match=r"swap\.json: field 'data\[BTC-USDT-SWAP\]\.ctVal': expected a non-empty string, got ''"):
        okx_instruments(broken, {"BTC-USDT-SWAP"})


def test_minimum_off_the_lot_grid_is_refused(tmp_path: Path) -> None:
    response = _swap_response()
    response["data"][0]["minSz"] = "0.5"
    broken = _write(tmp_path / "swap.json", response)

    with pytest.raises(DataInputError, match=r"field 'data\[BTC-USDT-SWAP\]\.minSz': expected a multiple of the lot size 10\^-0, got 0\.5"):
        okx_instruments(broken, {"BTC-USDT-SWAP"})


def test_missing_instrument_names_file_and_instrument() -> None:
    with pytest.raises(DataInputError, match=r"instruments\.json: instIds \['SOL-USDT'\] not found"):
        okx_instruments(DEFAULT_OKX_INSTRUMENTS, {"BTC-USDT", "SOL-USDT"})


def test_error_response_is_refused(tmp_path: Path) -> None:
    broken = _write(tmp_path / "error.json", {"code": "51001", "msg": "Instrument ID does not exist", "data": []})

    with pytest.raises(DataInputError, match=r"field 'code' is '51001' \('Instrument ID does not exist'\): expected '0'"):
        okx_instruments(broken)


def test_unsupported_instrument_type_is_refused_when_asked_for(tmp_path: Path) -> None:
    response = _swap_response()
    response["data"][0]["instType"] = "FUTURES"
    futures = _write(tmp_path / "futures.json", response)

    assert sorted(okx_instruments(futures)) == ["ETH-USDT-SWAP"]
    with pytest.raises(DataInputError, match=r"field 'data\[BTC-USDT-SWAP\]\.instType' is 'FUTURES'"):
        okx_instruments(futures, {"BTC-USDT-SWAP"})


def test_not_json_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"code": "0",\n "data": [\n')

    with pytest.raises(DataInputError, match=r"broken\.json:3: not valid JSON"):
        okx_instruments(broken)


@pytest.mark.requires_shared
def test_nautilus_adapter_fixtures(shared_data_dir: Path) -> None:
    # The adapter's own (recent) fixtures: linear swaps now trade in 0.01 contracts, an inverse swap is inverse.
    fixtures = shared_data_dir / "nautilus_trader" / "crates" / "adapters" / "okx" / "test_data"
    swaps = okx_instruments(fixtures / "http_get_instruments_swap.json")
    spot = okx_instruments(fixtures / "http_get_instruments_spot.json")

    btc = swaps["BTC-USDT-SWAP"]
    assert (str(btc.size_increment), str(btc.min_quantity), str(btc.multiplier), str(btc.max_quantity)) == ("0.01", "0.01", "0.01", "12000.00")
    inverse = swaps["BTC-USD-SWAP"]
    assert (inverse.is_inverse, str(inverse.multiplier), inverse.settlement_currency.code) == (True, "100", "BTC")
    assert (str(spot["BTC-USD"].size_increment), str(spot["BTC-USD"].min_quantity)) == ("0.00000001", "0.00001000")
    # maxLmtSz "99999999999999" is OKX's "no limit", beyond a nautilus Quantity: no maximum then.
    assert spot["USDT-USD"].max_quantity is None
