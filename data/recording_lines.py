"""What the line-oriented readers share: numbered lines out of gzip or text, and line-cut chunks of a stream."""

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from keel.data.errors import DataInputError
from keel.data.progress import IngestProgress

_PIECE_BYTES = 1 << 20  # uncompressed bytes of whole lines split at a time


def numbered_lines(path: Path, expected: str, progress: IngestProgress | None = None) -> Iterator[tuple[int, bytes]]:
    """
    Yield ``(1-based line number, line)`` for every non-empty line of a ``.gz`` or plain text recording.

    The file is read a megabyte of lines at a time (:class:`LineChunks`) and split with one bytes call per
    piece: no Python call per line until the caller's own.

    Parameters
    ----------
    path : Path
        The recording.
    expected : str
        What the file should be (``"a Binance recording"``), named when it is missing or empty.
    progress : IngestProgress, optional
        Told when the file starts and, after every piece, how far it has got.

    Raises
    ------
    DataInputError
        If the file is missing, empty (no non-empty line), or its gzip stream is truncated or corrupt
        (naming the line the reading had got to).

    """
    line_number = 0
    yielded = False
    chunks = None
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
            if progress is not None:
                progress.start_file(path)
            chunks = LineChunks(stream, _PIECE_BYTES)
            for piece in chunks:
                lines = piece.split(b"\n")
                if piece.endswith(b"\n"):
                    lines.pop()  # what follows the last line end: nothing
                for raw_line in lines:
                    line_number += 1
                    raw_line = raw_line.rstrip(b"\r\n")
                    if raw_line:
                        yielded = True
                        yield line_number, raw_line
                if progress is not None:
                    progress.advance(line_number, raw.tell())
    except FileNotFoundError:
        raise DataInputError(path, f"file not found: expected {expected}") from None
    except EOFError:
        raise DataInputError(
            path, "truncated gzip: the stream ends before its end marker (incomplete download or copy?)", chunks.line_reached if chunks else 1
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataInputError(path, f"unreadable gzip ({error})", chunks.line_reached if chunks else 1) from None
    if not yielded:
        raise DataInputError(path, f"empty file ({line_number} lines, none with data): expected {expected}")


class LineChunks:
    """
    A binary stream in pieces of at most about ``chunk_bytes``, each cut after a line end.

    A piece ends at the last line end within ``chunk_bytes`` (or, for a longer line, at that line's end); only
    the last piece may lack a final line end. Iterating yields at least one piece: ``b""`` for an empty stream.

    Parameters
    ----------
    stream : BinaryIO
        Open for reading bytes (a file, a gzip or zip member).
    chunk_bytes : int
        The piece size to aim for.
    read_bytes : int, default 65536
        How much one read takes from the stream: small, so that :attr:`line_reached` is close to where a
        truncated gzip stopped; a plain file reads faster in large reads.

    """

    def __init__(self, stream: BinaryIO, chunk_bytes: int, read_bytes: int = 1 << 16) -> None:
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._read_bytes = read_bytes
        self._buffer = bytearray()
        self._pending = b""  # the last read, not yet in the buffer
        self._lines_yielded = 0

    @property
    def line_reached(self) -> int:
        """Return the 1-based line the reading has got to (for an error the stream raised while being read)."""
        return self._lines_yielded + self._buffer.count(b"\n") + self._pending.count(b"\n") + 1

    def __iter__(self) -> Iterator[bytes]:
        """Yield the pieces."""
        buffer = self._buffer
        yielded = False
        self._pending = self._stream.read(self._read_bytes)
        while self._pending:
            following = self._stream.read(self._read_bytes)
            if not following and not buffer and len(self._pending) <= self._chunk_bytes:
                # The rest of the stream came in one read (a whole file, most often): no copy, no buffer.
                yield self._pending
                return
            buffer += self._pending
            self._pending = following
            while len(buffer) >= self._chunk_bytes:
                cut = (buffer.rfind(b"\n", 0, self._chunk_bytes) + 1) or (buffer.find(b"\n", self._chunk_bytes) + 1)
                if cut == 0:
                    break  # one line longer than a chunk, its end not read yet
                with memoryview(buffer) as view:
                    piece = bytes(view[:cut])  # one copy; slicing the bytearray would make two
                del buffer[:cut]
                self._lines_yielded += piece.count(b"\n")
                yielded = True
                yield piece
        if buffer or not yielded:
            piece = bytes(buffer)
            buffer.clear()
            yield piece
