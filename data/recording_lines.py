"""What every line-per-message recording reader shares: numbered lines out of gzip or text, and book-delta columns."""

import gzip
import zlib
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from keel.data.catalog_layout import F_LAST
from keel.data.catalog_layout import SIDE_BUY
from keel.data.catalog_layout import SIDE_SELL
from keel.data.errors import DataInputError


def numbered_lines(path: Path, expected: str) -> Iterator[tuple[int, bytes]]:
    """
    Yield ``(1-based line number, line)`` for every non-empty line of a ``.gz`` or plain text recording.

    Parameters
    ----------
    path : Path
        The recording.
    expected : str
        What the file should be (``"a Binance recording"``), named when it is missing.

    Raises
    ------
    DataInputError
        If the file is missing, or its gzip stream is truncated or corrupt (naming the line reached).

    """
    opener = gzip.open if path.suffix == ".gz" else open
    line_number = 0
    try:
        with opener(path, "rb") as stream:
            for line_number, raw_line in enumerate(stream, start=1):
                raw_line = raw_line.rstrip(b"\r\n")
                if raw_line:
                    yield line_number, raw_line
    except FileNotFoundError:
        raise DataInputError(path, f"file not found: expected {expected}") from None
    except EOFError:
        raise DataInputError(
            path, "truncated gzip: the stream ends before its end marker (incomplete download or copy?)", line_number + 1
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataInputError(path, f"unreadable gzip ({error})", line_number + 1) from None


@dataclass
class DeltaColumns:
    """
    Order book delta columns of one instrument, appended message by message; prices and sizes still venue strings.

    Parameters
    ----------
    action, side, flags, sequence : list[int]
        nautilus ``BookAction``, ``OrderSide``, ``RecordFlag`` bits and the venue's update id.
    price, size : list[str]
        As the venue sent them.
    ts_event, ts_init : list[int]
        Nanoseconds.
    line : list[int]
        The recording line each delta came from, for errors.

    """

    action: list[int] = field(default_factory=list)
    side: list[int] = field(default_factory=list)
    price: list[str] = field(default_factory=list)
    size: list[str] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)
    ts_event: list[int] = field(default_factory=list)
    ts_init: list[int] = field(default_factory=list)
    line: list[int] = field(default_factory=list)

    def append(self, action: int, side: int, price: str, size: str, flags: int, sequence: int, ts_event: int, ts_init: int, line: int) -> None:
        """Append one delta."""
        self.action.append(action)
        self.side.append(side)
        self.price.append(price)
        self.size.append(size)
        self.flags.append(flags)
        self.sequence.append(sequence)
        self.ts_event.append(ts_event)
        self.ts_init.append(ts_init)
        self.line.append(line)

    def extend_levels(
        self, action: int, bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]], flags: int, sequence: int,
        ts_event: int, ts_init: int, line: int,
    ) -> None:
        """
        Append one message's levels, ``[price, size, ...]`` each, bids then asks, all with ``action`` and ``flags``.

        The last level also gets ``RecordFlag.F_LAST``. One ``extend`` per column instead of a call per level:
        depth messages are most of a recording, and this loop was most of its parse time.
        """
        count = len(bids) + len(asks)
        if count == 0:
            return
        self.action.extend([action] * count)
        self.side.extend([SIDE_BUY] * len(bids))
        self.side.extend([SIDE_SELL] * len(asks))
        self.price.extend([level[0] for level in bids])
        self.price.extend([level[0] for level in asks])
        self.size.extend([level[1] for level in bids])
        self.size.extend([level[1] for level in asks])
        self.flags.extend([flags] * (count - 1))
        self.flags.append(flags | F_LAST)
        self.sequence.extend([sequence] * count)
        self.ts_event.extend([ts_event] * count)
        self.ts_init.extend([ts_init] * count)
        self.line.extend([line] * count)
