"""Funding rates into ``FundingRateUpdate``: exact round trips, refused bad input, and what a 1.231 backtest does with them.

The feather is freqtrade's real Binance USDT-M BTCUSDT funding history (``data/sample/bars``). A Binance
``/fapi/v1/fundingRate`` response is written here from the same rows (rate as an 8-decimal string,
fundingTime in ms, the layout of Binance's documentation and of nautilus' own test fixture), so the JSON path
is tested without ../shared; the real fixture is read too when ../shared is present.
"""

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.config import BacktestRunConfig
from nautilus_trader.backtest.config import BacktestVenueConfig
from nautilus_trader.backtest.node import BacktestNode
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.config import ActorConfig
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from keel.data.bars import ingest_ohlcv_bars
from keel.data.errors import DataInputError
from keel.data.funding import ingest_funding_rates
from keel.data.instruments import binance_usdm_instruments
from keel.settings import SAMPLE_DIR

FEATHER = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-8h-funding_rate.feather"
BARS = SAMPLE_DIR / "bars" / "BTC_USDT_USDT-1m-futures.feather"
INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
STARTING_USDT = 1_000_000


@pytest.fixture(scope="module")
def perpetual() -> Instrument:
    return binance_usdm_instruments(SAMPLE_DIR / "binance_usdm" / "exchange_info.json", {"BTCUSDT"})["BTCUSDT"]


@pytest.fixture(scope="module")
def source() -> pl.DataFrame:
    return pl.read_ipc(FEATHER)


def funding_response(frame: pl.DataFrame, symbol: str = "BTCUSDT") -> list[dict]:
    """freqtrade rows as a Binance ``/fapi/v1/fundingRate`` response."""
    return [
        {"symbol": symbol, "fundingRate": f"{Decimal(repr(rate)):.8f}", "fundingTime": time}
        for time, rate in frame.select(pl.col("date").dt.epoch("ms"), "open").rows()
    ]


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture
def catalog(tmp_path: Path, perpetual: Instrument) -> Path:
    """A catalog already holding the sample bars, so 'unchanged' is checked on a non-empty catalog."""
    path = tmp_path / "catalog"
    ingest_ohlcv_bars([BARS], path, perpetual)
    return path


def assert_refused(path: Path, catalog: Path, instrument: Instrument, line: int | None, message: str) -> None:
    before = tree_digest(catalog)
    with pytest.raises(DataInputError, match=message) as error:
        ingest_funding_rates([path], catalog, instrument)
    assert error.value.path == path
    assert error.value.line == line
    assert tree_digest(catalog) == before


def test_freqtrade_feather_round_trip(tmp_path: Path, perpetual: Instrument, source: pl.DataFrame) -> None:
    report = ingest_funding_rates([FEATHER], tmp_path / "catalog", perpetual)

    assert [(item.data_type, item.rows) for item in report.files if item.data_type == "funding_rate_update"] == [("funding_rate_update", 266)]
    rates = ParquetDataCatalog(str(tmp_path / "catalog")).funding_rates(instrument_ids=[INSTRUMENT_ID])
    assert len(rates) == source.height == 266
    # nautilus 1.231 reads `rate` back as the decimal string it stored (its own writer round-trips the same way).
    assert [Decimal(rate.rate) for rate in rates] == [Decimal(repr(value)) for value in source["open"]]
    assert (rates[0].rate, rates[0].ts_event, rates[0].interval, rates[0].next_funding_ns) == ("0.00006818", 1_741_276_800_000_000_000, 480, None)
    assert (rates[-1].rate, rates[-1].ts_init) == ("0.00005005", 1_748_908_800_000_000_000)
    # Binance stamps some settlements a millisecond late; the time is kept as published.
    assert rates[2].ts_event == 1_741_334_400_001_000_000


def test_binance_json_gives_the_same_rates(tmp_path: Path, perpetual: Instrument, source: pl.DataFrame) -> None:
    response = tmp_path / "fundingRate.json"
    response.write_text(json.dumps(funding_response(source)))

    ingest_funding_rates([FEATHER], tmp_path / "from_feather", perpetual)
    ingest_funding_rates([response], tmp_path / "from_json", perpetual)

    def rates(catalog: str) -> list[tuple]:
        return [(Decimal(rate.rate), rate.interval, rate.ts_event, rate.ts_init) for rate in ParquetDataCatalog(str(tmp_path / catalog)).funding_rates()]

    assert len(rates("from_json")) == 266
    assert rates("from_json") == rates("from_feather")


@pytest.mark.requires_shared
def test_nautilus_binance_funding_fixture(shared_data_dir: Path, tmp_path: Path, perpetual: Instrument) -> None:
    response = shared_data_dir / "nautilus_trader/tests/integration_tests/adapters/binance/resources/http_responses/http_futures_market_funding_rate.json"

    ingest_funding_rates([response], tmp_path / "catalog", perpetual)

    rates = ParquetDataCatalog(str(tmp_path / "catalog")).funding_rates()
    assert [(rate.rate, rate.ts_event) for rate in rates] == [("-0.0375", 1_570_608_000_000_000_000), ("0.0001", 1_570_636_800_000_000_000)]


