"""The L2 deltas in the catalog rebuild Binance's book exactly: checked against the recording's own bookTicker."""

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.ingest import sample_recordings


@pytest.mark.parametrize("recording", sample_recordings(), ids=lambda path: path.name)
def test_book_matches_book_ticker_at_every_shared_update_id(sample_catalog: Path, recording: Path) -> None:
    # bookTicker's `u` lives in the depth stream's update-id space: where a depth event ends at the same id,
    # the rebuilt top of book must equal the ticker's best bid/ask, prices and sizes.
    tickers = {}
    with gzip.open(recording, "rt") as lines:
        for line in lines:
            message = json.loads(line.split(" ", 1)[1])
            if message.get("stream", "").endswith("@bookTicker"):
                tickers[message["data"]["u"]] = message["data"]
    instrument_id = InstrumentId.from_str(f"{next(iter(tickers.values()))['s']}.BINANCE")
    book = OrderBook(instrument_id, BookType.L2_MBP)

    checked = mismatched = 0
    for delta in ParquetDataCatalog(str(sample_catalog)).order_book_deltas(instrument_ids=[instrument_id.value]):
        book.apply_delta(delta)
        ticker = tickers.get(delta.sequence)
        if ticker is None or not delta.flags & RecordFlag.F_LAST:
            continue
        checked += 1
        top = (book.best_bid_price(), book.best_bid_size(), book.best_ask_price(), book.best_ask_size())
        if tuple(value.as_decimal() for value in top) != tuple(Decimal(ticker[key]) for key in ("b", "B", "a", "A")):
            mismatched += 1

    assert checked > 100
    assert mismatched == 0
