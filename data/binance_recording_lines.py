"""Decode a block of Binance recording lines at once: a few polars passes per message kind instead of a Python call per line.

A block is whole lines of the uncompressed recording. Each line is split into its receive time and payload,
classified by its ``stream`` (trade, bookTicker, depth) or as a REST snapshot, and every kind's payloads are
decoded by polars into typed columns: split at their double quotes by the CSV reader and read by position when
they all have the first one's layout (:func:`_by_template`), else by the JSON reader. What needs no state is checked here, vectorized: the line layout, the
message shapes, the stream/symbol match, ``U <= u`` and receive times not going backwards. Anything unexpected
sends the block through :func:`first_line_problem`, the per-line msgspec decode, which names the first bad line
exactly as a line-by-line reader would; it costs time only on a bad file.
"""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import polars as pl

from keel.data.errors import DataInputError

if TYPE_CHECKING:
    from keel.data.binance_recording import BinanceMarket
    from keel.data.binance_recording import _DepthSnapshot

_LEVELS = pl.List(pl.List(pl.String))
# A list of [price, qty] string pairs, nothing else: checked before the list is decoded.
_LEVELS_PATTERN = r'^\[(\["[^"]*","[^"]*"\](,\["[^"]*","[^"]*"\])*)?\]$'

_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])
_KINDS = ("trade", "bookTicker", "depth")


@dataclass(frozen=True)
class DecodedBlock:
    """
    One block's messages as typed columns, in file order within each kind.

    Parameters
    ----------
    trades : pl.DataFrame
        ``line, ts_init, s, t, p, q, T, m, X`` (``X`` null on spot).
    quotes : pl.DataFrame
        ``line, ts_init, s, u, b, B, a, A, T`` (``T`` null on spot).
    depths : pl.DataFrame
        ``line, ts_init, s, U, u, pu, E, T, b, a`` (``pu``, ``T`` null on spot; ``b``/``a`` the levels as flat
        lists ``[price, qty, price, qty, ...]``, null when empty).
    snapshots : list[tuple[int, int, _DepthSnapshot]]
        ``(line, ts_init, snapshot)`` of every REST depth snapshot line.
    first_lines : dict[str, int]
        Per symbol, the first line of the block whose stream names it.
    last_ts : int
        The block's last receive time (the previous block's when this one has no line).

    """

    trades: pl.DataFrame
    quotes: pl.DataFrame
    depths: pl.DataFrame
    snapshots: list[tuple[int, int, "_DepthSnapshot"]]
    first_lines: dict[str, int]
    last_ts: int


