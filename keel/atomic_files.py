"""Atomic file writes, in one place: a reader (or a crash) never sees half a file.

Every write goes to a temporary file beside the target and is renamed over it; a rename within one folder is
atomic on POSIX file systems.
"""

import json
from pathlib import Path
from typing import Any

import polars as pl


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    return path


def write_text_atomic(text: str, path: Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it."""
    return write_bytes_atomic(text.encode(), path)


def write_json_atomic(document: Any, path: Path) -> Path:
    """Write ``document`` as indented JSON (non-JSON values as text) through a temporary file."""
    return write_text_atomic(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n", path)


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet through a temporary file beside ``path``."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    frame.write_parquet(temporary)
    temporary.replace(path)
    return path
