"""`keel.data.quality` and `keel data check`: the real sample is clean; corrupted copies of its files are caught at the right row."""

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.data.catalog_layout import ORDER_BOOK_DELTAS
from keel.data.catalog_layout import QUOTE_TICK
from keel.data.catalog_layout import TRADE_TICK
from keel.data.quality import DataCheckConfigError
from keel.data.quality import Finding
from keel.data.inventory import decode_column
from keel.data.quality import check_catalog
from keel.data.quality import check_table
from keel.data.quality import load_check_policies

BTCUSDT = "BTCUSDT.BINANCE"
_SCALE = 10**16


@pytest.fixture
def catalog_copy(sample_catalog: Path, tmp_path: Path) -> Path:
    """A private copy of the sample catalog, free to corrupt."""
    return Path(shutil.copytree(sample_catalog, tmp_path / "catalog"))


def _data_file(catalog: Path, data_type: str, instrument_id: str = BTCUSDT) -> Path:
    (path,) = (catalog / "data" / data_type / instrument_id).glob("*.parquet")
    return path


def _rewrite(path: Path, change: Callable[[dict[str, list]], None]) -> None:
    """Apply ``change`` to the file's columns (as Python lists) and write it back with the same schema."""
    table = pq.read_table(path)
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    change(columns)
    pq.write_table(pa.table(columns, schema=table.schema), path)


