"""A nautilus BacktestNode with an L2 venue book takes the catalog's order book deltas as they are.

``raise_exception=True`` makes any delta the matching engine refuses (e.g. a size precision that differs
from the instrument's) fail the run instead of being logged. Book correctness is test_book_reconstruction's job.
"""

from pathlib import Path

from nautilus_trader.backtest.config import BacktestDataConfig
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.config import BacktestRunConfig
from nautilus_trader.backtest.config import BacktestVenueConfig
from nautilus_trader.backtest.node import BacktestNode
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog


def test_l2_backtest_node_consumes_every_delta(sample_catalog: Path) -> None:
    instrument_id = InstrumentId.from_str("BTCUSDT.BINANCE")
    deltas = ParquetDataCatalog(str(sample_catalog)).order_book_deltas(instrument_ids=[instrument_id.value])
    run = BacktestRunConfig(
        engine=BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")),
        venues=[
            BacktestVenueConfig(
                name="BINANCE",
                oms_type="NETTING",
                account_type="CASH",
                starting_balances=["100000 USDT", "1 BTC"],
                book_type="L2_MBP",
            )
        ],
        data=[BacktestDataConfig(catalog_path=str(sample_catalog), data_cls=OrderBookDelta, instrument_id=instrument_id)],
        dispose_on_completion=False,
        raise_exception=True,
    )
    node = BacktestNode(configs=[run])

    result = node.run()[0]

    assert result.iterations == len(deltas)
    node.dispose()
