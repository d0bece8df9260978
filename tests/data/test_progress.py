"""Ingest progress counts the files and lines actually read."""

import gzip
import io
from pathlib import Path

from rich.console import Console

from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.data.progress import IngestProgress


def test_progress_counts_every_file_and_line(tmp_path: Path) -> None:
    recordings = sample_recordings()
    expected_lines = 0
    for path in recordings:
        with gzip.open(path, "rb") as file:
            expected_lines += sum(1 for _ in file)
    drawn = io.StringIO()
    progress = IngestProgress(recordings, Console(file=drawn, width=120))

    with progress:
        ingest_binance_spot(recordings, tmp_path / "catalog", progress=progress)

    assert len(recordings) == 2
    assert progress.files_started == 2
    assert progress.lines == expected_lines > 70_000
    assert drawn.getvalue()  # the bar was drawn somewhere