def test_other_symbol_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    entries = funding_response(source.head(3))
    entries[1]["symbol"] = "ETHUSDT"
    response = tmp_path / "fundingRate.json"
    response.write_text(json.dumps(entries))

    assert_refused(response, catalog, perpetual, 2, "entry 2 field 'symbol' is 'ETHUSDT': expected 'BTCUSDT'")


def test_bad_rate_string_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    entries = funding_response(source.head(5))
    entries[3]["fundingRate"] = "0.0001x"
    response = tmp_path / "fundingRate.json"
    response.write_text(json.dumps(entries))

    assert_refused(response, catalog, perpetual, 4, "entry 4 field 'fundingRate' is '0.0001x': expected a decimal string")


def test_missing_field_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    entries = funding_response(source.head(5))
    del entries[2]["fundingTime"]
    response = tmp_path / "fundingRate.json"
    response.write_text(json.dumps(entries))

    assert_refused(response, catalog, perpetual, None, r"unexpected shape \(Object missing required field `fundingTime` - at `\$\[2\]`\)")


def test_missing_settlement_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / FEATHER.name
    pl.concat([source[:40], source[41:]]).write_ipc(path)

    assert_refused(path, catalog, perpetual, 41, "field 'date': funding at 2025-03-20T08:00:00Z comes 960 min after the previous one: expected one settlement every 480 min")


def test_off_grid_rate_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / FEATHER.name
    source.with_columns(pl.when(pl.int_range(pl.len()) == 9).then(0.000068185).otherwise(pl.col("open")).alias("open")).write_ipc(path)

    assert_refused(path, catalog, perpetual, 10, r"field 'open' is 6.8185e-05: expected a multiple of 10\^-8")


def test_missing_rate_column_is_refused(catalog: Path, perpetual: Instrument, source: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / FEATHER.name
    source.drop("open").write_ipc(path)

    assert_refused(path, catalog, perpetual, None, r"missing column\(s\) \['open'\]")


class FundingRateCounterConfig(ActorConfig, frozen=True):
    instrument_id: InstrumentId


class FundingRateCounter(Actor):
    """Keeps every funding rate update it is sent."""

    def __init__(self, config: FundingRateCounterConfig) -> None:
        super().__init__(config)
        self.received: list[FundingRateUpdate] = []

    def on_start(self) -> None:
        self.subscribe_funding_rates(self.config.instrument_id)

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.received.append(funding_rate)


class BuyAndHoldConfig(StrategyConfig, frozen=True):
    bar_type: BarType
    quantity: Quantity


class BuyAndHold(Strategy):
    """Buys once on the first bar and holds the position to the end."""

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if not self.cache.orders(strategy_id=self.id):
            self.submit_order(self.order_factory.market(bar.bar_type.instrument_id, OrderSide.BUY, self.config.quantity))


def test_backtest_delivers_funding_rates_but_settles_no_funding(tmp_path: Path, perpetual: Instrument) -> None:
    catalog = tmp_path / "catalog"
    ingest_ohlcv_bars([BARS], catalog, perpetual)
    ingest_funding_rates([FEATHER], catalog, perpetual)
    bar_type = f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL"
    run = BacktestRunConfig(
        engine=BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR"), run_analysis=False),
        venues=[BacktestVenueConfig(name="BINANCE", oms_type="NETTING", account_type="MARGIN", starting_balances=[f"{STARTING_USDT} USDT"])],
        data=[
            BacktestDataConfig(catalog_path=str(catalog), data_cls=FundingRateUpdate, instrument_id=InstrumentId.from_str(INSTRUMENT_ID)),
            BacktestDataConfig(catalog_path=str(catalog), data_cls=Bar, bar_types=[bar_type]),
        ],
        start="2025-05-05T00:00:00Z",
        end="2025-05-06T00:00:00Z",
        dispose_on_completion=False,
        raise_exception=True,
    )
    node = BacktestNode(configs=[run])
    node.build()
    engine = node.get_engine(run.id)
    counter = FundingRateCounter(FundingRateCounterConfig(instrument_id=InstrumentId.from_str(INSTRUMENT_ID)))
    engine.add_actor(counter)
    engine.add_strategy(BuyAndHold(BuyAndHoldConfig(bar_type=BarType.from_str(bar_type), quantity=Quantity.from_str("1.000"))))

    node.run()

    # (a) Every settlement in the run window reaches on_funding_rate, in order, with its rate and time.
    assert [(rate.ts_event, Decimal(rate.rate), rate.interval) for rate in counter.received] == [
        (1_746_403_200_000_000_000, Decimal("-0.00002404"), 480),
        (1_746_432_000_000_000_000, Decimal("0.00003636"), 480),
        (1_746_460_800_006_000_000, Decimal("-0.00002247"), 480),
    ]
    # (b) The 1 BTC long (~94,000 USDT notional) opened on the first bar was held through the 08:00 and 16:00
    # settlements: a long pays +0.003636% (~3.4 USDT) then receives 0.002247% (~2.1 USDT). The account moved by
    # the commission alone, so nautilus settled neither.
    (position,) = engine.cache.positions()
    assert position.is_open
    assert position.quantity == Quantity.from_str("1.000")
    (commission,) = position.commissions()
    balance = engine.portfolio.account(Venue("BINANCE")).balance_total(USDT)
    assert balance.as_decimal() == STARTING_USDT - commission.as_decimal()
    node.dispose()
