"""The session folder's manifest: written over every file, and any later change to the folder is named."""

import hashlib
import json
from pathlib import Path

import pytest

from keel.live.session_layout import MANIFEST_JSON
from keel.live.session_layout import SessionIntegrityError
from keel.live.session_layout import verify_manifest
from keel.live.session_layout import write_manifest


@pytest.fixture
def sealed_folder(tmp_path: Path) -> Path:
    """A small session-like folder (a nested catalog file and a gate report included), sealed."""
    folder = tmp_path / "session"
    (folder / "catalog" / "data").mkdir(parents=True)
    (folder / "session.json").write_text('{"status": "completed"}\n')
    (folder / "fills.parquet").write_bytes(bytes(range(256)))
    (folder / "catalog" / "data" / "part-0.parquet").write_bytes(b"trades")
    (folder / "gate").mkdir()
    (folder / "gate" / "report.json").write_text("{}")
    write_manifest(folder)
    return folder


def test_manifest_lists_every_file_but_itself_and_the_gate_folder(sealed_folder: Path) -> None:
    manifest = json.loads((sealed_folder / MANIFEST_JSON).read_text())

    assert manifest["algorithm"] == "sha256"
    assert sorted(manifest["files"]) == ["catalog/data/part-0.parquet", "fills.parquet", "session.json"]
    assert manifest["files"]["fills.parquet"] == hashlib.sha256(bytes(range(256))).hexdigest()
    assert manifest["files"]["catalog/data/part-0.parquet"] == hashlib.sha256(b"trades").hexdigest()
    verify_manifest(sealed_folder)


def test_a_tampered_byte_names_the_file_and_both_hashes(sealed_folder: Path) -> None:
    path = sealed_folder / "fills.parquet"
    content = bytearray(path.read_bytes())
    content[100] ^= 0x01
    path.write_bytes(bytes(content))

    with pytest.raises(SessionIntegrityError) as error:
        verify_manifest(sealed_folder)

    recorded = hashlib.sha256(bytes(range(256))).hexdigest()
    now = hashlib.sha256(bytes(content)).hexdigest()
    assert str(error.value) == (
        f"{sealed_folder}/fills.parquet: content changed after recording (sha256 {recorded} recorded, {now} now)"
    )


def test_a_deleted_file_is_named(sealed_folder: Path) -> None:
    (sealed_folder / "catalog" / "data" / "part-0.parquet").unlink()

    with pytest.raises(SessionIntegrityError, match=r"catalog/data/part-0\.parquet: missing"):
        verify_manifest(sealed_folder)


def test_an_added_file_is_named(sealed_folder: Path) -> None:
    (sealed_folder / "catalog" / "data" / "part-1.parquet").write_bytes(b"more trades")

    with pytest.raises(SessionIntegrityError, match=r"catalog/data/part-1\.parquet: added after recording"):
        verify_manifest(sealed_folder)


def test_the_gate_folder_may_change_after_sealing(sealed_folder: Path) -> None:
    (sealed_folder / "gate" / "report.json").write_text('{"verdict": "reject"}')
    (sealed_folder / "gate" / "fills.parquet").write_bytes(b"backtest")

    verify_manifest(sealed_folder)


def test_an_unsealed_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text("{}")

    with pytest.raises(SessionIntegrityError, match=r"manifest\.json: missing: the session folder was never sealed"):
        verify_manifest(tmp_path)


def test_a_malformed_manifest_is_refused(sealed_folder: Path) -> None:
    (sealed_folder / MANIFEST_JSON).write_text('{"algorithm": "md5", "files": {}}')

    with pytest.raises(SessionIntegrityError, match=r"manifest\.json: expected an object with algorithm 'sha256'"):
        verify_manifest(sealed_folder)
