"""
End-to-end ingest of websocket recordings: ``keel data ingest binance-spot`` / ``binance-usdm`` / ``okx`` against nautilus's route.

Input: the shipped real recordings (``data/sample/binance_spot/btcusdt_20240808.gz``, the USDT-M 40-second
slice, the 11-second OKX capture) repeated into one long gzip recording (:mod:`bench.recording_input`), written
once before timing. Both routes start from that file on disk and end with trades, quotes and L2 deltas in a
``ParquetDataCatalog``:

- Keel: :func:`keel.data.ingest.ingest_binance_spot` (``ingest_binance_usdm``, ``ingest_okx_recording``), the
  function behind the CLI: decode, every sequence, book and checksum check, exact decimals, the data checks,
  the all-or-nothing commit.
- nautilus: what a user of nautilus alone writes: ``json.loads`` per line, pandas frames, the
  ``TradeTickDataWrangler`` / ``QuoteTickDataWrangler`` / ``OrderBookDeltaDataWrangler`` and ``write_data``;
  it checks nothing and applies no book rule (every diff or update level is written, snapshots included as
  levels; OKX: only the ingested instrument's messages).

Rows per second count every row the route wrote (trades + quotes + deltas). Read-back: the trades and quotes
of both catalogs must agree on price, size, side or sizes, trade id and receive time (``ts_init``; the
wranglers can only derive ``ts_event`` from it by a constant, so it is not compared).
"""

import gzip
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from bench.ingest_trades import RouteTiming
from bench.ingest_trades import TargetCheck
from bench.ingest_trades import bench_folder
from bench.ingest_trades import time_route
from bench.recording_input import repeated_okx_recording
from bench.recording_input import repeated_recording
from keel.data.binance_usdm_ingest import SAMPLE_BINANCE_USDM_DIR
from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.ingest import IngestReport
from keel.data.ingest import SAMPLE_BINANCE_SPOT_DIR
from keel.data.ingest import ingest_binance_spot
from keel.data.okx_recording import ingest_okx_recording
from keel.data.okx_recording import sample_okx_recordings

_DATA_TYPES = ("trade_tick", "quote_tick", "order_book_deltas")
_NANOS_PER_SECOND = 1_000_000_000

# What a nautilus reading returns: trade, quote and delta-level rows, each a tuple of its wrangler frame's columns.
_Rows = tuple[list[tuple], list[tuple], list[tuple]]


@dataclass(frozen=True)
class RecordingSource:
    """
    One recording source of the benchmark.

    Parameters
    ----------
    sample : Path
        The shipped real recording that is repeated.
    repeat : Callable[[Path, Path, int], Path]
        Writes ``copies`` repetitions of ``sample`` to a ``.gz`` target: ``repeat(sample, target, copies)``.
    ingest : Callable[..., IngestReport]
        Keel's ingest, called as ``ingest([path], catalog)``.
    nautilus_rows : Callable[[Path, str], _Rows]
        The nautilus route's reading: the file's trades, quotes and delta levels of one instrument (venue symbol).

    """

    sample: Path
    repeat: Callable[[Path, Path, int], Path]
    ingest: Callable[..., IngestReport]
    nautilus_rows: Callable[[Path, str], _Rows]


@dataclass(frozen=True)
class RecordingBenchResult:
    """
    One run of both routes on the same recording file.

    Parameters
    ----------
    source : str
        A key of :data:`SOURCES`: ``binance-spot``, ``binance-usdm`` or ``okx``.
    keel : RouteTiming
        Keel's ingest, rows = what it wrote.
    nautilus : RouteTiming
        The json + wranglers + ``write_data`` route, rows = what it wrote.
    lines : int
        Lines of the recording.
    file_bytes : int
        Size of the gzip file both routes read.
    identical : bool
        True if both catalogs' trades and quotes agree (see the module docstring).

    """

    source: str
    keel: RouteTiming
    nautilus: RouteTiming
    lines: int
    file_bytes: int
    identical: bool

    @property
    def targets(self) -> TargetCheck:
        """Return Keel's route judged against nautilus's."""
        return TargetCheck(self.keel, self.nautilus)


