"""Read a Binance spot market-data recording into checked, nautilus-ready columns.

Recording format (the one hftbacktest's collector writes): gzip text, one message per line,
``<local_receive_ts_ns> <json>``. The JSON is either the REST depth snapshot
``{"lastUpdateId", "bids", "asks"}`` or a combined-stream frame ``{"stream", "data"}`` carrying a
``trade``, ``bookTicker`` or ``depthUpdate`` payload exactly as Binance sent it.

Reading is two steps so the exchangeInfo file is only needed for the symbols actually present:
:func:`read_recording` decodes and checks the sequence of every line; :func:`recording_frames` then
converts the decimal strings at the instruments' precisions.

Book rule (Binance "how to manage a local order book"): diffs with ``u <= lastUpdateId`` are older than
the snapshot and dropped; the first applied diff must satisfy ``U <= lastUpdateId + 1 <= u``; every
later diff must start at ``U == previous u + 1``. Recorders fetch the snapshot after subscribing, so the
diffs that bridge it often sit *before* the snapshot line: they are held back and emitted right after the
snapshot, with the snapshot's receive time as ``ts_init`` (that is when a live book could apply them).
"""

import gzip
import zlib
from decimal import ROUND_CEILING
from decimal import Decimal
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import msgspec
import polars as pl
from nautilus_trader.model.enums import BookAction
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import RecordFlag
from nautilus_trader.model.instruments import Instrument

from keel.data.errors import DataInputError
from keel.data.fixed_point import not_decimal_mask
from keel.data.fixed_point import off_grid_mask
from keel.data.fixed_point import to_fixed

_MS = 1_000_000
_ACTION_CLEAR = int(BookAction.CLEAR)
_ACTION_ADD = int(BookAction.ADD)
_ACTION_UPDATE = int(BookAction.UPDATE)
_ACTION_DELETE = int(BookAction.DELETE)
_SIDE_NONE = int(OrderSide.NO_ORDER_SIDE)
_SIDE_BUY = int(OrderSide.BUY)
_SIDE_SELL = int(OrderSide.SELL)
_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
AGGRESSOR_BUYER = 1
AGGRESSOR_SELLER = 2


class _Trade(msgspec.Struct):
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _BookTicker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _DepthUpdate(msgspec.Struct):
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class _DepthSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])
_DECODERS = {
    "trade": msgspec.json.Decoder(_Trade),
    "bookTicker": msgspec.json.Decoder(_BookTicker),
    "depth": msgspec.json.Decoder(_DepthUpdate),
}
_SNAPSHOT = msgspec.json.Decoder(_DepthSnapshot)


@dataclass
class _Columns:
    """Column lists for one symbol, appended line by line."""

    trade_ts_init: list[int] = field(default_factory=list)
    trade_ts_event: list[int] = field(default_factory=list)
    trade_price: list[str] = field(default_factory=list)
    trade_size: list[str] = field(default_factory=list)
    trade_aggressor: list[int] = field(default_factory=list)
    trade_id: list[int] = field(default_factory=list)
    trade_line: list[int] = field(default_factory=list)
    quote_ts_init: list[int] = field(default_factory=list)
    quote_bid_price: list[str] = field(default_factory=list)
    quote_bid_size: list[str] = field(default_factory=list)
    quote_ask_price: list[str] = field(default_factory=list)
    quote_ask_size: list[str] = field(default_factory=list)
    quote_line: list[int] = field(default_factory=list)
    delta_action: list[int] = field(default_factory=list)
    delta_side: list[int] = field(default_factory=list)
    delta_price: list[str] = field(default_factory=list)
    delta_size: list[str] = field(default_factory=list)
    delta_flags: list[int] = field(default_factory=list)
    delta_sequence: list[int] = field(default_factory=list)
    delta_ts_event: list[int] = field(default_factory=list)
    delta_ts_init: list[int] = field(default_factory=list)
    delta_line: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _DepthEvent:
    """A snapshot (``update`` is None) or a diff, in file order, waiting for the book rule."""

    line: int
    ts_init: int
    symbol: str | None
    snapshot: _DepthSnapshot | None = None
    update: _DepthUpdate | None = None


