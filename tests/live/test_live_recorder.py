"""The session recorder in a backtest on the sample catalog: what it writes reads back and replays the same."""

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.quality import check_catalog
from keel.data.quality import load_check_policies
from keel.fills import read_fills
from keel.live.recorder import BOOK_SUMMARY_LEVELS
from keel.live.recorder import SessionRecorder
from keel.live.recorder import SessionRecorderConfig
from keel.live.session_layout import CATALOG_DIR
from keel.live.session_layout import FILLS_PARQUET
from keel.live.session_layout import ORDERS_PARQUET
from keel.live.session_layout import ORDERS_SCHEMA
from probe_strategy import ProbeStrategy
from probe_strategy import ProbeStrategyConfig

BTCUSDT = InstrumentId.from_str("BTCUSDT.BINANCE")


def _run_backtest(catalog_path: Path, session_dir: Path | None) -> tuple[list, SessionRecorder | None]:
    """Run the probe strategy over a catalog's BTCUSDT data; record into ``session_dir`` when given."""
    catalog = ParquetDataCatalog(str(catalog_path))
    engine = BacktestEngine(BacktestEngineConfig(trader_id="RECORDER-001", logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(Venue("BINANCE"), OmsType.NETTING, AccountType.CASH, [Money(10_000, USDT)], book_type=BookType.L2_MBP)
    engine.add_instrument(catalog.instruments(instrument_ids=[BTCUSDT.value])[0])
    engine.add_data(catalog.trade_ticks([BTCUSDT.value]))
    engine.add_data(catalog.quote_ticks([BTCUSDT.value]))
    engine.add_data(catalog.order_book_deltas([BTCUSDT.value]))
    recorder = None
    if session_dir is not None:
        recorder = SessionRecorder(SessionRecorderConfig(session_dir=str(session_dir), instrument_ids=[BTCUSDT]))
        engine.add_actor(recorder)
    engine.add_strategy(ProbeStrategy(ProbeStrategyConfig(instrument_id=BTCUSDT, trade_size=Decimal("0.0002"))))
    engine.run()
    fills = [(str(f.order_side), f.last_qty, f.last_px) for f in engine.trader.generate_fills_report().itertuples()]
    engine.dispose()
    return fills, recorder


@pytest.fixture(scope="module")
def recorded(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, SessionRecorder]:
    session_dir = tmp_path_factory.mktemp("session")
    fills, recorder = _run_backtest(sample_catalog, session_dir)
    return session_dir, fills, recorder


def test_recorded_catalog_reads_back_with_the_same_counts(sample_catalog: Path, recorded: tuple) -> None:
    session_dir, _, recorder = recorded
    source = ParquetDataCatalog(str(sample_catalog))
    session = ParquetDataCatalog(str(session_dir / CATALOG_DIR))

    assert [i.id for i in session.instruments()] == [BTCUSDT]
    expected = {
        "TradeTick": len(source.trade_ticks([BTCUSDT.value])),
        "QuoteTick": len(source.quote_ticks([BTCUSDT.value])),
        "OrderBookDelta": len(source.order_book_deltas([BTCUSDT.value])),
    }
    written = {
        "TradeTick": len(session.trade_ticks([BTCUSDT.value])),
        "QuoteTick": len(session.quote_ticks([BTCUSDT.value])),
        "OrderBookDelta": len(session.order_book_deltas([BTCUSDT.value])),
    }
    assert written == expected
    assert recorder.summary()["records"] == {name: {BTCUSDT.value: count} for name, count in expected.items()}
    assert recorder.summary()["restamped_ts_init"] == {name: {BTCUSDT.value: 0} for name in expected}


def test_recorded_deltas_rebuild_the_book_the_node_had(recorded: tuple) -> None:
    session_dir, _, recorder = recorded
    book = OrderBook(BTCUSDT, BookType.L2_MBP)
    for delta in ParquetDataCatalog(str(session_dir / CATALOG_DIR)).order_book_deltas([BTCUSDT.value]):
        book.apply_delta(delta)

    final = recorder.summary()["final_books"][BTCUSDT.value]
    assert [[str(level.price), str(level.size())] for level in book.bids()[:BOOK_SUMMARY_LEVELS]] == final["bids"]
    assert [[str(level.price), str(level.size())] for level in book.asks()[:BOOK_SUMMARY_LEVELS]] == final["asks"]
    assert len(final["bids"]) == BOOK_SUMMARY_LEVELS


def test_fills_and_order_events_are_written(recorded: tuple) -> None:
    session_dir, engine_fills, _ = recorded
    fills = read_fills(session_dir / FILLS_PARQUET)
    orders = pl.read_parquet(session_dir / ORDERS_PARQUET)

    assert fills["order_side"].to_list() == [side for side, _, _ in engine_fills] == ["BUY", "SELL"]
    assert fills["last_qty"].to_list() == pytest.approx([float(qty) for _, qty, _ in engine_fills], rel=1e-12)
    assert fills["last_px"].to_list() == pytest.approx([float(px) for _, _, px in engine_fills], rel=1e-12)
    assert orders.schema == pl.Schema(ORDERS_SCHEMA)
    assert orders["event_type"].to_list() == ["OrderInitialized", "OrderSubmitted", "OrderFilled"] * 2
    assert orders.filter(pl.col("event_type") == "OrderFilled")["status"].to_list() == ["FILLED", "FILLED"]


def test_session_catalog_backtests_like_ingested_data(recorded: tuple) -> None:
    session_dir, engine_fills, _ = recorded
    replay_fills, _ = _run_backtest(session_dir / CATALOG_DIR, None)
    assert replay_fills == engine_fills


def test_session_catalog_passes_the_data_checks_like_ingested_data(sample_catalog: Path, recorded: tuple) -> None:
    session_dir, _, _ = recorded
    policies = load_check_policies()

    session_report = check_catalog(session_dir / CATALOG_DIR, policies)
    ingested_report = check_catalog(sample_catalog, policies, [BTCUSDT.value])

    assert not session_report.failed
    assert session_report.checked == ingested_report.checked