def decode_block(path: Path, market: "BinanceMarket", block: bytes, first_line: int, previous_ts: int, line_ends: int) -> DecodedBlock:
    """
    Decode and check the lines of ``block``, whose first line is line ``first_line`` of ``path``.

    Parameters
    ----------
    path : Path
        The recording, named in errors.
    market : BinanceMarket
        Gives the payload shapes.
    block : bytes
        Whole lines of the uncompressed recording.
    first_line : int
        The 1-based file line of the block's first line.
    previous_ts : int
        The receive time of the line before the block (-1 at the start of the file).
    line_ends : int
        How many ``\n`` the block holds (its reader counted them).

    Returns
    -------
    DecodedBlock

    Raises
    ------
    DataInputError
        Naming the file and line of the first line that is not ``<int ns> <json>``, has an unexpected message
        shape or stream, a stream/symbol mismatch or ``U > u``, or goes back in local time.

    """
    scan = _Scan(path, market, block, first_line)
    if not block.strip():
        empty = pl.DataFrame(schema={"line": pl.Int64, "ts_init": pl.Int64})
        decoded = {kind: pl.concat([empty, pl.DataFrame(schema=_data_fields(market, kind)[0])], how="horizontal") for kind in _KINDS}
        return DecodedBlock(decoded["trade"], decoded["bookTicker"], decoded["depth"], [], {}, previous_ts)
    frame = _split_lines(block, first_line, line_ends)
    if frame is None:
        scan.raise_first("a line that is not '<local receive ns> <json>'")
    _check_time_order(path, frame, previous_ts)
    # Binance frames start with the stream name; any other key order is found anywhere in the payload.
    stream = frame["payload"].str.extract(r'^\{"stream":"([^"]*)"', 1)
    if stream.null_count():
        stream = stream.fill_null(frame["payload"].str.extract(r'"stream"\s*:\s*"([^"]*)"', 1))
    names = stream.str.split_exact("@", 2)
    frame = frame.with_columns(
        names.struct.field("field_0").str.to_uppercase().alias("stream_symbol"),
        names.struct.field("field_1").alias("kind"),
    )
    is_snapshot = stream.is_null() & frame["payload"].str.contains('"lastUpdateId"', literal=True)
    known = frame["kind"].is_in(_KINDS).fill_null(False) | is_snapshot
    if not known.all():
        scan.raise_first("an unknown message")
    decoded = {kind: _decode_kind(scan, market, frame.filter(pl.col("kind") == kind), kind) for kind in _KINDS}
    snapshots = [
        (line, ts_init, scan.snapshot(line, payload))
        for line, ts_init, payload in frame.filter(is_snapshot).select("line", "ts_init", "payload").iter_rows()
    ]
    named = frame.filter(pl.col("stream_symbol").is_not_null()).group_by("stream_symbol", maintain_order=True).agg(pl.col("line").first())
    return DecodedBlock(
        trades=decoded["trade"],
        quotes=decoded["bookTicker"],
        depths=decoded["depth"],
        snapshots=snapshots,
        first_lines=dict(named.iter_rows()),
        last_ts=int(frame["ts_init"][-1]) if frame.height else previous_ts,
    )


def _split_lines(block: bytes, first_line: int, line_ends: int) -> pl.DataFrame | None:
    """
    Return ``line, ts_init, payload`` of the block's non-empty lines, or None if one is not ``<int> <text>``.

    polars' CSV reader splits at the one space when no payload holds another (Binance JSON has none); else
    each line is split at its first space.
    """
    try:
        split = pl.read_csv(
            io.BytesIO(block), has_header=False, separator=" ", quote_char=None, new_columns=["ts_init", "payload"],
            schema={"ts_init": pl.Int64, "payload": pl.String},
        )
        lines = pl.int_range(first_line, first_line + split.height, dtype=pl.Int64, eager=True)
        if line_ends + (0 if block.endswith(b"\n") else 1) != split.height:
            raise pl.exceptions.ComputeError("blank lines: count them below")
        frame = split.with_columns(lines.alias("line")).select("line", "ts_init", "payload")
    except pl.exceptions.PolarsError:
        try:
            texts = pl.read_csv(io.BytesIO(block), has_header=False, separator="\x1f", quote_char=None, infer_schema=False, new_columns=["text"])
        except pl.exceptions.PolarsError:
            return None
        texts = texts.with_row_index("line", offset=first_line).filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
        parts = texts["text"].str.splitn(" ", 2)
        frame = pl.DataFrame(
            {
                "line": texts["line"].cast(pl.Int64),
                "ts_init": parts.struct.field("field_0").cast(pl.Int64, strict=False),
                "payload": parts.struct.field("field_1"),
            }
        )
    if frame["ts_init"].null_count() or frame["payload"].null_count():
        return None
    return frame


def first_line_problem(market: "BinanceMarket", payload: bytes) -> str | None:
    """
    Return what is wrong with one line's JSON payload as the per-line msgspec decode sees it, or None.

    Parameters
    ----------
    market : BinanceMarket
        Gives the payload structs.
    payload : bytes
        The JSON after the receive time.

    Returns
    -------
    str or None

    """
    try:
        envelope = _ENVELOPE.decode(payload)
        if "stream" in envelope:
            stream = msgspec.json.decode(envelope["stream"], type=str)
            stream_symbol, _, channel = stream.partition("@")
            kind = channel.split("@", 1)[0]
            decoder = market.stream_decoder(kind)
            if decoder is None:
                return f"stream '{stream}': expected a trade, bookTicker or depth stream"
            if "data" not in envelope:
                return f"stream '{stream}' frame without 'data'"
            try:
                data = decoder.decode(envelope["data"])
            except msgspec.ValidationError as error:
                return f"stream '{stream}': unexpected {market.name} {kind} payload ({error})"
            if data.s != stream_symbol.upper():
                return f"stream '{stream}' carries symbol '{data.s}': expected '{stream_symbol.upper()}'"
            if kind == "depth" and data.U > data.u:
                return f"depthUpdate U={data.U} > u={data.u}: expected first update id <= final update id"
            return None
        if "lastUpdateId" in envelope:
            market.decode_snapshot(payload)
            return None
        return f"expected a stream frame {{stream, data}} or a depth snapshot {{lastUpdateId, bids, asks}}, got keys {sorted(envelope)}"
    except msgspec.ValidationError as error:
        return f"unexpected message shape: {error}"
    except msgspec.DecodeError as error:
        return f"bad JSON: {error}"


