"""The sample catalog holds exactly what the recordings hold, read back through nautilus' own catalog."""

from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.ingest import sample_recordings
from recorded_messages import trade_and_quote_messages


@pytest.mark.parametrize("recording", sample_recordings(), ids=lambda path: path.name)
def test_trades_round_trip(sample_catalog: Path, recording: Path) -> None:
    source, _ = trade_and_quote_messages(recording)
    instrument_id = f"{source[0][1]['s']}.BINANCE"

    ticks = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=[instrument_id])

    assert len(ticks) == len(source)
    for tick, (ts, data) in ((ticks[0], source[0]), (ticks[-1], source[-1])):
        assert tick.price.as_decimal() == Decimal(data["p"])
        assert tick.size.as_decimal() == Decimal(data["q"])
        assert tick.trade_id.value == str(data["t"])
        assert tick.aggressor_side == (AggressorSide.SELLER if data["m"] else AggressorSide.BUYER)
        assert tick.ts_init == ts
        assert tick.ts_event == data["T"] * 1_000_000
    sellers = sum(1 for _, data in source if data["m"])
    assert sum(1 for tick in ticks if tick.aggressor_side == AggressorSide.SELLER) == sellers


@pytest.mark.parametrize("recording", sample_recordings(), ids=lambda path: path.name)
def test_quotes_round_trip(sample_catalog: Path, recording: Path) -> None:
    _, source = trade_and_quote_messages(recording)
    instrument_id = f"{source[0][1]['s']}.BINANCE"

    quotes = ParquetDataCatalog(str(sample_catalog)).quote_ticks(instrument_ids=[instrument_id])

    assert len(quotes) == len(source)
    for quote, (ts, data) in ((quotes[0], source[0]), (quotes[-1], source[-1])):
        assert quote.bid_price.as_decimal() == Decimal(data["b"])
        assert quote.ask_price.as_decimal() == Decimal(data["a"])
        assert quote.bid_size.as_decimal() == Decimal(data["B"])
        assert quote.ask_size.as_decimal() == Decimal(data["A"])
        assert quote.ts_init == ts