def _fixed(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


def _raw(value: int) -> bytes:
    return value.to_bytes(16, "little", signed=True)


def _found(catalog: Path) -> list[Finding]:
    return check_catalog(catalog, load_check_policies()).findings


def test_sample_catalog_is_clean(sample_catalog: Path) -> None:
    report = check_catalog(sample_catalog, load_check_policies())

    assert report.findings == []
    assert not report.failed
    assert {(instrument_id, data_type) for instrument_id, data_type, _ in report.checked} == {
        (instrument_id, data_type)
        for instrument_id in (BTCUSDT, "ETHUSDT.BINANCE")
        for data_type in (TRADE_TICK, QUOTE_TICK, ORDER_BOOK_DELTAS)
    }


def test_duplicated_trade_row_is_reported_at_the_copy(catalog_copy: Path) -> None:
    path = _data_file(catalog_copy, TRADE_TICK)

    def duplicate_row_100(columns: dict[str, list]) -> None:
        for values in columns.values():
            values.insert(101, values[100])

    _rewrite(path, duplicate_row_100)
    findings = _found(catalog_copy)

    assert [(item.check, item.policy, item.instrument_id, item.data_type, item.file, item.row, item.field) for item in findings] == [
        ("trade_id_duplicates", "fail", BTCUSDT, TRADE_TICK, path, 101, "trade_id")
    ]


def test_swapped_trade_rows_break_id_and_time_order(catalog_copy: Path) -> None:
    path = _data_file(catalog_copy, TRADE_TICK)
    ts_init = pq.read_table(path).column("ts_init").to_pylist()
    # Two neighbours with distinct receive times, so the swap also puts ts_init out of order.
    row = next(index for index in range(200, len(ts_init) - 1) if ts_init[index] < ts_init[index + 1])

    def swap(columns: dict[str, list]) -> None:
        for values in columns.values():
            values[row], values[row + 1] = values[row + 1], values[row]

    _rewrite(path, swap)
    findings = _found(catalog_copy)
    by_check = {(item.check, item.row) for item in findings}

    assert ("ts_init_monotonic", row + 1) in by_check
    assert ("trade_id_gaps", row + 1) in by_check
    assert {item.row for item in findings} <= {row, row + 1, row + 2}
    backwards = next(item for item in findings if item.check == "trade_id_gaps" and item.row == row + 1)
    assert "backwards" in backwards.problem
    assert all(item.file == path and item.policy == "fail" for item in findings)


def test_missing_trades_are_counted(catalog_copy: Path) -> None:
    path = _data_file(catalog_copy, TRADE_TICK)

    def drop_rows_50_to_52(columns: dict[str, list]) -> None:
        for values in columns.values():
            del values[50:53]

    _rewrite(path, drop_rows_50_to_52)
    (finding,) = _found(catalog_copy)

    assert (finding.check, finding.row, finding.field) == ("trade_id_gaps", 50, "trade_id")
    assert "(3 missing)" in finding.problem


@pytest.mark.parametrize(("ask_minus_bid_ticks", "word"), [(0, "locked"), (-1, "crossed")])
def test_crossed_or_locked_quote_is_reported(catalog_copy: Path, ask_minus_bid_ticks: int, word: str) -> None:
    path = _data_file(catalog_copy, QUOTE_TICK)
    tick = _SCALE // 100  # BTCUSDT price increment 0.01

    def cross_row_300(columns: dict[str, list]) -> None:
        columns["ask_price"][300] = _raw(_fixed(columns["bid_price"][300]) + ask_minus_bid_ticks * tick)

    _rewrite(path, cross_row_300)
    (finding,) = _found(catalog_copy)

    assert (finding.check, finding.data_type, finding.file, finding.row, finding.field) == ("crossed_quotes", QUOTE_TICK, path, 300, "bid_price")
    assert word in finding.problem


def test_depth_sequence_going_backwards_is_reported(catalog_copy: Path) -> None:
    path = _data_file(catalog_copy, ORDER_BOOK_DELTAS)
    sequence = pq.read_table(path).column("sequence").to_pylist()
    # A row that starts a new update id: setting it below its predecessor makes the sequence step back.
    row = next(index for index in range(1000, len(sequence)) if sequence[index] > sequence[index - 1])

    def step_back(columns: dict[str, list]) -> None:
        columns["sequence"][row] = columns["sequence"][row - 1] - 1

    _rewrite(path, step_back)
    findings = _found(catalog_copy)

    assert [(item.check, item.row, item.field) for item in findings] == [("depth_sequence", row, "sequence")]


def test_price_outlier_is_a_warning_at_its_row(catalog_copy: Path) -> None:
    path = _data_file(catalog_copy, TRADE_TICK)

    def spike_row_400(columns: dict[str, list]) -> None:
        columns["price"][400] = _raw(_fixed(columns["price"][400]) * 11 // 10)

    _rewrite(path, spike_row_400)
    report = check_catalog(catalog_copy, load_check_policies())

    assert [(item.check, item.policy, item.row, item.field) for item in report.findings] == [("price_outliers", "warn", 400, "price")]
    assert not report.failed


def _reference_outliers(prices: np.ndarray, window: int, deviations: float, min_deviation_bps: float) -> list[int]:
    """The outlier rule computed the plain way: every row's full window, mirrored at the ends, with numpy's median."""

    def rolling_median(values: np.ndarray) -> np.ndarray:
        padded = np.pad(values, window // 2, mode="reflect")
        return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)

    median = rolling_median(prices)
    distance = np.abs(prices - median)
    deviation = np.maximum(rolling_median(distance) * 1.4826, median * min_deviation_bps / 10_000)
    return np.flatnonzero(distance > deviations * deviation).tolist()


def test_price_outliers_match_the_plain_rolling_rule(sample_catalog: Path) -> None:
    table = pq.read_table(_data_file(sample_catalog, TRADE_TICK))
    frame = pl.DataFrame({name: decode_column(table.column(name)) for name in table.column_names})
    prices = frame["price"].cast(pl.Float64).to_numpy().copy()
    # Spikes at both ends, side by side and alone, and a stretch that swings 2% every trade, where every row
    # is near the threshold and the robust deviation has to be computed over long runs.
    for row, factor in ((0, 1.05), (3, 0.95), (400, 1.1), (401, 1.1), (5000, 0.9), (frame.height - 1, 1.05)):
        prices[row] *= factor
    prices[2000:2600] *= np.where(np.arange(600) % 2 == 0, 1.02, 0.98)
    frame = frame.with_columns(pl.Series("price", prices).cast(pl.Decimal(38, 16)))
    policies = load_check_policies()
    settings = policies.price_outliers

    findings = check_table(TRADE_TICK, frame, policies, BTCUSDT, Path("trades.parquet")).findings

    flagged = [item.row for item in findings if item.check == "price_outliers"]
    expected = _reference_outliers(frame["price"].cast(pl.Float64).to_numpy(), settings.window, settings.deviations, settings.min_deviation_bps)
    assert flagged == expected
    assert {0, 3, 400, 401, 5000, frame.height - 1} <= set(flagged)


def test_zero_volume_run_is_reported_once_at_its_start(catalog_copy: Path) -> None:
    path = _data_file(catalog_copy, TRADE_TICK)

    def zero_rows_10_to_12(columns: dict[str, list]) -> None:
        for index in range(10, 13):
            columns["size"][index] = _raw(0)

    _rewrite(path, zero_rows_10_to_12)
    (finding,) = _found(catalog_copy)

    assert (finding.check, finding.policy, finding.row, finding.field) == ("zero_volume", "warn", 10, "size")
    assert finding.problem.startswith("3 consecutive rows")


def test_cli_exit_codes_follow_policies(catalog_copy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(app, ["data", "check", "--catalog", str(catalog_copy)])

    def cross_row_0(columns: dict[str, list]) -> None:
        columns["ask_price"][0] = columns["bid_price"][0]

    _rewrite(_data_file(catalog_copy, QUOTE_TICK), cross_row_0)
    failing = runner.invoke(app, ["data", "check", "--catalog", str(catalog_copy)])
    other_instrument = runner.invoke(app, ["data", "check", "--catalog", str(catalog_copy), "--instrument", "ETHUSDT.BINANCE"])
    warn_only = tmp_path / "checks.yaml"
    warn_only.write_text("checks:\n  crossed_quotes: {policy: warn}\n")
    warned = runner.invoke(app, ["data", "check", "--catalog", str(catalog_copy), "--checks", str(warn_only)])

    assert clean.exit_code == 0, clean.output
    assert failing.exit_code == 1, failing.output
    assert other_instrument.exit_code == 0, other_instrument.output
    assert warned.exit_code == 0, warned.output


def test_bad_checks_file_names_file_and_field(tmp_path: Path) -> None:
    checks = tmp_path / "checks.yaml"
    checks.write_text("checks:\n  crossed_quotes: {policy: maybe}\n")

    with pytest.raises(DataCheckConfigError, match=r"checks\.yaml.*crossed_quotes"):
        load_check_policies(checks)
    result = CliRunner().invoke(app, ["data", "check", "--catalog", str(tmp_path), "--checks", str(checks)])
    assert result.exit_code == 2