class _Scan:
    """The per-line route for a block: names the first bad line when the vectorized checks found something."""

    def __init__(self, path: Path, market: "BinanceMarket", block: bytes, first_line: int) -> None:
        self.path = path
        self.market = market
        self._block = block
        self._first_line = first_line

    def raise_first(self, found: str) -> None:
        """Raise the first line's problem, read line by line; ``found`` is what the vectorized route saw."""
        for offset, raw_line in enumerate(self._block.split(b"\n")):
            raw_line = raw_line.rstrip(b"\r")
            if not raw_line:
                continue
            line = self._first_line + offset
            ts_text, _, payload = raw_line.partition(b" ")
            if not ts_text.isdigit() or not payload:
                raise DataInputError(self.path, f"expected '<local receive ns> <json>', got {raw_line[:60]!r}", line)
            problem = first_line_problem(self.market, payload)
            if problem is not None:
                raise DataInputError(self.path, problem, line)
        last = self._first_line + self._block.count(b"\n")
        raise DataInputError(self.path, f"{found} in lines {self._first_line}-{last}, which no line-by-line check could name")

    def raise_at(self, line: int, payload: str, found: str) -> None:
        """Raise the problem of one line, read alone."""
        problem = first_line_problem(self.market, payload.encode())
        raise DataInputError(self.path, problem or found, line)

    def snapshot(self, line: int, payload: str) -> "_DepthSnapshot":
        """Decode one REST snapshot line."""
        try:
            return self.market.decode_snapshot(payload.encode())
        except msgspec.ValidationError as error:
            raise DataInputError(self.path, f"unexpected message shape: {error}", line) from None
        except msgspec.DecodeError as error:
            raise DataInputError(self.path, f"bad JSON: {error}", line) from None


def _check_time_order(path: Path, frame: pl.DataFrame, previous_ts: int) -> None:
    previous = frame["ts_init"].shift(1, fill_value=previous_ts)
    backwards = frame["ts_init"] < previous
    if backwards.any():
        index = int(backwards.arg_true()[0])
        raise DataInputError(
            path,
            f"out of order: local time {frame['ts_init'][index]} is before the previous line's {previous[index]}",
            int(frame["line"][index]),
        )


def _decode_kind(scan: _Scan, market: "BinanceMarket", rows: pl.DataFrame, kind: str) -> pl.DataFrame:
    fields, required = _data_fields(market, kind)
    decoded = _by_template(rows["payload"], fields, required, kind) if rows.height else None
    if decoded is None:
        decoded = _by_json(scan, rows, fields, required, kind)
    mismatch = decoded["s"] != rows["stream_symbol"]
    if mismatch.any():
        index = int(mismatch.arg_true()[0])
        scan.raise_at(int(rows["line"][index]), rows["payload"][index], "a stream/symbol mismatch")
    result = pl.concat([rows.select("line", "ts_init"), decoded], how="horizontal")
    if kind == "depth":
        reversed_ids = result["U"] > result["u"]
        if reversed_ids.any():
            index = int(reversed_ids.arg_true()[0])
            scan.raise_at(int(rows["line"][index]), rows["payload"][index], "a depthUpdate with U > u")
    return result


