"""The fill audit: quotes as the raw recording has them, improvement signs, the command's exit codes."""

import bisect
import gzip
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from keel.backtests.fill_audit import FillAuditError
from keel.backtests.fill_audit import audit_fills
from keel.cli import app
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.fills import FILLS_SCHEMA
from keel.fills import write_fills

def _raw_book_tickers(symbol: str) -> tuple[list[int], list[dict]]:
    """Return (local receive ns, data) of every bookTicker line of the shipped recording, read without the ingest."""
    path = next(path for path in sample_recordings() if path.name.startswith(symbol.lower()))
    times, tickers = [], []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            ts, payload = line.split(" ", 1)
            message = json.loads(payload)
            if message.get("stream", "").endswith("@bookTicker"):
                times.append(int(ts))
                tickers.append(message["data"])
    return times, tickers


def _fills(rows: list[tuple[int, str, float, str]]) -> pl.DataFrame:
    """Fills of (ts_event, side, price, liquidity side) on BTCUSDT.BINANCE."""
    return pl.DataFrame(
        [
            {
                "ts_event": ts,
                "ts_init": ts,
                "strategy_id": "S-001",
                "instrument_id": "BTCUSDT.BINANCE",
                "client_order_id": f"O-{index}",
                "venue_order_id": f"V-{index}",
                "trade_id": f"T-{index}",
                "order_side": side,
                "last_qty": 0.0002,
                "last_px": price,
                "commission": 0.0,
                "commission_currency": "USDT",
                "liquidity_side": liquidity,
            }
            for index, (ts, side, price, liquidity) in enumerate(rows)
        ],
        schema=FILLS_SCHEMA,
    )


@pytest.fixture(scope="module")
def many_files_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample ingested in 256 kB chunks: its quotes are in many files, as a long window's or a session's are."""
    catalog = tmp_path_factory.mktemp("chunked") / "catalog"
    ingest_binance_spot(sample_recordings(), catalog, chunk_bytes=256 * 1024)
    return catalog


@pytest.mark.parametrize("catalog_name", ["sample_catalog", "many_files_catalog"])
def test_quoted_price_is_the_latest_book_ticker_of_the_raw_recording(catalog_name: str, request: pytest.FixtureRequest) -> None:
    catalog = request.getfixturevalue(catalog_name)
    quote_files = [path for path in (catalog / "data" / "quote_tick" / "BTCUSDT.BINANCE").glob("*.parquet")]
    assert len(quote_files) >= (5 if catalog_name == "many_files_catalog" else 1)
    times, tickers = _raw_book_tickers("BTCUSDT")
    # Fills 1 ms after every 500th bookTicker, at the quoted price: a buy at the ask, a sell at the bid.
    picks = range(100, len(tickers), 500)
    rows = []
    for n, index in enumerate(picks):
        side = "BUY" if n % 2 == 0 else "SELL"
        rows.append((times[index] + 1_000_000, side, float(tickers[index]["a" if side == "BUY" else "b"]), "TAKER"))

    audit = audit_fills(_fills(rows), catalog)

    assert audit.fills.height == len(rows) >= 10
    for row in audit.fills.iter_rows(named=True):
        latest = tickers[bisect.bisect_right(times, row["ts_event"]) - 1]
        quoted = Decimal(latest["a"] if row["order_side"] == "BUY" else latest["b"])
        assert Decimal(str(row["quoted_px"])) == quoted
        sign = 1 if row["order_side"] == "BUY" else -1
        assert row["improvement_bps"] == pytest.approx(sign * (float(quoted) - row["last_px"]) / float(quoted) * 10_000, abs=1e-9)


def test_improvement_is_positive_when_the_fill_beats_the_quote(sample_catalog: Path) -> None:
    times, tickers = _raw_book_tickers("BTCUSDT")
    ts = times[1000] + 1_000_000
    ask, bid = float(tickers[1000]["a"]), float(tickers[1000]["b"])
    fills = _fills([(ts, "BUY", ask * (1 - 2e-4), "TAKER"), (ts, "SELL", bid * (1 + 1e-4), "TAKER"), (ts, "SELL", bid * (1 - 3e-4), "TAKER"), (ts, "BUY", ask * 0.9, "MAKER")])

    audit = audit_fills(fills, sample_catalog)

    assert audit.taker_fills == 3  # the maker fill is not judged
    assert sorted(round(value, 3) for value in audit.fills["improvement_bps"]) == [-3.0, 1.0, 2.0]
    assert audit.better_than_quote == 2
    assert audit.share_better == pytest.approx(2 / 3)


def test_instrument_without_quotes_is_bad_input(sample_catalog: Path) -> None:
    fills = _fills([(1_723_161_300_000_000_000, "BUY", 61_000.0, "TAKER")]).with_columns(pl.lit("SOLUSDT.BINANCE").alias("instrument_id"))

    with pytest.raises(FillAuditError, match="SOLUSDT.BINANCE"):
        audit_fills(fills, sample_catalog)


def test_audit_command_exit_codes(sample_catalog: Path, tmp_path: Path) -> None:
    times, tickers = _raw_book_tickers("BTCUSDT")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    ts = times[2000] + 1_000_000
    ask = float(tickers[2000]["a"])
    write_fills(_fills([(ts, "BUY", ask, "TAKER")] * 10), good / "fills.parquet")
    write_fills(_fills([(ts, "BUY", ask, "TAKER")] * 9 + [(ts, "BUY", ask * (1 - 1e-4), "TAKER")]), bad / "fills.parquet")

    runner = CliRunner()
    passed = runner.invoke(app, ["audit-fills", str(good), "--catalog", str(sample_catalog)])
    failed = runner.invoke(app, ["audit-fills", str(bad), "--catalog", str(sample_catalog)])
    missing = runner.invoke(app, ["audit-fills", str(tmp_path / "nothing"), "--catalog", str(sample_catalog)])

    assert passed.exit_code == 0, passed.output
    assert failed.exit_code == 1, failed.output
    assert missing.exit_code == 2
    report = json.loads((bad / "fill_audit.json").read_text())
    assert report["judged_fills"] == 10 and report["better_than_quote"] == 1
