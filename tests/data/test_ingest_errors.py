"""Bad input: a clear error naming the file and line, and the catalog left exactly as it was."""

import gzip
import hashlib
from pathlib import Path

import pytest

from keel.data.errors import DataInputError
from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings

BTC_RECORDING = next(path for path in sample_recordings() if path.name.startswith("btcusdt"))


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    with gzip.open(BTC_RECORDING, "rb") as file:
        return file.read().splitlines(keepends=True)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A catalog already holding the ETHUSDT sample, so 'unchanged' is tested on a non-empty catalog."""
    path = tmp_path / "catalog"
    ingest_binance_spot([path for path in sample_recordings() if path.name.startswith("ethusdt")], path)
    return path


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def _write(path: Path, lines: list[bytes]) -> Path:
    with gzip.open(path, "wb") as file:
        file.writelines(lines)
    return path


def _first_index(lines: list[bytes], marker: bytes, after: int = 0) -> int:
    return next(index for index, line in enumerate(lines) if index >= after and marker in line)


def _assert_refused(recording: Path, catalog: Path, expected_line: int | None, message: str, chunk_bytes: int | None = None) -> None:
    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match=message) as error:
        ingest_binance_spot([recording], catalog, **({} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}))
    assert error.value.path == recording
    assert error.value.line == expected_line
    assert str(recording) in str(error.value)
    assert _tree_digest(catalog) == before
    # No staging folder is left beside the catalog either.
    assert sorted(path.name for path in catalog.parent.iterdir()) == sorted(["catalog", recording.name])


def test_depth_gap_names_file_and_line(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    snapshot = _first_index(lines, b'"lastUpdateId"')
    # Drop a diff well after the snapshot: the next diff no longer continues the previous one.
    dropped = _first_index(lines, b"@depth@100ms", after=snapshot + 200)
    following = _first_index(lines, b"@depth@100ms", after=dropped + 1)
    corrupted = _write(tmp_path / "gap.gz", lines[:dropped] + lines[dropped + 1 :])

    # The line numbers are those of the corrupted file: the diff after the hole moved up by one.
    _assert_refused(corrupted, catalog, following, "depth")


def test_depth_gap_after_many_chunks_names_file_and_line(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    # Chunks of 2000 rows: the update-id chain is checked across chunk ends, and the chunks already staged
    # when the gap is found are thrown away with the rest.
    dropped = _first_index(lines, b"@depth@100ms", after=len(lines) * 3 // 4)
    following = _first_index(lines, b"@depth@100ms", after=dropped + 1)
    corrupted = _write(tmp_path / "late_gap.gz", lines[:dropped] + lines[dropped + 1 :])

    _assert_refused(corrupted, catalog, following, "depth sequence break", chunk_bytes=150_000)


def test_out_of_order_line_names_file_and_line(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = _first_index(lines, b"@trade", after=1000)
    swapped = lines[:index] + [lines[index + 1], lines[index]] + lines[index + 2 :]
    corrupted = _write(tmp_path / "swapped.gz", swapped)

    with pytest.raises(DataInputError) as error:
        ingest_binance_spot([corrupted], catalog)
    # Either the local clock going backwards or the trade-id order catches it, at one of the two lines.
    assert error.value.line in (index + 1, index + 2)


def test_bad_json_line_names_file_and_line(lines: list[bytes], catalog: Path, tmp_path: Path) -> None:
    index = 500
    broken = lines[index].split(b" ", 1)[0] + b' {"stream": "btcusdt@trade", "data": {\n'
    corrupted = _write(tmp_path / "badjson.gz", [*lines[:index], broken, *lines[index + 1 :]])

    _assert_refused(corrupted, catalog, index + 1, "bad JSON")


def test_truncated_gzip_is_refused(catalog: Path, tmp_path: Path) -> None:
    data = BTC_RECORDING.read_bytes()
    corrupted = tmp_path / "truncated.gz"
    corrupted.write_bytes(data[: len(data) // 2])

    before = _tree_digest(catalog)
    with pytest.raises(DataInputError, match="gzip"):
        ingest_binance_spot([corrupted], catalog)
    assert _tree_digest(catalog) == before


def test_reingesting_the_same_file_is_a_no_op(catalog: Path) -> None:
    before = _tree_digest(catalog)

    report = ingest_binance_spot([path for path in sample_recordings() if path.name.startswith("ethusdt")], catalog)

    assert not report.changed_catalog
    assert _tree_digest(catalog) == before
