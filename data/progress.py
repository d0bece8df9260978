"""Progress of a long ingest: files, lines, lines per second and time left, drawn on stderr with ``rich``.

Readers report how far they have got in a file as lines and as bytes of the file on disk (compressed bytes for
gzip), so the time left is estimated from the bytes of all input files, which are known before reading starts.
"""

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import Progress
from rich.progress import TaskID
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.progress import TimeRemainingColumn


class IngestProgress:
    """
    Counts what an ingest has read, and shows it as a progress bar while the ingest runs.

    Parameters
    ----------
    paths : Sequence[Path]
        Every input file of the ingest; their sizes on disk are the bar's total.
    console : Console, optional
        Where to draw (default: stderr; a console that is not a terminal gets the final state only).

    """

    def __init__(self, paths: Sequence[Path], console: Console | None = None) -> None:
        self._sizes = {Path(path): _size(Path(path)) for path in paths}
        self.files_started = 0
        self.lines = 0  # lines of the files finished, plus the current file's so far
        self._lines_before_file = 0
        self._bytes_before_file = 0
        self._current: Path | None = None
        self._progress = Progress(
            TextColumn("file {task.fields[file_number]}/{task.fields[files]} {task.fields[name]}"),
            BarColumn(bar_width=12),
            TextColumn("{task.fields[lines]:,} lines {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> "IngestProgress":
        self._progress.start()
        self._task = self._progress.add_task(
            "ingest", total=max(sum(self._sizes.values()), 1), file_number=0, files=len(self._sizes), name="", lines=0, rate=0.0
        )
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._progress.stop()

    def start_file(self, path: Path) -> None:
        """Note that reading ``path`` starts (again: a file read anew, e.g. on another instrument version, counts once)."""
        if self._current == Path(path):
            return
        if self._current is not None:
            self._bytes_before_file += self._sizes.get(self._current, 0)
            self._lines_before_file = self.lines
        self._current = Path(path)
        self.files_started += 1
        self._update(0)

    def advance(self, lines: int, bytes_read: int) -> None:
        """Note that the current file has been read up to line ``lines``, ``bytes_read`` bytes of it on disk."""
        self.lines = self._lines_before_file + lines
        self._update(bytes_read)

    def _update(self, bytes_read: int) -> None:
        if self._task is None:
            return  # counting only, nothing drawn (not entered)
        elapsed = self._progress.tasks[0].elapsed or 0.0
        self._progress.update(
            self._task,
            completed=self._bytes_before_file + bytes_read,
            file_number=self.files_started,
            name=self._current.name if self._current else "",
            lines=self.lines,
            rate=self.lines / elapsed if elapsed > 0 else 0.0,
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # a missing file is named by its reader