@dataclass
class RawRecording:
    """
    A decoded, sequence-checked recording whose numbers are still venue strings.

    Parameters
    ----------
    path : Path
        The recording file.
    columns : dict[str, _Columns]
        Per Binance symbol.
    lines : int
        Number of lines read.

    """

    path: Path
    columns: dict[str, _Columns]
    lines: int

    @property
    def symbols(self) -> list[str]:
        """Return the Binance symbols present, sorted."""
        return sorted(self.columns)


@dataclass(frozen=True)
class SymbolFrames:
    """
    Catalog-ready columns for one instrument: prices and sizes as ``Decimal(38, 16)``.

    Parameters
    ----------
    trades : pl.DataFrame
        price, size, aggressor_side, trade_id, ts_event, ts_init.
    quotes : pl.DataFrame
        bid_price, ask_price, bid_size, ask_size, ts_event, ts_init.
    deltas : pl.DataFrame
        action, side, price, size, order_id, flags, sequence, ts_event, ts_init.
    rounded_quantities : int
        How many quantities finer than the size step were rounded up to it.

    """

    trades: pl.DataFrame
    quotes: pl.DataFrame
    deltas: pl.DataFrame
    rounded_quantities: int


def read_recording(path: Path) -> RawRecording:
    """
    Decode every line of a recording and check its continuity.

    Parameters
    ----------
    path : Path
        A ``.gz`` (or plain text) recording.

    Returns
    -------
    RawRecording

    Raises
    ------
    DataInputError
        Naming the file and line on: unreadable or truncated gzip, a line that is not
        ``<int ns> <json>``, an unexpected message shape or stream, a stream/symbol mismatch, local time going
        backwards, a trade id gap, a depth update-id break, or diffs without a snapshot.

    """
    path = Path(path)
    columns: dict[str, _Columns] = {}
    depth_events: list[_DepthEvent] = []
    previous_ts = -1
    line_number = 0
    for line_number, raw_line in _numbered_lines(path):
        ts_text, _, payload = raw_line.partition(b" ")
        try:
            ts_init = int(ts_text)
        except ValueError:
            raise DataInputError(path, f"expected '<local receive ns> <json>', got {raw_line[:60]!r}", line_number) from None
        if ts_init < previous_ts:
            raise DataInputError(
                path, f"out of order: local time {ts_init} is before the previous line's {previous_ts}", line_number
            )
        previous_ts = ts_init
        try:
            envelope = _ENVELOPE.decode(payload)
            if "stream" in envelope:
                stream = msgspec.json.decode(envelope["stream"], type=str)
                _read_frame(stream, envelope, ts_init, line_number, columns, depth_events)
            elif "lastUpdateId" in envelope:
                depth_events.append(_DepthEvent(line_number, ts_init, None, snapshot=_SNAPSHOT.decode(payload)))
            else:
                raise DataInputError(
                    path, f"expected a stream frame {{stream, data}} or a depth snapshot {{lastUpdateId, bids, asks}}, got keys {sorted(envelope)}", line_number
                )
        except msgspec.ValidationError as error:
            raise DataInputError(path, f"unexpected message shape: {error}", line_number) from None
        except msgspec.DecodeError as error:
            raise DataInputError(path, f"bad JSON: {error}", line_number) from None
        except _LineProblem as problem:
            raise DataInputError(path, str(problem), line_number) from None
    _apply_depth_rule(path, depth_events, columns)
    _check_trade_ids(path, columns)
    return RawRecording(path=path, columns=columns, lines=line_number)


