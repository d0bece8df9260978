"""LineChunks: line-cut pieces of a stream that put the stream back together exactly."""

import gzip
import io

import pytest

from keel.data.ingest import sample_recordings
from keel.data.recording_lines import LineChunks


@pytest.mark.parametrize("chunk_bytes", [1, 1_000, 70_000, 10**9])
def test_pieces_end_at_line_ends_and_rebuild_the_stream(chunk_bytes: int) -> None:
    data = gzip.decompress(sample_recordings()[0].read_bytes())[:300_000] + b"a last line without its line end"

    pieces = list(LineChunks(io.BytesIO(data), chunk_bytes))

    assert b"".join(pieces) == data
    assert all(piece.endswith(b"\n") for piece in pieces[:-1])
    # A piece is longer than the chunk size only when it is one line that is.
    assert all(len(piece) <= chunk_bytes or piece.count(b"\n") <= 1 for piece in pieces)


def test_an_empty_stream_gives_one_empty_piece() -> None:
    assert list(LineChunks(io.BytesIO(b""), 100)) == [b""]


def test_line_reached_counts_the_lines_read() -> None:
    chunks = LineChunks(io.BytesIO(b"one\ntwo\nthree\n"), 5)
    iterator = iter(chunks)

    assert next(iterator) == b"one\n"
    assert chunks.line_reached == 4  # "two" and "three" are read into the buffer already