def binance_rows(path: Path, symbol: str) -> _Rows:
    """Read a Binance recording as a nautilus user would: ``json.loads`` per line, every diff level an update (the file has one symbol)."""
    trades, quotes, deltas = [], [], []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            ts, payload = line.split(" ", 1)
            message = json.loads(payload)
            data = message.get("data")
            if data is None:
                continue  # the REST snapshot: a user of the wranglers alone has no book rule to apply it with
            stream = message["stream"]
            if stream.endswith("@trade"):
                trades.append((int(ts), data["p"], data["q"], data["m"], str(data["t"])))
            elif stream.endswith("@bookTicker"):
                quotes.append((int(ts), data["b"], data["a"], data["B"], data["A"]))
            else:
                for side, levels in (("BUY", data["b"]), ("SELL", data["a"])):
                    deltas += [(int(ts), "DELETE" if float(size) == 0 else "UPDATE", side, price, size, 0, 0, data["u"]) for price, size in levels]
    return trades, quotes, deltas


def okx_rows(path: Path, inst_id: str) -> _Rows:
    """Read a cryptofeed OKX recording as a nautilus user would: ``json.loads`` per push of ``inst_id``, every books level an update."""
    trades, quotes, deltas = [], [], []
    channel_of = {f'"channel":"{channel}","instId":"{inst_id}"': channel for channel in ("books", "trades", "tickers")}
    with gzip.open(path, "rt") as lines:
        for line in lines:
            if line.startswith("wss://"):
                continue  # connection and subscription lines
            ts, payload = line.split(": ", 1)
            channel = next((name for marker, name in channel_of.items() if marker in payload), None)
            if channel is None:
                continue
            message = json.loads(payload)
            if "data" not in message:
                continue  # a subscription acknowledgement
            seconds, _, fraction = ts.partition(".")
            ts_init = int(seconds) * _NANOS_PER_SECOND + int(fraction.ljust(9, "0"))  # exact, as floats would not be
            for data in message["data"]:
                if channel == "trades":
                    trades.append((ts_init, data["px"], data["sz"], data["side"] == "sell", data["tradeId"]))
                elif channel == "tickers":
                    quotes.append((ts_init, data["bidPx"], data["askPx"], data["bidSz"], data["askSz"]))
                else:
                    for side, levels in (("BUY", data["bids"]), ("SELL", data["asks"])):
                        deltas += [(ts_init, "DELETE" if float(level[1]) == 0 else "UPDATE", side, level[0], level[1], 0, 0, 0) for level in levels]
    return trades, quotes, deltas


SOURCES = {
    "binance-spot": RecordingSource(
        SAMPLE_BINANCE_SPOT_DIR / "btcusdt_20240808.gz",
        partial(repeated_recording, bridge_offset=1),
        ingest_binance_spot,
        binance_rows,
    ),
    "binance-usdm": RecordingSource(
        SAMPLE_BINANCE_USDM_DIR / "btcusdt_20240808_first40s.gz",
        partial(repeated_recording, bridge_offset=0),
        ingest_binance_usdm,
        binance_rows,
    ),
    "okx": RecordingSource(sample_okx_recordings()[0], repeated_okx_recording, ingest_okx_recording, okx_rows),
}


def ingest_nautilus(source: RecordingSource, path: Path, instrument: Instrument, catalog: Path) -> int:
    """nautilus's route: the source's ``json.loads`` reading, pandas frames, the wranglers, ``write_data``; return the rows written."""
    from nautilus_trader.persistence.wranglers import OrderBookDeltaDataWrangler
    from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler
    from nautilus_trader.persistence.wranglers import TradeTickDataWrangler

    trades, quotes, deltas = source.nautilus_rows(path, instrument.raw_symbol.value)
    catalog_writer = ParquetDataCatalog(str(catalog))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the v1 wranglers are the documented route still
        trade_frame = _frame(trades, ["price", "quantity", "buyer_maker", "trade_id"], {"price": float, "quantity": float})
        quote_frame = _frame(quotes, ["bid_price", "ask_price", "bid_size", "ask_size"], dict.fromkeys(["bid_price", "ask_price", "bid_size", "ask_size"], float))
        delta_frame = _frame(deltas, ["action", "side", "price", "size", "order_id", "flags", "sequence"], {"price": float, "size": float})
        ticks = [
            TradeTickDataWrangler(instrument).process(trade_frame),
            QuoteTickDataWrangler(instrument).process(quote_frame),
            OrderBookDeltaDataWrangler(instrument).process(delta_frame),
        ]
    for data in ticks:
        catalog_writer.write_data(data)
    return sum(len(data) for data in ticks)