def recording_frames(recording: RawRecording, instruments: dict[str, Instrument]) -> dict[str, SymbolFrames]:
    """
    Convert a recording's decimal strings at each instrument's precision.

    Parameters
    ----------
    recording : RawRecording
        From :func:`read_recording`.
    instruments : dict[str, Instrument]
        Keyed by Binance symbol; must cover ``recording.symbols``.

    Returns
    -------
    dict[str, SymbolFrames]
        Keyed by Binance symbol.

    Raises
    ------
    DataInputError
        Naming the line of a price or size that is not a decimal on the instrument's grid.

    """
    frames = {}
    for symbol in recording.symbols:
        instrument = instruments[symbol]
        cols = recording.columns[symbol]
        price_precision = instrument.price_precision
        size_precision = instrument.size_precision
        fixed = _FixedConverter(recording.path, symbol)
        trade_lines = pl.Series(cols.trade_line, dtype=pl.Int64)
        trades = pl.DataFrame(
            {
                "price": fixed(cols.trade_price, price_precision, trade_lines, "trade price 'p'", is_quantity=False),
                "size": fixed(cols.trade_size, size_precision, trade_lines, "trade quantity 'q'", is_quantity=True),
                "aggressor_side": pl.Series(cols.trade_aggressor, dtype=pl.UInt8),
                "trade_id": pl.Series(cols.trade_id, dtype=pl.Int64).cast(pl.String),
                "ts_event": pl.Series(cols.trade_ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.trade_ts_init, dtype=pl.UInt64),
            }
        )
        quote_lines = pl.Series(cols.quote_line, dtype=pl.Int64)
        quote_ts = pl.Series(cols.quote_ts_init, dtype=pl.UInt64)
        quotes = pl.DataFrame(
            {
                "bid_price": fixed(cols.quote_bid_price, price_precision, quote_lines, "bookTicker bid 'b'", is_quantity=False),
                "ask_price": fixed(cols.quote_ask_price, price_precision, quote_lines, "bookTicker ask 'a'", is_quantity=False),
                "bid_size": fixed(cols.quote_bid_size, size_precision, quote_lines, "bookTicker bid size 'B'", is_quantity=True),
                "ask_size": fixed(cols.quote_ask_size, size_precision, quote_lines, "bookTicker ask size 'A'", is_quantity=True),
                # Spot bookTicker carries no exchange time: the receive time is the best event time there is.
                "ts_event": quote_ts,
                "ts_init": quote_ts,
            }
        )
        delta_lines = pl.Series(cols.delta_line, dtype=pl.Int64)
        deltas = pl.DataFrame(
            {
                "action": pl.Series(cols.delta_action, dtype=pl.UInt8),
                "side": pl.Series(cols.delta_side, dtype=pl.UInt8),
                "price": fixed(cols.delta_price, price_precision, delta_lines, "depth price level", is_quantity=False),
                "size": fixed(cols.delta_size, size_precision, delta_lines, "depth quantity", is_quantity=True),
                "order_id": pl.zeros(len(cols.delta_line), dtype=pl.UInt64, eager=True),
                "flags": pl.Series(cols.delta_flags, dtype=pl.UInt8),
                "sequence": pl.Series(cols.delta_sequence, dtype=pl.UInt64),
                "ts_event": pl.Series(cols.delta_ts_event, dtype=pl.UInt64),
                "ts_init": pl.Series(cols.delta_ts_init, dtype=pl.UInt64),
            }
        )
        # A diff level with quantity 0 removes the level; every other diff level sets it.
        is_removal = (pl.col("action") == _ACTION_UPDATE) & (pl.col("size") == 0)
        deltas = deltas.with_columns(
            pl.when(is_removal).then(pl.lit(_ACTION_DELETE, pl.UInt8)).otherwise(pl.col("action")).alias("action")
        )
        empty_snapshot_level = deltas.select(
            (pl.col("action") == _ACTION_ADD) & (pl.col("size") == 0)
        ).to_series()
        if empty_snapshot_level.any():
            line = int(delta_lines.filter(empty_snapshot_level)[0])
            raise DataInputError(recording.path, f"{symbol} depth snapshot level with quantity 0: expected a positive quantity", line)
        frames[symbol] = SymbolFrames(trades=trades, quotes=quotes, deltas=deltas, rounded_quantities=fixed.rounded_quantities)
    return frames


class _LineProblem(Exception):
    """A problem with the current line; :func:`read_recording` adds the file and line number."""