def _by_json(scan: _Scan, rows: pl.DataFrame, fields: dict[str, pl.DataType], required: list[str], kind: str) -> pl.DataFrame:
    """Decode every payload with polars' JSON reader: any key order and spacing, slower than :func:`_by_template`."""
    try:
        data = rows["payload"].str.json_decode(pl.Struct({"data": pl.Struct(fields)})).struct.field("data")
    except pl.exceptions.PolarsError:
        _raise_first_of(scan, rows, f"a {kind} payload polars cannot decode")
    decoded = data.struct.unnest()
    missing = decoded.select(pl.any_horizontal([pl.col(name).is_null() for name in required])).to_series() | data.is_null()
    if kind == "depth" and rows.height:
        pairs = decoded["b"].list.eval(pl.element().list.len() == 2).list.all() & decoded["a"].list.eval(pl.element().list.len() == 2).list.all()
        missing = missing | ~pairs.fill_null(False)
    if missing.any():
        index = int(missing.arg_true()[0])
        scan.raise_at(int(rows["line"][index]), rows["payload"][index], f"a {kind} payload without {required}")
    if kind != "depth":
        return decoded
    # The levels as flat lists [price, qty, ...], as the positional route reads them; no levels: null.
    flat = {side: pl.when(pl.col(side).list.len() > 0).then(pl.col(side).list.eval(pl.element().explode())) for side in ("b", "a")}
    return decoded.with_columns(**flat)


def _by_template(payloads: pl.Series, fields: dict[str, pl.DataType], required: list[str], kind: str) -> pl.DataFrame | None:
    """
    Read the fields by position when every payload has the first one's layout; None when one does not.

    A payload split at its double quotes alternates structure and strings: ``{``, ``stream``, ``:``, ``btcusdt@trade``,
    ``,``, ``data``, ``:{``, ``e``, ``:``, ``trade``, ``,``, ``E``, ``:1723161255343,`` ... A key is a string followed
    by ``:``; its value is the next string (after a lone ``:``) or the number or boolean in the ``:...,`` piece.
    When every payload has the first one's keys at the same positions (recorders write Binance's frames as
    sent), each field is one column of pieces, no JSON parser needed. Depth levels, whose count varies, are
    cut out first and read the same way (:func:`_levels`).
    """
    scalars = [name for name in required if kind != "depth" or name not in ("b", "a")]  # the levels are read apart
    texts = payloads
    if kind == "depth":
        bids_at, asks_at = payloads.str.find('"b":[', literal=True), payloads.str.find('],"a":[', literal=True)
        if bids_at.null_count() or asks_at.null_count() or not payloads.str.ends_with("]}}").all() or not (bids_at < asks_at).all():
            return None
        texts = payloads.str.slice(0, bids_at)
        levels = {
            "b": _levels(payloads.str.slice(bids_at + 4, asks_at - bids_at - 3)),
            "a": _levels(payloads.str.slice(asks_at + 6, payloads.str.len_chars() - asks_at - 8)),
        }
        if levels["b"] is None or levels["a"] is None:
            return None
    template = texts[0].split('"')
    positions: dict[str, int] = {}
    for index in range(1, len(template) - 1, 2):
        if template[index + 1].startswith(":"):
            positions[template[index]] = index
    data_at = positions.get("data")
    if data_at is None or any(name not in positions or positions[name] < data_at for name in scalars):
        return None
    pieces = _quote_pieces(texts, template, set(positions.values()))
    if pieces is None:
        return None
    columns = {}
    for name, dtype in fields.items():
        if kind == "depth" and name in ("b", "a"):
            continue
        index = positions.get(name)
        if index is None:
            columns[name] = pl.Series(name, [None] * len(payloads), dtype=dtype)
        elif template[index + 1].strip() == ":":
            columns[name] = pieces.to_series(index + 2).alias(name).cast(dtype)
        else:
            value = pieces.to_series(index + 1).str.strip_chars(":,{}[] ")
            if dtype == pl.Boolean:
                if not value.is_in(["true", "false"]).all():
                    return None
                columns[name] = (value == "true").alias(name)
            else:
                columns[name] = value.cast(dtype, strict=False).alias(name)
    frame = pl.DataFrame(columns)
    if frame.select(pl.any_horizontal([pl.col(name).is_null() for name in scalars])).to_series().any():
        return None
    if kind == "depth":
        frame = frame.with_columns(levels["b"].alias("b"), levels["a"].alias("a"))
    return frame