def _frame(rows: list[tuple], columns: list[str], types: dict[str, type]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ts", *columns]).astype(types)
    frame.index = pd.to_datetime(frame.pop("ts"), unit="ns", utc=True)
    return frame


def _keel_rows(report: IngestReport) -> int:
    return sum(item.rows for item in report.files if item.data_type in _DATA_TYPES)


def read_back(keel_catalog: Path, nautilus_catalog: Path, instrument_id: str) -> bool:
    """Return True if both catalogs hold the same trades and quotes (prices, sizes, side, id, ``ts_init``)."""
    keel_reader, nautilus_reader = ParquetDataCatalog(str(keel_catalog)), ParquetDataCatalog(str(nautilus_catalog))

    def trades(reader: ParquetDataCatalog) -> list[tuple]:
        return [(str(tick.price), str(tick.size), tick.aggressor_side, tick.trade_id.value, tick.ts_init) for tick in reader.trade_ticks(instrument_ids=[instrument_id])]

    def quotes(reader: ParquetDataCatalog) -> list[tuple]:
        return [(str(q.bid_price), str(q.ask_price), str(q.bid_size), str(q.ask_size), q.ts_init) for q in reader.quote_ticks(instrument_ids=[instrument_id])]

    keel_trades = trades(keel_reader)
    return len(keel_trades) > 0 and keel_trades == trades(nautilus_reader) and quotes(keel_reader) == quotes(nautilus_reader)


def run(source: str, rows: int, repeats: int = 3, work_dir: Path | None = None) -> RecordingBenchResult:
    """
    Write a recording of about ``rows`` rows from the sample, ingest it by both routes, and compare them.

    Parameters
    ----------
    source : str
        A key of :data:`SOURCES`.
    rows : int
        Rows (trades + quotes + deltas) to aim for; the sample is repeated a whole number of times.
    repeats : int
        Timed runs per route; the fastest counts.
    work_dir : Path, optional
        Where the file and catalogs go; a temporary folder (removed afterwards) when None.

    Returns
    -------
    RecordingBenchResult

    """
    recording = SOURCES[source]
    with bench_folder(work_dir, "keel-bench-recording-") as folder:
        probe = recording.ingest([recording.sample], folder / "probe")
        instrument = _instrument(probe)
        # cryptofeed names files <connection>.<rotation>(.gz): the repeated OKX file keeps the sample's name.
        path = recording.repeat(recording.sample, folder / recording.sample.name, max(1, round(rows / _keel_rows(probe))))
        reports: list[IngestReport] = []
        counts: list[int] = []
        keel_run, keel_catalog = time_route("keel", 0, lambda catalog: reports.append(recording.ingest([path], catalog)), folder, repeats)
        nautilus_run, nautilus_catalog = time_route(
            "nautilus", 0, lambda catalog: counts.append(ingest_nautilus(recording, path, instrument, catalog)), folder, repeats
        )
        keel = RouteTiming("keel", _keel_rows(reports[-1]), keel_run.seconds)
        nautilus = RouteTiming("nautilus", counts[-1], nautilus_run.seconds)
        identical = read_back(keel_catalog, nautilus_catalog, instrument.id.value)
        with gzip.open(path, "rb") as file:
            lines = sum(1 for _ in file)
        return RecordingBenchResult(source, keel, nautilus, lines, path.stat().st_size, identical)


def _instrument(report: IngestReport) -> Instrument:
    return ParquetDataCatalog(str(report.catalog)).instruments()[0]


def report(result: RecordingBenchResult) -> str:
    """Return the human-readable report of a run."""
    lines = [
        f"recording ingest, end to end ({result.source}): {result.lines:,} lines in a {result.file_bytes / 1e6:.1f} MB gzip recording, best of the runs:"
    ]
    for timing in (result.keel, result.nautilus):
        lines.append(
            f"  {timing.name:<11} {timing.seconds:8.3f} s  {timing.rows_per_second:>14,.0f} rows/s  {result.lines / timing.seconds:>12,.0f} lines/s  ({timing.rows:,} rows)"
        )
    lines.append("  read-back: trades and quotes " + ("identical" if result.identical else "DIFFERENT"))
    lines.extend(result.targets.report_lines())
    return "\n".join(lines).replace("wrangler", "nautilus")


def result_dict(result: RecordingBenchResult) -> dict[str, object]:
    """Return a run's numbers and verdicts as plain JSON-ready values."""
    return {
        "routes": {
            timing.name: {"rows": timing.rows, "seconds": timing.seconds, "rows_per_second": timing.rows_per_second}
            for timing in (result.keel, result.nautilus)
        },
        "lines": result.lines,
        "file_bytes": result.file_bytes,
        "read_back_identical": result.identical,
        **result.targets.result_dict(),
    }
