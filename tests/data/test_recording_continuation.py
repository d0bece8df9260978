"""A recording that continues the previous file of its connection (no snapshot of its own) ingests; a real gap is refused.

The material is a shipped real recording cut at a line boundary after its snapshot: the second part has no
snapshot and its first diff continues the first part's last one, as a recorder's rotated file does. Dropping
depth lines at the start of the second part makes a real gap.
"""

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.binance_usdm_ingest import ingest_binance_usdm
from keel.data.binance_usdm_ingest import sample_usdm_recordings
from keel.data.errors import DataInputError
from keel.data.ingest import IngestReport
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings

BTC_RECORDING = next(path for path in sample_recordings() if path.name.startswith("btcusdt"))
USDM_RECORDING = sample_usdm_recordings()[0]


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as file:
        return file.read().splitlines(keepends=True)


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as file:
        file.writelines(lines)
    return path


def _split_index(lines: list[bytes]) -> int:
    """Return a cut near the middle, after the snapshot, between lines of different receive times."""
    snapshot = next(index for index, line in enumerate(lines) if b'"lastUpdateId"' in line)
    cut = max(len(lines) // 2, snapshot + 1)
    while lines[cut - 1].split(b" ", 1)[0] == lines[cut].split(b" ", 1)[0]:
        cut += 1
    return cut


def _depth_line_numbers(lines: list[bytes]) -> list[int]:
    return [number for number, line in enumerate(lines, start=1) if b"@depth" in line]


def _content(catalog: Path, instrument_id: str) -> dict[str, list]:
    reader = ParquetDataCatalog(str(catalog))
    return {
        "trades": reader.trade_ticks(instrument_ids=[instrument_id]),
        "quotes": reader.quote_ticks(instrument_ids=[instrument_id]),
        "deltas": reader.order_book_deltas(instrument_ids=[instrument_id]),
    }


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


MARKETS = [
    pytest.param(ingest_binance_spot, BTC_RECORDING, "BTCUSDT.BINANCE", id="spot"),
    pytest.param(ingest_binance_usdm, USDM_RECORDING, "BTCUSDT-PERP.BINANCE", id="usdm"),
]


@pytest.fixture(scope="module")
def whole_catalogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each market's recording ingested whole, the reference for its two halves."""
    folder = tmp_path_factory.mktemp("whole")
    return {
        "spot": ingest_binance_spot([BTC_RECORDING], folder / "spot").catalog,
        "usdm": ingest_binance_usdm([USDM_RECORDING], folder / "usdm").catalog,
    }


def _halves(recording: Path, folder: Path) -> tuple[Path, Path, list[bytes]]:
    lines = _lines(recording)
    cut = _split_index(lines)
    second = lines[cut:]
    assert not any(b'"lastUpdateId"' in line for line in second)  # the continuation has no snapshot of its own
    return _write(folder / "part_0.gz", lines[:cut]), _write(folder / "part_1.gz", second), second


@pytest.mark.parametrize(("ingest", "recording", "instrument_id"), MARKETS)
def test_continuation_file_ingests_with_its_predecessor_in_one_command(
    ingest: Callable[..., IngestReport], recording: Path, instrument_id: str, whole_catalogs: dict[str, Path], tmp_path: Path
) -> None:
    first, second, _ = _halves(recording, tmp_path)

    # Given in the wrong order on purpose: files are read in time order.
    report = ingest([second, first], tmp_path / "catalog")

    content = _content(report.catalog, instrument_id)
    reference = _content(whole_catalogs["spot" if "PERP" not in instrument_id else "usdm"], instrument_id)
    assert len(content["deltas"]) > 1000
    assert content == reference


@pytest.mark.parametrize(("ingest", "recording", "instrument_id"), MARKETS)
def test_continuation_file_appends_to_a_catalog_holding_its_predecessor(
    ingest: Callable[..., IngestReport], recording: Path, instrument_id: str, whole_catalogs: dict[str, Path], tmp_path: Path
) -> None:
    first, second, _ = _halves(recording, tmp_path)
    catalog = tmp_path / "catalog"
    ingest([first], catalog)

    report = ingest([second], catalog)

    assert report.changed_catalog
    reference = _content(whole_catalogs["spot" if "PERP" not in instrument_id else "usdm"], instrument_id)
    assert _content(catalog, instrument_id) == reference
    assert not ingest([second], catalog).changed_catalog  # and again: the same data is a no-op


@pytest.mark.parametrize("later", [False, True], ids=["one command", "appended later"])
def test_gap_between_files_is_refused_naming_file_and_line(later: bool, tmp_path: Path) -> None:
    lines = _lines(BTC_RECORDING)
    cut = _split_index(lines)
    first = _write(tmp_path / "part_0.gz", lines[:cut])
    depth = _depth_line_numbers(lines[cut:])
    # Drop the second part's first three depth messages: its first diff no longer continues the first part.
    dropped = {number - 1 for number in depth[:3]}
    gapped_lines = [line for index, line in enumerate(lines[cut:]) if index not in dropped]
    gapped = _write(tmp_path / "part_1.gz", gapped_lines)
    first_kept_diff = _depth_line_numbers(gapped_lines)[0]
    last_depth = next(line for line in reversed(lines[:cut]) if b"@depth" in line)
    previous_u = json.loads(last_depth.split(b" ", 1)[1])["data"]["u"]
    catalog = tmp_path / "catalog"
    if later:
        ingest_binance_spot([first], catalog)
    before = _tree_digest(catalog) if catalog.exists() else {}

    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([gapped] if later else [first, gapped], catalog)

    assert raised.value.path == gapped
    assert raised.value.line == first_kept_diff
    assert "gap" in raised.value.problem
    assert str(previous_u) in raised.value.problem
    assert (_tree_digest(catalog) if catalog.exists() else {}) == before


def test_continuation_file_alone_is_refused_for_want_of_a_snapshot(tmp_path: Path) -> None:
    _, second, second_lines = _halves(BTC_RECORDING, tmp_path)

    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([second], tmp_path / "catalog")

    assert raised.value.path == second
    assert raised.value.line == _depth_line_numbers(second_lines)[0]
    assert "no REST depth snapshot" in raised.value.problem
    assert not (tmp_path / "catalog" / "data").exists()


@pytest.mark.parametrize("later", [False, True], ids=["one command", "appended later"])
def test_trade_lost_between_files_is_refused_naming_the_first_trade(later: bool, tmp_path: Path) -> None:
    lines = _lines(BTC_RECORDING)
    cut = _split_index(lines)
    first = _write(tmp_path / "part_0.gz", lines[:cut])
    trades = [index for index, line in enumerate(lines[cut:]) if b"@trade" in line]
    # The second part without its first trade: the depth stream still continues, the trades do not.
    second_lines = [line for index, line in enumerate(lines[cut:]) if index != trades[0]]
    second = _write(tmp_path / "part_1.gz", second_lines)
    last_trade = json.loads(next(line for line in reversed(lines[:cut]) if b"@trade" in line).split(b" ", 1)[1])["data"]["t"]
    catalog = tmp_path / "catalog"
    if later:
        ingest_binance_spot([first], catalog)
    before = _tree_digest(catalog) if catalog.exists() else {}

    with pytest.raises(DataInputError) as raised:
        ingest_binance_spot([second] if later else [first, second], catalog)

    assert raised.value.path == second
    assert raised.value.line == trades[1]  # the first trade left, 1-based: its 0-based index before the drop
    assert f"expected t={last_trade + 1}" in raised.value.problem
    assert (_tree_digest(catalog) if catalog.exists() else {}) == before
