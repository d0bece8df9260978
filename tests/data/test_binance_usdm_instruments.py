"""USDT-M perpetuals built from the shipped futures exchangeInfo carry Binance's real filters."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.instruments import CryptoPerpetual

from keel.data.binance_usdm_ingest import DEFAULT_USDM_EXCHANGE_INFO
from keel.data.errors import DataInputError
from keel.data.instruments import BINANCE_USDM_DEFAULT_MARGIN_INIT
from keel.data.instruments import BINANCE_USDM_DEFAULT_MARGIN_MAINT
from keel.data.instruments import binance_usdm_instruments

NAUTILUS_FIXTURE = Path(
    "nautilus_trader/tests/integration_tests/adapters/binance/resources/http_responses/http_futures_market_exchange_info.json"
)


def _edited(tmp_path: Path, edit) -> Path:
    document = json.loads(DEFAULT_USDM_EXCHANGE_INFO.read_text())
    for entry in document["symbols"]:
        edit(entry)
    path = tmp_path / "exchange_info.json"
    path.write_text(json.dumps(document))
    return path


def test_filters_match_the_exchange_info() -> None:
    instruments = binance_usdm_instruments(DEFAULT_USDM_EXCHANGE_INFO)

    assert sorted(instruments) == ["BTCUSDT", "ETHUSDT"]
    btc, eth = instruments["BTCUSDT"], instruments["ETHUSDT"]
    assert isinstance(btc, CryptoPerpetual)
    assert (btc.id.value, btc.raw_symbol.value, eth.id.value) == ("BTCUSDT-PERP.BINANCE", "BTCUSDT", "ETHUSDT-PERP.BINANCE")
    assert (btc.base_currency.code, btc.quote_currency.code, btc.settlement_currency.code, btc.is_inverse) == ("BTC", "USDT", "USDT", False)
    assert (btc.price_precision, str(btc.price_increment), btc.size_precision, str(btc.size_increment)) == (2, "0.01", 3, "0.001")
    assert (str(btc.min_quantity), str(btc.max_quantity), str(btc.min_price), str(btc.max_price)) == ("0.001", "1000.000", "556.72", "1000000.00")
    assert (str(eth.min_price), str(eth.max_price), str(eth.max_quantity)) == ("39.86", "100000.00", "10000.000")
    assert btc.min_notional.as_decimal() == Decimal("5")
    assert (btc.margin_init, btc.margin_maint) == (Decimal("0.05"), Decimal("0.025"))
    assert (btc.maker_fee, btc.taker_fee) == (Decimal("0.0002"), Decimal("0.0005"))
    assert btc.ts_event == btc.ts_init == 1626858243909 * 1_000_000


def test_only_perpetuals_count(tmp_path: Path) -> None:
    def make_quarterly(entry: dict) -> None:
        if entry["symbol"] == "ETHUSDT":
            entry["contractType"] = "CURRENT_QUARTER"

    path = _edited(tmp_path, make_quarterly)

    assert sorted(binance_usdm_instruments(path)) == ["BTCUSDT"]
    with pytest.raises(DataInputError, match=r"\['ETHUSDT'\] not found in field 'symbols': expected a PERPETUAL contract entry"):
        binance_usdm_instruments(path, {"ETHUSDT"})


def test_margins_default_when_absent(tmp_path: Path) -> None:
    def drop_margins(entry: dict) -> None:
        del entry["requiredMarginPercent"], entry["maintMarginPercent"]

    btc = binance_usdm_instruments(_edited(tmp_path, drop_margins), {"BTCUSDT"})["BTCUSDT"]

    assert (btc.margin_init, btc.margin_maint) == (BINANCE_USDM_DEFAULT_MARGIN_INIT, BINANCE_USDM_DEFAULT_MARGIN_MAINT)


def test_other_margin_asset_is_refused(tmp_path: Path) -> None:
    def busd_margined(entry: dict) -> None:
        entry["marginAsset"] = "BUSD"

    with pytest.raises(DataInputError, match=r"field 'symbols\[BTCUSDT\]\.marginAsset' is 'BUSD': expected the quote asset 'USDT'"):
        binance_usdm_instruments(_edited(tmp_path, busd_margined), {"BTCUSDT"})


def test_missing_min_notional_names_file_and_field(tmp_path: Path) -> None:
    def drop_min_notional(entry: dict) -> None:
        entry["filters"] = [item for item in entry["filters"] if item["filterType"] != "MIN_NOTIONAL"]

    with pytest.raises(DataInputError, match=r"exchange_info\.json: field 'symbols\[BTCUSDT\]\.filters': expected a MIN_NOTIONAL filter"):
        binance_usdm_instruments(_edited(tmp_path, drop_min_notional), {"BTCUSDT"})


@pytest.mark.requires_shared
def test_nautilus_fixture_of_2022_has_tick_0_1(shared_data_dir: Path) -> None:
    instruments = binance_usdm_instruments(shared_data_dir / NAUTILUS_FIXTURE, {"BTCUSDT", "ETHUSDT"})

    btc, eth = instruments["BTCUSDT"], instruments["ETHUSDT"]
    assert (btc.price_precision, str(btc.price_increment), str(btc.min_price), str(btc.max_price)) == (1, "0.1", "402.0", "1246396.6")
    assert str(eth.price_increment) == "0.01"
    assert btc.min_notional.as_decimal() == Decimal("10")
    assert btc.ts_init == 1645233611962 * 1_000_000
