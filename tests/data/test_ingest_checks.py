"""Data checks run on every ingest: fail stops it with nothing written, warn reports, repair fixes and reports."""

from pathlib import Path

import msgspec
import polars as pl
import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_recording import read_recording
from keel.data.binance_recording import recording_frames
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.errors import DataInputError
from keel.data.ingest import DEFAULT_EXCHANGE_INFO
from keel.data.ingest import SourceTable
from keel.data.ingest import commit_tables
from keel.data.ingest import sample_recordings
from keel.data.instruments import binance_spot_instruments
from keel.data.quality import CheckPolicies
from keel.data.quality import DataCheckConfigError
from keel.data.quality import load_check_policies


@pytest.fixture(scope="module")
def ethusdt() -> tuple:
    """Return the ETHUSDT instrument and its parsed trade and quote frames from the shipped sample."""
    recording = next(path for path in sample_recordings() if path.name.startswith("ethusdt"))
    instrument = binance_spot_instruments(DEFAULT_EXCHANGE_INFO, {"ETHUSDT"})["ETHUSDT"]
    frames = recording_frames(read_recording(recording), {"ETHUSDT": instrument})["ETHUSDT"]
    return instrument, frames.trades, frames.quotes, recording


def _policies(**checks: str) -> CheckPolicies:
    return msgspec.convert({name: {"policy": policy} for name, policy in checks.items()}, CheckPolicies)


def _listing(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _with_duplicate(trades: pl.DataFrame, row: int) -> pl.DataFrame:
    # A recorder that reconnects replays the last prints: the same trade again, right after itself.
    return pl.concat([trades.head(row + 1), trades.slice(row, 1), trades.slice(row + 1)])


def test_duplicate_trade_with_fail_policy_stops_ingest_and_writes_nothing(ethusdt: tuple, tmp_path: Path) -> None:
    instrument, trades, _, recording = ethusdt
    catalog = tmp_path / "catalog"
    commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, trades.head(100), recording)])
    before = _listing(catalog)
    later = _with_duplicate(trades.slice(200, 300), 10)

    with pytest.raises(DataInputError) as raised:
        commit_tables(catalog, [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, later, recording)], checks=_policies(trade_id_duplicates="fail"))

    assert raised.value.path == recording
    assert "trade_id_duplicates" in raised.value.problem
    assert "row 11" in raised.value.problem
    assert _listing(catalog) == before


def test_duplicate_trade_with_warn_policy_is_written_and_reported(ethusdt: tuple, tmp_path: Path) -> None:
    instrument, trades, _, recording = ethusdt
    table = _with_duplicate(trades.head(500), 42)

    report = commit_tables(tmp_path / "catalog", [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, table, recording)], checks=_policies(trade_id_duplicates="warn", trade_id_gaps="off"))

    duplicates = [finding for finding in report.findings if finding.check == "trade_id_duplicates"]
    assert [(finding.policy, finding.row, finding.file) for finding in duplicates] == [("warn", 43, recording)]
    ticks = ParquetDataCatalog(str(tmp_path / "catalog")).trade_ticks(instrument_ids=[instrument.id.value])
    assert len(ticks) == 501


def test_repair_policy_drops_duplicate_trades_and_crossed_quotes(ethusdt: tuple, tmp_path: Path) -> None:
    instrument, trades, quotes, recording = ethusdt
    trade_table = _with_duplicate(trades.head(500), 42)
    crossed = quotes.head(400).with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.col("ask_price")).otherwise(pl.col("bid_price")).alias("bid_price"),
        pl.when(pl.int_range(pl.len()) == 7).then(pl.col("bid_price")).otherwise(pl.col("ask_price")).alias("ask_price"),
    )
    tables = [
        SourceTable(TRADE_TICK, instrument.id.value, instrument, trade_table, recording),
        SourceTable(QUOTE_TICK, instrument.id.value, instrument, crossed, recording),
    ]

    report = commit_tables(tmp_path / "catalog", [instrument], tables, checks=_policies(trade_id_duplicates="repair", crossed_quotes="repair", trade_id_gaps="off"))

    repaired = sorted((finding.check, finding.row) for finding in report.findings if finding.policy == "repair")
    assert repaired == [("crossed_quotes", 7), ("trade_id_duplicates", 43)]
    catalog = ParquetDataCatalog(str(tmp_path / "catalog"))
    ticks = catalog.trade_ticks(instrument_ids=[instrument.id.value])
    assert [int(tick.trade_id.value) for tick in ticks] == [int(value) for value in trades.head(500)["trade_id"]]
    quote_ticks = catalog.quote_ticks(instrument_ids=[instrument.id.value])
    assert len(quote_ticks) == 399
    assert all(tick.bid_price < tick.ask_price for tick in quote_ticks)


def test_repair_policy_restores_time_order(ethusdt: tuple, tmp_path: Path) -> None:
    instrument, trades, _, recording = ethusdt
    head = trades.head(300)
    swapped = pl.concat([head.head(100), head.slice(150, 50), head.slice(100, 50), head.slice(200)])

    report = commit_tables(tmp_path / "catalog", [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, swapped, recording)], checks=_policies(ts_init_monotonic="repair", trade_id_gaps="off"))

    assert any(finding.check == "ts_init_monotonic" and finding.policy == "repair" for finding in report.findings)
    ticks = ParquetDataCatalog(str(tmp_path / "catalog")).trade_ticks(instrument_ids=[instrument.id.value])
    assert [tick.ts_init for tick in ticks] == sorted(int(ts) for ts in head["ts_init"])


def test_repair_is_refused_for_checks_without_a_safe_repair(tmp_path: Path) -> None:
    checks_file = tmp_path / "checks.yaml"
    checks_file.write_text("checks:\n  trade_id_gaps: {policy: repair}\n")

    with pytest.raises(DataCheckConfigError) as raised:
        load_check_policies(checks_file)

    assert str(checks_file) in str(raised.value)
    assert "trade_id_gaps" in str(raised.value)


def test_override_changes_a_policy_for_matching_instruments_only(ethusdt: tuple, tmp_path: Path) -> None:
    instrument, trades, _, recording = ethusdt
    table = _with_duplicate(trades.head(500), 42)
    checks_file = tmp_path / "checks.yaml"
    checks_file.write_text(
        "checks:\n  trade_id_duplicates: {policy: fail}\n  trade_id_gaps: {policy: off}\n"
        "overrides:\n  - instruments: ['ETH*.BINANCE']\n    checks: {trade_id_duplicates: {policy: warn}}\n"
        "  - instruments: ['*.OKX']\n    checks: {trade_id_duplicates: {policy: off}}\n"
    )
    policies = load_check_policies(checks_file)

    report = commit_tables(tmp_path / "catalog", [instrument], [SourceTable(TRADE_TICK, instrument.id.value, instrument, table, recording)], checks=policies)

    assert [(finding.check, finding.policy) for finding in report.findings] == [("trade_id_duplicates", "warn")]
    assert policies.for_instrument("BTCUSDT.BINANCE").policy("trade_id_duplicates") == "fail"
    assert policies.for_instrument("BTC-USDT.OKX").policy("trade_id_duplicates") == "off"


def test_override_of_an_unknown_check_is_refused_naming_the_file(tmp_path: Path) -> None:
    checks_file = tmp_path / "checks.yaml"
    checks_file.write_text("overrides:\n  - instruments: ['*.OKX']\n    checks: {seq_resets: {policy: warn}}\n")

    with pytest.raises(DataCheckConfigError) as raised:
        load_check_policies(checks_file)

    assert str(checks_file) in str(raised.value)
    assert "seq_resets" in str(raised.value)
