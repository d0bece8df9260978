"""Where a Binance depth stream stood before a recording file: the previous file of the ingest, or the catalog.

A recorder that rotates its output mid-connection writes a file without a REST depth snapshot whose first diff
continues the previous file's last one. Such a file ingests together with its predecessor, or later into a
catalog that holds the predecessor: :class:`DepthEnds` answers the reader's question "where did this symbol's
stream end before this file?" from the files read earlier in the ingest, else from the catalog's last depth
file of the instrument ending at or before the file's first diff.
"""

import gzip
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from keel.data.binance_recording import BinanceMarket
from keel.data.binance_recording import DepthEnd
from keel.data.binance_recording import RawRecording
from keel.data.catalog_layout import F_SNAPSHOT
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import TRADE_TICK
from keel.data.catalog_layout import CatalogFile
from keel.data.catalog_layout import catalog_files


class DepthEnds:
    """
    The depth stream ends known to one ingest: per symbol, the last file read, else the catalog.

    Parameters
    ----------
    catalog : Path
        The catalog the ingest writes into (read as it was before the ingest).
    market : BinanceMarket
        Maps a Binance symbol to its instrument id.

    """

    def __init__(self, catalog: Path, market: BinanceMarket) -> None:
        self._market = market
        self._read: dict[str, DepthEnd] = {}
        self._catalog_files: dict[str, list[CatalogFile]] = {}
        self._trade_files: dict[str, list[CatalogFile]] = {}
        for item in catalog_files(catalog):
            if item.data_type == ORDER_BOOK_DELTAS:
                self._catalog_files.setdefault(item.identifier, []).append(item)
            elif item.data_type == TRADE_TICK:
                self._trade_files.setdefault(item.identifier, []).append(item)

    def __call__(self, symbol: str, ts_init: int) -> DepthEnd | None:
        """Return where ``symbol``'s stream ended before a file whose first diff arrived at ``ts_init``, or None."""
        end = self._read.get(symbol)
        if end is not None:
            return end
        earlier = [item for item in self._catalog_files.get(self._market.instrument_id(symbol), []) if item.last_ts <= ts_init]
        if not earlier:
            return None
        latest = max(earlier, key=lambda item: item.last_ts)
        table = pq.read_table(latest.path, columns=["flags", "sequence"])
        flags, sequence = table["flags"][-1].as_py(), table["sequence"][-1].as_py()
        return DepthEnd(sequence, bool(flags & F_SNAPSHOT), f"the catalog's {latest.path}", self._last_trade_id(symbol, ts_init))

    def _last_trade_id(self, symbol: str, ts_init: int) -> int | None:
        # Spot only: a perpetual's catalog holds MARKET prints alone, so its last id need not be the stream's last.
        if self._market.symbol_suffix:
            return None
        earlier = [item for item in self._trade_files.get(self._market.instrument_id(symbol), []) if item.last_ts <= ts_init]
        if not earlier:
            return None
        trade_id = pq.read_table(max(earlier, key=lambda item: item.last_ts).path, columns=["trade_id"])["trade_id"][-1].as_py()
        return int(trade_id) if trade_id.isdigit() else None

    def record(self, chunk: RawRecording) -> None:
        """Remember where each symbol's stream stands after a chunk read by this ingest."""
        self._read.update(chunk.depth_ends)


def in_time_order(recordings: Sequence[Path]) -> list[Path]:
    """
    Return the recordings sorted by their first line's receive time, so a file is read after the one it continues.

    A file whose first line has no readable time sorts first; reading it names the problem.
    """
    return sorted((Path(path) for path in recordings), key=lambda path: (_first_receive_time(path), str(path)))


def _first_receive_time(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            for line in stream:
                if line.strip():
                    return int(line.split(b" ", 1)[0])
    except (OSError, EOFError, ValueError):
        pass
    return -1
