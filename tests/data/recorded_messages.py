"""Reading a shipped Binance recording the simplest way, as an independent reference for the ingest tests."""

import gzip
import json
from pathlib import Path


def trade_and_quote_messages(path: Path) -> tuple[list[tuple[int, dict]], list[tuple[int, dict]]]:
    """Return (local receive ns, data) of every trade and every bookTicker message of a recording, in file order."""
    trades, quotes = [], []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            ts, payload = line.split(" ", 1)
            message = json.loads(payload)
            stream = message.get("stream", "")
            if stream.endswith("@trade"):
                trades.append((int(ts), message["data"]))
            elif stream.endswith("@bookTicker"):
                quotes.append((int(ts), message["data"]))
    return trades, quotes
