"""Re-ingest decides by content: the same data is a no-op, different data for a held window is refused naming both files, or replaced with --replace."""

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from typer.testing import CliRunner

from keel.cli import app
from keel.data.errors import DataInputError
from keel.data.ingest import REPLACED
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings

ETH_RECORDING = next(path for path in sample_recordings() if path.name.startswith("ethusdt"))
ETH = "ETHUSDT.BINANCE"


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as file:
        return file.read().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as file:
        file.writelines(lines)
    return path


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def _raw_trades(lines: list[bytes]) -> list[tuple[str, str]]:
    """(trade id, quantity) of every trade line, read with json: the reference for the catalog's trades."""
    trades = []
    for line in lines:
        if b"@trade" in line:
            data = json.loads(line.split(b" ", 1)[1])["data"]
            trades.append((str(data["t"]), data["q"]))
    return trades


@pytest.fixture(scope="module")
def corrected(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], int, int]:
    """The ETHUSDT lines with the quantity of the trade at 40% of the file changed; its index and the cut after it."""
    lines = _lines(ETH_RECORDING)
    index = next(index for index in range(len(lines) * 2 // 5, len(lines)) if b"@trade" in lines[index])
    message = json.loads(lines[index].split(b" ", 1)[1])
    message["data"]["q"] = "1.23450000"  # on the 0.0001 step, unlike nothing the real trade printed
    ts = lines[index].split(b" ", 1)[0]
    changed = [*lines[:index], ts + b" " + json.dumps(message, separators=(",", ":")).encode() + b"\n", *lines[index + 1 :]]
    cut = len(lines) // 2
    while changed[cut - 1].split(b" ", 1)[0] == changed[cut].split(b" ", 1)[0]:
        cut += 1
    return changed, index, cut


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog"
    ingest_binance_spot([ETH_RECORDING], path)
    return path


def test_different_data_for_a_held_window_is_refused_naming_both_files(corrected: tuple, catalog: Path, tmp_path: Path) -> None:
    changed, _, _ = corrected
    recording = _write(tmp_path / "ethusdt_20240808_corrected.gz", changed)
    held_trades = next((catalog / "data" / "trade_tick" / ETH).glob("*.parquet"))
    before = _tree_digest(catalog)

    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([recording], catalog)

    assert raised.value.path == recording
    assert str(held_trades) in raised.value.problem
    assert "--replace" in raised.value.problem
    assert _tree_digest(catalog) == before


def test_replace_swaps_the_window_and_keeps_the_rows_outside_it(corrected: tuple, catalog: Path, tmp_path: Path) -> None:
    changed, index, cut = corrected
    assert index < cut  # the corrected trade lies in the replaced window
    recording = _write(tmp_path / "ethusdt_20240808_first_half_corrected.gz", changed[:cut])

    report = ingest_binance_spot([recording], catalog, replace=True)

    replaced = [item for item in report.files if item.status == REPLACED]
    assert [item.data_type for item in replaced] == ["trade_tick"]  # quotes and depth of the window are the same data
    assert not replaced[0].path.exists()
    trades = ParquetDataCatalog(str(catalog)).trade_ticks(instrument_ids=[ETH])
    expected = _raw_trades(changed[:cut]) + _raw_trades(_lines(ETH_RECORDING)[cut:])
    assert len(trades) == len(expected) == 6106
    assert [(tick.trade_id.value, f"{tick.size.as_decimal():.8f}") for tick in trades] == expected
    assert not ingest_binance_spot([recording], catalog).changed_catalog  # the new data is what the catalog holds now


def test_cli_replace_flag(corrected: tuple, catalog: Path, tmp_path: Path) -> None:
    changed, _, _ = corrected
    recording = _write(tmp_path / "ethusdt_20240808_corrected.gz", changed)
    runner = CliRunner()

    refused = runner.invoke(app, ["data", "ingest", "binance-spot", str(recording), "--catalog", str(catalog)])
    replaced = runner.invoke(app, ["data", "ingest", "binance-spot", str(recording), "--catalog", str(catalog), "--replace"])

    assert refused.exit_code == 2
    assert replaced.exit_code == 0, replaced.output
    sizes = {tick.trade_id.value: f"{tick.size.as_decimal():.8f}" for tick in ParquetDataCatalog(str(catalog)).trade_ticks(instrument_ids=[ETH])}
    assert [sizes[trade_id] for trade_id, quantity in _raw_trades(changed) if quantity == "1.23450000"] == ["1.23450000"]