class _FixedConverter:
    """
    Convert one symbol's decimal strings, keeping count of the quantities it had to round.

    Prices off the tick grid are errors. Quantities off the step grid are real: resting orders placed
    before Binance coarsened a step size keep their finer quantities (e.g. a BTCUSDT level of 25.426189
    at 200000.00 in the 2024-08-08 sample), and nautilus needs every size at the instrument's precision.
    They are rounded up to the next step, so a level never rounds away to zero.
    """

    def __init__(self, path: Path, symbol: str) -> None:
        self._path = path
        self._symbol = symbol
        self.rounded_quantities = 0

    def __call__(self, values: list[str], precision: int, lines: pl.Series, what: str, *, is_quantity: bool) -> pl.Series:
        text = pl.Series(values, dtype=pl.String)
        self._raise_on_first(values, not_decimal_mask(text), lines, what, "a non-negative decimal string")
        off_grid = off_grid_mask(text, precision)
        if off_grid.any():
            if not is_quantity:
                self._raise_on_first(values, off_grid, lines, what, f"a multiple of the tick (at most {precision} decimals)")
            step = Decimal(1).scaleb(-precision)
            indices = off_grid.arg_true().to_list()
            rounded = [str(Decimal(values[index]).quantize(step, rounding=ROUND_CEILING)) for index in indices]
            text = text.scatter(indices, rounded)
            self.rounded_quantities += len(indices)
        return to_fixed(text)

    def _raise_on_first(self, values: list[str], bad: pl.Series, lines: pl.Series, what: str, expected: str) -> None:
        if bad.any():
            index = int(bad.arg_true()[0])
            raise DataInputError(
                self._path, f"{self._symbol} {what} {values[index]!r}: expected {expected}", int(lines[index])
            )


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if path.suffix == ".gz" else open
    line_number = 0
    try:
        with opener(path, "rb") as stream:
            for line_number, raw_line in enumerate(stream, start=1):
                raw_line = raw_line.rstrip(b"\r\n")
                if raw_line:
                    yield line_number, raw_line
    except FileNotFoundError:
        raise DataInputError(path, "file not found: expected a Binance spot recording") from None
    except EOFError:
        raise DataInputError(
            path, "truncated gzip: the stream ends before its end marker (incomplete download or copy?)", line_number + 1
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DataInputError(path, f"unreadable gzip ({error})", line_number + 1) from None


def _read_frame(
    stream: str,
    envelope: dict[str, msgspec.Raw],
    ts_init: int,
    line_number: int,
    columns: dict[str, _Columns],
    depth_events: list[_DepthEvent],
) -> None:
    stream_symbol, _, channel = stream.partition("@")
    kind = channel.split("@", 1)[0]
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise _LineProblem(f"stream '{stream}': expected a trade, bookTicker or depth stream")
    if "data" not in envelope:
        raise _LineProblem(f"stream '{stream}' frame without 'data'")
    try:
        data = decoder.decode(envelope["data"])
    except msgspec.ValidationError as error:
        raise _LineProblem(f"stream '{stream}': unexpected {kind} payload ({error})") from None
    symbol = data.s
    if symbol != stream_symbol.upper():
        raise _LineProblem(f"stream '{stream}' carries symbol '{symbol}': expected '{stream_symbol.upper()}'")
    cols = columns.setdefault(symbol, _Columns())
    if kind == "trade":
        cols.trade_ts_init.append(ts_init)
        cols.trade_ts_event.append(data.T * _MS)
        cols.trade_price.append(data.p)
        cols.trade_size.append(data.q)
        # m = "buyer is the maker", so the seller took liquidity.
        cols.trade_aggressor.append(AGGRESSOR_SELLER if data.m else AGGRESSOR_BUYER)
        cols.trade_id.append(data.t)
        cols.trade_line.append(line_number)
    elif kind == "bookTicker":
        cols.quote_ts_init.append(ts_init)
        cols.quote_bid_price.append(data.b)
        cols.quote_bid_size.append(data.B)
        cols.quote_ask_price.append(data.a)
        cols.quote_ask_size.append(data.A)
        cols.quote_line.append(line_number)
    else:
        if data.U > data.u:
            raise _LineProblem(f"depthUpdate U={data.U} > u={data.u}: expected first update id <= final update id")
        depth_events.append(_DepthEvent(line_number, ts_init, symbol, update=data))


def _apply_depth_rule(path: Path, events: list[_DepthEvent], columns: dict[str, _Columns]) -> None:
    snapshot_symbol = _snapshot_symbol(path, events, columns)
    last_update_id: dict[str, int | None] = {}  # final id of the last applied diff; None = awaiting the bridge
    snapshot_id: dict[str, int] = {}
    snapshot_ts: dict[str, int] = {}
    held: dict[str, list[_DepthEvent]] = {}  # diffs seen before the symbol's first snapshot
    for event in events:
        if event.snapshot is not None:
            symbol = snapshot_symbol
            cols = columns[symbol]
            _append_snapshot(cols, event)
            snapshot_id[symbol] = event.snapshot.lastUpdateId
            snapshot_ts[symbol] = event.ts_init
            last_update_id[symbol] = None
            for waiting in held.pop(symbol, []):
                _apply_diff(path, cols, waiting, last_update_id, snapshot_id, event.ts_init)
            continue
        symbol = event.symbol
        if symbol not in snapshot_id:
            held.setdefault(symbol, []).append(event)
            continue
        _apply_diff(path, columns[symbol], event, last_update_id, snapshot_id, event.ts_init)
    for symbol, waiting in held.items():
        raise DataInputError(
            path,
            f"{len(waiting)} {symbol} depth diffs but no REST depth snapshot: expected a "
            "{lastUpdateId, bids, asks} line to start the book from",
            waiting[0].line,
        )


def _snapshot_symbol(path: Path, events: list[_DepthEvent], columns: dict[str, _Columns]) -> str:
    snapshots = [event for event in events if event.snapshot is not None]
    if not snapshots:
        return ""
    # The REST snapshot names no symbol: it belongs to the file's one symbol.
    if len(columns) != 1:
        raise DataInputError(
            path,
            f"cannot tell which symbol this depth snapshot belongs to: the file holds {sorted(columns) or 'no streams'}, "
            "expected exactly one symbol per recording",
            snapshots[0].line,
        )
    return next(iter(columns))


def _append_snapshot(cols: _Columns, event: _DepthEvent) -> None:
    snapshot = event.snapshot
    sequence = snapshot.lastUpdateId
    levels = [(_SIDE_BUY, level) for level in snapshot.bids] + [(_SIDE_SELL, level) for level in snapshot.asks]
    _append_delta(cols, _ACTION_CLEAR, _SIDE_NONE, "0", "0", _F_SNAPSHOT | (0 if levels else _F_LAST), sequence, event.ts_init, event.ts_init, event.line)
    for index, (side, (price, size)) in enumerate(levels):
        flags = _F_SNAPSHOT | (_F_LAST if index == len(levels) - 1 else 0)
        # The REST snapshot carries no exchange time.
        _append_delta(cols, _ACTION_ADD, side, price, size, flags, sequence, event.ts_init, event.ts_init, event.line)


def _apply_diff(
    path: Path,
    cols: _Columns,
    event: _DepthEvent,
    last_update_id: dict[str, int | None],
    snapshot_id: dict[str, int],
    ts_init: int,
) -> None:
    update = event.update
    symbol = event.symbol
    previous = last_update_id[symbol]
    if previous is None:
        bridge = snapshot_id[symbol] + 1
        if update.u < bridge:
            return  # older than the snapshot: already contained in it
        if update.U > bridge:
            raise DataInputError(
                path,
                f"{symbol} depth gap after the snapshot: diff U={update.U} u={update.u} does not bridge lastUpdateId "
                f"{snapshot_id[symbol]}; expected U <= {bridge} <= u",
                event.line,
            )
    elif update.U != previous + 1:
        raise DataInputError(
            path,
            f"{symbol} depth sequence break: diff U={update.U} u={update.u}, expected U={previous + 1} (previous u={previous})",
            event.line,
        )
    last_update_id[symbol] = update.u
    levels = [(_SIDE_BUY, level) for level in update.b] + [(_SIDE_SELL, level) for level in update.a]
    ts_event = update.E * _MS
    for index, (side, (price, size)) in enumerate(levels):
        flags = _F_LAST if index == len(levels) - 1 else 0
        # UPDATE for now; quantity-0 levels become DELETE once sizes are numbers (recording_frames).
        _append_delta(cols, _ACTION_UPDATE, side, price, size, flags, update.u, ts_event, ts_init, event.line)


def _append_delta(
    cols: _Columns,
    action: int,
    side: int,
    price: str,
    size: str,
    flags: int,
    sequence: int,
    ts_event: int,
    ts_init: int,
    line: int,
) -> None:
    cols.delta_action.append(action)
    cols.delta_side.append(side)
    cols.delta_price.append(price)
    cols.delta_size.append(size)
    cols.delta_flags.append(flags)
    cols.delta_sequence.append(sequence)
    cols.delta_ts_event.append(ts_event)
    cols.delta_ts_init.append(ts_init)
    cols.delta_line.append(line)


def _check_trade_ids(path: Path, columns: dict[str, _Columns]) -> None:
    for symbol, cols in columns.items():
        ids = cols.trade_id
        for index in range(1, len(ids)):
            if ids[index] != ids[index - 1] + 1:
                raise DataInputError(
                    path,
                    f"{symbol} trade id gap or reorder: t={ids[index]}, expected t={ids[index - 1] + 1}",
                    cols.trade_line[index],
                )