def _quote_pieces(texts: pl.Series, template: list[str], key_positions: set[int]) -> pl.DataFrame | None:
    """
    Return the payloads split at their double quotes, one column per piece, if every one has ``template``'s layout; else None.

    The layout: as many pieces as the template, and the same text in every piece that is not a value. Odd
    pieces are strings: a key (kept) or a string value (any text). Even pieces are the structure between
    strings (kept), or hold a number or boolean value after its key (``:123,``: any text). polars' CSV reader
    does the split, with the double quote as the separator: one parallel pass over the kind's lines. It refuses
    a line with more pieces, and reads the missing pieces of a shorter one as empty: the last piece (never
    empty in a Binance frame, ``}}`` or ``:true}}``) tells those apart without counting quotes.
    """
    if not template[-1] and not (texts.str.count_matches('"', literal=True) == len(template) - 1).all():
        return None
    try:
        pieces = pl.read_csv(
            io.BytesIO(texts.str.join("\n").cast(pl.Binary)[0]), has_header=False, separator='"', quote_char=None,
            infer_schema=False, empty_string_is_null=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if pieces.height != len(texts) or pieces.width != len(template) or (template[-1] and not (pieces.to_series(-1) != "").all()):
        return None
    for index, piece in enumerate(template):
        is_number = index - 1 in key_positions and piece.strip() != ":"
        is_fixed = index in key_positions or (index % 2 == 0 and not is_number)
        if is_fixed and not (pieces.to_series(index) == piece).all():
            return None
    return pieces


def _levels(texts: pl.Series) -> pl.Series | None:
    """
    Return ``[["price","qty"],...]`` (or ``[]``) per row as one flat list ``[price, qty, price, qty, ...]``.

    None if a row is not exactly such a list of string pairs; once the pattern has said so, stripping the
    brackets and splitting at ``","`` is exact, and much cheaper than a JSON reader.
    """
    if not texts.str.contains(_LEVELS_PATTERN).all():
        return None
    flat = texts.str.strip_chars("[]").str.replace_all('"],["', '","', literal=True).str.strip_chars('"').str.split('","')
    # An empty list would split into one empty string: null instead, so that it explodes into no level.
    return pl.select(pl.when(pl.lit(texts) == "[]").then(None).otherwise(pl.lit(flat))).to_series()


def _raise_first_of(scan: _Scan, rows: pl.DataFrame, found: str) -> None:
    for line, payload in rows.select("line", "payload").iter_rows():
        if first_line_problem(scan.market, payload.encode()) is not None:
            scan.raise_at(line, payload, found)
    raise DataInputError(scan.path, f"{found} (lines {rows['line'][0]}-{rows['line'][-1]}), which no line-by-line check could name")


def _data_fields(market: "BinanceMarket", kind: str) -> tuple[dict[str, pl.DataType], list[str]]:
    """Return the polars fields of one kind's ``data`` object and those every message must carry."""
    futures = market.bridge_offset == 0
    if kind == "trade":
        fields = {"s": pl.String, "t": pl.Int64, "p": pl.String, "q": pl.String, "T": pl.Int64, "m": pl.Boolean, "X": pl.String}
        return fields, ["s", "t", "p", "q", "T", "m", *(["X"] if futures else [])]
    if kind == "bookTicker":
        fields = {"s": pl.String, "u": pl.Int64, "b": pl.String, "B": pl.String, "a": pl.String, "A": pl.String, "E": pl.Int64, "T": pl.Int64}
        return fields, ["s", "u", "b", "B", "a", "A", *(["E", "T"] if futures else [])]
    fields = {"s": pl.String, "U": pl.Int64, "u": pl.Int64, "pu": pl.Int64, "E": pl.Int64, "T": pl.Int64, "b": _LEVELS, "a": _LEVELS}
    return fields, ["s", "U", "u", "E", "b", "a", *(["T", "pu"] if futures else [])]

